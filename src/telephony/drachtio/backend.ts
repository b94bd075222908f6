import type Srf from 'drachtio-srf';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { PayIvrError, describeError } from '../../errors.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { OncePerWindow } from '../../util/once-per-window.js';
import { AdmissionControl, type FleetRateCounter } from '../admission.js';
import { MediaRanges, sdpMediaAddresses } from '../media-ranges.js';
import { srtpRefusal } from '../srtp-policy.js';
import type { BackendEvents, HangupReason, StoredDialog, StoredDrachtioDialog, TelephonyBackend } from '../types.js';
import { ALLOW, DrachtioCall } from './call.js';
import { DrachtioLink } from './drachtio-link.js';
import type { MediaServer } from './freeswitch-link.js';
import { MediaServerPool } from './media-pool.js';
import { byeInStoredDialog, mediaKillOutcome } from './stored-dialog.js';
import { freeswitchMediaSettings, type FreeswitchMediaSettings } from './media-settings.js';
import { negotiateFor } from './session-timer.js';

const STOP_CALLS_MS = 5000;
/**
 * drachtio-server forgets an INVITE its app never answered after 64 s (CLIENT_TIMEOUT in its
 * pending-request-controller.cpp) and sends nothing then; a response after that goes nowhere.
 * A silently refused INVITE is "answered" this much later, only to free drachtio-srf's record
 * of it (kept per Call-ID until a final response, drachtio-agent.js pendingNetworkInvites).
 */
const SILENCE_RELEASE_MS = 72_000;
/** How long ending a previous run's call waits for drachtio-server / its FreeSWITCH to be connected. */
const ORPHAN_WAIT_MS = 30_000;
/** How long ending a previous run's call waits for the response to its BYE. */
const ORPHAN_BYE_MS = 8_000;

/** Resolves true once `ready()` holds (checked at each 'up' of the emitter), false after `ms`. */
function upWithin<E extends Record<string, unknown[]> & { up: unknown[] }>(em: TypedEmitter<E>, ready: () => boolean, ms: number): Promise<boolean> {
  if (ready()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const on = (): void => {
      if (!ready()) return;
      clearTimeout(timer);
      em.off('up', on);
      resolve(true);
    };
    const timer = setTimeout(() => {
      em.off('up', on);
      resolve(ready());
    }, ms).unref();
    em.on('up', on);
  });
}

export interface DrachtioBackendOptions {
  fleetRate?: FleetRateCounter;
  /** How long a caller's ACK may take (default 64*T1 = 32 s). */
  ackTimeoutMs?: number;
  /** 480 for a call the app neither answers nor rejects within this long (default 60 s). */
  offerTimeoutMs?: number;
  /** When a silently refused INVITE's record is released (default 72 s, after drachtio-server's 64 s). */
  silenceReleaseMs?: number;
  /** How long endStoredDialog waits for drachtio-server and FreeSWITCH (default 30 s). */
  orphanWaitMs?: number;
  /** Milliseconds per second of the session timer (default 1000; tests shrink it). */
  sessionTimerUnitMs?: number;
  /** Clock of the conference legs' key merger (default performance.now; tests set it). */
  keyClock?: () => number;
}

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
  /** As on the embedded backend: a refusal is logged once per source and rule a minute (floods). */
  readonly #refusedLog = new OncePerWindow(60_000);
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
  readonly #options: DrachtioBackendOptions;
  readonly #sessionTimerUnitMs: number | undefined;
  readonly #media: FreeswitchMediaSettings;

  /** Options: tests shrink the timers (see DrachtioBackendOptions). */
  constructor(config: Config, logger: Logger, options: DrachtioBackendOptions = {}) {
    super();
    this.#config = config;
    this.#ackTimeoutMs = options.ackTimeoutMs;
    this.#options = options;
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

  /**
   * security.refusal 'silent': no final response. drachtio-server has already sent its stateless
   * 100 Trying (it does for every new INVITE, before asking the app) and answers a CANCEL itself
   * (200, then 487); it drops the INVITE after 64 s without a response. See SILENCE_RELEASE_MS.
   */
  #staySilent(req: Srf.SrfRequest, res: Srf.SrfResponse, status: number): void {
    let cancelled = false;
    // drachtio-srf forgot the INVITE at the CANCEL; a response now could follow drachtio-server's 487.
    req.once('cancel', () => (cancelled = true));
    setTimeout(() => {
      if (cancelled || res.finalResponseSent) return;
      try {
        res.send(status);
      } catch {
        // The connection that delivered it is gone, and drachtio-srf's record with it.
      }
    }, this.#options.silenceReleaseMs ?? SILENCE_RELEASE_MS).unref();
  }

  /**
   * Ends a call a previous run of this node left behind: BYE (with `reason`) in the caller's
   * dialog, which drachtio-server still has, and the FreeSWITCH channel killed (uuid_kill over
   * the event socket; without it, a BYE in the FreeSWITCH leg). Resolves with the BYE's final
   * status (481: drachtio-server no longer has the dialog; 408: no answer).
   */
  async endStoredDialog(dialog: StoredDialog, reason: HangupReason): Promise<number> {
    const d = dialog.drachtio;
    if (d === undefined) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'this dialog was not kept by the drachtio backend');
    const wait = this.#options.orphanWaitMs ?? ORPHAN_WAIT_MS;
    if (!(await upWithin(this.#drachtio, () => this.#drachtio.connected, wait))) {
      throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', `drachtio-server ${this.#drachtio.target} not connected within ${wait} ms: the call of a previous run was not ended`);
    }
    const [status] = await Promise.all([byeInStoredDialog(this.#drachtio.srf, d.stackDialogId, reason, ORPHAN_BYE_MS), this.#releaseStoredMedia(d.media, wait)]);
    return status;
  }

  /** The FreeSWITCH side of a previous run's call; never throws (the caller's BYE matters most). */
  async #releaseStoredMedia(media: StoredDrachtioDialog['media'], wait: number): Promise<void> {
    if (media === undefined) return;
    const pool = this.#freeswitch;
    if (pool.hasMember(media.eventSocket) && (await upWithin(pool, () => pool.serverAt(media.eventSocket) !== undefined, wait))) {
      const ms = pool.serverAt(media.eventSocket);
      try {
        const answer = await Promise.race([ms?.api(`uuid_kill ${media.uuid}`), new Promise<undefined>((r) => setTimeout(() => r(undefined), ORPHAN_BYE_MS).unref())]);
        const outcome = mediaKillOutcome(answer ?? '');
        this.#log.info({ media: media.uuid, freeswitch: media.eventSocket, outcome }, 'media of a previous run\'s call released');
        if (outcome !== 'failed') return;
      } catch (e) {
        this.#log.warn({ err: describeError(e), media: media.uuid }, 'uuid_kill failed');
      }
    }
    if (media.legDialogId === undefined) return;
    // No usable event socket: a BYE in the FreeSWITCH leg ends the channel as well.
    const status = await byeInStoredDialog(this.#drachtio.srf, media.legDialogId, undefined, ORPHAN_BYE_MS);
    this.#log.info({ media: media.uuid, freeswitch: media.eventSocket, byeStatus: status }, 'media of a previous run\'s call released by BYE in its leg');
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
      const suppressed = this.#refusedLog.take(`${req.source_address}|${verdict.why}`);
      if (suppressed !== undefined) {
        this.#log.info({ remote: `${req.source_address}:${req.source_port}`, status: verdict.status, why: verdict.why, suppressedLastMinute: suppressed }, 'INVITE refused');
      }
      // A digest challenge must be answered, or no one could ever authenticate (embedded: the same).
      if (this.#config.security.refusal === 'silent' && verdict.status !== 401) {
        this.#staySilent(req, res, verdict.status);
        return;
      }
      res.send(verdict.status, verdict.reason, { headers: Object.fromEntries(verdict.headers.map((h) => [h.name, h.value])) });
      return;
    }
    if (this.listenerCount('call') === 0) {
      res.send(480);
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
      ...(this.#options.offerTimeoutMs !== undefined ? { offerTimeoutMs: this.#options.offerTimeoutMs } : {}),
      mediaTarget: () => {
        const ms = this.#placement.get(call);
        return ms === undefined ? undefined : this.#freeswitch.targetOf(ms);
      },
      listed: (a) => this.#admission.listed(a),
      retryAfterSeconds: this.#config.drain.retryAfterSeconds,
      media: this.#media,
      sessionExpires: this.#config.sip.sessionExpires,
      ...(this.#sessionTimerUnitMs !== undefined ? { sessionTimerUnitMs: this.#sessionTimerUnitMs } : {}),
      ...(this.#options.keyClock !== undefined ? { keyClock: this.#options.keyClock } : {}),
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
