import type { Config } from '../config/schema.js';
import { PayIvrError, describeError, isPayIvrError } from '../errors.js';
import type { Logger } from '../log.js';
import { OncePerWindow } from '../util/once-per-window.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import { AdmissionControl, type FleetRateCounter } from '../telephony/admission.js';
import { refuseInvite } from '../telephony/embedded/invite-admission.js';
import type { SipHeader } from '../telephony/embedded/sip/message.js';
import { header } from '../telephony/embedded/sip/serializer.js';
import type { TimerConfig } from '../telephony/embedded/sip/transaction.js';
import { stackOptions } from '../telephony/embedded/backend.js';
import { UserAgent } from '../telephony/embedded/sip/user-agent.js';
import type { BackendEvents, TelephonyBackend } from '../telephony/types.js';
import { B2bua } from './b2bua.js';
import type { RelayedCall } from './edge-call.js';
import type { CaptureHost, MediaAnchor } from './types.js';

/**
 * The edge role's telephony backend: the embedded SIP stack on sip.listen, the caller side's
 * access checks (security.*), and the B2BUA relaying every admitted call to edge.genesys with
 * its media on the given MediaAnchor (rtpengine). It never emits 'call': the payment IVR does
 * not run on an edge node.
 */

export interface EdgeBackendOptions {
  anchor: MediaAnchor;
  /** RFC 3261 T1/T2/T4 (tests shrink them). */
  timers?: TimerConfig;
  /** Milliseconds per session-timer second (tests shrink it). */
  sessionTimerUnitMs?: number;
  fleetRate?: FleetRateCounter;
  /** Every new relayed call, before its set-up starts (the app tracks them for drain and stop). */
  onCall?: (call: RelayedCall) => void;
}

export class EdgeBackend extends TypedEmitter<BackendEvents> implements TelephonyBackend {
  readonly name = 'edge' as const;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #opts: EdgeBackendOptions;
  readonly #admission: AdmissionControl;
  readonly #refusedLog = new OncePerWindow(60_000);
  #ua: UserAgent | undefined;
  #b2bua: B2bua | undefined;
  #drainRetryAfter: number | undefined;

  constructor(config: Config, logger: Logger, options: EdgeBackendOptions) {
    super();
    this.#config = config;
    this.#log = logger;
    this.#opts = options;
    this.#admission = new AdmissionControl(config.security);
    if (options.fleetRate !== undefined) this.#admission.shareRateWith(options.fleetRate);
  }

  get ready(): boolean {
    return this.#ua !== undefined && this.#drainRetryAfter === undefined;
  }

  get draining(): boolean {
    return this.#drainRetryAfter !== undefined;
  }

  get activeCalls(): number {
    return this.#b2bua?.activeCalls ?? 0;
  }

  /** The edge's calls by session id (the capture service's view); undefined before start(). */
  get captureHost(): CaptureHost | undefined {
    return this.#b2bua?.calls;
  }

  get b2bua(): B2bua | undefined {
    return this.#b2bua;
  }

  get userAgent(): UserAgent | undefined {
    return this.#ua;
  }

  drain(retryAfterSeconds: number): void {
    if (this.#drainRetryAfter !== undefined) return;
    this.#drainRetryAfter = retryAfterSeconds;
    this.#log.info({ activeCalls: this.activeCalls, retryAfter: retryAfterSeconds }, 'draining: OPTIONS and new INVITEs get 503, calls in progress go on');
  }

  async start(): Promise<void> {
    if (this.#ua !== undefined) return;
    const { sip, edge } = this.#config;
    this.#admission.announce(this.#log);
    const unavailable = (): SipHeader[] | undefined => (this.#drainRetryAfter === undefined ? undefined : [header('retry-after', String(this.#drainRetryAfter))]);
    const ua = new UserAgent({
      ...stackOptions(this.#config, this.#log, this.#opts),
      streams: { ...sip.streams, allowed: (a) => this.#admission.allowed(a) || this.#isGenesys(a) },
      admit: (req, flow) =>
        refuseInvite(req, flow, {
          admission: this.#admission,
          security: this.#config.security,
          log: this.#log,
          refusedLog: this.#refusedLog,
          activeCalls: this.activeCalls,
          drainHeaders: unavailable(),
        }),
      signallingPeer: (a) => this.#admission.listed(a),
      unavailable,
    });
    const b2bua = new B2bua({ ua, anchor: this.#opts.anchor, edge, logger: this.#log, srtp: { policy: this.#config.rtp.srtp, suites: this.#config.rtp.srtpSuites } });
    const onCall = this.#opts.onCall;
    if (onCall !== undefined) b2bua.on('call', onCall);
    ua.on('invite', (s) => b2bua.handle(s));
    try {
      await ua.start();
    } catch (e) {
      b2bua.close();
      await ua.stop().catch(() => undefined);
      throw isPayIvrError(e) ? e : new PayIvrError('ERR_BACKEND_UNAVAILABLE', `edge SIP stack cannot start: ${describeError(e)}`, { cause: e });
    }
    this.#ua = ua;
    this.#b2bua = b2bua;
    const g = edge.genesys;
    this.#log.info({ listen: sip.listen.map((l) => `${l.transport}:${l.host}:${l.port}`), genesys: g === undefined ? null : `${g.transport}:${g.host}:${g.port}` }, 'edge B2BUA listening');
  }

  /** Ends every call (both legs, rtpengine calls deleted), then closes the SIP stack. Idempotent. */
  async stop(): Promise<void> {
    const ua = this.#ua;
    const b2bua = this.#b2bua;
    this.#ua = undefined;
    this.#b2bua = undefined;
    if (b2bua !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([b2bua.hangupAll('shutdown'), new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
      clearTimeout(timer);
      b2bua.close();
    }
    if (ua !== undefined) await ua.stop();
  }

  /** Genesys's own stream connections back to us (in-dialog requests) are not the carrier's. */
  #isGenesys(address: string): boolean {
    return this.#config.edge.genesys?.host === address;
  }
}
