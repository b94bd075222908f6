import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';
import { OncePerWindow } from '../../../util/once-per-window.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { HangupReason, StoredDialog, Transport } from '../../types.js';
import { formatReason } from '../../sip-reason.js';
import { dialogId, restoreDialog, type Dialog, type LocalEndpoint } from './dialog.js';
import { contentType, headerValue, headerValues, optionTags, parseVia, rawHeaders, splitList, tagOf, type SipHeader, type SipMessage, type SipRequest } from './message.js';
import type { ParseLimits, SipParseError } from './parser.js';
import { buildResponse, header, randomToken, serialize } from './serializer.js';
import { ServerSession, type SessionContext } from './session.js';
import { ClientSession, type ClientContext, type ClientInviteOptions } from './client-session.js';
import type { DialogUsage } from './usage.js';
import { negotiateSessionTimer } from './session-timer.js';
import { DEFAULT_TIMERS, TransactionLayer, type TimerConfig } from './transaction.js';
import { SipTransport, type Flow, type ListenSpec, type StreamLimits, type TlsMaterial } from './transport.js';

/**
 * The UAS core (RFC 3261 8.2 and 12): routes every message to its transaction, dialog or a new
 * session, and applies the request rules (481, 405, 501, 416, 420, 415, 406, 400, 422). New
 * INVITEs that pass them are emitted as 'invite' for the backend to accept or reject.
 * Max-Forwards is not checked: a UAS is the request's destination, it never forwards (RFC 4475
 * 3.3.11), so Max-Forwards: 0 is served, not answered 483.
 */

const ALLOWED_METHODS = ['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'INFO', 'REFER', 'NOTIFY', 'UPDATE', 'PRACK'] as const;
/** Methods we know but do not serve (405 rather than 501). */
const KNOWN_UNSUPPORTED = new Set(['REGISTER', 'SUBSCRIBE', 'PUBLISH', 'MESSAGE']);
/** Option tags we accept in Require. 100rel: we never send reliable provisionals, so it costs nothing. */
const SUPPORTED_TAGS = new Set(['timer', '100rel']);
const ACCEPT = 'application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag';
/** Request-URI schemes we serve; others get 416 (RFC 3261 8.2.2.1). */
const URI_SCHEMES = new Set(['sip', 'sips', 'tel']);

/**
 * Why a new INVITE is refused before any transaction exists: one stateless final response
 * (never retransmitted, whatever the caller does), or nothing at all.
 */
export type InviteRefusal = { status: number; reason?: string | undefined; headers: SipHeader[] } | { silent: true };

export interface UserAgentOptions {
  listen: readonly ListenSpec[];
  limits: ParseLimits;
  logger: Logger;
  userAgent: string;
  /** Session-Expires we offer (seconds). */
  sessionExpires: number;
  /** Retry-After (s) of the 503 an offered INVITE gets at stop (drain.retryAfterSeconds; default 30). */
  retryAfterSeconds?: number | undefined;
  publicAddress?: string | undefined;
  tls?: TlsMaterial | undefined;
  timers?: TimerConfig | undefined;
  sessionTimerUnitMs?: number | undefined;
  /**
   * Checked for every new INVITE before a 100, a transaction or a session exists, so a refusal
   * costs one datagram at most: no retransmissions, no dialog, no media.
   */
  admit?: ((req: SipRequest, flow: Flow) => InviteRefusal | undefined) | undefined;
  /**
   * Addresses besides a dialog's own peer that may send in it (the trunk's other signalling
   * addresses: the allow-list). Everyone else gets 403 in a dialog.
   */
  signallingPeer?: ((address: string) => boolean) | undefined;
  /** Stream listener limits (connection caps, allow-list at accept, deadlines). */
  streams?: StreamLimits | undefined;
  /** Headers of the 503 that out-of-dialog OPTIONS get while the node takes no calls (drain); undefined: available. */
  unavailable?: (() => SipHeader[] | undefined) | undefined;
}

interface UserAgentEvents extends Record<string, unknown[]> {
  /** A new INVITE that passed protocol checks; the listener must accept or reject it. */
  invite: [session: ServerSession];
}

export class UserAgent extends TypedEmitter<UserAgentEvents> {
  readonly transport: SipTransport;
  readonly #layer: TransactionLayer;
  readonly #log: Logger;
  readonly #opts: UserAgentOptions;
  readonly #dialogs = new Map<string, DialogUsage>();
  readonly #sessions = new Set<ServerSession>();
  readonly #clients = new Set<ClientSession>();
  readonly #ctx: SessionContext;
  readonly #clientCtx: ClientContext;
  readonly #refusedLog = new OncePerWindow(60_000);

  constructor(opts: UserAgentOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger;
    this.transport = new SipTransport({
      listen: opts.listen,
      limits: opts.limits,
      logger: opts.logger,
      tls: opts.tls,
      streams: opts.streams,
    });
    this.#layer = new TransactionLayer((msg, flow) => this.#send(msg, flow), opts.timers ?? DEFAULT_TIMERS, opts.logger);
    this.#ctx = {
      layer: this.#layer,
      log: opts.logger,
      localFor: (t) => this.localFor(t),
      capabilityHeaders: () => this.capabilityHeaders(),
      sessionExpires: opts.sessionExpires,
      sessionTimerUnitMs: opts.sessionTimerUnitMs ?? 1000,
      registerDialog: (d: Dialog, s: DialogUsage) => this.#dialogs.set(d.id, s),
      unregister: (s: ServerSession) => {
        this.#sessions.delete(s);
        const d = s.dialog;
        if (d !== undefined && this.#dialogs.get(d.id) === s) this.#dialogs.delete(d.id);
      },
    };
    this.#clientCtx = {
      layer: this.#layer,
      log: opts.logger,
      localFor: (t) => this.localFor(t),
      capabilityHeaders: () => [...this.capabilityHeaders(), header('user-agent', this.#opts.userAgent)],
      registerDialog: (d: Dialog, s: DialogUsage) => this.#dialogs.set(d.id, s),
      unregister: (s: ClientSession) => {
        this.#clients.delete(s);
        const d = s.dialog;
        if (d !== undefined && this.#dialogs.get(d.id) === s) this.#dialogs.delete(d.id);
      },
    };
    this.transport.on('message', (msg, flow) => this.#onMessage(msg, flow));
    this.transport.on('parse-error', (err, flow) => this.#onParseError(err, flow));
  }

  get sessionCount(): number {
    return this.#sessions.size + this.#clients.size;
  }

  /**
   * Sends a new INVITE (UAC): the session settles `outcome` with the answer, a rejection, a
   * timeout (Timer B) or 'cancelled'; a 2xx makes its dialog.
   */
  invite(opts: ClientInviteOptions): ClientSession {
    const session = new ClientSession(opts, this.#clientCtx);
    this.#clients.add(session);
    session.start();
    return session;
  }

  get transactionCount(): number {
    return this.#layer.size;
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  /** BYE to every dialog, 503 to offered INVITEs, then close the sockets. */
  async stop(graceMs = 1000): Promise<void> {
    const byes: Promise<void>[] = [];
    for (const s of [...this.#sessions]) {
      if (s.state === 'offered') s.reject(503, { headers: [header('retry-after', String(this.#opts.retryAfterSeconds ?? 30))] });
      else byes.push(s.bye({ protocol: 'SIP', cause: 503, text: 'service shutting down' }, { by: 'local', reason: 'shutdown' }));
    }
    for (const c of [...this.#clients]) {
      if (c.state === 'confirmed') byes.push(c.bye('SIP;cause=503;text="service shutting down"', { by: 'local', reason: 'shutdown' }));
      else c.cancel('SIP;cause=503;text="service shutting down"');
    }
    if (byes.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(byes), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    this.#layer.clear();
    for (const c of [...this.#clients]) c.abort({ by: 'local', reason: 'shutdown' });
    this.#dialogs.clear();
    this.#sessions.clear();
    this.#clients.clear();
    await this.transport.stop();
  }

  /**
   * BYE in a dialog a previous run left behind (restored from the journal). Resolves with the
   * final status (481 when the peer no longer knows the dialog), 408 when nothing answered.
   */
  byeStoredDialog(state: StoredDialog, reason: HangupReason): Promise<number> {
    const dialog = restoreDialog(state);
    const { request, flow } = dialog.createRequest('BYE', (t) => this.localFor(t), { headers: [header('reason', formatReason(reason))] });
    return new Promise<number>((resolve) => {
      this.#layer.sendRequest(request, flow, (r) => resolve(r.kind === 'response' ? r.response.status : 408));
    });
  }

  /** Our address for Via/Contact on a transport (public address when configured). */
  localFor(transport: Transport): LocalEndpoint {
    const l = this.transport.localEndpoint(transport) ?? this.transport.localEndpoint('udp') ?? this.#opts.listen[0];
    const host = this.#opts.publicAddress ?? (l?.host === '0.0.0.0' || l?.host === '::' ? '127.0.0.1' : (l?.host ?? '127.0.0.1'));
    return { transport, host, port: l?.port ?? 5060 };
  }

  capabilityHeaders(): SipHeader[] {
    return [
      header('allow', ALLOWED_METHODS.join(', ')),
      header('accept', ACCEPT),
      header('supported', 'timer'),
      header('server', this.#opts.userAgent),
    ];
  }

  #send(msg: SipMessage, flow: Flow): void {
    if (msg.kind === 'request') this.#log.debug({ method: msg.method, callId: headerValue(msg, 'call-id') }, 'sip: send request');
    else this.#log.debug({ status: msg.status, callId: headerValue(msg, 'call-id') }, 'sip: send response');
    this.transport.send(serialize(msg), flow);
  }

  /**
   * A dialog answers only to its peer: the transport and source address its INVITE came from, or
   * a listed signalling address on that transport. Knowing the Call-ID and tags (they travel in
   * clear on UDP/TCP) must not let a third party hang up the call, move its media with a
   * re-INVITE/UPDATE/ACK, or read it anything.
   */
  #fromPeer(session: DialogUsage, flow: Flow, req: SipRequest): boolean {
    if (session.isPeer(flow, (a) => this.#opts.signallingPeer?.(a) === true)) return true;
    const suppressed = this.#refusedLog.take(flow.address);
    if (suppressed !== undefined) {
      this.#log.warn({ callId: session.callId, method: req.method, source: flow.address, transport: flow.transport, suppressedLastMinute: suppressed }, 'sip: in-dialog request from another address refused');
    }
    return false;
  }

  /** Where responses to `req` go (RFC 3261 18.2.2 with RFC 3581 rport). */
  #responseFlow(req: SipRequest, flow: Flow): Flow {
    if (flow.transport !== 'udp') return flow;
    const via = parseVia((rawHeaders(req, 'via')[0] ?? '').split(',')[0] as string);
    if (via === undefined || via.params.has('rport')) return flow;
    return { transport: 'udp', address: flow.address, port: via.port ?? 5060 };
  }

  /**
   * RFC 3261 18.2.1 and RFC 3581: the top Via of what we answer records where the request really
   * came from (`received`, and `rport` filled with the source port when the client asked).
   */
  #stampVia(req: SipRequest, flow: Flow): void {
    const i = req.headers.findIndex((h) => h.name === 'via');
    const h = req.headers[i];
    if (h === undefined) return;
    const parts = splitList(h.value);
    const top = parts[0] as string;
    const via = parseVia(top);
    if (via === undefined) return;
    const wantsRport = via.params.has('rport');
    if (via.host === flow.address && !wantsRport) return;
    let stamped = top.replace(/;\s*received\s*=[^;]*/i, '');
    if (wantsRport) stamped = stamped.replace(/;\s*rport(?:\s*=[^;]*)?/i, `;rport=${flow.port}`);
    stamped += `;received=${flow.address}`;
    req.headers[i] = { name: 'via', value: [stamped, ...parts.slice(1)].join(', ') };
  }

  #onParseError(err: SipParseError, flow: Flow): void {
    this.#log.debug({ reason: err.message, transport: flow.transport }, 'sip: unparseable message');
    const req = err.request;
    if (req === undefined) return;
    try {
      const to = this.#responseFlow(req, flow);
      this.#stampVia(req, flow);
      // Stateless: one answer per malformed request, never retransmitted.
      const headers = err.status === 501 ? this.capabilityHeaders() : [];
      this.#send(buildResponse(req, err.status, { toTag: randomToken(6), headers, reason: err.status === 400 ? `Bad Request (${err.message})` : undefined }), to);
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'sip: cannot answer a malformed request');
    }
  }

  #onMessage(msg: SipMessage, flow: Flow): void {
    try {
      if (msg.kind === 'response') {
        this.#log.debug({ status: msg.status, callId: headerValue(msg, 'call-id') }, 'sip: received response');
        this.#layer.matchResponse(msg, flow);
        return;
      }
      this.#log.debug({ method: msg.method, callId: headerValue(msg, 'call-id') }, 'sip: received request');
      this.#onRequest(msg, flow);
    } catch (e) {
      this.#log.error({ err: describeError(e) }, 'sip: request handling failed');
    }
  }

  #onRequest(req: SipRequest, inFlow: Flow): void {
    const flow = this.#responseFlow(req, inFlow);
    this.#stampVia(req, inFlow);
    const toTag = tagOf(headerValue(req, 'to'));
    const callId = headerValue(req, 'call-id') ?? '';
    const fromTag = tagOf(headerValue(req, 'from')) ?? '';

    if (req.method === 'ACK') {
      // ACK for a non-2xx final belongs to the INVITE transaction; an ACK for a 2xx goes to the
      // dialog, even from UAs that reuse the INVITE's branch in it.
      const tx = this.#layer.findServer(req);
      if (tx !== undefined && tx.state !== 'accepted' && tx.state !== 'proceeding') {
        tx.receive(req);
        return;
      }
      if (toTag === undefined) return;
      const session = this.#dialogs.get(dialogId(callId, toTag, fromTag));
      // An ACK can carry the SDP answer: only the dialog's peer may send it.
      if (session !== undefined && this.#fromPeer(session, inFlow, req)) session.handleAck(req);
      return;
    }
    const existing = this.#layer.findServer(req);
    if (existing !== undefined) {
      existing.receive(req); // retransmission
      return;
    }
    if (req.method === 'INVITE' && toTag === undefined && this.#opts.admit !== undefined) {
      const refusal = this.#opts.admit(req, inFlow);
      if (refusal !== undefined) {
        if (!('silent' in refusal)) {
          this.#send(buildResponse(req, refusal.status, { toTag: randomToken(6), headers: refusal.headers, ...(refusal.reason !== undefined ? { reason: refusal.reason } : {}) }), flow);
        }
        return;
      }
    }
    const tx = this.#layer.createServer(req, flow);
    if (tx === undefined) return;
    // Out of dialog, every final answer gets a To tag (RFC 3261 8.2.6.2).
    const reply = (status: number, headers: SipHeader[] = []): void => tx.respond(buildResponse(req, status, { headers, toTag: randomToken(6) }));

    if (req.method === 'CANCEL') {
      const invite = this.#layer.findInviteForCancel(req);
      if (invite === undefined) {
        reply(481);
        return;
      }
      const session = [...this.#sessions].find((s) => s.invite === invite.request);
      if (session !== undefined && !this.#fromPeer(session, inFlow, req)) {
        reply(403);
        return;
      }
      // The 200 carries the To tag the 487 will (RFC 3261 9.2).
      tx.respond(buildResponse(req, 200, { toTag: session?.localTag ?? randomToken(6) }));
      session?.cancelled();
      return;
    }
    if (req.method === 'INVITE') tx.respond(buildResponse(req, 100));

    if (!(ALLOWED_METHODS as readonly string[]).includes(req.method)) {
      reply(KNOWN_UNSUPPORTED.has(req.method) ? 405 : 501, this.capabilityHeaders());
      return;
    }
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(req.uri)?.[1]?.toLowerCase() ?? '';
    if (!URI_SCHEMES.has(scheme)) {
      reply(416);
      return;
    }
    const unsupported = [...optionTags(req, 'require')].filter((t) => !SUPPORTED_TAGS.has(t));
    if (unsupported.length > 0) {
      reply(420, [header('unsupported', unsupported.join(', '))]);
      return;
    }

    if (toTag !== undefined) {
      const session = this.#dialogs.get(dialogId(callId, toTag, fromTag));
      if (session === undefined) {
        reply(481);
        return;
      }
      if (!this.#fromPeer(session, inFlow, req)) {
        reply(403);
        return;
      }
      session.handleRequest(req, tx);
      return;
    }

    switch (req.method) {
      case 'OPTIONS': {
        // A draining node says so to the balancer's keep-alive probe, which then takes it out.
        const unavailable = this.#opts.unavailable?.();
        if (unavailable !== undefined) reply(503, unavailable);
        else reply(200, this.capabilityHeaders());
        return;
      }
      case 'INVITE':
        break;
      default:
        reply(481);
        return;
    }

    // New INVITE.
    if (req.body.length > 0 && contentType(req) !== 'application/sdp') {
      reply(415, [header('accept', 'application/sdp')]);
      return;
    }
    if (!acceptsSdp(req)) {
      // Our answer would carry SDP, which the caller says it cannot take (RFC 3261 21.4.7).
      reply(406, [header('accept', 'application/sdp')]);
      return;
    }
    if (rawHeaders(req, 'replaces').length > 0) {
      // We never have a dialog a third party could replace.
      reply(481);
      return;
    }
    const timer = negotiateSessionTimer(req, this.#opts.sessionExpires);
    if (timer.kind === 'reject') {
      reply(422, [header('min-se', String(timer.minSE))]);
      return;
    }
    const session = new ServerSession(req, flow, tx, this.#ctx);
    this.#sessions.add(session);
    tx.onAckTimeout = () => session.abort({ by: 'error', reason: 'no-ack' });
    if (this.listenerCount('invite') === 0) {
      session.reject(480);
      return;
    }
    try {
      this.emit('invite', session);
    } catch (e) {
      this.#log.error({ err: describeError(e), callId }, 'sip: invite handler failed');
      session.reject(500);
    }
  }
}

/** True when the request has no Accept, or one of its media ranges covers application/sdp. */
function acceptsSdp(req: SipRequest): boolean {
  if (rawHeaders(req, 'accept').length === 0) return true;
  return headerValues(req, 'accept').some((v) => {
    const range = (v.split(';')[0] as string).trim().toLowerCase();
    return range === '*/*' || range === 'application/*' || range === 'application/sdp';
  });
}
