import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import rtpengine from 'rtpengine-client';
import { PayIvrError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import type { SrtpSuite } from '../config/media-options.js';
import { OncePerWindow } from '../util/once-per-window.js';
import { TypedEmitter } from '../util/typed-emitter.js';
import { parseDtmfDatagram } from './rtpengine-dtmf-datagram.js';
import { KeyFilter } from './rtpengine-key-filter.js';
import type { AnchorIds, DtmfSecurityMode, MediaAnchor, MediaAnchorEvents, MediaProfileOptions } from './types.js';

/**
 * The media anchor of the edge role: rtpengine (Debian's rtpengine-daemon 10.5, userspace
 * forwarding) driven over the ng protocol (UDP, rtpengine-client), plus the listener for the
 * DTMF events rtpengine sends to `--dtmf-log-dest`.
 *
 * What rtpengine 10.5.3.5 does, measured with the real daemon (test/edge-rtpengine.test.ts) and
 * read in its source:
 *
 * - Offer/answer: `ICE: remove`, `transport-protocol` RTP/AVP (RTP/SAVP with SDES on request,
 *   the allowed suites only: `SDES: no-<suite>` for the others, 10.5 has no "only" flag),
 *   `replace: origin, session-connection`, `record call: no`. Media sources (the project's rule,
 *   docs/adr/0007-media-source-rules.md): `endpoint-learning: off` makes rtpengine take the SDP's
 *   address and port as the peer at once (no learning window), and the `strict source` flag is
 *   meant to drop every packet from another address or port; media goes back to that address
 *   (symmetric). Measured: with these flags 10.5.3.5 in userspace still relays RTP sent to the
 *   caller's rtpengine port from another port of the caller's host (the test keeps this visible;
 *   `query` shows the stream flagged "strict source address" but never "confirmed").
 *   The source rule of ADR 0007 therefore has to come from the network in front of rtpengine
 *   (firewall: media ports only from the carrier's and Genesys's media ranges) until it does.
 * - `block DTMF` with a `from-tag` blocks that leg's keys toward the other leg only (directional;
 *   10.5 has no `directional` flag, the tag is what selects). Without `DTMF-security` it drops
 *   RFC 4733 packets and lets in-band tones through.
 * - `DTMF-security: silence | tone` renders the blocked RFC 4733 events as PCM and replaces them,
 *   but the replacing runs only in the delay buffer: without `delay-buffer` the rendered DTMF
 *   tones reach the other leg (heard in the test). With `delay-buffer` at 100 ms the keys are
 *   silence or a 400 Hz tone (20 ms let the start of each in-band tone through, 60 ms one 20 ms
 *   packet of one now and then). The leg's audio is delayed by that much while the block lasts.
 * - In-band tones: rtpengine's tone detector runs only when the sending leg has no
 *   telephone-event or when the leg's "detect DTMF" is on, and 10.5 takes that flag only from
 *   `block DTMF`/`unblock DTMF` (in `offer`/`answer` it is parsed and ignored). So `block DTMF`
 *   carries the `detect DTMF` flag: in-band keys are then reported as DTMF events and replaced
 *   like RFC 4733 ones. The price: an RFC 4733 key is reported twice (the event, then the
 *   detector hearing its PCM rendering 60-80 ms later); KeyFilter drops that echo.
 * - `unblock DTMF` with `delay-buffer: 0` and without `detect DTMF` puts the leg back to plain
 *   forwarding (the delay buffer stays until it is set to 0). What the buffer holds then goes out
 *   unreplaced (a key just reported: its tone and its repeated end packets), so `unblockDtmf`
 *   first waits `unblockSettleMs` after the leg's last key event.
 * - `zero` rewrites RFC 4733 events to event 0 but lets in-band tones through as audio, and
 *   with `detect DTMF` even turns them into RFC 4733 events carrying the real key. `random`
 *   crashes the daemon (segfault) at the first key when the delay buffer is on, and without it
 *   the keys reach the other leg as tones. Both are refused (ERR_RTPENGINE_UNSUPPORTED).
 * - `inject DTMF` (offer/answer) changes nothing for blocking: it is for `play DTMF`.
 * - DTMF events: one JSON datagram at the end of each key, from an ephemeral port of the
 *   rtpengine host; `duration` in milliseconds. rtpengine logs the key itself only at log
 *   level 7 (debug); at 6 its log holds no digit.
 * - `play media` plays to the leg named by `from-tag` (the other leg does not hear it).
 *
 * Running rtpengine for this: `--dtmf-log-dest` = the configured dtmfLogAddress:dtmfLogPort;
 * `--log-level` at most 6 and no `--log-facility-dtmf` (at 7, or with a DTMF syslog facility, it
 * writes every key, so card digits, to its log); `--table=-1` works (no kernel module needed).
 *
 * Card data: DTMF datagrams carry card digits during a capture. They are parsed, turned into
 * 'dtmf' events and dropped; no datagram, digit or event field is ever logged. SDP is not logged.
 */

export interface RtpengineAnchorOptions {
  /** rtpengine's ng address (an IP literal: DTMF datagrams are accepted only from it). */
  host: string;
  port: number;
  /** Local address and port of the DTMF event listener (rtpengine's `--dtmf-log-dest`). */
  dtmfLogAddress: string;
  dtmfLogPort: number;
  /** Longest wait for one ng answer. */
  timeoutMs: number;
  /** Time between two reachability pings. */
  pingIntervalMs?: number;
  /** rtpengine's delay buffer while a leg's keys are blocked (default 100 ms, see above). */
  delayBufferMs?: number;
  /** Key events accepted per call leg and second (and in a burst). */
  maxDtmfEventsPerSecond?: number;
  /** Local port of the ng control socket (default: any). */
  controlPort?: number;
  log?: Logger;
}

/** DTMF datagrams by what became of them (a test and an operator can see drops without logs). */
export interface DtmfListenerStats {
  keys: number;
  foreignSource: number;
  malformed: number;
  unknownCall: number;
  rateLimited: number;
  echo: number;
}

type Transport = 'RTP/AVP' | 'RTP/SAVP';
type NgOptions = rtpengine.NgOptions;
type NgResponse = rtpengine.NgResponse;

interface CallEntry {
  /** One key filter per leg tag. */
  legs: Map<string, KeyFilter>;
}

const UNSAFE_MODES: ReadonlySet<DtmfSecurityMode> = new Set(['zero', 'random']);

/** Every SDES suite rtpengine 10.5 offers by default (its offer with no SDES flag, in its order). */
export const RTPENGINE_SDES_SUITES = [
  'AEAD_AES_256_GCM',
  'AEAD_AES_128_GCM',
  'AES_256_CM_HMAC_SHA1_80',
  'AES_256_CM_HMAC_SHA1_32',
  'AES_192_CM_HMAC_SHA1_80',
  'AES_192_CM_HMAC_SHA1_32',
  'AES_CM_128_HMAC_SHA1_80',
  'AES_CM_128_HMAC_SHA1_32',
  'F8_128_HMAC_SHA1_80',
  'F8_128_HMAC_SHA1_32',
  'NULL_HMAC_SHA1_80',
  'NULL_HMAC_SHA1_32',
] as const;

/** Options shared by offer and answer (see the module comment for why each). */
export function offerAnswerOptions(transport: Transport, sdesSuites?: readonly SrtpSuite[]): NgOptions {
  return {
    'transport-protocol': transport,
    // Only the suites the product allows, offered and accepted: rtpengine offers every suite it
    // knows, and 10.5 has no "only-" flag (measured), so the others are named one by one.
    ...(sdesSuites === undefined ? {} : { SDES: RTPENGINE_SDES_SUITES.filter((x) => !(sdesSuites as readonly string[]).includes(x)).map((x) => `no-${x}`) }),
    ICE: 'remove',
    'endpoint-learning': 'off',
    flags: ['strict source'],
    replace: ['origin', 'session-connection'],
    'record call': 'no',
  };
}

/** The `block DTMF` options for one leg (see the module comment). */
export function blockDtmfOptions(callId: string, fromTag: string, mode: 'silence' | 'tone', delayBufferMs: number): NgOptions {
  return { 'call-id': callId, 'from-tag': fromTag, 'DTMF-security': mode, 'delay-buffer': delayBufferMs, flags: ['detect DTMF'] };
}

/**
 * How long after a leg's last key event its keys may be unblocked: the delay buffer (the leg's
 * audio toward the other side ran up to 70 ms later than it on a real call), the in-band echo
 * of the key (60-80 ms after the event) and a margin.
 */
export function unblockSettleMs(delayBufferMs: number): number {
  return 2 * delayBufferMs + 100;
}

export function unblockDtmfOptions(callId: string, fromTag: string): NgOptions {
  return { 'call-id': callId, 'from-tag': fromTag, 'delay-buffer': 0 };
}

/** rtpengine's error-reason, made safe for a message: printable, short. */
function reasonText(r: unknown): string {
  const s = typeof r === 'string' ? r : 'no reason given';
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}

export class RtpengineAnchor extends TypedEmitter<MediaAnchorEvents> implements MediaAnchor {
  readonly #opts: Required<Omit<RtpengineAnchorOptions, 'log'>>;
  readonly #log: Logger | undefined;
  readonly #client: rtpengine.UdpClient;
  readonly #dtmfSock: Socket;
  readonly #dest: rtpengine.Destination;
  readonly #calls = new Map<string, CallEntry>();
  readonly #dropLog = new OncePerWindow(60_000, 16);
  readonly #stats: DtmfListenerStats = { keys: 0, foreignSource: 0, malformed: 0, unknownCall: 0, rateLimited: 0, echo: 0 };
  #reachable = false;
  #closed = false;
  #pingTimer: NodeJS.Timeout | undefined;
  #pinging = false;

  private constructor(opts: RtpengineAnchorOptions, client: rtpengine.UdpClient, dtmfSock: Socket) {
    super();
    this.#opts = {
      host: opts.host,
      port: opts.port,
      dtmfLogAddress: opts.dtmfLogAddress,
      dtmfLogPort: opts.dtmfLogPort,
      timeoutMs: opts.timeoutMs,
      pingIntervalMs: opts.pingIntervalMs ?? 5_000,
      delayBufferMs: opts.delayBufferMs ?? 100,
      maxDtmfEventsPerSecond: opts.maxDtmfEventsPerSecond ?? 20,
      controlPort: opts.controlPort ?? 0,
    };
    this.#log = opts.log;
    this.#client = client;
    this.#dtmfSock = dtmfSock;
    this.#dest = { host: opts.host, port: opts.port };
    // Late answers (after a timeout) and socket errors arrive as 'error': never fatal here.
    client.on('error', () => undefined);
    dtmfSock.on('message', (msg, rinfo) => this.#onDtmfDatagram(msg, rinfo));
    dtmfSock.on('error', (e) => this.#log?.warn({ err: e.message }, 'rtpengine dtmf listener error'));
  }

  /**
   * Binds the DTMF listener and the ng socket, asks rtpengine once whether it answers (the
   * anchor opens either way; `reachable` says which) and starts the periodic ping.
   */
  static async open(opts: RtpengineAnchorOptions): Promise<RtpengineAnchor> {
    const family = isIPv6(opts.dtmfLogAddress) ? 'udp6' : 'udp4';
    const sock = createSocket(family);
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(opts.dtmfLogPort, opts.dtmfLogAddress, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      sock.close();
      throw new PayIvrError('ERR_RTPENGINE_BIND', `cannot listen for rtpengine DTMF events on ${opts.dtmfLogAddress}:${opts.dtmfLogPort}: ${(e as Error).message}`, { cause: e });
    }
    // The ng socket sends from the same local address rtpengine sends its events to.
    const client = new rtpengine.Client({ localAddress: opts.dtmfLogAddress, localPort: opts.controlPort ?? 0, timeout: opts.timeoutMs, rejectOnError: false });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('listening', () => resolve());
        client.once('error', reject);
      });
    } catch (e) {
      sock.close();
      client.close();
      throw new PayIvrError('ERR_RTPENGINE_BIND', `cannot open the rtpengine control socket on ${opts.dtmfLogAddress}: ${(e as Error).message}`, { cause: e });
    }
    const anchor = new RtpengineAnchor(opts, client, sock);
    anchor.#reachable = await anchor.#pingOnce(false);
    anchor.#pingTimer = setInterval(() => void anchor.#pingOnce(true), anchor.#opts.pingIntervalMs);
    anchor.#pingTimer.unref();
    return anchor;
  }

  get reachable(): boolean {
    return this.#reachable;
  }

  /** Counts of DTMF datagrams by outcome since open. */
  get stats(): Readonly<DtmfListenerStats> {
    return { ...this.#stats };
  }

  /** Asks rtpengine now (ng `ping`); resolves with whether it answered, and updates `reachable`. */
  async ping(): Promise<boolean> {
    return this.#pingOnce(true);
  }

  async offer(ids: AnchorIds, sdp: string, opts?: MediaProfileOptions): Promise<string> {
    const res = await this.#command('offer', {
      ...offerAnswerOptions(opts?.transportProtocol ?? 'RTP/AVP', opts?.sdesSuites),
      'call-id': ids.callId,
      'from-tag': ids.fromTag,
      // A re-offer inside the dialog (either side) names both tags.
      ...(ids.toTag === undefined ? {} : { 'to-tag': ids.toTag }),
      sdp,
    });
    const entry = this.#calls.get(ids.callId) ?? { legs: new Map<string, KeyFilter>() };
    this.#addLeg(entry, ids.fromTag);
    if (ids.toTag !== undefined) this.#addLeg(entry, ids.toTag);
    this.#calls.set(ids.callId, entry);
    return this.#sdpOf(res, 'offer');
  }

  async answer(ids: AnchorIds & { toTag: string }, sdp: string, opts?: MediaProfileOptions): Promise<string> {
    const res = await this.#command('answer', {
      ...offerAnswerOptions(opts?.transportProtocol ?? 'RTP/AVP', opts?.sdesSuites),
      'call-id': ids.callId,
      'from-tag': ids.fromTag,
      'to-tag': ids.toTag,
      sdp,
    });
    const entry = this.#calls.get(ids.callId) ?? { legs: new Map<string, KeyFilter>() };
    this.#addLeg(entry, ids.fromTag);
    this.#addLeg(entry, ids.toTag);
    this.#calls.set(ids.callId, entry);
    return this.#sdpOf(res, 'answer');
  }

  async delete(callId: string): Promise<void> {
    // Forget the call first: its keys stop counting whatever rtpengine answers.
    this.#calls.delete(callId);
    try {
      // No delete delay: the B2BUA deletes when the call is over, and the ports should stop relaying now.
      await this.#command('delete', { 'call-id': callId, 'delete-delay': 0 });
    } catch (e) {
      // An unknown call is already gone (10.5 answers ok with a warning; older ones an error).
      if (e instanceof PayIvrError && e.code === 'ERR_RTPENGINE_REFUSED' && /unknown call|not found/i.test(e.message)) return;
      throw e;
    }
  }

  async blockDtmf(callId: string, fromTag: string, mode: DtmfSecurityMode): Promise<void> {
    if (UNSAFE_MODES.has(mode) || (mode !== 'silence' && mode !== 'tone')) {
      throw new PayIvrError('ERR_RTPENGINE_UNSUPPORTED', `DTMF-security '${mode}' is not used with rtpengine 10.5: 'zero' lets in-band tones through and 'random' crashes the daemon; use 'silence' or 'tone'`);
    }
    const leg = this.#calls.get(callId)?.legs.get(fromTag);
    const was = leg?.blocked ?? false;
    // Echo suppression from the first key rtpengine may report after this.
    if (leg !== undefined) leg.blocked = true;
    try {
      await this.#command('blockDTMF', blockDtmfOptions(callId, fromTag, mode, this.#opts.delayBufferMs));
    } catch (e) {
      if (leg !== undefined) leg.blocked = was;
      throw e;
    }
  }

  /**
   * Unblocks once the delay buffer no longer holds the audio of the last key rtpengine reported
   * on the leg: an unblock lets out what the buffer holds as it is. Measured with an unblock
   * right after the event (a capture charged at once after the security code's last digit): the
   * key reached the other leg as its rendered tone and as RFC 4733 (the key's repeated end
   * packets), every time.
   */
  async unblockDtmf(callId: string, fromTag: string): Promise<void> {
    const last = this.#calls.get(callId)?.legs.get(fromTag)?.lastEventAt;
    const wait = last === undefined ? 0 : last + unblockSettleMs(this.#opts.delayBufferMs) - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await this.#command('unblockDTMF', unblockDtmfOptions(callId, fromTag));
    const leg = this.#calls.get(callId)?.legs.get(fromTag);
    if (leg !== undefined) leg.blocked = false;
  }

  async playMedia(callId: string, toTag: string, file: string): Promise<void> {
    if (file.length === 0 || file.includes('\0')) throw new PayIvrError('ERR_RTPENGINE_REFUSED', 'play media: not a file name');
    await this.#command('playMedia', { 'call-id': callId, 'from-tag': toTag, file });
  }

  async stopMedia(callId: string, toTag: string): Promise<void> {
    await this.#command('stopMedia', { 'call-id': callId, 'from-tag': toTag });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    this.#calls.clear();
    this.#dtmfSock.removeAllListeners('message');
    await new Promise<void>((resolve) => {
      try {
        this.#dtmfSock.close(() => resolve());
      } catch {
        resolve();
      }
    });
    try {
      this.#client.close();
    } catch {
      // already closed
    }
  }

  #addLeg(entry: CallEntry, tag: string): void {
    if (!entry.legs.has(tag)) entry.legs.set(tag, new KeyFilter({ perSecond: this.#opts.maxDtmfEventsPerSecond }));
  }

  #sdpOf(res: NgResponse, what: string): string {
    if (typeof res.sdp !== 'string' || res.sdp.length === 0) throw new PayIvrError('ERR_RTPENGINE_REFUSED', `rtpengine answered the ${what} without an SDP`);
    return res.sdp;
  }

  #setReachable(up: boolean): void {
    if (this.#reachable === up) return;
    this.#reachable = up;
    if (up) this.#log?.info({ rtpengine: `${this.#opts.host}:${this.#opts.port}` }, 'rtpengine answers again');
    else this.#log?.warn({ rtpengine: `${this.#opts.host}:${this.#opts.port}` }, 'rtpengine does not answer');
    this.emit('reachable', up);
  }

  async #pingOnce(emit: boolean): Promise<boolean> {
    if (this.#closed) return false;
    if (this.#pinging) return this.#reachable;
    this.#pinging = true;
    let up: boolean;
    try {
      const res = await this.#client.ping(this.#dest, {});
      up = res.result === 'pong';
    } catch {
      up = false;
    } finally {
      this.#pinging = false;
    }
    if (this.#closed) return up;
    if (emit) this.#setReachable(up);
    else this.#reachable = up;
    return up;
  }

  async #command(name: rtpengine.CommandName, opts: NgOptions): Promise<NgResponse> {
    if (this.#closed) throw new PayIvrError('ERR_RTPENGINE_CLOSED', 'the rtpengine anchor is closed');
    const what = commandText(name);
    let res: NgResponse;
    try {
      res = await this.#client[name](this.#dest, opts);
    } catch (e) {
      // rtpengine-client rejects only on a timeout or a send error: either way no answer.
      if (!this.#closed) this.#setReachable(false);
      throw this.#error('ERR_RTPENGINE_UNREACHABLE', `rtpengine ${this.#opts.host}:${this.#opts.port} did not answer '${what}' within ${this.#opts.timeoutMs} ms`, e);
    }
    if (!this.#closed) this.#setReachable(true);
    if (res.result !== 'ok') {
      throw this.#error('ERR_RTPENGINE_REFUSED', `rtpengine refused '${what}': ${reasonText(res['error-reason'] ?? res.result)}`);
    }
    return res;
  }

  #error(code: ErrorCode, message: string, cause?: unknown): PayIvrError {
    return new PayIvrError(code, message, cause === undefined ? undefined : { cause });
  }

  #onDtmfDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (rinfo.address !== this.#opts.host) {
      this.#stats.foreignSource++;
      this.#noteDrop('foreign-source', 'rtpengine dtmf datagram from another address ignored', { from: rinfo.address });
      return;
    }
    const rec = parseDtmfDatagram(msg);
    if (rec === undefined) {
      this.#stats.malformed++;
      this.#noteDrop('malformed', 'malformed rtpengine dtmf datagram ignored', { bytes: msg.length });
      return;
    }
    const leg = this.#calls.get(rec.callId)?.legs.get(rec.sourceTag);
    if (leg === undefined) {
      this.#stats.unknownCall++;
      this.#noteDrop('unknown-call', 'rtpengine dtmf datagram for a call or leg this anchor does not hold ignored', {});
      return;
    }
    const verdict = leg.judge(rec.digit, performance.now());
    if (verdict === 'echo') {
      this.#stats.echo++;
      return;
    }
    if (verdict === 'rate-limited') {
      this.#stats.rateLimited++;
      this.#noteDrop('rate', 'rtpengine dtmf events above the per-call rate dropped', {});
      return;
    }
    this.#stats.keys++;
    // rtpengine reports milliseconds; the contract counts 8 kHz RTP timestamp units (telephone-event's clock).
    this.emit('dtmf', { callId: rec.callId, sourceTag: rec.sourceTag, digit: rec.digit, duration: rec.durationMs * 8 });
  }

  #noteDrop(kind: string, msg: string, fields: Record<string, unknown>): void {
    const suppressed = this.#dropLog.take(kind);
    if (suppressed !== undefined) this.#log?.warn({ ...fields, suppressed }, msg);
  }
}

/** rtpengine's own name of each command used, for messages. */
const COMMAND_TEXT: Partial<Record<rtpengine.CommandName, string>> = {
  blockDTMF: 'block DTMF',
  unblockDTMF: 'unblock DTMF',
  playMedia: 'play media',
  stopMedia: 'stop media',
};

function commandText(name: rtpengine.CommandName): string {
  return COMMAND_TEXT[name] ?? name;
}

/** The anchor `edge.rtpengine` describes (the app's media anchor factory for the edge role). */
export function openRtpengineAnchor(config: Config, log: Logger): Promise<RtpengineAnchor> {
  const r = config.edge.rtpengine;
  if (r === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', 'edge.rtpengine: required when edge.enabled is true');
  return RtpengineAnchor.open({ ...r, log });
}
