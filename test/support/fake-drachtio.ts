import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';

/**
 * A test drachtio-server: the server side of drachtio's TCP wire protocol, as drachtio-server
 * speaks it (src/client.cpp, client-controller.cpp, sip-dialog-controller.cpp, drachtio.h) and
 * drachtio-srf parses it (lib/wire-protocol.js, drachtio-agent.js):
 *
 *   frame     = <byte length> "#" <message>
 *   app->srv  = <msgid> "|" authenticate "|" <secret> "|" <tags>
 *             | <msgid> "|" route "|" <verb>      | <msgid> "|" remove_route "|" <verb>
 *             | <msgid> "|" ping
 *             | <msgid> "|" sip "|" <txnid> "|" <dialogid> [ "|" <proxy> ] CRLF <sip message>
 *   srv->app  = <uuid> "|" response "|" <msgid> "|" OK|NO|NOK [ "|" data ... ]
 *             | <uuid> "|" sip "|" <source> "|" <bytes> "|" <proto> "|" <addr> "|" <port> "|"
 *               <time> "|" <txnid> "|" <dialogid> "|" [ <local addr> "|" <local port> "|" ] CRLF <sip>
 *
 * authenticate answers OK|<hostports>|<version>|<local hostports> (or NO|incorrect secret); a
 * request from the app answers OK|application|<bytes>|<proto>|<addr>|<port>|<time>|<txnid>|
 * Msg sent:| CRLF <the request as sent, with Via/From/To/Call-ID/CSeq/Contact filled in>; a
 * response from the app answers OK|application|...|<txnid>|<dialogid>||Msg sent:| CRLF <response>.
 * A new request from the network goes to a client that registered its verb (round robin over
 * the route multimap), else the server answers 503 itself. Dialog ids are
 * "<Call-ID>;from-tag=<tag of the UAC>".
 *
 * The SIP peers behind the server are in-process objects: a CallerLeg (the "network" caller the
 * test drives) and SIP targets (FakeFreeswitch's SIP side) addressed by the Request-URI host:port.
 */

// ---------- a small SIP message model (test side) ----------

export class SipMsg {
  startLine: string;
  headers: [string, string][];
  body: string;

  constructor(startLine: string, headers: [string, string][] = [], body = '') {
    this.startLine = startLine;
    this.headers = headers;
    this.body = body;
  }

  static parse(text: string): SipMsg {
    const sep = text.indexOf('\r\n\r\n');
    const head = sep === -1 ? text : text.slice(0, sep);
    const body = sep === -1 ? '' : text.slice(sep + 4);
    const lines = head.split('\r\n');
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
    }
    return new SipMsg(lines[0] ?? '', headers, body);
  }

  get isRequest(): boolean {
    return !this.startLine.startsWith('SIP/');
  }

  get method(): string {
    return this.isRequest ? (this.startLine.split(' ')[0] ?? '') : (this.get('CSeq')?.split(/\s+/)[1] ?? '');
  }

  get uri(): string {
    return this.startLine.split(' ')[1] ?? '';
  }

  get status(): number {
    return this.isRequest ? 0 : Number(this.startLine.split(' ')[1]);
  }

  get reason(): string {
    return this.isRequest ? '' : this.startLine.split(' ').slice(2).join(' ');
  }

  get(name: string): string | undefined {
    const n = canonical(name);
    return this.headers.find(([k]) => canonical(k) === n)?.[1];
  }

  getAll(name: string): string[] {
    const n = canonical(name);
    return this.headers.filter(([k]) => canonical(k) === n).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, value: string): this {
    const n = canonical(name);
    const i = this.headers.findIndex(([k]) => canonical(k) === n);
    if (i === -1) this.headers.push([name, value]);
    else this.headers[i] = [this.headers[i]?.[0] ?? name, value];
    return this;
  }

  setIfMissing(name: string, value: string): this {
    if (!this.has(name)) this.headers.push([name, value]);
    return this;
  }

  toString(): string {
    const headers = this.headers.filter(([k]) => canonical(k) !== 'content-length');
    headers.push(['Content-Length', String(Buffer.byteLength(this.body, 'utf8'))]);
    return `${this.startLine}\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${this.body}`;
  }
}

const COMPACT: Record<string, string> = { i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type', f: 'from', t: 'to', v: 'via', o: 'event', r: 'refer-to', b: 'referred-by', k: 'supported' };
function canonical(name: string): string {
  const l = name.trim().toLowerCase();
  return COMPACT[l] ?? l;
}

export function tagOf(nameAddr: string | undefined): string | undefined {
  return nameAddr ? /;\s*tag=([^;>\s]+)/i.exec(nameAddr)?.[1] : undefined;
}

export function uriOf(nameAddr: string | undefined): string {
  if (!nameAddr) return '';
  const m = /<([^>]*)>/.exec(nameAddr);
  return m?.[1] ?? nameAddr.split(';')[0]?.trim() ?? '';
}

const rand = (): string => randomBytes(6).toString('hex');

function hhmmss(): string {
  const d = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds() * 1000, 6)}`;
}

// ---------- peers ----------

export interface PeerResponse {
  status: number;
  reason?: string;
  headers?: [string, string][];
  body?: string;
}

export interface FakeDialog {
  readonly id: string;
  readonly role: 'uas' | 'uac';
  readonly client: ClientConn;
  readonly peer: SipPeer;
  readonly callId: string;
  appTag: string;
  peerTag: string;
  appUri: string;
  peerUri: string;
  /** Where the peer sends in-dialog requests (drachtio's Contact). */
  appContact: string;
  /** Where the app's in-dialog requests go (the peer's Contact). */
  peerContact: string;
  appCseq: number;
  peerCseq: number;
  /** CSeq number of the last INVITE (ACK reuses it). */
  lastInviteCseq: number;
  ended: boolean;
}

/** A SIP endpoint behind the fake server (the caller, FreeSWITCH's SIP side). */
export interface SipPeer {
  /** An in-dialog request the app sent (BYE, REFER, re-INVITE, INFO ...). */
  onRequest(req: SipMsg, dialog: FakeDialog): PeerResponse | Promise<PeerResponse>;
  onAck?(req: SipMsg, dialog: FakeDialog): void;
}

/** A SIP target the app can INVITE outside a dialog (FreeSWITCH's drachtio_mrf profile). */
export interface SipTarget extends SipPeer {
  onInvite(req: SipMsg): PeerResponse | Promise<PeerResponse>;
  /** Called once the dialog exists (after the 2xx was passed to the app). */
  onDialog?(dialog: FakeDialog, req: SipMsg): void;
}

const LOCAL_ADDR = '127.0.0.1';
const LOCAL_SIP_PORT = 5060;
const DRACHTIO_CONTACT = `sip:${LOCAL_ADDR}:${LOCAL_SIP_PORT}`;

export class ClientConn {
  readonly socket: Socket;
  authenticated = false;
  buf = Buffer.alloc(0);
  constructor(socket: Socket) {
    this.socket = socket;
  }
}

interface PendingNetworkTxn {
  req: SipMsg;
  client: ClientConn;
  leg?: CallerLeg;
  dialog?: FakeDialog;
  resolve: (res: SipMsg) => void;
  cancelled?: boolean;
}

/** The INVITE as the network caller sends it; responses and app requests land here. */
export class CallerLeg extends EventEmitter implements SipPeer {
  readonly invite: SipMsg;
  readonly responses: SipMsg[] = [];
  /** In-dialog requests the app sent to the caller (REFER, BYE, re-INVITE ...). */
  readonly requests: SipMsg[] = [];
  dialog: FakeDialog | undefined;
  #final: Promise<SipMsg>;
  #resolveFinal!: (m: SipMsg) => void;
  #server: FakeDrachtio;
  readonly #taken = new Set<SipMsg>();
  /** How the caller answers app requests; default 200 (202 for REFER). */
  respond: (req: SipMsg) => PeerResponse | Promise<PeerResponse> = (req) => ({ status: req.method === 'REFER' ? 202 : 200 });

  constructor(server: FakeDrachtio, invite: SipMsg) {
    super();
    this.#server = server;
    this.invite = invite;
    this.#final = new Promise((r) => (this.#resolveFinal = r));
  }

  /** Final response to the INVITE. */
  final(): Promise<SipMsg> {
    return this.#final;
  }

  onResponse(res: SipMsg): void {
    this.responses.push(res);
    this.emit('response', res);
    if (res.status >= 200) this.#resolveFinal(res);
  }

  onRequest(req: SipMsg): PeerResponse | Promise<PeerResponse> {
    this.requests.push(req);
    this.emit('request', req);
    return this.respond(req);
  }

  /** Resolves with the next app request of `method` (or one already received and not yet taken). */
  nextRequest(method: string): Promise<SipMsg> {
    const have = this.requests.find((r) => r.method === method && !this.#taken.has(r));
    if (have) {
      this.#taken.add(have);
      return Promise.resolve(have);
    }
    return new Promise((resolve) => {
      const on = (r: SipMsg): void => {
        if (r.method !== method || this.#taken.has(r)) return;
        this.#taken.add(r);
        this.off('request', on);
        resolve(r);
      };
      this.on('request', on);
    });
  }

  /** ACK of the 2xx; `sdp`: the answer to a late offer (our INVITE had none); `from`: another sender. */
  ack(sdp = '', from?: { address: string; port: number }): void {
    const d = this.dialog;
    if (!d) throw new Error('no dialog to ACK');
    void this.#server.peerRequest(d, 'ACK', sdp ? [['Content-Type', 'application/sdp']] : [], sdp, from ? { ...from, protocol: 'udp' } : undefined);
  }

  /** BYE; `source`: sent from another address than the caller's (a third party that knows the dialog). */
  bye(headers: [string, string][] = [], source?: NetworkSource): Promise<SipMsg | undefined> {
    const d = this.dialog;
    if (!d) throw new Error('no dialog');
    return this.#server.peerRequest(d, 'BYE', headers, '', source);
  }

  cancel(): void {
    this.#server.cancelInvite(this);
  }

  /** An in-dialog request; `source` makes it come from another address (a third party with the dialog's tags). */
  request(method: string, headers: [string, string][] = [], body = '', source?: NetworkSource): Promise<SipMsg | undefined> {
    const d = this.dialog;
    if (!d) throw new Error('no dialog');
    return this.#server.peerRequest(d, method, headers, body, source);
  }

  /** NOTIFY for a REFER subscription with a message/sipfrag body. */
  notify(sipfrag: string, subscriptionState: string): Promise<SipMsg | undefined> {
    return this.request(
      'NOTIFY',
      [
        ['Event', 'refer'],
        ['Subscription-State', subscriptionState],
        ['Content-Type', 'message/sipfrag;version=2.0'],
      ],
      `${sipfrag}\r\n`,
    );
  }
}

/** Where drachtio-server says a network request came from. */
export interface NetworkSource {
  address: string;
  port: number;
  protocol: 'udp' | 'tcp' | 'tls';
}

export interface FakeDrachtioOptions {
  port: number;
  secret: string;
  /**
   * drachtio-server drops a new INVITE its app has not answered after this long (CLIENT_TIMEOUT,
   * 64 s, pending-request-controller.cpp), sending nothing; a later app response gets NOK.
   * Default: never.
   */
  pendingTimeoutMs?: number;
  /** Send the stateless 100 Trying drachtio-server sends for every new INVITE before routing it. */
  sendTrying?: boolean;
}

export interface InviteOptions {
  from?: string;
  to?: string;
  requestUri?: string;
  headers?: [string, string][];
  /** The SDP offer; '' sends the INVITE without a body (late offer). */
  sdp?: string;
  source?: NetworkSource;
}

export const CALLER_SDP = [
  'v=0',
  'o=caller 1000 1000 IN IP4 127.0.0.1',
  's=caller',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 40000 RTP/AVP 0 8 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=sendrecv',
  '',
].join('\r\n');

export class FakeDrachtio extends EventEmitter {
  readonly opts: FakeDrachtioOptions;
  #server: Server | undefined;
  readonly clients = new Set<ClientConn>();
  /** drachtio-server's route multimap: one entry per route message. */
  routes: { verb: string; client: ClientConn }[] = [];
  #rr = new Map<string, number>();
  readonly dialogs = new Map<string, FakeDialog>();
  readonly #netTxns = new Map<string, PendingNetworkTxn>();
  readonly #targets = new Map<string, SipTarget>();
  /** Every frame the app sent (decoded message text), for assertions. */
  readonly fromApp: string[] = [];
  /** Every frame we sent to the app. */
  readonly toApp: string[] = [];
  /** Responses the server generated itself (no route: 503). */
  readonly serverResponses: SipMsg[] = [];

  constructor(opts: FakeDrachtioOptions) {
    super();
    this.opts = opts;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((s) => this.#onConnection(s));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, '127.0.0.1', () => resolve());
    });
  }

  /** Server loss: closes every client connection and stops listening. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    this.routes = [];
    this.dialogs.clear();
    this.#netTxns.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  addTarget(hostport: string, target: SipTarget): void {
    this.#targets.set(hostport, target);
  }

  hasRoute(verb: string): boolean {
    return this.routes.some((r) => r.verb === verb && r.client.authenticated);
  }

  /** Resolves when the route for `verb` is present (or absent) on the server. */
  async waitForRoute(verb: string, present = true): Promise<void> {
    while (this.hasRoute(verb) !== present) await new Promise<void>((r) => this.once('routes', () => r()));
  }

  async waitForClient(): Promise<void> {
    while (![...this.clients].some((c) => c.authenticated)) await new Promise<void>((r) => this.once('authenticated', () => r()));
  }

  // ---------- network side (test API) ----------

  /** A new INVITE from the network. */
  invite(o: InviteOptions = {}): CallerLeg {
    const callId = `${rand()}@127.0.0.1`;
    const src = o.source ?? { address: '127.0.0.1', port: 5090, protocol: 'udp' };
    const ruri = o.requestUri ?? 'sip:+33140000001@127.0.0.1:5060';
    const msg = new SipMsg(`INVITE ${ruri} SIP/2.0`, [
      ['Via', `SIP/2.0/${src.protocol.toUpperCase()} ${src.address}:${src.port};branch=z9hG4bK${rand()};rport=${src.port}`],
      ['Max-Forwards', '70'],
      ['From', `${o.from ?? '<sip:+15551230000@127.0.0.1>'};tag=${rand()}`],
      ['To', o.to ?? '<sip:+33140000001@127.0.0.1>'],
      ['Call-ID', callId],
      ['CSeq', '1 INVITE'],
      ['Contact', `<sip:caller@${src.address}:${src.port}>`],
      // An INVITE without a body (late offer) has no Content-Type.
      ...((o.sdp ?? CALLER_SDP) !== '' ? [['Content-Type', 'application/sdp'] as [string, string]] : []),
      ...(o.headers ?? []),
    ], o.sdp ?? CALLER_SDP);
    const leg = new CallerLeg(this, msg);
    const client = this.#pickClient('invite');
    if (!client) {
      const res = this.#responseTo(msg, 503, 'Service Unavailable');
      this.serverResponses.push(res);
      setImmediate(() => leg.onResponse(res));
      return leg;
    }
    const txnId = randomUUID();
    this.#netTxns.set(txnId, { req: msg, client, leg, resolve: (r) => leg.onResponse(r) });
    if (this.opts.sendTrying === true) {
      const trying = this.#responseTo(msg, 100, 'Trying');
      this.serverResponses.push(trying);
      setImmediate(() => leg.onResponse(trying));
    }
    const pendingMs = this.opts.pendingTimeoutMs;
    if (pendingMs !== undefined) {
      setTimeout(() => {
        const t = this.#netTxns.get(txnId);
        if (t === undefined || t.leg !== leg) return;
        this.#netTxns.delete(txnId);
        this.emit('pending-timeout', txnId, leg);
      }, pendingMs);
    }
    this.#sendSip(client, 'network', src, txnId, '', msg, true);
    return leg;
  }

  /** OPTIONS from the network, outside a dialog. */
  options(): Promise<SipMsg> {
    const msg = new SipMsg('OPTIONS sip:127.0.0.1:5060 SIP/2.0', [
      ['Via', `SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK${rand()}`],
      ['Max-Forwards', '70'],
      ['From', `<sip:probe@127.0.0.1>;tag=${rand()}`],
      ['To', '<sip:127.0.0.1:5060>'],
      ['Call-ID', `${rand()}@127.0.0.1`],
      ['CSeq', '1 OPTIONS'],
    ]);
    const client = this.#pickClient('options');
    if (!client) {
      const res = this.#responseTo(msg, 503, 'Service Unavailable');
      this.serverResponses.push(res);
      return Promise.resolve(res);
    }
    return new Promise((resolve) => {
      const txnId = randomUUID();
      this.#netTxns.set(txnId, { req: msg, client, resolve });
      this.#sendSip(client, 'network', { address: '127.0.0.1', port: 5091, protocol: 'udp' }, txnId, '', msg, true);
    });
  }

  cancelInvite(leg: CallerLeg): void {
    for (const [txnId, t] of this.#netTxns) {
      if (t.leg !== leg || t.cancelled) continue;
      t.cancelled = true;
      const cancel = new SipMsg(`CANCEL ${leg.invite.uri} SIP/2.0`, [
        ['Via', leg.invite.get('Via') ?? ''],
        ['From', leg.invite.get('From') ?? ''],
        ['To', leg.invite.get('To') ?? ''],
        ['Call-ID', leg.invite.get('Call-ID') ?? ''],
        ['CSeq', '1 CANCEL'],
      ]);
      this.#sendSip(t.client, 'network', { address: '127.0.0.1', port: 5090, protocol: 'udp' }, randomUUID(), '', cancel, true);
      // The stack answers the CANCEL and the INVITE (487) itself.
      this.#netTxns.delete(txnId);
      leg.onResponse(this.#responseTo(leg.invite, 487, 'Request Terminated'));
      return;
    }
  }

  /**
   * An in-dialog request from the peer side of a dialog to the app; resolves with the app's
   * response. `source` overrides the peer's address (a request forged by a third party).
   */
  peerRequest(d: FakeDialog, method: string, headers: [string, string][] = [], body = '', source?: NetworkSource): Promise<SipMsg | undefined> {
    if (method !== 'ACK' && d.ended) return Promise.resolve(this.#goneDialogRequest(d, method));
    if (method !== 'ACK' && (d.client.socket.destroyed || !this.clients.has(d.client))) return Promise.resolve(this.#orphanRequest(d, method));
    const cseq = method === 'ACK' ? d.lastInviteCseq : ++d.peerCseq;
    if (method === 'INVITE') d.lastInviteCseq = cseq;
    const src = source ?? { address: '127.0.0.1', port: d.role === 'uas' ? 5090 : 5080, protocol: 'udp' as const };
    const msg = new SipMsg(`${method} ${d.appContact} SIP/2.0`, [
      ['Via', `SIP/2.0/${src.protocol.toUpperCase()} ${src.address}:${src.port};branch=z9hG4bK${rand()}`],
      ['Max-Forwards', '70'],
      ['From', `<${d.peerUri}>;tag=${d.peerTag}`],
      ['To', `<${d.appUri}>;tag=${d.appTag}`],
      ['Call-ID', d.callId],
      ['CSeq', `${cseq} ${method}`],
      ...headers,
    ], body);
    const txnId = randomUUID();
    if (method === 'ACK') {
      this.#sendSip(d.client, 'network', src, txnId, d.id, msg, false);
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      this.#netTxns.set(txnId, { req: msg, client: d.client, dialog: d, resolve });
      this.#sendSip(d.client, 'network', src, txnId, d.id, msg, false);
      if (method === 'BYE') {
        // drachtio-server drops the dialog as it relays a BYE, whatever the app answers
        // (client-controller.cpp route_request_inside_dialog).
        d.ended = true;
        this.dialogs.delete(d.id);
      }
    });
  }

  /**
   * A request in a dialog drachtio-server dropped: it answers itself, a BYE (or UPDATE) 481 and
   * anything else 503, as it treats it as a new request no app has a route for.
   */
  #goneDialogRequest(d: FakeDialog, method: string): SipMsg {
    const msg = new SipMsg(`${method} ${d.appContact} SIP/2.0`, [
      ['Via', `SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK${rand()}`],
      ['From', `<${d.peerUri}>;tag=${d.peerTag}`],
      ['To', `<${d.appUri}>;tag=${d.appTag}`],
      ['Call-ID', d.callId],
      ['CSeq', `${++d.peerCseq} ${method}`],
    ]);
    const res = method === 'BYE' || method === 'UPDATE' ? this.#responseTo(msg, 481, 'Call/Transaction Does Not Exist') : this.#responseTo(msg, 503, 'Service Unavailable');
    this.serverResponses.push(res);
    return res;
  }

  /**
   * A request from the peer in a dialog whose app connection is gone: drachtio-server finds no
   * client for it and answers 481 itself; a BYE also clears the dialog
   * (sip-dialog-controller.cpp processRequestInsideDialog).
   */
  #orphanRequest(d: FakeDialog, method: string): SipMsg {
    const msg = new SipMsg(`${method} ${d.appContact} SIP/2.0`, [
      ['Via', `SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK${rand()}`],
      ['From', `<${d.peerUri}>;tag=${d.peerTag}`],
      ['To', `<${d.appUri}>;tag=${d.appTag}`],
      ['Call-ID', d.callId],
      ['CSeq', `${++d.peerCseq} ${method}`],
    ]);
    if (method === 'BYE') {
      d.ended = true;
      this.dialogs.delete(d.id);
    }
    const res = this.#responseTo(msg, 481, 'Call/Transaction Does Not Exist');
    this.serverResponses.push(res);
    this.emit('orphan-request', d, msg);
    return res;
  }

  // ---------- wire ----------

  #onConnection(socket: Socket): void {
    const c = new ClientConn(socket);
    this.clients.add(c);
    socket.on('data', (data) => this.#onData(c, data));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.clients.delete(c);
      this.routes = this.routes.filter((r) => r.client !== c);
      this.emit('routes');
      this.emit('client-closed');
    });
  }

  #onData(c: ClientConn, data: Buffer): void {
    c.buf = Buffer.concat([c.buf, data]);
    for (;;) {
      const hash = c.buf.indexOf('#');
      if (hash <= 0) return;
      const lenText = c.buf.subarray(0, hash).toString('utf8');
      if (!/^\d+$/.test(lenText)) {
        c.socket.destroy();
        return;
      }
      const len = Number(lenText);
      if (c.buf.length < hash + 1 + len) return;
      const msg = c.buf.subarray(hash + 1, hash + 1 + len).toString('utf8');
      c.buf = c.buf.subarray(hash + 1 + len);
      this.fromApp.push(msg);
      this.#onMessage(c, msg);
    }
  }

  #send(c: ClientConn, message: string): void {
    this.toApp.push(message);
    if (!c.socket.destroyed) c.socket.write(`${Buffer.byteLength(message, 'utf8')}#${message}`);
  }

  #respond(c: ClientConn, msgId: string, ...fields: string[]): void {
    this.#send(c, [randomUUID(), 'response', msgId, ...fields].join('|'));
  }

  #sendSip(
    c: ClientConn,
    source: 'network' | 'application',
    from: { address: string; port: number; protocol: string },
    txnId: string,
    dialogId: string,
    msg: SipMsg,
    newRequest: boolean,
  ): void {
    const text = msg.toString();
    const meta = [randomUUID(), 'sip', source, String(Buffer.byteLength(text)), from.protocol, from.address, String(from.port), hhmmss(), txnId, dialogId];
    const tail = newRequest ? `|${LOCAL_ADDR}|${LOCAL_SIP_PORT}|` : '|';
    this.#send(c, `${meta.join('|')}${tail}\r\n${text}`);
  }

  #msgSent(c: ClientConn, msgId: string, to: { address: string; port: number }, txnId: string, msg: SipMsg, dialogId?: string): void {
    const text = msg.toString();
    const fields = ['OK', 'application', String(Buffer.byteLength(text)), 'udp', to.address, String(to.port), hhmmss(), txnId];
    if (dialogId !== undefined) fields.push(dialogId, '');
    this.#send(c, `${[randomUUID(), 'response', msgId, ...fields, 'Msg sent:', ''].join('|')}\r\n${text}`);
  }

  #onMessage(c: ClientConn, msg: string): void {
    const crlf = msg.indexOf('\r\n');
    const leader = crlf === -1 ? msg : msg.slice(0, crlf);
    const t = leader.split('|');
    const msgId = t[0] ?? '';
    const type = t[1];
    if (type === 'authenticate') {
      if (t[2] === this.opts.secret) {
        c.authenticated = true;
        this.#respond(c, msgId, 'OK', `udp/${LOCAL_ADDR}:${LOCAL_SIP_PORT},tcp/${LOCAL_ADDR}:${LOCAL_SIP_PORT}`, 'v0.9.6-test', `udp/${LOCAL_ADDR}:${LOCAL_SIP_PORT}`);
        this.emit('authenticated');
      } else {
        this.#respond(c, msgId, 'NO', 'incorrect secret');
        this.emit('auth-failed');
      }
      return;
    }
    if (!c.authenticated) {
      this.#respond(c, msgId, 'NO', 'not authenticated');
      return;
    }
    switch (type) {
      case 'ping':
        this.#respond(c, msgId, 'OK', 'pong');
        return;
      case 'route':
        this.routes.push({ verb: t[2] ?? '', client: c });
        this.#respond(c, msgId, 'OK');
        this.emit('routes');
        return;
      case 'remove_route':
        this.routes = this.routes.filter((r) => !(r.client === c && r.verb === t[2]));
        this.#respond(c, msgId, 'OK');
        this.emit('routes');
        return;
      case 'sip':
        this.#onAppSip(c, msgId, t[2] ?? '', t[3] ?? '', SipMsg.parse(msg.slice(crlf + 2)));
        return;
      default:
        this.#respond(c, msgId, 'NO', 'Unknown message type');
    }
  }

  #pickClient(verb: string): ClientConn | undefined {
    const list = this.routes.filter((r) => r.verb === verb && r.client.authenticated);
    if (list.length === 0) return undefined;
    const i = (this.#rr.get(verb) ?? 0) % list.length;
    this.#rr.set(verb, i + 1);
    return list[i]?.client;
  }

  #responseTo(req: SipMsg, status: number, reason: string, extra: [string, string][] = [], body = ''): SipMsg {
    const headers: [string, string][] = [];
    for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
      for (const v of req.getAll(h)) headers.push([h, v]);
    }
    return new SipMsg(`SIP/2.0 ${status} ${reason}`, [...headers, ...extra], body);
  }

  #onAppSip(c: ClientConn, msgId: string, txnId: string, dialogId: string, m: SipMsg): void {
    if (!m.isRequest) {
      this.#onAppResponse(c, msgId, txnId, m);
      return;
    }
    if (dialogId) {
      this.#onAppInDialog(c, msgId, dialogId, m);
      return;
    }
    if (txnId) {
      // CANCEL of a request the app sent: accepted, nothing else modelled.
      this.#msgSent(c, msgId, { address: LOCAL_ADDR, port: LOCAL_SIP_PORT }, txnId, m);
      return;
    }
    this.#onAppNewRequest(c, msgId, m);
  }

  /** The app answered a request we delivered (INVITE, OPTIONS, in-dialog BYE/NOTIFY/...). */
  #onAppResponse(c: ClientConn, msgId: string, txnId: string, m: SipMsg): void {
    const txn = this.#netTxns.get(txnId);
    if (!txn) {
      this.#respond(c, msgId, 'NOK', 'Response not sent due to unknown transaction');
      this.emit('response-not-sent', txnId, m);
      return;
    }
    const res = this.#responseTo(txn.req, m.status, m.reason);
    for (const [k, v] of m.headers) {
      if (['via', 'from', 'to', 'call-id', 'cseq', 'content-length'].includes(canonical(k))) continue;
      res.headers.push([k, v]);
    }
    res.body = m.body;
    // As for the app's requests: a body without a type is SDP.
    if (res.body && !res.has('Content-Type')) res.headers.push(['Content-Type', 'application/sdp']);
    let dialogId = '';
    if (txn.req.method === 'INVITE' && !txn.dialog && m.status >= 200 && m.status < 300) {
      // New dialog (we are the UAS side): the stack adds the To tag and its Contact.
      const toTag = tagOf(m.get('To')) ?? rand();
      res.set('To', `${txn.req.get('To') ?? ''};tag=${toTag}`);
      res.setIfMissing('Contact', `<${DRACHTIO_CONTACT}>`);
      const fromTag = tagOf(txn.req.get('From')) ?? '';
      const d: FakeDialog = {
        id: `${txn.req.get('Call-ID')};from-tag=${fromTag}`,
        role: 'uas',
        client: c,
        peer: txn.leg as CallerLeg,
        callId: txn.req.get('Call-ID') ?? '',
        appTag: toTag,
        peerTag: fromTag,
        appUri: uriOf(txn.req.get('To')),
        peerUri: uriOf(txn.req.get('From')),
        appContact: DRACHTIO_CONTACT,
        peerContact: uriOf(txn.req.get('Contact')),
        appCseq: 0,
        peerCseq: 1,
        lastInviteCseq: 1,
        ended: false,
      };
      this.dialogs.set(d.id, d);
      if (txn.leg) txn.leg.dialog = d;
      dialogId = d.id;
    } else if (txn.req.method === 'INVITE' && !txn.dialog && m.status >= 200) {
      res.set('To', `${txn.req.get('To') ?? ''};tag=${tagOf(m.get('To')) ?? rand()}`);
    }
    if (txn.dialog) dialogId = txn.dialog.id;
    this.#msgSent(c, msgId, { address: '127.0.0.1', port: 5090 }, txnId, res, dialogId);
    if (m.status >= 200) {
      this.#netTxns.delete(txnId);
      if (txn.dialog && txn.req.method === 'BYE') {
        txn.dialog.ended = true;
        this.dialogs.delete(txn.dialog.id);
      }
    }
    txn.resolve(res);
  }

  /**
   * A request the app sends inside a dialog (BYE, REFER, re-INVITE, INFO, ACK). Found by its id
   * alone, like drachtio-server's dialog table: a dialog made by an app connection that is gone
   * can be used by another one (the response goes to the connection that sent the request).
   */
  #onAppInDialog(c: ClientConn, msgId: string, dialogId: string, m: SipMsg): void {
    const d = this.dialogs.get(dialogId);
    if (!d) {
      this.#respond(c, msgId, 'NOK', `unable to find dialog for dialog id ${dialogId}`);
      return;
    }
    if (d.client !== c) this.emit('foreign-dialog-request', d, m, c);
    const method = m.method;
    const cseq = method === 'ACK' ? d.lastInviteCseq : ++d.appCseq;
    if (method === 'INVITE') d.lastInviteCseq = cseq;
    const req = new SipMsg(`${method} ${d.peerContact} SIP/2.0`, [
      ['Via', `SIP/2.0/UDP ${LOCAL_ADDR}:${LOCAL_SIP_PORT};branch=z9hG4bK${rand()}`],
      ['Max-Forwards', '70'],
      ['From', `<${d.appUri}>;tag=${d.appTag}`],
      ['To', `<${d.peerUri}>;tag=${d.peerTag}`],
      ['Call-ID', d.callId],
      ['CSeq', `${cseq} ${method}`],
    ], m.body);
    for (const [k, v] of m.headers) {
      if (['via', 'from', 'to', 'call-id', 'cseq', 'content-length', 'max-forwards'].includes(canonical(k))) continue;
      req.headers.push([k, v]);
    }
    if (method === 'INVITE' || method === 'REFER') req.setIfMissing('Contact', `<${DRACHTIO_CONTACT}>`);
    if (req.body && !req.has('Content-Type') && method === 'INVITE') req.headers.push(['Content-Type', 'application/sdp']);
    const txnId = randomUUID();
    this.#msgSent(c, msgId, { address: '127.0.0.1', port: 5090 }, txnId, req);
    if (method === 'ACK') {
      d.peer.onAck?.(req, d);
      return;
    }
    this.#deliverToPeer(c, d, req, txnId);
  }

  /** The live dialog whose Call-ID and tags the app's request carries (its From tag is the app's). */
  #dialogOf(m: SipMsg): FakeDialog | undefined {
    const callId = m.get('Call-ID');
    const fromTag = tagOf(m.get('From'));
    const toTag = tagOf(m.get('To'));
    return [...this.dialogs.values()].find((d) => d.callId === callId && d.appTag === fromTag && d.peerTag === toTag);
  }

  /** Hands an app request of dialog `d` to its peer and the peer's response back to the app. */
  #deliverToPeer(c: ClientConn, d: FakeDialog, req: SipMsg, txnId: string): void {
    const method = req.method;
    void Promise.resolve(d.peer.onRequest(req, d)).then((pr) => {
      const res = this.#responseTo(req, pr.status, pr.reason ?? reasonOf(pr.status), pr.headers ?? [], pr.body ?? '');
      if (method === 'BYE' && pr.status < 300) {
        d.ended = true;
        this.dialogs.delete(d.id);
      }
      this.#sendSip(c, 'network', { address: '127.0.0.1', port: d.role === 'uas' ? 5090 : 5080, protocol: 'udp' }, txnId, d.id, res, false);
    });
  }

  /** A new request from the app outside a dialog: the INVITE fsmrf sends to FreeSWITCH. */
  #onAppNewRequest(c: ClientConn, msgId: string, m: SipMsg): void {
    const method = m.method;
    const known = method === 'INVITE' ? undefined : this.#dialogOf(m);
    if (known) {
      // A request the app built from a stored dialog (its Call-ID, tags and CSeq, e.g. the BYE of
      // a restarted app): drachtio-server sends it as it is to the Request-URI, that dialog's peer.
      const req = new SipMsg(m.startLine, [['Via', `SIP/2.0/UDP ${LOCAL_ADDR}:${LOCAL_SIP_PORT};branch=z9hG4bK${rand()}`], ...m.headers.filter(([k]) => !['via', 'content-length'].includes(canonical(k)))], m.body);
      req.setIfMissing('Max-Forwards', '70');
      const txnId = randomUUID();
      this.#msgSent(c, msgId, { address: '127.0.0.1', port: known.role === 'uas' ? 5090 : 5080 }, txnId, req);
      this.#deliverToPeer(c, known, req, txnId);
      return;
    }
    const hostport = /^sips?:(?:[^@]*@)?([^;>?]+)/.exec(m.uri)?.[1] ?? '';
    const fromTag = rand();
    const req = new SipMsg(m.startLine, [
      ['Via', `SIP/2.0/UDP ${LOCAL_ADDR}:${LOCAL_SIP_PORT};branch=z9hG4bK${rand()}`],
      ['Max-Forwards', '70'],
      ['From', m.get('From') ? `${m.get('From')};tag=${fromTag}` : `<${DRACHTIO_CONTACT}>;tag=${fromTag}`],
      ['To', m.get('To') ?? `<${m.uri}>`],
      ['Call-ID', `${rand()}@${LOCAL_ADDR}`],
      ['CSeq', `1 ${method}`],
      ['Contact', `<${DRACHTIO_CONTACT}>`],
    ], m.body);
    for (const [k, v] of m.headers) {
      if (['via', 'from', 'to', 'call-id', 'cseq', 'content-length', 'max-forwards', 'contact'].includes(canonical(k))) continue;
      req.headers.push([k, v]);
    }
    if (req.body && !req.has('Content-Type')) req.headers.push(['Content-Type', 'application/sdp']);
    const txnId = randomUUID();
    const [addr, port] = hostport.split(':');
    this.#msgSent(c, msgId, { address: addr ?? LOCAL_ADDR, port: Number(port ?? 5060) }, txnId, req);
    const target = this.#targets.get(hostport);
    const from = { address: addr ?? LOCAL_ADDR, port: Number(port ?? 5060), protocol: 'udp' };
    if (!target || method !== 'INVITE') {
      setImmediate(() => this.#sendSip(c, 'network', from, txnId, '', this.#responseTo(req, 408, 'Request Timeout'), false));
      return;
    }
    void Promise.resolve(target.onInvite(req)).then((pr) => {
      const res = this.#responseTo(req, pr.status, pr.reason ?? reasonOf(pr.status), pr.headers ?? [], pr.body ?? '');
      const peerTag = tagOf(res.get('To')) ?? rand();
      if (!tagOf(res.get('To'))) res.set('To', `${req.get('To') ?? ''};tag=${peerTag}`);
      let dialogId = '';
      let d: FakeDialog | undefined;
      if (pr.status >= 200 && pr.status < 300) {
        d = {
          id: `${req.get('Call-ID')};from-tag=${fromTag}`,
          role: 'uac',
          client: c,
          peer: target,
          callId: req.get('Call-ID') ?? '',
          appTag: fromTag,
          peerTag,
          appUri: uriOf(req.get('From')),
          peerUri: uriOf(req.get('To')),
          appContact: DRACHTIO_CONTACT,
          peerContact: uriOf(res.get('Contact')) || m.uri,
          appCseq: 1,
          peerCseq: 0,
          lastInviteCseq: 1,
          ended: false,
        };
        this.dialogs.set(d.id, d);
        dialogId = d.id;
      }
      this.#sendSip(c, 'network', from, txnId, dialogId, res, false);
      if (d) target.onDialog?.(d, req);
    });
  }
}

const REASONS: Record<number, string> = {
  100: 'Trying',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  481: 'Call/Transaction Does Not Exist',
  486: 'Busy Here',
  415: 'Unsupported Media Type',
  422: 'Session Interval Too Small',
  488: 'Not Acceptable Here',
  500: 'Server Internal Error',
  503: 'Service Unavailable',
  603: 'Decline',
};
export function reasonOf(status: number): string {
  return REASONS[status] ?? 'Unknown';
}
