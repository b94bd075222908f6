import { PayIvrError } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { MediaRanges } from '../../media-ranges.js';
import { encode, type G711Codec } from './g711.js';
import { atomicsSleep, Pacer } from './pacer.js';
import { RtpPortPool } from './port-pool.js';
import { PromptLibrary } from './prompt-library.js';
import type { SrtpPolicy } from '../../../config/media-options.js';
import type { SrtpSuite } from '../../../config/media-options.js';
import { MediaSession, type MediaContext } from './session.js';

export { MediaSession, type MediaSessionEvents } from './session.js';

export interface MediaEngineOptions {
  /** Address the RTP sockets bind to. */
  host: string;
  /** Address written in SDP (NAT / public address); defaults to host. */
  advertisedAddress?: string;
  portMin: number;
  portMax: number;
  /** Prompt packs: <promptsDir>/<language>/<id>.wav, 8 kHz mono (PCM16, mu-law or A-law). */
  promptsDir: string;
  /** 'rtp-timeout' fires after this long without inbound RTP (not while on hold). */
  noRtpTimeoutMs: number;
  logger: Logger;
  /** security.mediaRanges; default none (RTP only from the SDP's own address). */
  mediaRanges?: MediaRanges;
  /** SDES-SRTP: 'off' rejects RTP/SAVP offers, 'required' rejects RTP/AVP. Default 'optional'. */
  srtp?: SrtpPolicy;
  /** SDES suites accepted; default both AES_CM_128_HMAC_SHA1_80 and _32. */
  srtpSuites?: readonly SrtpSuite[];
  /** Comfort noise level in -dBov sent when nothing plays; 0 or absent = digital silence. */
  comfortNoiseDbov?: number;
  /** Phase slots of the paced sender loop (internal tuning, default DEFAULT_PACER_SLOTS; 1 = one burst per frame). */
  pacerSlots?: number;
  /** connect() each RTP socket to its latched source while it is alive (internal tuning, default true). */
  connectSockets?: boolean;
  /** Sleep the last millisecond before each pacer burst precisely (media worker threads only; pacer.ts PreciseSleep). */
  preciseWake?: boolean;
}

/** One second of low-level white noise, pre-encoded, sent instead of silence when configured. */
function comfortNoise(dbov: number): Record<G711Codec, Buffer> {
  const rms = 32768 * 10 ** (-dbov / 20);
  const pcm = new Int16Array(8000);
  // xorshift32: deterministic, no need for crypto-grade randomness in a noise floor.
  let x = 0x9e3779b9;
  const uniform = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) + 1) / 0x100000001;
  };
  for (let i = 0; i < pcm.length; i++) {
    const g = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(g * rms)));
  }
  return { PCMU: encode('PCMU', pcm), PCMA: encode('PCMA', pcm) };
}

/**
 * The embedded media engine: prompt packs loaded once, an RTP port pool and the one paced
 * sender loop shared by every call's MediaSession.
 */
export class MediaEngine {
  readonly #opts: MediaEngineOptions;
  readonly #pacer: Pacer;
  readonly #ports: RtpPortPool;
  readonly #live = new Set<MediaSession>();
  #prompts: PromptLibrary | undefined;
  #ctx: MediaContext | undefined;

  constructor(opts: MediaEngineOptions) {
    if (!(opts.portMin > 0 && opts.portMax >= opts.portMin + 1 && opts.portMax <= 65535)) {
      throw new PayIvrError('ERR_CONFIG_INVALID', `invalid RTP port range ${opts.portMin}-${opts.portMax}`);
    }
    this.#opts = opts;
    this.#pacer = new Pacer(opts.logger, undefined, opts.pacerSlots, opts.preciseWake === true ? atomicsSleep() : undefined);
    this.#ports = new RtpPortPool(opts.host, opts.portMin, opts.portMax);
  }

  /** Loads every prompt pack once, pre-encoded to PCMU and PCMA, and starts the paced sender loop. */
  async start(): Promise<void> {
    if (this.#ctx !== undefined) return;
    const prompts = await PromptLibrary.load(this.#opts.promptsDir);
    const dbov = this.#opts.comfortNoiseDbov ?? 0;
    this.#prompts = prompts;
    this.#ctx = {
      prompts,
      pacer: this.#pacer,
      logger: this.#opts.logger,
      advertisedAddress: this.#opts.advertisedAddress ?? this.#opts.host,
      srtp: this.#opts.srtp ?? 'optional',
      srtpSuites: this.#opts.srtpSuites,
      mediaRanges: this.#opts.mediaRanges ?? new MediaRanges([]),
      noRtpTimeoutMs: this.#opts.noRtpTimeoutMs,
      connectSockets: this.#opts.connectSockets ?? true,
      comfortNoise: dbov > 0 ? comfortNoise(dbov) : undefined,
      release: (s) => {
        this.#live.delete(s);
        this.#ports.release(s.localPort);
      },
    };
    this.#pacer.start();
    this.#opts.logger.info(
      { languages: prompts.languages, prompts: prompts.size, portMin: this.#opts.portMin, portMax: this.#opts.portMax, srtp: this.#ctx.srtp, mediaRanges: this.#ctx.mediaRanges.size },
      'media engine started',
    );
  }

  /** Closes every session and stops the loop. */
  async stop(): Promise<void> {
    for (const s of [...this.#live]) s.close();
    this.#pacer.stop();
    this.#ctx = undefined;
  }

  /** A new call stream on the next free even port (bound before this returns). */
  createSession(): MediaSession {
    const ctx = this.#ctx;
    if (ctx === undefined) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'media engine not started');
    const { port, socket } = this.#ports.allocate();
    const s = new MediaSession(ctx, port, socket);
    this.#live.add(s);
    return s;
  }

  /** Open sessions. */
  get sessions(): number {
    return this.#live.size;
  }

  hasPrompt(language: string, id: string): boolean {
    return this.#prompts?.has(language, id) ?? false;
  }

  /** Languages with a loaded prompt pack. */
  get languages(): string[] {
    return this.#prompts?.languages ?? [];
  }

  /** Pacer counters (ticks, late ticks) for metrics and the bench. */
  get pacerStats(): { ticks: number; lateTicks: number } {
    return { ticks: this.#pacer.ticks, lateTicks: this.#pacer.lateTicks };
  }
}
