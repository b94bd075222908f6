import { randomUUID } from 'node:crypto';
import Srf from 'drachtio-srf';
import type Mrf from 'drachtio-fsmrf';
import type { Logger } from '../../log.js';
import { sdpMediaAddresses, type MediaRanges } from '../media-ranges.js';
import { PayIvrError, describeError } from '../../errors.js';
import { TypedEmitter } from '../../util/typed-emitter.js';
import { OncePerWindow } from '../../util/once-per-window.js';
import type {
  CallEndInfo,
  CallEvents,
  DtmfSource,
  HangupReason,
  InboundCall,
  PlayOptions,
  PlayResult,
  ReferResult,
  RemoteEndpoint,
  StoredDialog,
} from '../types.js';
import type { DtmfDigit } from '../../domain/dtmf.js';
import type { SrtpPolicy } from '../../config/media-options.js';
import { offersSrtp, srtpRefusal } from '../srtp-policy.js';
import { answerHasTelephoneEvent, sdpOrigin } from '../sdp-reader.js';
import { KeyMerger } from '../key-merger.js';
import { judgeDtmfInfo } from '../dtmf-info.js';
import { bracketUri, isReferEvent, ReferTracker } from '../refer-tracker.js';
import { formatReason, unansweredStatus } from '../sip-reason.js';
import { answerSrtpCaller } from './srtp-answer.js';
import { idleFillerCommand, playbackCommand, promptFile } from './playback.js';
import { canonicalHeaderName, parseRawHeaders, transportOf, uriOfNameAddr, userOfUri } from './sip-text.js';
import { lateAnswerRefusal } from './late-offer.js';
import { drachtioDialogState } from './stored-dialog.js';
import { FS_HEADERS, type FreeswitchMediaSettings } from './media-settings.js';
import { gateDialog } from './peer-gate.js';
import { DrachtioSessionTimer, negotiateFor, timerHeaderRecord } from './session-timer.js';

type Dialog = Srf.Dialog;
type Endpoint = Mrf.Endpoint;
type MediaServer = Mrf.MediaServer;

export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, INFO, UPDATE';

/** How long teardown waits for a BYE response / FreeSWITCH's hangup before giving up on it. */
const TEARDOWN_MS = 4000;
/** After a break, how long play() waits for FreeSWITCH's execute-complete before resolving anyway. */
const BREAK_GRACE_MS = 2000;
/** SRTP answer: FreeSWITCH's event socket and its subscription, once FreeSWITCH answered (fsmrf's own limit). */
const SRTP_CONNECT_MS = 4000;
/** An idle filler that ends sooner than this was refused by FreeSWITCH, not broken by a barge-in. */
const FILLER_MIN_MS = 100;
const DEFAULT_REFER_MS = 15_000;
/** 64*T1 with RFC 3261's T1 of 500 ms: how long the caller's ACK may take before the call ends. */
const ACK_TIMEOUT_MS = 32_000;
/** Same as the embedded backend: a call the app neither answers nor rejects in this long gets 480. */
const OFFER_TIMEOUT_MS = 60_000;

interface DrachtioCallDeps {
  srf: Srf;
  /** security.mediaRanges: re-INVITEs moving media outside them get 488. */
  mediaRanges: MediaRanges;
  /** How long to wait for the caller's ACK (tests shrink it; default 64*T1 = 32 s). */
  ackTimeoutMs?: number;
  /** The media server to put the call on (undefined while FreeSWITCH is down). */
  mediaServer: () => MediaServer | undefined;
  promptsDir: string;
  userAgent: string;
  /** rtp.srtp: a re-INVITE that would leave SRTP (or enter it when off) is refused. Default optional. */
  srtp?: SrtpPolicy;
  /** The trunk's other signalling addresses (allow-list), which may send in the dialog besides its peer. */
  listed?: (address: string) => boolean;
  /** Retry-After of our 503s (drain.retryAfterSeconds). */
  retryAfterSeconds?: number;
  /** rtp.* as FreeSWITCH takes it (media-settings.ts); without: FreeSWITCH's own defaults. */
  media?: FreeswitchMediaSettings;
  /** sip.sessionExpires (RFC 4028); without: no session timer. */
  sessionExpires?: number;
  /** Milliseconds per second of the session timer (tests shrink it; default 1000). */
  sessionTimerUnitMs?: number;
  logger: Logger;
  /** Called once when the call ended (every path). */
  onEnded: (call: DrachtioCall) => void;
  /** 480 when the app neither answers nor rejects within this long (default 60 s; tests shrink it). */
  offerTimeoutMs?: number;
  /** host:port of the event socket of the media server the call is on (kept with the dialog). */
  mediaTarget?: () => string | undefined;
  /** Milliseconds clock of the key merger (conference legs); default performance.now (tests set it). */
  keyClock?: () => number;
}

interface ActivePlay {
  readonly bargeIn: boolean;
  stop: 'interrupted' | 'stopped' | undefined;
  /** The uuid_break that stops it, once sent (a next prompt waits for it). */
  breaking: Promise<void> | undefined;
  graceTimer: ReturnType<typeof setTimeout> | undefined;
  finish: (r: PlayResult) => void;
  fail: (e: Error) => void;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve('timeout'), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

const DIGIT = /^[0-9A-D*#]$/;

/** The SDP answer the caller got: FreeSWITCH's. */
function localSdpOf(ep: Endpoint, dialog: Dialog): string | undefined {
  return ep.local.sdp ?? dialog.local.sdp;
}

/** One warning per minute and source for refused in-dialog requests (a flood must not flood the log). */
const refusedLog = new OncePerWindow(60_000);

function dtmfSourceOf(source: string | undefined): DtmfSource {
  const s = (source ?? '').toUpperCase();
  if (s === 'INBAND_AUDIO') return 'inband';
  if (s === 'ENDPOINT') return 'sip-info';
  return 'rfc4733';
}

/** A key held longer than this is taken as held this long (a bad duration cannot pair far-off keys). */
const MAX_HELD_MS = 5000;

/**
 * How long an RFC 2833 key was held (ms), from the DTMF event's DTMF-Duration (samples at 8 kHz).
 * FreeSWITCH queues an RFC 2833 key at its end packet, while its in-band detector reports a tone
 * as soon as it finds it: the merger compares when each press began.
 */
function rfc2833HeldMs(samples: string | undefined): number {
  const n = Number(samples);
  return Number.isFinite(n) && n > 0 ? Math.min(n / 8, MAX_HELD_MS) : 0;
}

/**
 * One inbound call on drachtio-server + FreeSWITCH behind the call port. The caller's dialog is
 * a drachtio UAS dialog; its media is a FreeSWITCH endpoint created from the caller's SDP
 * (drachtio-fsmrf: INVITE to the drachtio_mrf profile, FreeSWITCH connects back on the outbound
 * event socket). Prompts are FreeSWITCH `playback`s of files it reads; digits are the endpoint's
 * DTMF events (never playCollect: it leaves digits in a channel variable); barge-in breaks the
 * playback. Every end (caller BYE/CANCEL, our hangup, FreeSWITCH or drachtio loss) runs one
 * teardown that destroys the dialog and the endpoint once and emits 'ended' once.
 */
export class DrachtioCall extends TypedEmitter<CallEvents> implements InboundCall {
  readonly id: string;
  readonly callId: string;
  readonly fromUri: string;
  readonly toUri: string;
  readonly requestUri: string;
  readonly calledUser: string;
  readonly remote: RemoteEndpoint;

  readonly #req: Srf.SrfRequest;
  readonly #res: Srf.SrfResponse;
  readonly #deps: DrachtioCallDeps;
  readonly #log: Logger;
  readonly #headers: [string, string][];
  #state: 'offered' | 'answered' | 'ended' = 'offered';
  #answering: Promise<void> | undefined;
  #dialog: Dialog | undefined;
  #ep: Endpoint | undefined;
  #play: ActivePlay | undefined;
  #refer: ReferTracker | undefined;
  #remoteOrigin: string | undefined;
  #teardown: Promise<void> | undefined;
  /** The uuid_break of a playback the teardown interrupted (the hangup waits for it). */
  #breaking: Promise<void> | undefined;
  #cancelled = false;
  /** Whether the idle filler (playback.ts idleFillerCommand) runs under the prompts; false once it failed. */
  #filler: 'off' | 'running' | 'failed' = 'off';
  #fillerQuickEnds = 0;
  /** Whether FreeSWITCH's in-band key detection runs on the endpoint. */
  #inband = false;
  /** Set by listenForInbandKeys(): in-band detection whatever was negotiated, keys merged across sources. */
  #merger: KeyMerger | undefined;
  #sessionTimer: DrachtioSessionTimer | undefined;
  /** Resolves true at the caller's ACK, false when it never came or the call ended first. */
  #acked: Promise<boolean> = Promise.resolve(false);
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #settleAck: ((ok: boolean) => void) | undefined;
  #offerTimer: ReturnType<typeof setTimeout> | undefined;
  /** The INVITE had no SDP: our 200 OK carried FreeSWITCH's offer, the answer comes in the ACK. */
  #lateOffer = false;

  constructor(req: Srf.SrfRequest, res: Srf.SrfResponse, deps: DrachtioCallDeps) {
    super();
    this.#req = req;
    this.#res = res;
    this.#deps = deps;
    this.id = randomUUID();
    this.#headers = parseRawHeaders(req.raw ?? '');
    this.callId = req.get('Call-ID') ?? this.header('call-id') ?? '';
    this.fromUri = uriOfNameAddr(req.get('From') ?? '');
    this.toUri = uriOfNameAddr(req.get('To') ?? '');
    this.requestUri = req.uri;
    this.calledUser = userOfUri(req.uri) || userOfUri(this.toUri);
    this.remote = { address: req.source_address, port: req.source_port, transport: transportOf(req.protocol) };
    this.#log = deps.logger.child({ call: this.id, callId: this.callId });
    req.on('cancel', this.#onCancel);
    this.#armOfferTimer();
  }

  get state(): 'offered' | 'answered' | 'ended' {
    return this.#state;
  }

  header(name: string): string | undefined {
    const n = canonicalHeaderName(name);
    for (const [k, v] of this.#headers) if (k === n) return v;
    return this.#headers.length === 0 ? this.#req.get(name) : undefined;
  }

  headers(name: string): string[] {
    const n = canonicalHeaderName(name);
    return this.#headers.filter(([k]) => k === n).map(([, v]) => v);
  }

  async reject(status: number, reason?: string): Promise<void> {
    if (status < 300 || status > 699) throw new PayIvrError('ERR_INTERNAL', `reject needs a final non-2xx status, got ${status}`);
    if (this.#answering) {
      await this.#answering.catch(() => undefined);
      return this.hangup({ protocol: 'SIP', cause: status, text: reason ?? 'rejected' });
    }
    if (this.#state !== 'offered') return;
    this.#sendFinal(status, reason);
    void this.#finish({ by: 'local', reason: `rejected ${status}` }, false);
  }

  async answer(): Promise<void> {
    if (this.#state === 'answered') return;
    if (this.#state === 'ended') throw new PayIvrError('ERR_CALL_ENDED', 'the call ended before it was answered');
    clearTimeout(this.#offerTimer);
    if (!this.#answering) {
      this.#answering = this.#doAnswer().finally(() => {
        this.#answering = undefined;
      });
    }
    return this.#answering;
  }

  async #doAnswer(): Promise<void> {
    const ms = this.#deps.mediaServer();
    if (!ms) {
      this.#sendFinal(503, 'Media server unavailable');
      void this.#finish({ by: 'error', reason: 'no-media-server' }, false);
      throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'FreeSWITCH is not connected');
    }
    const offer = this.#req.body ?? '';
    // Late offer: FreeSWITCH makes the offer (fsmrf's 3pcc INVITE without SDP), see #lateAnswerTaken.
    this.#lateOffer = offer.trim() === '';
    const headers = { Allow: ALLOW, 'User-Agent': this.#deps.userAgent, ...this.#sessionTimerHeaders() };
    let ep: Endpoint | undefined;
    let dialog: Dialog;
    try {
      if (offersSrtp(offer)) {
        // SRTP: FreeSWITCH must answer first (its crypto), see srtp-answer.ts.
        const pair = await this.#connectSrtpCaller(ms, headers);
        ep = pair.endpoint;
        dialog = pair.dialog;
      } else {
        const inviteHeaders: Record<string, string> = { ...this.#deps.media?.inviteHeaders };
        if (this.#lateOffer && (this.#deps.srtp ?? 'optional') !== 'required') inviteHeaders[FS_HEADERS.lateOffer] = 'plain';
        ep = await ms.createEndpoint(this.#lateOffer ? { headers: inviteHeaders } : { remoteSdp: offer, headers: inviteHeaders });
        if (this.#state === 'ended') throw new PayIvrError('ERR_CALL_ENDED', 'the caller cancelled while media was set up');
        const localSdp = ep.local.sdp;
        if (!localSdp) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'FreeSWITCH gave no local SDP');
        dialog = await this.#deps.srf.createUAS(this.#req, this.#res, { localSdp, headers });
      }
    } catch (e) {
      if (ep) void this.#destroyEndpoint(ep);
      if (this.#state === 'ended') {
        // Ended while we set up media: by CANCEL (drachtio already answered 487) or by a backend loss.
        if (!this.#cancelled) this.#sendFinal(503, 'Service unavailable');
        throw new PayIvrError('ERR_CALL_ENDED', 'the call ended while it was answered', { cause: e });
      }
      const status = e instanceof Srf.SipError && e.status === 488 ? 488 : 503;
      this.#sendFinal(status, status === 488 ? 'Not Acceptable Here' : 'Media server unavailable');
      void this.#finish({ by: 'error', reason: 'answer-failed' }, false);
      this.#log.warn({ err: describeError(e), status }, 'answer failed');
      throw new PayIvrError(status === 488 ? 'ERR_SDP_NO_COMMON_CODEC' : 'ERR_BACKEND_UNAVAILABLE', `answer failed: ${describeError(e)}`, { cause: e });
    }
    this.#ep = ep;
    this.#dialog = dialog;
    if (this.#state === 'ended') {
      // Ended (backend loss) between the 200 OK and here: the teardown did not know them yet.
      void this.#destroyDialog(dialog, { protocol: 'SIP', cause: 503, text: 'Service unavailable' });
      void this.#destroyEndpoint(ep);
      throw new PayIvrError('ERR_CALL_ENDED', 'the call ended while it was answered');
    }
    this.#state = 'answered';
    this.#remoteOrigin = sdpOrigin(offer);
    this.#req.off('cancel', this.#onCancel);
    this.#guardDialog(dialog);
    dialog.on('destroy', this.#onRemoteBye);
    dialog.on('modify', this.#onModify);
    dialog.on('notify', this.#onNotify);
    dialog.on('info', this.#onInfo);
    ep.on('dtmf', this.#onDtmf);
    ep.on('destroy', this.#onMediaGone);
    ep.dialog?.on('destroy', this.#onMediaLegBye);
    this.#syncInbandDetection(ep, localSdpOf(ep, dialog));
    this.#startSessionTimer(dialog);
    this.#awaitAck(dialog, ep);
    this.#log.info({ media: ep.uuid }, 'answered on FreeSWITCH');
  }

  /**
   * FreeSWITCH sends nothing until something writes to the channel: no silence (the dialplan no
   * longer sets send_silence_when_idle) and no prompt (play() waits here) before the caller's
   * ACK. Without an ACK within 64*T1 the call ends with no BYE: nobody has shown they receive at
   * the addresses the INVITE named (docs/adr/0007-media-source-rules.md).
   */
  #awaitAck(dialog: Dialog, ep: Endpoint): void {
    this.#acked = new Promise<boolean>((resolve) => {
      this.#settleAck = (ok) => {
        clearTimeout(this.#ackTimer);
        this.#settleAck = undefined;
        resolve(ok);
      };
    });
    // A late-offer ACK carries the SDP answer: only the caller may send it. The dialog's peer gate
    // (#guardDialog) drops an ACK from anyone else before it gets here.
    const onAck = (ack: Srf.SrfRequest): void => {
      if (this.#state !== 'answered') return;
      clearTimeout(this.#ackTimer);
      void this.#lateAnswerTaken(ack, ep).then((ok) => {
        if (!ok || this.#state !== 'answered') return;
        // Keep RTP flowing while nothing plays (Genesys hangs up on idle RTP); sent before any
        // prompt (play() waits for #acked), so the prompts run on top of it.
        this.#startFiller(ep);
        this.#settleAck?.(true);
      });
    };
    dialog.once('ack', onAck);
    this.#ackTimer = setTimeout(() => {
      if (this.#state !== 'answered') return;
      this.#log.info('no ACK from the caller: ending the call without media');
      this.#settleAck?.(false);
      void this.#finish({ by: 'error', reason: 'no-ack' }, false);
    }, this.#deps.ackTimeoutMs ?? ACK_TIMEOUT_MS);
  }

  /**
   * Late offer: the ACK must carry the caller's answer to FreeSWITCH's offer, acceptable under
   * rtp.srtp and security.mediaRanges; FreeSWITCH gets it as a re-INVITE of its leg (fsmrf
   * answered its 3pcc 200 OK with a recvonly copy of its own offer). Without a usable answer the
   * call ends with BYE, as on the embedded backend. True when media may start.
   */
  async #lateAnswerTaken(ack: Srf.SrfRequest, ep: Endpoint): Promise<boolean> {
    if (!this.#lateOffer) return true;
    const answer = ack.body ?? '';
    let why = lateAnswerRefusal(answer, this.#deps.srtp ?? 'optional', this.#deps.mediaRanges);
    if (why === undefined) {
      try {
        await ep.modify(answer);
        this.#remoteOrigin = sdpOrigin(answer);
        // The caller's answer, not FreeSWITCH's offer, says whether keys come as RFC 4733 events.
        this.#syncInbandDetection(ep, answer);
        return true;
      } catch (e) {
        why = `FreeSWITCH refused the answer (${describeError(e)})`;
      }
    }
    if (this.#state !== 'answered') return false;
    this.#log.info({ why }, 'late offer: no usable SDP answer in the ACK, ending the call');
    this.#settleAck?.(false);
    void this.#finish({ by: 'error', reason: 'bad-sdp-answer' }, true, { protocol: 'SIP', cause: 488, text: 'no usable SDP answer in ACK' });
    return false;
  }

  /** Same rule as the embedded backend: neither answered nor rejected in time -> 480. */
  #armOfferTimer(): void {
    this.#offerTimer = setTimeout(() => {
      if (this.#state !== 'offered' || this.#answering) return;
      this.#log.warn('call neither answered nor rejected in time');
      this.#sendFinal(480, 'Not Answered In Time');
      void this.#finish({ by: 'local', reason: 'rejected 480' }, false);
    }, this.#deps.offerTimeoutMs ?? OFFER_TIMEOUT_MS);
  }

  /** The answered dialog for the journal: a restarted node ends it through drachtio-server. */
  dialogState(): StoredDialog | undefined {
    const dialog = this.#dialog;
    if (this.#state !== 'answered' || dialog === undefined) return undefined;
    const ep = this.#ep;
    const eventSocket = this.#deps.mediaTarget?.();
    return drachtioDialogState({
      headers: (name) => {
        const all = this.headers(name);
        const one = all.length === 0 ? this.#req.get(name) : undefined;
        return one === undefined ? all : [one];
      },
      dialog,
      remote: this.remote,
      media: ep !== undefined && eventSocket !== undefined ? { uuid: ep.uuid, eventSocket, legDialogId: ep.dialog?.id } : undefined,
    });
  }

  async play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult> {
    if (this.#state === 'ended') return 'ended';
    if (this.#state !== 'answered' || !this.#ep) throw new PayIvrError('ERR_INTERNAL', 'play() before answer()');
    if (!(await this.#acked)) return 'ended';
    const ep = this.#ep;
    if (this.#state !== 'answered' || !ep) return 'ended';
    const files = fragments.map((f) => promptFile(this.#deps.promptsDir, options.language, f));
    if (files.length === 0) return 'done';
    const previous = this.#play;
    const { app, arg } = playbackCommand(files, options.loop === true);
    let active: ActivePlay | undefined;
    const result = new Promise<PlayResult>((resolve, reject) => {
      active = { bargeIn: options.bargeIn, stop: undefined, breaking: undefined, graceTimer: undefined, finish: resolve, fail: reject };
    });
    const current = active as ActivePlay;
    this.#play = current;
    if (previous) {
      // FreeSWITCH runs a new playback on top of a running one, so the break must land first
      // (sent together, it could stop the new prompt instead of the old one).
      this.#stopPlayback(previous, 'stopped');
      await withTimeout(previous.breaking ?? Promise.resolve(), BREAK_GRACE_MS);
      if (this.#state !== 'answered' || this.#play !== current) {
        current.finish(this.#state === 'answered' ? 'stopped' : 'ended');
        return result;
      }
    }
    ep.execute(app, arg).then(
      (evt) => {
        if (current.stop) current.finish(current.stop);
        else if (evt.getHeader('Application-Response') === 'FILE NOT FOUND') {
          current.fail(new PayIvrError('ERR_PROMPT_MISSING', `FreeSWITCH could not open a prompt (${files.length} fragment(s), language ${options.language}); check ${this.#deps.promptsDir}`));
        } else current.finish('done');
      },
      (e: unknown) => {
        if (this.#state === 'ended') current.finish('ended');
        else current.fail(new PayIvrError('ERR_INTERNAL', `playback failed: ${describeError(e)}`));
      },
    );
    try {
      return await result;
    } finally {
      if (current.graceTimer) clearTimeout(current.graceTimer);
      if (this.#play === current) {
        this.#play = undefined;
        // The filler ends only when a break reached it instead of the prompt: start it again.
        this.#startFiller(ep);
      }
    }
  }

  /**
   * Starts the idle filler unless it runs, failed before, or the call is over. A barge-in's
   * `uuid_break ... all` stops it along with the prompt on top (seen on FreeSWITCH 1.10.12): it
   * starts again once no prompt is on its way (a prompt sent after it runs on top of it, one sent
   * before would be held under it).
   */
  #startFiller(ep: Endpoint): void {
    if (this.#filler !== 'off' || this.#state !== 'answered' || this.#ep !== ep || this.#play !== undefined) return;
    this.#filler = 'running';
    const started = Date.now();
    const { app, arg } = idleFillerCommand(this.#deps.media?.silenceWhenIdle ?? '-1');
    const ended = (response: string | undefined): void => {
      if (this.#filler !== 'running') return;
      this.#fillerQuickEnds = Date.now() - started < FILLER_MIN_MS ? this.#fillerQuickEnds + 1 : 0;
      if (response === 'FILE NOT FOUND' || this.#fillerQuickEnds >= 3) {
        // Not playable here (mod_tone_stream missing?): no loop of failing executes.
        this.#filler = 'failed';
        if (this.#state === 'answered') this.#log.warn({ response }, 'FreeSWITCH stopped the idle silence at once: no RTP while no prompt plays');
        return;
      }
      this.#filler = 'off';
      this.#startFiller(ep);
    };
    ep.execute(app, arg).then(
      (evt) => ended(evt.getHeader('Application-Response') ?? undefined),
      () => ended(undefined),
    );
  }

  stopPlay(): void {
    const p = this.#play;
    if (p) this.#stopPlayback(p, 'stopped');
  }

  #stopPlayback(p: ActivePlay, why: 'interrupted' | 'stopped'): void {
    if (p.stop) return;
    p.stop = why;
    const ep = this.#ep;
    if (ep) {
      p.breaking = ep.api('uuid_break', `${ep.uuid} all`).then(
        () => undefined,
        (e: unknown) => this.#log.debug({ err: describeError(e) }, 'uuid_break failed'),
      );
    }
    // Do not hang if FreeSWITCH never reports the broken playback as complete.
    p.graceTimer = setTimeout(() => p.finish(why), BREAK_GRACE_MS);
  }

  async refer(referTo: string, options?: { timeoutMs?: number }): Promise<ReferResult> {
    const dialog = this.#dialog;
    if (this.#state === 'ended') return { ok: false, referStatus: 481, detail: 'call already ended' };
    if (this.#state !== 'answered' || !dialog) return { ok: false, referStatus: 481, detail: 'call not answered' };
    if (this.#refer) return { ok: false, referStatus: 491, detail: 'a REFER is already in progress' };
    // Not before the caller's ACK (a hand-back right after the answer would otherwise race it).
    if (!(await this.#acked) || this.#state !== 'answered') return { ok: false, referStatus: 481, detail: 'call ended before the ACK' };
    if (this.#refer) return { ok: false, referStatus: 491, detail: 'a REFER is already in progress' };
    const tracker = new ReferTracker({
      timeoutMs: options?.timeoutMs ?? DEFAULT_REFER_MS,
      onSettled: () => {
        if (this.#refer === tracker) this.#refer = undefined;
      },
    });
    this.#refer = tracker;
    dialog
      .request({ method: 'REFER', headers: { 'Refer-To': bracketUri(referTo), 'Referred-By': `<${dialog.local.uri}>` } })
      .then(
        // drachtio-srf resolves on the first response; a provisional one leaves the NOTIFYs to decide.
        (res) => tracker.referAnswered(res.status),
        (e: unknown) => tracker.referFailed(e instanceof Srf.SipError ? e.status : 500, `REFER not sent: ${describeError(e)}`),
      );
    const r = await tracker.result;
    this.#log.info({ referStatus: r.referStatus, finalStatus: r.finalStatus, ok: r.ok }, 'REFER finished');
    return r;
  }

  async hangup(reason?: HangupReason): Promise<void> {
    if (this.#answering) await this.#answering.catch(() => undefined);
    if (this.#state === 'ended') return this.#teardown;
    if (this.#state === 'offered') {
      this.#sendFinal(unansweredStatus(reason), reason?.text);
      return this.#finish({ by: 'local', reason: 'hangup' }, false);
    }
    return this.#finish({ by: 'local', reason: 'hangup' }, true, reason);
  }

  /** The backend lost drachtio-server or FreeSWITCH: end the call from our side. */
  abort(reason: 'transport-lost' | 'media-lost' | 'shutdown'): Promise<void> {
    if (this.#state === 'offered' && !this.#answering) this.#sendFinal(503, 'Service unavailable');
    const text = reason === 'media-lost' ? 'media server lost' : reason === 'shutdown' ? 'service shutting down' : 'signalling lost';
    // A shutdown is ours, as on the embedded backend; a lost server is an error.
    return this.#finish({ by: reason === 'shutdown' ? 'local' : 'error', reason }, true, { protocol: 'SIP', cause: 503, text });
  }

  #sendFinal(status: number, reason?: string): void {
    if (this.#res.finalResponseSent) return;
    try {
      const headers: Record<string, string> = status === 503 ? { 'Retry-After': String(this.#deps.retryAfterSeconds ?? 30) } : {};
      if (reason) this.#res.send(status, reason, { headers });
      else this.#res.send(status, { headers });
    } catch (e) {
      this.#log.warn({ err: describeError(e), status }, 'final response not sent');
    }
  }

  /** The one teardown: state, waiters, dialog BYE (when asked), endpoint, 'ended' - once. */
  #finish(info: CallEndInfo, bye: boolean, reason?: HangupReason): Promise<void> {
    if (this.#teardown) return this.#teardown;
    this.#state = 'ended';
    clearTimeout(this.#offerTimer);
    this.#settleAck?.(false);
    this.#req.off('cancel', this.#onCancel);
    const play = this.#play;
    if (play) {
      if (play.graceTimer) clearTimeout(play.graceTimer);
      play.finish('ended');
      // In async socket mode FreeSWITCH runs the hangup only after the running playback: break it.
      // `uuid_break ... all` also empties the channel's queue, so the hangup is queued only once
      // the break is done (#destroyEndpoint waits for it); sent together, the break could discard it.
      const media = this.#ep;
      if (media?.connected) this.#breaking = media.api('uuid_break', `${media.uuid} all`).then(() => undefined, () => undefined);
    }
    this.#refer?.callEnded();
    this.#sessionTimer?.stop();
    const dialog = this.#dialog;
    const ep = this.#ep;
    if (dialog) {
      dialog.off('destroy', this.#onRemoteBye);
      dialog.off('modify', this.#onModify);
      dialog.off('notify', this.#onNotify);
      dialog.off('info', this.#onInfo);
    }
    if (ep) {
      ep.off('dtmf', this.#onDtmf);
      ep.off('destroy', this.#onMediaGone);
      ep.dialog?.off('destroy', this.#onMediaLegBye);
    }
    this.#teardown = Promise.allSettled([
      bye && dialog ? this.#destroyDialog(dialog, reason) : Promise.resolve(),
      ep ? this.#destroyEndpoint(ep, info.reason === 'media-lost') : Promise.resolve(),
    ]).then(() => undefined);
    this.#log.info({ by: info.by, reason: info.reason }, 'call ended');
    try {
      this.emit('ended', info);
    } finally {
      this.#deps.onEnded(this);
    }
    return this.#teardown;
  }

  async #destroyDialog(dialog: Dialog, reason?: HangupReason): Promise<void> {
    if (!dialog.connected) return;
    try {
      const r = await withTimeout(dialog.destroy({ headers: reason ? { Reason: formatReason(reason) } : {} }), TEARDOWN_MS);
      if (r === 'timeout') this.#log.warn('no response to our BYE');
    } catch (e) {
      this.#log.debug({ err: describeError(e) }, 'BYE not sent');
    }
  }

  async #destroyEndpoint(ep: Endpoint, mediaGone = false): Promise<void> {
    const fsLeg = ep.dialog;
    // With FreeSWITCH gone its event socket cannot run a hangup: only the SIP leg is left to close.
    if (!mediaGone) {
      try {
        if (this.#breaking !== undefined) await withTimeout(this.#breaking, TEARDOWN_MS);
        const r = await withTimeout(ep.destroy(), TEARDOWN_MS);
        if (r === 'timeout') this.#log.warn('FreeSWITCH did not confirm the media hangup');
      } catch (e) {
        this.#log.debug({ err: describeError(e) }, 'media hangup failed');
      }
    }
    // FreeSWITCH's BYE normally closed its leg; when FreeSWITCH is gone (or did not answer),
    // release the leg ourselves so neither drachtio-server nor drachtio-srf keeps the dialog.
    if (fsLeg?.connected) await withTimeout(fsLeg.destroy(), TEARDOWN_MS).catch(() => undefined);
  }

  /** SRTP: FreeSWITCH answers first (srtp-answer.ts); the FreeSWITCH-only headers (media-settings.ts) never reach the caller. */
  #connectSrtpCaller(ms: MediaServer, headers: Record<string, string>): Promise<{ endpoint: Endpoint; dialog: Dialog }> {
    return answerSrtpCaller(ms, this.#deps.srf, this.#req, this.#res, {
      fsHeaders: { ...headers, ...this.#deps.media?.inviteHeaders },
      callerHeaders: headers,
      connectMs: SRTP_CONNECT_MS,
      cancelled: () => this.#state === 'ended',
    });
  }


  /** Session-Expires (and Require: timer) of our 200 OK: the embedded stack's negotiation (telephony/session-timer.ts). */
  #sessionTimerHeaders(): Record<string, string> {
    const ours = this.#deps.sessionExpires;
    const d = ours === undefined ? undefined : negotiateFor(this.#req, ours);
    return timerHeaderRecord(d?.kind === 'use' ? d.plan : undefined);
  }

  #startSessionTimer(dialog: Dialog): void {
    const ours = this.#deps.sessionExpires;
    const d = ours === undefined ? undefined : negotiateFor(this.#req, ours);
    if (ours === undefined || d?.kind !== 'use') return;
    this.#sessionTimer = new DrachtioSessionTimer({
      dialog,
      plan: d.plan,
      ourInterval: ours,
      peerAllowsUpdate: /(^|,)\s*UPDATE\s*(,|$)/i.test(this.#req.get('Allow') ?? ''),
      unitMs: this.#deps.sessionTimerUnitMs ?? 1000,
      log: this.#log,
      expired: () => void this.#finish({ by: 'local', reason: 'session-expired' }, true, { protocol: 'SIP', cause: 408, text: 'session expired' }),
      refreshFailed: () => void this.#finish({ by: 'error', reason: 'session-refresh-failed' }, true, { protocol: 'SIP', cause: 408, text: 'session refresh failed' }),
    });
  }

  /** The dialog-peer rule (dialog-peer.ts) in front of every in-dialog request of the caller's dialog. */
  #guardDialog(dialog: Dialog): void {
    gateDialog(dialog, {
      peer: { address: this.remote.address, transport: this.remote.transport },
      listed: (a) => this.#deps.listed?.(a) === true,
      inspect: (req, res) => this.#sessionTimer?.peerRequest(req, res) ?? true,
      refused: (req) => {
        const suppressed = refusedLog.take(req.source_address);
        if (suppressed !== undefined) {
          this.#log.warn({ method: req.method, source: req.source_address, transport: transportOf(req.protocol), suppressedLastMinute: suppressed }, 'in-dialog request from another address refused');
        }
        if (req.method === 'BYE') {
          // drachtio-server (v0.9.10) drops its dialog as it relays any BYE, whatever we answer: the
          // caller's requests and ours (REFER, BYE) can no longer pass, so the call cannot go on.
          this.#log.warn('drachtio-server dropped the dialog on a refused BYE from another address: ending the call');
          void this.#finish({ by: 'error', reason: 'dialog-lost' }, false);
        }
      },
    });
  }

  /**
   * A conference leg: the mix may carry the caller's keys as tones only, even where telephone-event
   * was negotiated. FreeSWITCH's start_dtmf then runs whatever the SDP says, and a key reported by
   * two sources within one press counts once (telephony/key-merger.ts, the embedded rule). May be
   * called before the answer (the controller does): the answer then starts the detection.
   */
  listenForInbandKeys(): void {
    if (this.#state === 'ended' || this.#merger !== undefined) return;
    this.#merger = new KeyMerger();
    const ep = this.#ep;
    const dialog = this.#dialog;
    if (ep !== undefined && dialog !== undefined) this.#syncInbandDetection(ep, localSdpOf(ep, dialog));
  }

  /**
   * In-band key detection (FreeSWITCH's start_dtmf: DTMF events with DTMF-Source INBAND_AUDIO)
   * exactly while the answer has no telephone-event, as the embedded engine runs its detector:
   * with RFC 4733 events a key would otherwise be reported twice. A conference leg
   * (listenForInbandKeys) keeps it on whatever the answer says; its merger drops the second copy.
   */
  #syncInbandDetection(ep: Endpoint, answer: string | undefined): void {
    const want = this.#merger !== undefined || !answerHasTelephoneEvent(answer);
    if (want === this.#inband) return;
    this.#inband = want;
    ep.execute(want ? 'start_dtmf' : 'stop_dtmf').catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'in-band key detection not switched'));
  }

  /** `durationMs`: how long the key was held, when the source reports it only at its end. */
  #onDigit(digit: DtmfDigit, source: DtmfSource, durationMs = 0): void {
    if (this.#state !== 'answered') return;
    const merger = this.#merger;
    if (merger !== undefined && !merger.accept(digit, source, (this.#deps.keyClock?.() ?? performance.now()) - durationMs)) {
      this.#log.debug({ source }, 'key reported by a second source counted once');
      return;
    }
    const p = this.#play;
    if (p && p.bargeIn && !p.stop) this.#stopPlayback(p, 'interrupted');
    this.emit('digit', digit, source);
  }

  readonly #onDtmf = (evt: Mrf.DtmfEvent): void => {
    const d = (evt.dtmf ?? '').toUpperCase();
    if (!DIGIT.test(d)) return;
    const source = dtmfSourceOf(evt.source);
    this.#onDigit(d as DtmfDigit, source, source === 'rfc4733' ? rfc2833HeldMs(evt.duration) : 0);
  };

  readonly #onCancel = (): void => {
    this.#cancelled = true;
    void this.#finish({ by: 'remote', reason: 'CANCEL' }, false);
  };

  readonly #onRemoteBye = (): void => {
    void this.#finish({ by: 'remote', reason: 'BYE' }, false);
  };

  /** FreeSWITCH hung the channel up (`reason`: its hangup cause) or its event socket closed. */
  readonly #onMediaGone = (info?: { reason?: string }): void => {
    if (this.#state === 'ended') return;
    if (info?.reason === 'MEDIA_TIMEOUT') {
      // rtp.noRtpTimeoutMs as FreeSWITCH's media_timeout: ended as the embedded engine ends it.
      this.#log.info('no RTP from the caller, ending the call');
      void this.#finish({ by: 'error', reason: 'rtp-timeout' }, true, { protocol: 'SIP', cause: 408, text: 'no RTP received' });
      return;
    }
    this.#log.warn('FreeSWITCH ended the media of the call');
    void this.#finish({ by: 'error', reason: 'media-lost' }, true, { protocol: 'SIP', cause: 503, text: 'media server lost' });
  };

  /** FreeSWITCH's BYE on its leg: its Reason names the hangup cause (Q.850 text). */
  readonly #onMediaLegBye = (req?: Srf.SrfRequest): void => {
    const cause = /text\s*=\s*"?([A-Z_]+)/.exec(req?.get('Reason') ?? '')?.[1];
    this.#onMediaGone(cause !== undefined ? { reason: cause } : undefined);
  };

  readonly #onNotify = (req: Srf.SrfRequest, res: Srf.SrfResponse): void => {
    res.send(200);
    const t = this.#refer;
    if (!t) return;
    const event = req.get('Event');
    // Lenient on a missing Event header: drachtio-srf routed the NOTIFY to this dialog.
    if (event !== undefined && !isReferEvent(event)) return;
    t.notify(req.body, req.get('Subscription-State'));
  };

  /**
   * Key presses in SIP INFO: the rule and the replies are dtmf-info.ts's (the embedded stack's).
   * drachtio-srf hands the body over as a string, which cannot be zeroed: it is dropped from the
   * request at once, and the copy the rule reads is zeroed by it.
   */
  readonly #onInfo = (req: Srf.SrfRequest, res: Srf.SrfResponse): void => {
    const body = Buffer.from(req.body ?? '', 'latin1');
    req.body = '';
    const r = judgeDtmfInfo(req.get('Content-Type'), body);
    const headers: Record<string, string> = r.accept !== undefined ? { Accept: r.accept } : {};
    if (r.reason !== undefined) res.send(r.status, r.reason, { headers });
    else res.send(r.status, { headers });
    if (r.digit !== undefined) this.#onDigit(r.digit, 'sip-info');
  };

  /** re-INVITE from the caller: a refresh is answered with our SDP, a change goes to FreeSWITCH. */
  readonly #onModify = (req: Srf.SrfRequest, res: Srf.SrfResponse): void => {
    const dialog = this.#dialog;
    const ep = this.#ep;
    const ct = { 'Content-Type': 'application/sdp' };
    if (!dialog || !ep) {
      res.send(481);
      return;
    }
    const offer = req.body;
    const why = offer ? srtpRefusal(offer, this.#deps.srtp ?? 'optional') : undefined;
    if (why !== undefined) {
      this.#log.info({ why }, 're-INVITE refused: SDP offer not acceptable');
      res.send(488, { headers: { Warning: `302 pay-ivr "${why}"` } });
      return;
    }
    const origin = sdpOrigin(offer);
    if (offer && sdpMediaAddresses(offer).some((a) => !this.#deps.mediaRanges.sdpAddressAllowed(a))) {
      this.#log.warn('re-INVITE refused: SDP media address not an IP inside security.mediaRanges');
      res.send(488);
      return;
    }
    if (!offer || origin === undefined || origin === this.#remoteOrigin) {
      res.send(200, { body: dialog.local.sdp, headers: ct });
      return;
    }
    ep.modify(offer).then(
      (answer) => {
        this.#remoteOrigin = origin;
        dialog.local.sdp = answer;
        this.#syncInbandDetection(ep, answer);
        res.send(200, { body: answer, headers: ct });
      },
      (e: unknown) => {
        this.#log.warn({ err: describeError(e) }, 're-INVITE refused by FreeSWITCH');
        res.send(488);
      },
    );
  };
}
