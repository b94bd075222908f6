import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { StoredDialog, Transport } from '../../types.js';
import { dialogId, restoreDialog, type Dialog, type LocalEndpoint } from './dialog.js';
import { contentType, headerValue, optionTags, parseVia, rawHeaders, tagOf, type SipHeader, type SipMessage, type SipRequest } from './message.js';
import type { ParseLimits, SipParseError } from './parser.js';
import { buildResponse, header, serialize } from './serializer.js';
import { ServerSession, type SessionContext } from './session.js';
import { negotiateSessionTimer } from './session-timer.js';
import { DEFAULT_TIMERS, TransactionLayer, type TimerConfig } from './transaction.js';
import { SipTransport, type Flow, type ListenSpec, type TlsMaterial } from './transport.js';

/**
 * The UAS core (RFC 3261 8.2 and 12): routes every message to its transaction, dialog or a new
 * session, and applies the request rules (481, 405, 501, 420, 415, 483, 400, 422). New INVITEs
 * that pass them are emitted as 'invite' for the backend to accept or reject.
 */

export const ALLOWED_METHODS = ['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'INFO', 'REFER', 'NOTIFY', 'UPDATE', 'PRACK'] as const;
/** Methods we know but do not serve (405 rather than 501). */
const KNOWN_UNSUPPORTED = new Set(['REGISTER', 'SUBSCRIBE', 'PUBLISH', 'MESSAGE']);
/** Option tags we accept in Require. 100rel: we never send reliable provisionals, so it costs nothing. */
const SUPPORTED_TAGS = new Set(['timer', '100rel']);
const ACCEPT = 'application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag';

export interface UserAgentOptions {
  listen: readonly ListenSpec[];
  limits: ParseLimits;
  logger: Logger;
  userAgent: string;
  /** Session-Expires we offer (seconds). */
  sessionExpires: number;
  publicAddress?: string | undefined;
  tls?: TlsMaterial | undefined;
  timers?: TimerConfig | undefined;
  sessionTimerUnitMs?: number | undefined;
  streamIdleTimeoutMs?: number | undefined;
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
  readonly #dialogs = new Map<string, ServerSession>();
  readonly #sessions = new Set<ServerSession>();
  readonly #ctx: SessionContext;

  constructor(opts: UserAgentOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger;
    this.transport = new SipTransport({
      listen: opts.listen,
      limits: opts.limits,
      logger: opts.logger,
      tls: opts.tls,
      ...(opts.streamIdleTimeoutMs !== undefined ? { streamIdleTimeoutMs: opts.streamIdleTimeoutMs } : {}),
    });
    this.#layer = new TransactionLayer((msg, flow) => this.#send(msg, flow), opts.timers ?? DEFAULT_TIMERS, opts.logger);
    this.#ctx = {
      layer: this.#layer,
      log: opts.logger,
      localFor: (t) => this.localFor(t),
      capabilityHeaders: () => this.capabilityHeaders(),
      sessionExpires: opts.sessionExpires,
      sessionTimerUnitMs: opts.sessionTimerUnitMs ?? 1000,
      registerDialog: (d: Dialog, s: ServerSession) => this.#dialogs.set(d.id, s),
      unregister: (s: ServerSession) => {
        this.#sessions.delete(s);
        const d = s.dialog;
        if (d !== undefined && this.#dialogs.get(d.id) === s) this.#dialogs.delete(d.id);
      },
    };
    this.transport.on('message', (msg, flow) => this.#onMessage(msg, flow));
    this.transport.on('parse-error', (err, flow) => this.#onParseError(err, flow));
  }

  get sessionCount(): number {
    return this.#sessions.size;
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
      if (s.state === 'offered') s.reject(503, { headers: [header('retry-after', '30')] });
      else byes.push(s.bye('SIP;cause=503;text="service shutting down"', { by: 'local', reason: 'shutdown' }));
    }
    if (byes.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(byes), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    this.#layer.clear();
    this.#dialogs.clear();
    this.#sessions.clear();
    await this.transport.stop();
  }

  /**
   * BYE in a dialog a previous run left behind (restored from the journal). Resolves with the
   * final status (481 when the peer no longer knows the dialog), 408 when nothing answered.
   */
  byeStoredDialog(state: StoredDialog, reason: string): Promise<number> {
    const dialog = restoreDialog(state);
    const { request, flow } = dialog.createRequest('BYE', (t) => this.localFor(t), { headers: [header('reason', reason)] });
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

  /** Where responses to `req` go (RFC 3261 18.2.2 with RFC 3581 rport). */
  #responseFlow(req: SipRequest, flow: Flow): Flow {
    if (flow.transport !== 'udp') return flow;
    const via = parseVia((rawHeaders(req, 'via')[0] ?? '').split(',')[0] as string);
    if (via === undefined || via.params.has('rport')) return flow;
    return { transport: 'udp', address: flow.address, port: via.port ?? 5060 };
  }

  #onParseError(err: SipParseError, flow: Flow): void {
    this.#log.debug({ reason: err.message, transport: flow.transport }, 'sip: unparseable message');
    const req = err.request;
    if (req === undefined) return;
    try {
      this.#send(buildResponse(req, err.status, { reason: err.status === 400 ? `Bad Request (${err.message})` : undefined }), this.#responseFlow(req, flow));
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'sip: cannot answer a malformed request');
    }
  }

  #onMessage(msg: SipMessage, flow: Flow): void {
    try {
      if (msg.kind === 'response') {
        this.#log.debug({ status: msg.status, callId: headerValue(msg, 'call-id') }, 'sip: received response');
        this.#layer.matchResponse(msg);
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
      if (toTag !== undefined) this.#dialogs.get(dialogId(callId, toTag, fromTag))?.handleAck(req);
      return;
    }
    const existing = this.#layer.findServer(req);
    if (existing !== undefined) {
      existing.receive(req); // retransmission
      return;
    }
    const tx = this.#layer.createServer(req, flow);
    if (tx === undefined) return;
    const reply = (status: number, headers: SipHeader[] = []): void => tx.respond(buildResponse(req, status, { headers }));

    if (req.method === 'CANCEL') {
      const invite = this.#layer.findInviteForCancel(req);
      if (invite === undefined) {
        reply(481);
        return;
      }
      reply(200);
      const session = [...this.#sessions].find((s) => s.invite === invite.request);
      session?.cancelled();
      return;
    }
    if (req.method === 'INVITE') tx.respond(buildResponse(req, 100));

    if (Number(headerValue(req, 'max-forwards') ?? '70') <= 0) {
      reply(483);
      return;
    }
    if (!(ALLOWED_METHODS as readonly string[]).includes(req.method)) {
      reply(KNOWN_UNSUPPORTED.has(req.method) ? 405 : 501, this.capabilityHeaders());
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
