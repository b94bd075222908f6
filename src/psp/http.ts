import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { PspError } from './errors.js';

interface HttpSend {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  /** Request body; owned by the caller, which zeroes it once this promise has settled. */
  body?: Buffer | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A PSP answer larger than this is not an answer we can use. */
const MAX_RESPONSE_BYTES = 1 << 20;
/** Errors raised before a single byte reached the PSP: a resend is safe and nothing was executed. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_INVALID_URL']);

/**
 * A small HTTP(S) client for PSP calls: keep-alive agents, a hard timeout and caller abort per
 * request (AbortSignal), bounded response size, and failures classified as PspError so the
 * resilient layer can decide what to do. It never logs and never keeps the request body.
 */
export class PspHttpClient {
  readonly #http = new http.Agent({ keepAlive: true, maxSockets: 256 });
  readonly #https = new https.Agent({ keepAlive: true, maxSockets: 256, minVersion: 'TLSv1.2' });

  send(req: HttpSend): Promise<HttpResult> {
    const timeout = AbortSignal.timeout(req.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    return new Promise<HttpResult>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown): void => {
        if (settled) return;
        settled = true;
        reject(classify(e, timeout, req.timeoutMs));
      };
      if (signal.aborted) {
        fail(signal.reason);
        return;
      }
      const isHttps = req.url.protocol === 'https:';
      const headers: Record<string, string> = { ...req.headers };
      if (req.body) headers['content-length'] = String(req.body.length);
      let r: http.ClientRequest;
      try {
        r = (isHttps ? https : http).request(req.url, { method: req.method, headers, agent: isHttps ? this.#https : this.#http, signal }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy();
              fail(new PspError('protocol', `PSP response larger than ${MAX_RESPONSE_BYTES} bytes`, { status: res.statusCode, maybeExecuted: true }));
              return;
            }
            chunks.push(c);
          });
          res.on('error', fail);
          res.on('aborted', () => fail(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
          });
        });
      } catch (e) {
        fail(e);
        return;
      }
      r.on('error', fail);
      if (!req.body) {
        r.end();
        return;
      }
      const body = req.body;
      // The body (card data) is written on its own, once the socket is connected and, for HTTPS,
      // the handshake done: headers and body written together, or written while the TLS session
      // is not ready, are copied by Node's TLS layer into a native buffer it frees without zeroing.
      // Written alone on a ready socket, the body goes from our Buffer (zeroed by the caller) into
      // the TLS record or the kernel directly.
      r.once('socket', (socket: net.Socket) => {
        const ready = (): void => {
          if (settled || r.destroyed) return;
          r.flushHeaders();
          setImmediate(() => {
            if (!settled && !r.destroyed) r.end(body);
          });
        };
        const tls = socket as TLSSocket;
        if (isHttps ? tls.getProtocol?.() === null || tls.getProtocol?.() === 'unknown' || socket.connecting : socket.connecting) {
          socket.once(isHttps ? 'secureConnect' : 'connect', ready);
        } else {
          ready();
        }
      });
    });
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

function classify(e: unknown, timeout: AbortSignal, timeoutMs: number): PspError {
  if (e instanceof PspError) return e;
  if (timeout.aborted) return new PspError('timeout', `PSP did not answer within ${timeoutMs} ms`, { maybeExecuted: true });
  const err = e as NodeJS.ErrnoException | undefined;
  if (err?.name === 'AbortError' || err?.code === 'ABORT_ERR') return new PspError('aborted', 'PSP request aborted by the caller', { maybeExecuted: true });
  const code = err?.code ?? 'unknown';
  return new PspError('network', `PSP connection failed: ${code}`, { maybeExecuted: !NOT_SENT.has(code) });
}

/** The first value of a response header. */
export function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
