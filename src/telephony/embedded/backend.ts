import { readFileSync } from 'node:fs';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { PayIvrError, describeError, isPayIvrError } from '../../errors.js';
import { OncePerWindow } from '../../util/once-per-window.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { AdmissionControl, type FleetRateCounter } from '../admission.js';
import { srtpRefusal } from '../srtp-policy.js';
import type { BackendEvents, HangupReason, StoredDialog, TelephonyBackend } from '../types.js';
import { EmbeddedCall } from './embedded-call.js';
import { createDefaultMedia } from './media-factory.js';
import type { MediaEngineLike, MediaSessionLike } from './media-port.js';
import { contentType, headerValue, type SipHeader, type SipRequest } from './sip/message.js';
import { header } from './sip/serializer.js';
import type { ServerSession } from './sip/session.js';
import type { TimerConfig } from './sip/transaction.js';
import type { Flow, TlsMaterial } from './sip/transport.js';
import { UserAgent, type InviteRefusal, type UserAgentOptions } from './sip/user-agent.js';
import { refuseInvite } from './invite-admission.js';

/**
 * The embedded telephony backend: our SIP stack (sip/) + the in-process media engine (media/)
 * behind the call port. New INVITEs pass the access checks (allow-list, rate, capacity, shared
 * secret, digest) and need a usable SDP offer (or none: late offer) before 'call' is emitted.
 */

interface EmbeddedBackendOptions {
  /** RFC 3261 T1/T2/T4 (tests shrink them). */
  timers?: TimerConfig;
  /** Milliseconds per session-timer second (tests shrink it). */
  sessionTimerUnitMs?: number;
  /** Media engine to use instead of media/ (tests). */
  media?: MediaEngineLike;
  /** answer() resolves at the ACK or after this long (default 8*T1). */
  ackGraceMs?: number;
  /** 480 for a call the app neither answers nor rejects within this long (default 60 s). */
  offerTimeoutMs?: number;
  /** The fleet's shared per-source rate (Redis), when several nodes serve one trunk. */
  fleetRate?: FleetRateCounter;
}

export class EmbeddedBackend extends TypedEmitter<BackendEvents> implements TelephonyBackend {
  readonly name = 'embedded' as const;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #opts: EmbeddedBackendOptions;
  readonly #admission: AdmissionControl;
  readonly #calls = new Set<EmbeddedCall>();
  readonly #refusedLog = new OncePerWindow(60_000);
  #ua: UserAgent | undefined;
  #media: MediaEngineLike | undefined;
  #ready = false;
  #drainRetryAfter: number | undefined;

  constructor(config: Config, logger: Logger, options: EmbeddedBackendOptions = {}) {
    super();
    this.#config = config;
    this.#log = logger;
    this.#opts = options;
    this.#admission = new AdmissionControl(config.security);
    if (options.fleetRate !== undefined) this.#admission.shareRateWith(options.fleetRate);
  }

  get ready(): boolean {
    return this.#ready && this.#drainRetryAfter === undefined;
  }

  get draining(): boolean {
    return this.#drainRetryAfter !== undefined;
  }

  drain(retryAfterSeconds: number): void {
    if (this.#drainRetryAfter !== undefined) return;
    this.#drainRetryAfter = retryAfterSeconds;
    this.#log.info({ activeCalls: this.#calls.size, retryAfter: retryAfterSeconds }, 'draining: OPTIONS and new INVITEs get 503, calls in progress go on');
  }

  get activeCalls(): number {
    return this.#calls.size;
  }

  /** The SIP user agent (tests and diagnostics). */
  get userAgent(): UserAgent | undefined {
    return this.#ua;
  }

  /** Bound address of a SIP listener (useful with port 0). */
  sipPort(transport: 'udp' | 'tcp' | 'tls' = 'udp'): number | undefined {
    return this.#ua?.transport.localEndpoint(transport)?.port;
  }

  async start(): Promise<void> {
    if (this.#ua !== undefined) return;
    const { sip, rtp } = this.#config;
    this.#admission.announce(this.#log);
    const media = this.#opts.media ?? createDefaultMedia(this.#config, this.#log);
    const ua = new UserAgent({
      ...stackOptions(this.#config, this.#log, this.#opts),
      streams: { ...sip.streams, allowed: (a) => this.#admission.allowed(a) },
      admit: (req, flow) => this.#admit(req, flow),
      signallingPeer: (a) => this.#admission.listed(a),
      unavailable: () => this.#unavailableHeaders(),
    });
    ua.on('invite', (s) => this.#onInvite(s));
    try {
      await media.start();
      await ua.start();
    } catch (e) {
      await ua.stop().catch(() => undefined);
      await media.stop().catch(() => undefined);
      throw isPayIvrError(e) ? e : new PayIvrError('ERR_BACKEND_UNAVAILABLE', `embedded backend cannot start: ${describeError(e)}`, { cause: e });
    }
    this.#media = media;
    this.#ua = ua;
    this.#ready = true;
    this.#log.info({ listen: sip.listen.map((l) => `${l.transport}:${l.host}:${l.port}`), rtp: `${rtp.host}:${rtp.portMin}-${rtp.portMax}` }, 'embedded SIP backend listening');
  }

  /** BYE in a dialog a previous run of this node left behind (see TelephonyBackend). */
  async endStoredDialog(dialog: StoredDialog, reason: HangupReason): Promise<number> {
    const ua = this.#ua;
    if (ua === undefined) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'embedded backend not started');
    return ua.byeStoredDialog(dialog, reason);
  }

  /** BYE to every call, then close sockets and media. Idempotent. */
  async stop(): Promise<void> {
    this.#ready = false;
    const ua = this.#ua;
    const media = this.#media;
    this.#ua = undefined;
    this.#media = undefined;
    if (ua !== undefined) await ua.stop();
    for (const c of [...this.#calls]) c.abort({ by: 'local', reason: 'shutdown' });
    this.#calls.clear();
    if (media !== undefined) await media.stop();
  }

  /** Retry-After while draining (OPTIONS and INVITE answer 503 with it), else undefined. */
  #unavailableHeaders(): SipHeader[] | undefined {
    return this.#drainRetryAfter === undefined ? undefined : [header('retry-after', String(this.#drainRetryAfter))];
  }

  /** The access checks, before the SIP stack creates anything for the INVITE. */
  #admit(invite: SipRequest, flow: Flow): InviteRefusal | undefined {
    return refuseInvite(invite, flow, {
      admission: this.#admission,
      security: this.#config.security,
      log: this.#log,
      refusedLog: this.#refusedLog,
      activeCalls: this.#calls.size,
      drainHeaders: this.#unavailableHeaders(),
    });
  }

  #onInvite(session: ServerSession): void {
    const invite = session.invite;
    const source = session.flow.address;
    const media = this.#media;
    if (media === undefined) {
      session.reject(503, { headers: [header('retry-after', String(this.#config.drain.retryAfterSeconds))] });
      return;
    }
    let ms: MediaSessionLike;
    try {
      ms = media.createSession();
    } catch (e) {
      this.#log.warn({ err: describeError(e), callId: session.callId }, 'no media session available');
      session.reject(503, { headers: [header('retry-after', String(this.#config.drain.retryAfterSeconds))] });
      return;
    }
    let answerSdp: string | undefined;
    if (invite.body.length > 0 && contentType(invite) === 'application/sdp') {
      try {
        answerSdp = ms.answerOffer(invite.body.toString('utf8'));
      } catch (e) {
        this.#log.warn({ err: describeError(e), callId: session.callId }, 'SDP offer could not be handled');
      }
      if (answerSdp === undefined) {
        ms.close();
        // 302 "Incompatible transport protocol" (RFC 3261 §20.43) when the SRTP policy refused the
        // profile, else 304 "Media type not available".
        const why = srtpRefusal(invite.body.toString('utf8'), this.#config.rtp.srtp);
        this.#log.info({ callId: session.callId, source, why: why ?? 'no common media' }, 'INVITE refused: SDP offer not acceptable');
        session.reject(488, { headers: [header('warning', why === undefined ? '304 pay-ivr "no common media"' : `302 pay-ivr "${why}"`)] });
        return;
      }
    }
    const call = new EmbeddedCall({
      session,
      media: ms,
      answerSdp,
      remote: { address: source, port: session.flow.port, transport: session.flow.transport },
      logger: this.#log,
      ackGraceMs: this.#opts.ackGraceMs ?? 8 * (this.#opts.timers?.t1 ?? 500),
      offerTimeoutMs: this.#opts.offerTimeoutMs ?? 60_000,
    });
    this.#calls.add(call);
    call.once('ended', (info) => {
      this.#calls.delete(call);
      this.#log.info({ callId: call.callId, by: info.by, reason: info.reason }, 'call ended');
    });
    this.#log.info({ callId: call.callId, source, transport: session.flow.transport, lateOffer: answerSdp === undefined, ua: headerValue(invite, 'user-agent') }, 'call offered');
    if (this.listenerCount('call') === 0) {
      void call.reject(480);
      return;
    }
    try {
      this.emit('call', call);
    } catch (e) {
      this.#log.error({ err: describeError(e), callId: call.callId }, 'call handler failed');
      void call.hangup({ protocol: 'SIP', cause: 500, text: 'internal error' });
    }
  }
}

/**
 * What the SIP stack takes from sip.* (listeners, parser limits, identity, session timer, TLS
 * files): the same for the payment node and the edge role, which add their own admission.
 */
export function stackOptions(
  config: Config,
  logger: Logger,
  o: { timers?: TimerConfig | undefined; sessionTimerUnitMs?: number | undefined },
): Pick<UserAgentOptions, 'listen' | 'limits' | 'logger' | 'userAgent' | 'sessionExpires' | 'publicAddress' | 'tls' | 'timers' | 'sessionTimerUnitMs' | 'retryAfterSeconds'> {
  const { sip } = config;
  return {
    listen: sip.listen,
    limits: { maxMessageBytes: sip.maxMessageBytes, maxHeaders: sip.maxHeaders, maxLineLength: Math.min(8192, sip.maxMessageBytes) },
    logger,
    userAgent: sip.userAgent,
    sessionExpires: sip.sessionExpires,
    publicAddress: sip.publicAddress,
    tls: loadTls(config),
    timers: o.timers,
    sessionTimerUnitMs: o.sessionTimerUnitMs,
    retryAfterSeconds: config.drain.retryAfterSeconds,
  };
}

/** The SIP TLS certificate files of the configuration. */
function loadTls(config: Config): TlsMaterial | undefined {
  const t = config.sip.tls;
  if (t === undefined) return undefined;
  try {
    return {
      cert: readFileSync(t.certFile),
      key: readFileSync(t.keyFile),
      ca: t.caFile !== undefined ? readFileSync(t.caFile) : undefined,
      minVersion: t.minVersion,
      maxVersion: t.maxVersion,
    };
  } catch (e) {
    throw new PayIvrError('ERR_CONFIG_READ', `cannot read the SIP TLS files: ${describeError(e)}`, { cause: e });
  }
}
