import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../../../log.js';
import { PayIvrError, describeError } from '../../../errors.js';
import { OncePerWindow } from '../../../util/once-per-window.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { Transport } from '../../types.js';
import type { SipMessage } from './message.js';
import { frameStream, parseMessage, SipParseError, type ParseLimits } from './parser.js';

/**
 * SIP transports (RFC 3261 section 18): UDP datagrams, TCP and TLS streams framed by
 * Content-Length. Nothing here throws on input. Streams are what one source can hold against
 * everyone else, so each accepted connection is checked at once (allow-list, a cap per source
 * and in all) and then held to two deadlines: a whole message (or the TLS handshake) within
 * `messageTimeoutMs` of its first byte, and no silence longer than `idleTimeoutMs`. A source
 * trickling a byte a second or holding idle sockets loses them; refusals are logged once per
 * source per minute.
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
  /** TLS 1.2 unless configured (Genesys BYOC speaks 1.2; config sip.tls.maxVersion). */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3' | undefined;
}

/** What a stream listener tolerates (sip.streams in the configuration). */
export interface StreamLimits {
  /** Connections open at once, in all (inbound and outbound). */
  maxConnections: number;
  /** Inbound connections open at once from one source address. */
  maxConnectionsPerSource: number;
  /** A message (or a TLS handshake) must be whole this long after its first byte. */
  messageTimeoutMs: number;
  /** A connection with no bytes in either direction for this long is closed. */
  idleTimeoutMs: number;
  /** Source addresses that may connect at all (the signalling allow-list); everyone when absent. */
  allowed?: ((address: string) => boolean) | undefined;
}

const DEFAULT_STREAM_LIMITS: StreamLimits = { maxConnections: 1024, maxConnectionsPerSource: 32, messageTimeoutMs: 5000, idleTimeoutMs: 60_000 };

interface SipTransportOptions {
  listen: readonly ListenSpec[];
  limits: ParseLimits;
  logger: Logger;
  tls?: TlsMaterial | undefined;
  streams?: StreamLimits | undefined;
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
  /** Running while a message is incomplete. */
  messageTimer: ReturnType<typeof setTimeout> | undefined;
  /** We opened it (a request to a peer with no connection to reuse). */
  outbound: boolean;
}

const CRLF = Buffer.from('\r\n');

export class SipTransport extends TypedEmitter<TransportEvents> {
  readonly #opts: SipTransportOptions;
  readonly #log: Logger;
  readonly #udp: { socket: dgram.Socket; spec: ListenSpec; family: 4 | 6 }[] = [];
  readonly #servers: { server: net.Server; spec: ListenSpec }[] = [];
  readonly #conns = new Map<number, StreamConn>();
  /** Accepted sockets (raw, TLS handshake included) and how many per source. */
  readonly #inbound = new Set<net.Socket>();
  readonly #perSource = new Map<string, number>();
  readonly #refusedLog = new OncePerWindow(60_000);
  readonly #streams: StreamLimits;
  #nextConnId = 1;
  #running = false;

  constructor(opts: SipTransportOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger;
    this.#streams = opts.streams ?? DEFAULT_STREAM_LIMITS;
  }

  get running(): boolean {
    return this.#running;
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Accepted stream sockets still open (TLS handshakes included). */
  get inboundCount(): number {
    return this.#inbound.size;
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
    for (const s of this.#inbound) s.destroy();
    this.#inbound.clear();
    this.#perSource.clear();
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
    const limits = this.#streams;
    if (spec.transport === 'tls') {
      const m = this.#opts.tls;
      if (m === undefined) throw new PayIvrError('ERR_SIP_TRANSPORT', 'a TLS listener needs sip.tls certFile/keyFile');
      server = tls.createServer(
        { cert: m.cert, key: m.key, ca: m.ca, minVersion: m.minVersion, maxVersion: m.maxVersion ?? 'TLSv1.2', handshakeTimeout: limits.messageTimeoutMs },
        (s) => this.#adopt(s, 'tls'),
      );
      server.on('tlsClientError', (err) => this.#log.debug({ err: describeError(err) }, 'sip: tls handshake failed'));
    } else {
      server = net.createServer((s) => this.#adopt(s, 'tcp'));
    }
    // 'connection' comes first, with the raw socket (before any TLS byte): refuse there.
    server.prependListener('connection', (raw: net.Socket) => this.#onAccept(raw, spec.transport));
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

  /** Allow-list and caps at accept; the refused socket is closed before reading a byte. */
  #onAccept(raw: net.Socket, transport: Transport): void {
    const limits = this.#streams;
    const source = normalizeAddress(raw.remoteAddress ?? '');
    let refused: string | undefined;
    if (limits.allowed !== undefined && !limits.allowed(source)) refused = 'source not in security.allowList';
    else if (this.#inbound.size + this.#outboundCount() >= limits.maxConnections) refused = 'sip.streams.maxConnections reached';
    else if ((this.#perSource.get(source) ?? 0) >= limits.maxConnectionsPerSource) refused = 'sip.streams.maxConnectionsPerSource reached';
    if (refused !== undefined) {
      raw.on('error', () => undefined);
      raw.destroy();
      const suppressed = this.#refusedLog.take(source);
      if (suppressed !== undefined) this.#log.warn({ source, transport, why: refused, suppressedLastMinute: suppressed }, 'sip: connection refused');
      return;
    }
    this.#inbound.add(raw);
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1);
    raw.on('error', (err) => this.#log.debug({ err: describeError(err), transport }, 'sip: stream error'));
    raw.once('close', () => {
      this.#inbound.delete(raw);
      const n = (this.#perSource.get(source) ?? 1) - 1;
      if (n <= 0) this.#perSource.delete(source);
      else this.#perSource.set(source, n);
    });
    // Silence deadline from the first moment; the TLS handshake has its own (handshakeTimeout).
    raw.setTimeout(limits.idleTimeoutMs, () => raw.destroy());
  }

  #outboundCount(): number {
    let n = 0;
    for (const c of this.#conns.values()) if (c.outbound) n++;
    return n;
  }

  #connect(flow: Flow): StreamConn | undefined {
    if (this.#inbound.size + this.#outboundCount() >= this.#streams.maxConnections) return undefined;
    const transport = flow.transport === 'tls' ? 'tls' : 'tcp';
    let socket: net.Socket;
    if (transport === 'tls') {
      const m = this.#opts.tls;
      socket = tls.connect({
        host: flow.address,
        port: flow.port,
        ca: m?.ca,
        minVersion: m?.minVersion ?? 'TLSv1.2',
        maxVersion: m?.maxVersion ?? 'TLSv1.2',
        servername: net.isIP(flow.address) === 0 ? flow.address : undefined,
      });
    } else {
      socket = net.connect({ host: flow.address, port: flow.port });
    }
    return this.#adopt(socket, transport, flow.address, flow.port);
  }

  #adopt(socket: net.Socket, transport: 'tcp' | 'tls', address?: string, port?: number): StreamConn | undefined {
    // Refused at accept (the listener's own 'connection' handler still runs after ours).
    if (socket.destroyed) return undefined;
    const conn: StreamConn = {
      id: this.#nextConnId++,
      socket,
      transport,
      address: normalizeAddress(address ?? socket.remoteAddress ?? ''),
      port: port ?? socket.remotePort ?? 0,
      buffer: Buffer.alloc(0),
      messageTimer: undefined,
      outbound: address !== undefined,
    };
    this.#conns.set(conn.id, conn);
    socket.setNoDelay(true);
    socket.setTimeout(this.#streams.idleTimeoutMs, () => this.#dropConn(conn, 'idle'));
    socket.on('error', (err) => this.#log.debug({ err: describeError(err), transport }, 'sip: stream error'));
    socket.on('close', () => {
      if (conn.messageTimer !== undefined) clearTimeout(conn.messageTimer);
      this.#conns.delete(conn.id);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk));
    return conn;
  }

  #onData(conn: StreamConn, chunk: Buffer): void {
    conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
    this.#framed(conn);
    // A message begun and not finished: it has messageTimeoutMs from now (its first byte) at most.
    if (conn.buffer.length === 0) {
      if (conn.messageTimer !== undefined) clearTimeout(conn.messageTimer);
      conn.messageTimer = undefined;
    } else if (conn.messageTimer === undefined && !conn.socket.destroyed) {
      conn.messageTimer = setTimeout(() => this.#dropConn(conn, 'message deadline'), this.#streams.messageTimeoutMs);
    }
  }

  /** Delivers every whole message at the start of the buffer. */
  #framed(conn: StreamConn): void {
    const limits = this.#opts.limits;
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
      // The next message's clock starts with its own first byte.
      if (conn.messageTimer !== undefined) clearTimeout(conn.messageTimer);
      conn.messageTimer = undefined;
      this.#deliver(bytes, { transport: conn.transport, address: conn.address, port: conn.port, connectionId: conn.id }, true);
      if (conn.socket.destroyed) return;
    }
  }

  #dropConn(conn: StreamConn, reason: string): void {
    this.#log.debug({ transport: conn.transport, reason }, 'sip: closing stream connection');
    if (conn.messageTimer !== undefined) clearTimeout(conn.messageTimer);
    conn.messageTimer = undefined;
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
function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
