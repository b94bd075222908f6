import http from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import { FaultQueue, isFaultRule, type Fault, type FaultRule } from './faults.js';
import { StripeFace } from './stripe-face.js';
import { AdyenFace } from './adyen-face.js';
import type { Face, FaceRequest, FaceResponse, LedgerEntry, RequestRecord } from './types.js';

interface SandboxOptions {
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: an ephemeral port). */
  port?: number;
  /** Accepted Stripe secret keys; default any `sk_test_` key. */
  stripeKeys?: readonly string[];
  /** Accepted Adyen API keys; default any non-empty key. */
  adyenKeys?: readonly string[];
  /** Latency added to every API request before it executes. */
  latencyMs?: number;
  /** Serve the `/_sandbox/*` control endpoints (default true). */
  control?: boolean;
  logger?: Logger;
  /** Clock for expiry checks (tests). */
  now?: () => Date;
}

/** A running PSP simulator. */
export interface Sandbox {
  /** Base URL, e.g. http://127.0.0.1:43123 (Stripe face under /v1, Adyen face under /v72). */
  readonly url: string;
  readonly port: number;
  /** Successful charges: the books. */
  charges(): LedgerEntry[];
  /** Every charge attempt that reached execution, declined and pending ones included. */
  ledger(): LedgerEntry[];
  /** How each API request was handled (latest 10 000). */
  requests(): RequestRecord[];
  /** Queues a fault for the next matching request(s). */
  inject(rule: FaultRule): void;
  clearFaults(): void;
  /** While down, every API request gets `status` (default 503) without executing. */
  setDown(down: boolean, status?: number): void;
  /** Forgets charges, requests, faults and stored idempotent answers. */
  reset(): void;
  close(): Promise<void>;
}

type StoredAnswer = { state: 'in-flight'; digest: string } | { state: 'done'; digest: string; status: number; headers: Record<string, string>; body: string };

const MAX_BODY_BYTES = 64 * 1024;
const MAX_RECORDS = 10_000;
const MAX_STORED_KEYS = 100_000;

/**
 * Starts the PSP simulator: the Stripe and Adyen faces on one HTTP server, with idempotent
 * replay, fault injection (latency, hang, HTTP status, reply lost after charging) and a ledger
 * that keeps last 4 digits only. `npm start` runs it in-process when the profile's PSP is
 * `sandbox` without a URL; `npx tsx src/psp/sandbox/main.ts` runs it standalone.
 */
export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const logger = opts.logger ?? silentLogger;
  const now = opts.now ?? (() => new Date());
  const faces: Face[] = [new StripeFace({ keys: opts.stripeKeys ?? [], now }), new AdyenFace({ keys: opts.adyenKeys ?? [], now })];
  const faults = new FaultQueue();
  const digestKey = randomBytes(32);
  const stored = new Map<string, StoredAnswer>();
  let ledger: LedgerEntry[] = [];
  let records: RequestRecord[] = [];
  let seq = 0;
  let down: number | undefined;
  const timers = new Set<NodeJS.Timeout>();
  const held = new Set<http.ServerResponse>();
  let closed = false;

  const record = (r: Omit<RequestRecord, 'seq'>): void => {
    records.push({ seq: ++seq, ...r });
    if (records.length > MAX_RECORDS) records = records.slice(-MAX_RECORDS);
    logger.debug({ face: r.face, method: r.method, path: r.path, handling: r.handling, fault: r.fault, status: r.status }, 'sandbox request');
  };
  const book = (e: LedgerEntry): void => {
    ledger.push(e);
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const send = (res: http.ServerResponse, status: number, headers: Record<string, string>, body: string): void => {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };
  const sendFace = (res: http.ServerResponse, r: FaceResponse, extra: Record<string, string> = {}): void =>
    send(res, r.status, { ...(r.headers ?? {}), ...extra }, JSON.stringify(r.body));
  const hold = (res: http.ServerResponse): void => {
    held.add(res);
    res.on('close', () => held.delete(res));
  };

  const control = async (req: http.IncomingMessage, res: http.ServerResponse, path: string, body: Buffer): Promise<void> => {
    const json = (status: number, v: unknown): void => send(res, status, {}, JSON.stringify(v));
    if (req.method === 'GET' && path === '/_sandbox/health') return json(200, { ok: true });
    if (req.method === 'GET' && path === '/_sandbox/charges') return json(200, sandbox.charges());
    if (req.method === 'GET' && path === '/_sandbox/ledger') return json(200, sandbox.ledger());
    if (req.method === 'GET' && path === '/_sandbox/requests') return json(200, sandbox.requests());
    if (req.method === 'DELETE' && path === '/_sandbox/faults') {
      sandbox.clearFaults();
      return json(200, { ok: true });
    }
    if (req.method === 'POST' && path === '/_sandbox/reset') {
      sandbox.reset();
      return json(200, { ok: true });
    }
    if (req.method === 'POST' && path === '/_sandbox/down') {
      let v: unknown;
      try {
        v = JSON.parse(body.toString('utf8'));
      } catch {
        v = undefined;
      }
      const o = typeof v === 'object' && v !== null ? (v as { down?: unknown; status?: unknown }) : {};
      sandbox.setDown(o.down === true, typeof o.status === 'number' ? o.status : 503);
      return json(200, { ok: true });
    }
    if (req.method === 'POST' && path === '/_sandbox/faults') {
      let v: unknown;
      try {
        v = JSON.parse(body.toString('utf8'));
      } catch {
        v = undefined;
      }
      // JSON has no Infinity: count -1 means "until cleared".
      if (isFaultRule(v)) {
        sandbox.inject({ ...v, count: v.count === -1 ? Infinity : v.count });
        return json(200, { ok: true });
      }
      return json(400, { error: 'expected { fault: { kind: latency|hang|status|reply-lost, ... }, count?, face?, method? }' });
    }
    return json(404, { error: 'unknown control endpoint' });
  };

  const api = async (face: Face, req: http.IncomingMessage, res: http.ServerResponse, path: string, query: string, body: Buffer): Promise<void> => {
    const method = req.method ?? 'GET';
    const freq: FaceRequest = { method, path, query, headers: req.headers, body };
    const base = { face: face.name, method, path };
    const authError = face.authenticate(freq);
    if (authError) {
      record({ ...base, idempotencyKey: undefined, bodyDigest: undefined, handling: 'rejected', status: authError.status });
      return sendFace(res, authError);
    }
    const isPost = method === 'POST';
    const { key, error: keyError } = isPost ? face.idempotencyKey(freq) : { key: undefined };
    const digest = isPost ? createHmac('sha256', digestKey).update(`${method} ${path}\n`).update(body).digest('hex').slice(0, 24) : undefined;
    const rec = { ...base, idempotencyKey: key, bodyDigest: digest };
    const keyHeaders: Record<string, string> = key ? { 'idempotency-key': key } : {};
    if (keyError) {
      record({ ...rec, handling: 'rejected', status: keyError.status });
      return sendFace(res, keyError);
    }

    const fault: Fault | undefined = down !== undefined ? { kind: 'status', status: down } : faults.take(face.name, method);
    if (fault?.kind === 'status') {
      record({ ...rec, handling: 'fault', fault: `status-${fault.status}`, status: fault.status });
      const h: Record<string, string> = fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
      return sendFace(res, face.injected(fault.status), h);
    }
    if (fault?.kind === 'hang' && !fault.execute) {
      record({ ...rec, handling: 'fault', fault: 'hang' });
      return hold(res);
    }

    const deliver = (status: number, headers: Record<string, string>, text: string, handling: RequestRecord['handling']): void => {
      if (fault?.kind === 'reply-lost') {
        record({ ...rec, handling, fault: 'reply-lost', status });
        req.socket.destroy();
        return;
      }
      if (fault?.kind === 'hang') {
        record({ ...rec, handling, fault: 'hang-after-execute', status });
        return hold(res);
      }
      record({ ...rec, handling, status });
      send(res, status, headers, text);
    };

    const scopeKey = key ? `${face.keyScope(freq)}\n${key}` : undefined;
    if (scopeKey) {
      const prev = stored.get(scopeKey);
      if (prev?.state === 'in-flight') {
        const r = face.inFlight();
        record({ ...rec, handling: 'in-flight', status: r.status });
        return sendFace(res, r, keyHeaders);
      }
      if (prev?.state === 'done') {
        if (face.strictKeyReuse && prev.digest !== digest) {
          const r = face.keyMismatch();
          record({ ...rec, handling: 'key-mismatch', status: r.status });
          return sendFace(res, r, keyHeaders);
        }
        return deliver(prev.status, { ...prev.headers, ...face.replayHeaders(key as string) }, prev.body, 'replayed');
      }
      stored.set(scopeKey, { state: 'in-flight', digest: digest as string });
    }

    const delay = (fault?.kind === 'latency' ? fault.ms : 0) + (opts.latencyMs ?? 0);
    if (delay > 0) await sleep(delay);
    if (closed) return;
    const result = face.handle(freq, book);
    const text = JSON.stringify(result.response.body);
    const headers = { ...(result.response.headers ?? {}), ...keyHeaders, 'request-id': `req_${randomBytes(7).toString('hex')}` };
    if (scopeKey) {
      if (result.store) {
        stored.set(scopeKey, { state: 'done', digest: digest as string, status: result.response.status, headers, body: text });
        if (stored.size > MAX_STORED_KEYS) {
          const oldest = stored.keys().next().value;
          if (oldest !== undefined) stored.delete(oldest);
        }
      } else {
        stored.delete(scopeKey);
      }
    }
    deliver(result.response.status, headers, text, isPost ? (result.store ? 'executed' : 'rejected') : 'read');
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.socket.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      for (const c of chunks) c.fill(0);
      const url = new URL(req.url ?? '/', 'http://sandbox');
      const path = url.pathname;
      const query = url.search.slice(1);
      const done = (): void => {
        // The body carried card data: zero our copy once the request has been handled.
        body.fill(0);
      };
      let p: Promise<void>;
      if (path.startsWith('/_sandbox/')) {
        p = opts.control === false ? Promise.resolve(send(res, 404, {}, '{"error":"control endpoints disabled"}')) : control(req, res, path, body);
      } else {
        const face = faces.find((f) => f.matches(path));
        p = face ? api(face, req, res, path, query, body) : Promise.resolve(send(res, 404, {}, JSON.stringify({ error: { type: 'invalid_request_error', message: 'Unrecognized request URL' } })));
      }
      p.catch((e: unknown) => {
        logger.error({ err: e instanceof Error ? e.name : 'error' }, 'sandbox handler failed');
        send(res, 500, {}, '{"error":"sandbox internal error"}');
      }).finally(done);
    });
  });
  server.keepAliveTimeout = 30_000;
  // Card data arrives on these sockets, and the sandbox may run inside pay-ivr's process. Node's
  // HTTP server normally reads a socket straight into one shared native buffer that keeps the last
  // request's bytes (body included) until a later read overwrites them. Marking the handle as
  // consumed before the server sees it makes the server read through 'data' events instead, whose
  // chunks are ours: each is zeroed once the parser has copied what it needs (listeners run in
  // order: the server's parser first, then this one).
  server.prependListener('connection', (socket: Socket) => {
    const handle = (socket as Socket & { _handle?: { _consumed?: boolean } | null })._handle;
    if (handle) handle._consumed = true;
  });
  server.on('connection', (socket: Socket) => {
    socket.on('data', (chunk: Buffer) => chunk.fill(0));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  const sandbox: Sandbox = {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    charges: () => ledger.filter((e) => e.status === 'succeeded').map((e) => ({ ...e })),
    ledger: () => ledger.map((e) => ({ ...e })),
    requests: () => records.map((r) => ({ ...r })),
    inject: (rule) => faults.add(rule),
    clearFaults: () => faults.clear(),
    setDown: (d, status = 503) => {
      down = d ? status : undefined;
    },
    reset: () => {
      ledger = [];
      records = [];
      stored.clear();
      faults.clear();
      down = undefined;
      for (const f of faces) f.reset();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const r of held) r.destroy();
      held.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  logger.info({ url: sandbox.url }, 'PSP sandbox listening');
  return sandbox;
}
