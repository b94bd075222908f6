import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { parseMessage, frameStream } from '../../src/telephony/embedded/sip/parser.js';
import { headerValue, type SipMessage, type SipRequest, type SipResponse } from '../../src/telephony/embedded/sip/message.js';

/**
 * A scripted SIP peer for tests: sends raw text over UDP or TCP from 127.0.0.1 and collects
 * what comes back, so tests can look at the exact bytes pay-ivr writes.
 */

export interface PeerCall {
  callId: string;
  fromTag: string;
  branch: string;
  cseq: number;
  /** To header of our 200 (with the remote tag), filled by the test. */
  to?: string;
}

export class SipPeer {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly received: SipMessage[] = [];
  readonly raw: Buffer[] = [];
  #udp: dgram.Socket | undefined;
  #tcp: net.Socket | undefined;
  /** True once the stream connection was closed by the other side. */
  closedByPeer = false;
  #tcpBuf = Buffer.alloc(0);
  #waiters: { pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void; from: number }[] = [];
  port = 0;
  localAddress = '127.0.0.1';
  readonly target: { host: string; port: number };
  /** Auto-answer in-dialog requests from pay-ivr (BYE, NOTIFY...) with this status; undefined = no answer. */
  autoAnswer: Map<string, number> = new Map([['BYE', 200], ['UPDATE', 200], ['OPTIONS', 200]]);

  private constructor(transport: 'udp' | 'tcp' | 'tls', target: { host: string; port: number }) {
    this.transport = transport;
    this.target = target;
  }

  /** `localAddress` other than 127.0.0.1 plays a third party (the test's own loopback). */
  static async open(transport: 'udp' | 'tcp' | 'tls', targetPort: number, localPort = 0, localAddress = '127.0.0.1'): Promise<SipPeer> {
    const p = new SipPeer(transport, { host: '127.0.0.1', port: targetPort });
    p.localAddress = localAddress;
    if (transport === 'udp') {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(localPort, localAddress, () => r()));
      s.on('message', (b) => p.#onBytes(b));
      p.#udp = s;
      p.port = s.address().port;
    } else {
      const s =
        transport === 'tls'
          ? tls.connect({ socket: net.connect({ host: '127.0.0.1', port: targetPort, localAddress }), rejectUnauthorized: false })
          : net.connect({ host: '127.0.0.1', port: targetPort, localAddress });
      await new Promise<void>((r, j) => {
        s.once(transport === 'tls' ? 'secureConnect' : 'connect', () => r());
        s.once('error', j);
      });
      p.#adopt(s);
    }
    return p;
  }

  /**
   * A peer on a connection someone else opened (a TCP/TLS listener playing the far end, e.g.
   * Genesys): it answers on that connection.
   */
  static accepted(transport: 'tcp' | 'tls', s: net.Socket): SipPeer {
    const p = new SipPeer(transport, { host: s.remoteAddress ?? '127.0.0.1', port: s.remotePort ?? 0 });
    p.#adopt(s);
    return p;
  }

  #adopt(s: net.Socket): void {
    s.on('data', (c: Buffer) => {
      this.#tcpBuf = Buffer.concat([this.#tcpBuf, c]);
      for (;;) {
        const f = frameStream(this.#tcpBuf);
        if (f.kind === 'message') {
          this.#onBytes(this.#tcpBuf.subarray(0, f.length));
          this.#tcpBuf = this.#tcpBuf.subarray(f.length);
        } else if (f.kind === 'keepalive') this.#tcpBuf = this.#tcpBuf.subarray(f.length);
        else break;
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => (this.closedByPeer = true));
    this.#tcp = s;
    this.port = s.localPort ?? 0;
  }

  get tp(): string {
    return this.transport.toUpperCase();
  }

  send(text: string | Buffer): void {
    const b = typeof text === 'string' ? Buffer.from(text) : text;
    if (this.#udp !== undefined) this.#udp.send(b, this.target.port, this.target.host);
    else this.#tcp?.write(b);
  }

  /** Sends in two parts (TCP framing tests). */
  sendSplit(text: string, at: number): void {
    const b = Buffer.from(text);
    this.#tcp?.write(b.subarray(0, at));
    setTimeout(() => this.#tcp?.write(b.subarray(at)), 20);
  }

  #onBytes(b: Buffer): void {
    this.raw.push(b);
    let m: SipMessage;
    try {
      m = parseMessage(b, undefined, this.transport !== 'udp');
    } catch {
      return;
    }
    this.received.push(m);
    if (m.kind === 'request' && m.method !== 'ACK') {
      const status = this.autoAnswer.get(m.method);
      if (status !== undefined) this.respond(m, status);
    }
    for (const w of [...this.#waiters]) {
      if (this.received.indexOf(m) >= w.from && w.pred(m)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor(pred: (m: SipMessage) => boolean, timeoutMs = 5000, from = 0): Promise<SipMessage> {
    const found = this.received.slice(from).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<SipMessage>((resolve, reject) => {
      const w = {
        pred,
        from,
        resolve: (m: SipMessage) => {
          clearTimeout(t);
          resolve(m);
        },
      };
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for a SIP message; got ${this.received.map((m) => (m.kind === 'response' ? `${m.status}/${m.headers.find((x) => x.name === 'cseq')?.value ?? ''}` : m.method)).slice(-8).join(' ')}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  async response(callId: string, status: number, method?: string, timeoutMs = 5000): Promise<SipResponse> {
    return (await this.waitFor(
      (m) => m.kind === 'response' && m.status === status && headerValue(m, 'call-id') === callId && (method === undefined || (headerValue(m, 'cseq') ?? '').endsWith(method)),
      timeoutMs,
    )) as SipResponse;
  }

  async request(method: string, callId?: string, timeoutMs = 5000, from = 0): Promise<SipRequest> {
    return (await this.waitFor(
      (m) => m.kind === 'request' && m.method === method && (callId === undefined || headerValue(m, 'call-id') === callId),
      timeoutMs,
      from,
    )) as SipRequest;
  }

  count(pred: (m: SipMessage) => boolean): number {
    return this.received.filter(pred).length;
  }

  /** Answers a request pay-ivr sent us. */
  respond(req: SipRequest, status: number, extra: string[] = [], body = ''): void {
    const lines = [`SIP/2.0 ${status} X`];
    for (const h of req.headers) if (['via', 'from', 'to', 'call-id', 'cseq'].includes(h.name)) {
      let v = h.value;
      if (h.name === 'to' && !/tag=/.test(v)) v += ';tag=peer' + randomBytes(3).toString('hex');
      lines.push(`${h.name}: ${v}`);
    }
    lines.push(...extra, `Content-Length: ${Buffer.byteLength(body)}`, '', body);
    this.send(lines.join('\r\n'));
  }

  newCall(): PeerCall {
    return { callId: `${randomBytes(6).toString('hex')}@peer`, fromTag: randomBytes(4).toString('hex'), branch: `z9hG4bK${randomBytes(6).toString('hex')}`, cseq: 1 };
  }

  via(branch: string): string {
    return `Via: SIP/2.0/${this.tp} ${this.localAddress}:${this.port};branch=${branch};rport`;
  }

  /** An INVITE with an SDP offer (PCMU + telephone-event) unless `sdp` is given ('' = late offer). */
  invite(c: PeerCall, opts: { user?: string; extra?: string[]; sdp?: string; contact?: string } = {}): string {
    const body = opts.sdp ?? offerSdp(40000);
    const lines = [
      `INVITE sip:${opts.user ?? '+33140000001'}@127.0.0.1:${this.target.port} SIP/2.0`,
      this.via(c.branch),
      'Max-Forwards: 70',
      `From: "Caller" <sip:caller@127.0.0.1>;tag=${c.fromTag}`,
      `To: <sip:${opts.user ?? '+33140000001'}@127.0.0.1>`,
      `Call-ID: ${c.callId}`,
      `CSeq: ${c.cseq} INVITE`,
      `Contact: ${opts.contact ?? `<sip:caller@127.0.0.1:${this.port}${this.transport === 'udp' ? '' : `;transport=${this.transport}`}>`}`,
      ...(opts.extra ?? []),
    ];
    if (body !== '') lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    return lines.join('\r\n');
  }

  /** An in-dialog request (ACK, BYE, INFO, re-INVITE...) on a call whose 200 gave `c.to`. */
  inDialog(c: PeerCall, method: string, opts: { cseq?: number; branch?: string; extra?: string[]; body?: string; contentType?: string } = {}): string {
    const body = opts.body ?? '';
    const lines = [
      `${method} sip:pay-ivr@127.0.0.1:${this.target.port} SIP/2.0`,
      this.via(opts.branch ?? `z9hG4bK${randomBytes(6).toString('hex')}`),
      'Max-Forwards: 70',
      `From: "Caller" <sip:caller@127.0.0.1>;tag=${c.fromTag}`,
      `To: ${c.to ?? ''}`,
      `Call-ID: ${c.callId}`,
      `CSeq: ${opts.cseq ?? c.cseq} ${method}`,
      ...(opts.extra ?? []),
    ];
    if (body !== '') lines.push(`Content-Type: ${opts.contentType ?? 'application/sdp'}`);
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    return lines.join('\r\n');
  }

  async close(): Promise<void> {
    for (const w of this.#waiters) void w;
    this.#waiters = [];
    if (this.#udp !== undefined) await new Promise<void>((r) => this.#udp?.close(() => r()));
    this.#tcp?.destroy();
  }
}

export function offerSdp(port: number, pts = '0 8 101', direction = 'sendrecv'): string {
  return ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP ${pts}`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', `a=${direction}`, ''].join('\r\n');
}
