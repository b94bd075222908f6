import type Srf from 'drachtio-srf';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { describeError } from '../../errors.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { AdmissionControl, type FleetRateCounter } from '../admission.js';
import { MediaRanges, sdpMediaAddresses } from '../media-ranges.js';
import { srtpRefusal } from '../srtp-policy.js';
import type { BackendEvents, TelephonyBackend } from '../types.js';
import { ALLOW, DrachtioCall } from './call.js';
import { DrachtioLink } from './drachtio-link.js';
import type { MediaServer } from './freeswitch-link.js';
import { MediaServerPool } from './media-pool.js';
import { freeswitchMediaSettings, type FreeswitchMediaSettings } from './media-settings.js';
import { negotiateFor } from './session-timer.js';

const STOP_CALLS_MS = 5000;

/**
 * The production backend: SIP through drachtio-server (drachtio-srf), media through FreeSWITCH
 * (drachtio-fsmrf), behind the same call port as the embedded engine.
 *
 * Start order: connect to drachtio-server, then to FreeSWITCH, then register
 * the INVITE route. Before that drachtio-server itself answers INVITEs 503 (no route); OPTIONS
 * has its own route from the first connection on and is answered 200. When FreeSWITCH goes away
 * the INVITE route is removed again (so drachtio-server sends calls to another pay-ivr node, or
 * 503s them) and calls in progress end; when drachtio-server goes away calls in progress end and
 * both links retry with a capped backoff. start() never rejects for an unreachable server: it
 * logs what is wrong and keeps retrying; `ready` tells the readiness probe.
 */
export class DrachtioBackend extends TypedEmitter<BackendEvents> implements TelephonyBackend {
  readonly name = 'drachtio' as const;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #drachtio: DrachtioLink;
  readonly #freeswitch: MediaServerPool;
  readonly #admission: AdmissionControl;
  readonly #mediaRanges: MediaRanges;
  readonly #calls = new Set<DrachtioCall>();
  /** The media server each call was placed on (a lost server ends only its own calls). */
  readonly #placement = new Map<DrachtioCall, MediaServer>();
  #started = false;
  #stopping: Promise<void> | undefined;
  #drainRetryAfter: number | undefined;
  #inviteRegistered = false;
  /** Whether the current drachtio client has the INVITE route (re-sent by every new client). */
  #inviteRouted = false;
  #wasReady = false;

  readonly #ackTimeoutMs: number | undefined;
  readonly #sessionTimerUnitMs: number | undefined;
  readonly #media: FreeswitchMediaSettings;

  /**
   * `options.ackTimeoutMs`: how long a caller's ACK may take (default 64*T1 = 32 s);
   * `options.sessionTimerUnitMs`: milliseconds per second of the session timer (default 1000). Tests shrink both.
   */
  constructor(config: Config, logger: Logger, options: { fleetRate?: FleetRateCounter; ackTimeoutMs?: number; sessionTimerUnitMs?: number } = {}) {
    super();
    this.#config = config;
    this.#ackTimeoutMs = options.ackTimeoutMs;
    this.#sessionTimerUnitMs = options.sessionTimerUnitMs;
    this.#log = logger;
    const t = config.telephony;
    this.#drachtio = new DrachtioLink(t.drachtio, logger);
    this.#freeswitch = new MediaServerPool(this.#drachtio.srf, [t.freeswitch, ...t.freeswitchPool], t.drachtio.maxReconnectDelayMs, logger);
    this.#admission = new AdmissionControl(config.security);
    if (options.fleetRate !== undefined) this.#admission.shareRateWith(options.fleetRate);
    this.#mediaRanges = new MediaRanges(config.security.mediaRanges);
    this.#media = freeswitchMediaSettings(config.rtp);
  }

  get ready(): boolean {
    return this.#stopping === undefined && this.#drainRetryAfter === undefined && this.#drachtio.connected && this.#freeswitch.available;
  }

  get draining(): boolean {
    return this.#drainRetryAfter !== undefined;
  }

  /**
   * Unregisters the INVITE route (drachtio-server then gives new calls to another app node, or
   * 503s them) and answers OPTIONS 503, while the calls in progress go on.
   */
  drain(retryAfterSeconds: number): void {
    if (this.#drainRetryAfter !== undefined) return;
    this.#drainRetryAfter = retryAfterSeconds;
    this.#log.info({ activeCalls: this.#calls.size, retryAfter: retryAfterSeconds }, 'draining: OPTIONS and new INVITEs get 503, calls in progress go on');
    this.#syncInviteRoute();
  }

  get activeCalls(): number {
    return this.#calls.size;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#admission.announce(this.#log);
    const srf = this.#drachtio.srf;
    // Registered before the first connect: sent with the authentication, answered from then on.
    srf.options(this.#onOptions);

    this.#drachtio.on('up', () => {
      this.#inviteRouted = this.#inviteRegistered;
      this.#freeswitch.start();
      this.#syncInviteRoute();
    });
    this.#drachtio.on('down', () => {
      this.#inviteRouted = false;
      this.#endAll('transport-lost');
      this.#reportReadiness();
    });
    this.#freeswitch.on('up', () => this.#syncInviteRoute());
    this.#freeswitch.on('server-down', (ms) => {
      for (const [call, placed] of this.#placement) if (placed === ms) void call.abort('media-lost');
      this.#syncInviteRoute();
    });

    const t = this.#config.telephony;
    this.#log.info(
      {
        drachtio: this.#drachtio.target,
        freeswitch: this.#freeswitch.target,
        listen: `${t.freeswitch.listenAddress}:${t.freeswitch.listenPort}`,
        promptsDir: t.freeswitch.promptsDir,
      },
      'drachtio backend starting: connecting to drachtio-server, then FreeSWITCH; calls get 503 until both are up',
    );
    this.#drachtio.start();
  }

  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    this.#stopping = (async () => {
      // Take no more calls (drachtio-server routes them to another node or 503s them) ...
      this.#syncInviteRoute();
      // ... end the ones in progress, then close both connections.
      const ending = [...this.#calls].map((c) => c.abort('shutdown'));
      await Promise.race([Promise.allSettled(ending), new Promise((r) => setTimeout(r, STOP_CALLS_MS).unref())]);
      await this.#freeswitch.stop();
      await this.#drachtio.stop();
      this.#drachtio.removeAllListeners();
      this.#freeswitch.removeAllListeners();
      this.removeAllListeners();
    })();
    return this.#stopping;
  }

  /** INVITE route present on drachtio-server exactly while both servers are up. */
  #syncInviteRoute(): void {
    const srf = this.#drachtio.srf;
    if (!this.#drachtio.connected) {
      this.#reportReadiness();
      return;
    }
    const want = this.ready;
    try {
      if (want && !this.#inviteRegistered) {
        srf.invite(this.#onInvite);
        this.#inviteRegistered = true;
        this.#inviteRouted = true;
      } else if (want && !this.#inviteRouted) {
        srf.reregisterForMessages('invite');
        this.#inviteRouted = true;
      } else if (!want && this.#inviteRouted) {
        srf.unregisterForMessages('invite');
        this.#inviteRouted = false;
      }
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'INVITE route update failed');
    }
    this.#reportReadiness();
  }

  #reportReadiness(): void {
    const ready = this.ready;
    if (ready === this.#wasReady) return;
    this.#wasReady = ready;
    if (ready) this.#log.info('drachtio backend ready: drachtio-server and FreeSWITCH connected, INVITE route registered');
    else this.#log.warn('drachtio backend not ready: new calls get 503');
  }

  #endAll(reason: 'transport-lost' | 'media-lost'): void {
    for (const c of [...this.#calls]) void c.abort(reason);
  }

  readonly #onOptions = (_req: Srf.SrfRequest, res: Srf.SrfResponse): void => {
    if (this.#drainRetryAfter !== undefined) {
      res.send(503, { headers: { 'Retry-After': String(this.#drainRetryAfter) } });
      return;
    }
    res.send(200, { headers: { Allow: ALLOW, Accept: 'application/sdp', 'User-Agent': this.#config.sip.userAgent } });
  };

  readonly #onInvite = (req: Srf.SrfRequest, res: Srf.SrfResponse): void => {
    if (!this.ready) {
      res.send(503, { headers: { 'Retry-After': String(this.#drainRetryAfter ?? this.#config.drain.retryAfterSeconds) } });
      return;
    }
    const verdict = this.#admission.check(
      { sourceAddress: req.source_address, method: req.method, requestUri: req.uri, header: (name) => req.get(name) },
      this.#calls.size,
    );
    if (!verdict.admitted) {
      this.#log.warn({ remote: `${req.source_address}:${req.source_port}`, status: verdict.status, why: verdict.why }, 'INVITE refused');
      res.send(verdict.status, verdict.reason, { headers: Object.fromEntries(verdict.headers.map((h) => [h.name, h.value])) });
      return;
    }
    // RFC 4028 as the embedded stack answers it (telephony/session-timer.ts): too short an interval gets 422.
    const timer = negotiateFor(req, this.#config.sip.sessionExpires);
    if (timer.kind === 'reject') {
      res.send(422, { headers: { 'Min-SE': String(timer.minSE) } });
      return;
    }
    // Same rule as the embedded engine (media-ranges.ts): an IP literal, inside security.mediaRanges when set.
    const refused = sdpMediaAddresses(req.body ?? '').find((a) => !this.#mediaRanges.sdpAddressAllowed(a));
    if (refused !== undefined) {
      this.#log.warn({ remote: `${req.source_address}:${req.source_port}`, sdpAddress: refused }, 'INVITE refused: SDP media address not an IP inside security.mediaRanges');
      res.send(488, { headers: { Warning: '305 pay-ivr "media address not allowed"' } });
      return;
    }
    // The SRTP policy (rtp.srtp) before FreeSWITCH sees the offer: FreeSWITCH's own
    // rtp_secure_media setting (docker/freeswitch) says the same, this makes the 488 explicit.
    const why = srtpRefusal(req.body ?? '', this.#config.rtp.srtp);
    if (why !== undefined) {
      this.#log.info({ remote: `${req.source_address}:${req.source_port}`, why }, 'INVITE refused: SDP offer not acceptable');
      res.send(488, { headers: { Warning: `302 pay-ivr "${why}"` } });
      return;
    }
    const call = new DrachtioCall(req, res, {
      mediaRanges: this.#mediaRanges,
      ...(this.#ackTimeoutMs !== undefined ? { ackTimeoutMs: this.#ackTimeoutMs } : {}),
      srf: this.#drachtio.srf,
      mediaServer: () => {
        // Placed once, on the least-loaded usable media server.
        let ms = this.#placement.get(call);
        if (ms === undefined) {
          ms = this.#freeswitch.acquire();
          if (ms !== undefined) this.#placement.set(call, ms);
        }
        return ms;
      },
      promptsDir: this.#config.telephony.freeswitch.promptsDir,
      userAgent: this.#config.sip.userAgent,
      srtp: this.#config.rtp.srtp,
      listed: (a) => this.#admission.listed(a),
      retryAfterSeconds: this.#config.drain.retryAfterSeconds,
      media: this.#media,
      sessionExpires: this.#config.sip.sessionExpires,
      ...(this.#sessionTimerUnitMs !== undefined ? { sessionTimerUnitMs: this.#sessionTimerUnitMs } : {}),
      logger: this.#log,
      onEnded: (c) => {
        this.#calls.delete(c);
        const ms = this.#placement.get(c);
        this.#placement.delete(c);
        if (ms !== undefined) this.#freeswitch.release(ms);
      },
    });
    this.#calls.add(call);
    this.#log.info({ call: call.id, callId: call.callId, remote: `${call.remote.address}:${call.remote.port}`, transport: call.remote.transport }, 'incoming call');
    this.emit('call', call);
  };
}
