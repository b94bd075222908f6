import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../../log.js';
import { PayIvrError, describeError } from '../../../errors.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { Transport } from '../../types.js';
import type { SipMessage } from './message.js';
import { frameStream, parseMessage, SipParseError, type ParseLimits } from './parser.js';

/**
 * SIP transports (RFC 3261 section 18): UDP datagrams, TCP and TLS streams framed by
 * Content-Length. Streams have an idle timeout and a buffer cap; nothing here throws on input.
 */

export interface ListenSpec {
  transport: Transport;
  host: string;
  port: number;
}

/** Where a message came from / goes to. `connectionId` pins a stream connection. */
export interface Flow {
  transport: Transport;
  address: string;
  port: number;
  connectionId?: number | undefined;
}

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer | undefined;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
}

export interface SipTransportOptions {
  listen: readonly ListenSpec[];
  limits: ParseLimits;
  logger: Logger;
  tls?: TlsMaterial | undefined;
  /** Close a stream connection with no traffic for this long. */
  streamIdleTimeoutMs?: number;
  maxConnections?: number;
}

interface TransportEvents extends Record<string, unknown[]> {
  message: [msg: SipMessage, flow: Flow];
  'parse-error': [err: SipParseError, flow: Flow];
}

interface StreamConn {
  id: number;
  socket: net.Socket;
  transport: 'tcp' | 'tls';
  address: string;
  port: number;
  buffer: Buffer;
}

const CRLF = Buffer.from('\r\n');

export class SipTransport extends TypedEmitter<TransportEvents> {
  readonly #opts: SipTransportOptions;
  readonly #log: Logger;
  readonly #udp: { socket: dgram.Socket; spec: ListenSpec; family: 4 | 6 }[] = [];
  readonly #servers: { server: net.Server; spec: ListenSpec }[] = [];
  readonly #conns = new Map<number, StreamConn>();
  #nextConnId = 1;
  #running = false;

  constructor(opts: SipTransportOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger;
  }

  get running(): boolean {
    return this.#running;
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    try {
      for (const spec of this.#opts.listen) {
        if (spec.transport === 'udp') await this.#listenUdp(spec);
        else await this.#listenStream(spec);
      }
    } catch (e) {
      await this.stop();
      throw new PayIvrError('ERR_SIP_TRANSPORT', `cannot listen: ${describeError(e)}`, { cause: e });
    }
    this.#running = true;
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const c of this.#conns.values()) c.socket.destroy();
    this.#conns.clear();
    await Promise.all(
      this.#udp.splice(0).map(
        (u) =>
          new Promise<void>((resolve) => {
            try {
              u.socket.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
    await Promise.all(
      this.#servers.splice(0).map((s) => new Promise<void>((resolve) => s.server.close(() => resolve()))),
    );
  }

  /** Address and port written in Via/Contact for a transport (first listener of that kind). */
  localEndpoint(transport: Transport): ListenSpec | undefined {
    const u = this.#opts.listen.find((l) => l.transport === transport);
    if (u === undefined) return undefined;
    // Port 0 listeners report the bound port.
    if (u.port === 0) {
      if (transport === 'udp') {
        const s = this.#udp.find((x) => x.spec === u);
        if (s !== undefined) return { ...u, port: s.socket.address().port };
      } else {
        const s = this.#servers.find((x) => x.spec === u);
        const a = s?.server.address();
        if (a !== null && a !== undefined && typeof a === 'object') return { ...u, port: a.port };
      }
    }
    return u;
  }

  static isReliable(t: Transport): boolean {
    return t !== 'udp';
  }

  /** Sends bytes; failures are logged, never thrown (transactions time out instead). */
  send(data: Buffer, flow: Flow): void {
    if (!this.#running) return;
    if (flow.transport === 'udp') {
      const fam = net.isIPv6(flow.address) ? 6 : 4;
      const u = this.#udp.find((x) => x.family === fam) ?? this.#udp[0];
      if (u === undefined) {
        this.#log.warn({ transport: 'udp' }, 'sip: no UDP listener to send from');
        return;
      }
      u.socket.send(data, flow.port, flow.address, (err) => {
        if (err) this.#log.debug({ err: describeError(err) }, 'sip: udp send failed');
      });
      return;
    }
    let conn = flow.connectionId !== undefined ? this.#conns.get(flow.connectionId) : undefined;
    if (conn === undefined || conn.socket.destroyed) {
      conn = [...this.#conns.values()].find(
        (c) => c.transport === flow.transport && c.address === flow.address && c.port === flow.port && !c.socket.destroyed,
      );
    }
    if (conn === undefined) conn = this.#connect(flow);
    if (conn !== undefined) conn.socket.write(data);
  }

  async #listenUdp(spec: ListenSpec): Promise<void> {
    const family: 4 | 6 = net.isIPv6(spec.host) ? 6 : 4;
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(spec.port, spec.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.#log.warn({ err: describeError(err) }, 'sip: udp socket error'));
    socket.on('message', (buf, rinfo) => {
      const flow: Flow = { transport: 'udp', address: rinfo.address, port: rinfo.port };
      // A lone CRLF keep-alive datagram is not a message.
      if (buf.length <= 4 && buf.toString('latin1').trim() === '') return;
      this.#deliver(buf, flow, false);
    });
    this.#udp.push({ socket, spec, family });
  }

  async #listenStream(spec: ListenSpec): Promise<void> {
    let server: net.Server;
    if (spec.transport === 'tls') {
      const m = this.#opts.tls;
      if (m === undefined) throw new PayIvrError('ERR_SIP_TRANSPORT', 'a TLS listener needs sip.tls certFile/keyFile');
      server = tls.createServer({ cert: m.cert, key: m.key, ca: m.ca, minVersion: m.minVersion }, (s) => this.#adopt(s, 'tls'));
    } else {
      server = net.createServer((s) => this.#adopt(s, 'tcp'));
    }
    server.on('error', (err) => this.#log.warn({ err: describeError(err) }, 'sip: stream listener error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#servers.push({ server, spec });
  }

  #connect(flow: Flow): StreamConn | undefined {
    if (this.#conns.size >= (this.#opts.maxConnections ?? 1024)) return undefined;
    const transport = flow.transport === 'tls' ? 'tls' : 'tcp';
    let socket: net.Socket;
    if (transport === 'tls') {
      const m = this.#opts.tls;
      socket = tls.connect({
        host: flow.address,
        port: flow.port,
        ca: m?.ca,
        minVersion: m?.minVersion ?? 'TLSv1.2',
        servername: net.isIP(flow.address) === 0 ? flow.address : undefined,
      });
    } else {
      socket = net.connect({ host: flow.address, port: flow.port });
    }
    return this.#adopt(socket, transport, flow.address, flow.port);
  }

  #adopt(socket: net.Socket, transport: 'tcp' | 'tls', address?: string, port?: number): StreamConn | undefined {
    if (this.#conns.size >= (this.#opts.maxConnections ?? 1024)) {
      socket.destroy();
      return undefined;
    }
    const conn: StreamConn = {
      id: this.#nextConnId++,
      socket,
      transport,
      address: normalizeAddress(address ?? socket.remoteAddress ?? ''),
      port: port ?? socket.remotePort ?? 0,
      buffer: Buffer.alloc(0),
    };
    this.#conns.set(conn.id, conn);
    socket.setNoDelay(true);
    socket.setTimeout(this.#opts.streamIdleTimeoutMs ?? 300_000, () => socket.destroy());
    socket.on('error', (err) => this.#log.debug({ err: describeError(err), transport }, 'sip: stream error'));
    socket.on('close', () => this.#conns.delete(conn.id));
    socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk));
    return conn;
  }

  #onData(conn: StreamConn, chunk: Buffer): void {
    const limits = this.#opts.limits;
    conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
    // Bounded work per chunk: each loop consumes bytes or stops.
    for (;;) {
      const f = frameStream(conn.buffer, limits);
      if (f.kind === 'need-more') {
        if (conn.buffer.length > limits.maxMessageBytes) this.#dropConn(conn, 'buffer cap');
        return;
      }
      if (f.kind === 'error') {
        this.#dropConn(conn, f.reason);
        return;
      }
      const bytes = conn.buffer.subarray(0, f.length);
      conn.buffer = conn.buffer.subarray(f.length);
      if (f.kind === 'keepalive') {
        if (f.ping) conn.socket.write(CRLF);
        continue;
      }
      this.#deliver(bytes, { transport: conn.transport, address: conn.address, port: conn.port, connectionId: conn.id }, true);
      if (conn.socket.destroyed) return;
    }
  }

  #dropConn(conn: StreamConn, reason: string): void {
    this.#log.debug({ transport: conn.transport, reason }, 'sip: closing stream connection');
    conn.buffer = Buffer.alloc(0);
    conn.socket.destroy();
    this.#conns.delete(conn.id);
  }

  #deliver(buf: Buffer, flow: Flow, stream: boolean): void {
    let msg: SipMessage;
    try {
      msg = parseMessage(buf, this.#opts.limits, stream);
    } catch (e) {
      if (e instanceof SipParseError) this.#safeEmit('parse-error', e, flow);
      else this.#log.warn({ err: describeError(e) }, 'sip: unexpected parser failure');
      return;
    }
    this.#safeEmit('message', msg, flow);
    // An INFO may carry a DTMF digit (of a card number): its raw bytes are zeroed once handled
    // (the parsed message has its own copy, which the session zeroes after reading the digit).
    if (msg.kind === 'request' && msg.method === 'INFO') buf.fill(0);
  }

  #safeEmit<K extends 'message' | 'parse-error'>(event: K, ...args: TransportEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#log.error({ err: describeError(e) }, 'sip: message handler failed');
    }
  }
}

/** "::ffff:127.0.0.1" -> "127.0.0.1". */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
