/**
 * The pay-ivr side of the SIPp load bench, in its own process: an EmbeddedBackend (the real SIP
 * stack and media engine, configured through parseConfig like `pay-ivr serve`) whose call handler
 * answers and loops a real prompt sequence from prompts/en-US until the caller hangs up. The
 * parent (bench/sipp-load.ts) drives it over IPC: memory/CPU snapshots, the measurement window
 * (CPU, event-loop delay, pacer counters, optional V8 CPU profile) and the pushes 'all-up' (the
 * target number of calls is answered and playing) and 'first-end' (the first of them ended).
 *
 *   argv: one JSON object, see ServerArgs
 */
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { constants as perfConstants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { EmbeddedBackend } from '../../src/telephony/embedded/backend.js';
import { MediaEngine, MediaSession } from '../../src/telephony/embedded/media/engine.js';
import { DEFAULT_PACER_SLOTS } from '../../src/telephony/embedded/media/pacer.js';
import type { InboundCall } from '../../src/telephony/types.js';
import { Histogram, type HistogramSummary } from './histogram.js';
import { push, serveRpc, type RpcRequest } from './rpc.js';

export interface ServerArgs {
  sipPort: number;
  rtpMin: number;
  rtpMax: number;
  promptsDir: string;
  logFile: string;
  /** Longest call the bench will hold, so the no-RTP watchdog (SIPp sends no RTP) never fires. */
  noRtpTimeoutMs: number;
  maxConcurrentCalls: number;
  /** Phase slots of the engine's pacer (0 = the engine's default; 1 = one burst per frame, the pre-slot pacer). */
  pacerSlots: number;
  /** Let the engine connect() its RTP sockets to the latched source (its default). */
  connectSockets: boolean;
}

/** What every call hears, looped: a realistic mix of short and long fragments (about 30 s). */
export const PROMPT_SEQUENCE = ['welcome', 'enter-amount', 'you-are-about-to-pay', 'n-49', 'cur-usd-n', 'enter-card-number', 'card-ending-in', 'h-4', 'h-2', 'wait-music'];

export interface MemorySnapshot {
  at: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  liveCalls: number;
  activeCalls: number;
  cpuUserUs: number;
  cpuSystemUs: number;
}

export interface WindowStats {
  wallMs: number;
  /** Gap between two sends of the same RTP socket, taken in the server: the sender's own jitter. */
  senderGapsMs: HistogramSummary;
  /** RTP sends in the window, and how many of them went out of a connected socket. */
  rtpSends: { total: number; connected: number };
  /** Pacer wake-up to wake-up (should be 20 ms). */
  tickIntervalMs: HistogramSummary;
  /** Pacer wake-up to the end of its last stream's onTick: how long one tick's sends take. */
  tickSpanMs: HistogramSummary;
  /** A stream's turn-to-turn gap by its position in its slot's burst: first tenth of the burst, ..., last tenth. */
  gapByPositionMs: HistogramSummary[];
  gc: { minorCount: number; minorMs: number; majorCount: number; majorMs: number; maxPauseMs: number };
  cpuUserUs: number;
  cpuSystemUs: number;
  cpuPercentOfOneCore: number;
  eventLoopDelayMs: { p50: number; p99: number; p999: number; max: number };
  pacerTicks: number;
  pacerLateTicks: number;
  profileFile?: string;
}

export interface ServerCounters {
  offered: number;
  answered: number;
  answerFailed: number;
  playFailed: number;
  playResults: Record<string, number>;
  ended: Record<string, number>;
  liveCalls: number;
  activeCalls: number;
}

const ELD_RESOLUTION_MS = 5;
const TX_LAST = Symbol('benchLastSend');
const TX_RTP = Symbol('benchIsRtp');
const TICK_LAST = Symbol('benchLastTick');
type TimedSocket = dgram.Socket & { [TX_LAST]?: number; [TX_RTP]?: boolean };

/**
 * Times every send() of an RTP socket (ports rtpMin..rtpMax) by wrapping dgram's send: a clock
 * read and a histogram add per packet (about 0.1 µs), so the sink's arrival gaps can be split
 * into what the sender did and what happened after it.
 */
function timeRtpSends(rtpMin: number, rtpMax: number, gaps: Histogram, sends: { total: number; connected: number }, recording: () => boolean): void {
  const proto = dgram.Socket.prototype as unknown as { send: (...a: unknown[]) => void };
  const original = proto.send;
  proto.send = function timedSend(this: TimedSocket, ...a: unknown[]): void {
    let rtp = this[TX_RTP];
    if (rtp === undefined) {
      let port = 0;
      try {
        port = this.address().port;
      } catch {
        // not bound
      }
      rtp = this[TX_RTP] = port >= rtpMin && port <= rtpMax;
    }
    if (rtp) {
      const now = performance.now();
      const last = this[TX_LAST];
      if (recording()) {
        if (last !== undefined) gaps.add(now - last);
        sends.total++;
        // A connected socket's send carries no port (send(buf) or send(buf, cb)).
        if (typeof a[1] !== 'number') sends.connected++;
      }
      this[TX_LAST] = now;
    }
    original.apply(this, a);
  };
}

/**
 * Times the pacer's wake-ups by wrapping MediaSession.onTick: the pacer passes every stream of a
 * wake-up the same `now`, so a new `now` is a new wake-up (one slot's burst).
 */
function timeTicks(intervals: Histogram, spans: Histogram, byPosition: Histogram[], burstSize: () => number, recording: () => boolean): void {
  const proto = MediaSession.prototype as unknown as { onTick: (frames: number, skipped: number, now: number) => void };
  const original = proto.onTick;
  let tick = Number.NaN;
  let lastEnd = 0;
  let index = 0;
  proto.onTick = function timedTick(this: MediaSession & { [TICK_LAST]?: number }, frames: number, skipped: number, now: number): void {
    if (now !== tick) {
      if (!Number.isNaN(tick) && recording()) {
        intervals.add(now - tick);
        spans.add(lastEnd - tick);
      }
      tick = now;
      index = 0;
    }
    // This stream's gap since its previous turn, by where it sits in the tick's loop (tenths).
    const t = performance.now();
    const last = this[TICK_LAST];
    if (last !== undefined && recording()) byPosition[Math.min(byPosition.length - 1, Math.floor((index * byPosition.length) / Math.max(1, burstSize())))]?.add(t - last);
    this[TICK_LAST] = t;
    index++;
    original.call(this, frames, skipped, now);
    lastEnd = performance.now();
  };
}

interface GcStats {
  minorCount: number;
  minorMs: number;
  majorCount: number;
  majorMs: number;
  maxPauseMs: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ServerArgs;
  const config = parseConfig({
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: args.sipPort }] },
    rtp: { host: '127.0.0.1', portMin: args.rtpMin, portMax: args.rtpMax, noRtpTimeoutMs: args.noRtpTimeoutMs },
    promptsDir: args.promptsDir,
    // A load test from one source address: the per-source INVITE rate and the call cap are
    // configuration, raised here the way an operator would for a busy trunk.
    security: { allowList: ['127.0.0.1/32'], ratePerSource: 1000, maxConcurrentCalls: args.maxConcurrentCalls },
    log: { level: 'warn', file: args.logFile },
    admin: { enabled: false },
  });
  const pacerSlots = args.pacerSlots > 0 ? args.pacerSlots : DEFAULT_PACER_SLOTS;
  const txGaps = new Histogram();
  let recordingTx = false;
  const sends = { total: 0, connected: 0 };
  timeRtpSends(args.rtpMin, args.rtpMax, txGaps, sends, () => recordingTx);
  const tickIntervals = new Histogram();
  const tickSpans = new Histogram();
  const byPosition = Array.from({ length: 10 }, () => new Histogram(0.05, 500));
  timeTicks(tickIntervals, tickSpans, byPosition, () => live / pacerSlots, () => recordingTx);
  const gc: GcStats = { minorCount: 0, minorMs: 0, majorCount: 0, majorMs: 0, maxPauseMs: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    if (!recordingTx) return;
    for (const e of list.getEntries()) {
      const kind = ((e as unknown as { detail?: { kind?: number } }).detail)?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minorCount++;
        gc.minorMs += e.duration;
      } else {
        gc.majorCount++;
        gc.majorMs += e.duration;
      }
      gc.maxPauseMs = Math.max(gc.maxPauseMs, e.duration);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const logger = createLogger({ level: config.log.level, destination: args.logFile, name: 'pay-ivr-bench' });
  // The engine createDefaultMedia would build, with the pacer's slot count set by the bench.
  const engine = new MediaEngine({
    host: config.rtp.host,
    portMin: config.rtp.portMin,
    portMax: config.rtp.portMax,
    promptsDir: config.promptsDir,
    noRtpTimeoutMs: config.rtp.noRtpTimeoutMs,
    logger,
    srtp: config.rtp.srtp,
    comfortNoiseDbov: config.rtp.comfortNoiseDbov,
    pacerSlots,
    connectSockets: args.connectSockets,
  });
  const backend = new EmbeddedBackend(config, logger, { media: engine });

  const counters: ServerCounters = { offered: 0, answered: 0, answerFailed: 0, playFailed: 0, playResults: {}, ended: {}, liveCalls: 0, activeCalls: 0 };
  let live = 0;
  let target = Number.POSITIVE_INFINITY;
  let allUpSent = false;
  let firstEndSent = false;

  backend.on('call', (call: InboundCall) => {
    counters.offered++;
    let counted = false;
    call.once('ended', (info) => {
      const key = `${info.by}:${info.reason}`;
      counters.ended[key] = (counters.ended[key] ?? 0) + 1;
      if (counted) live--;
      if (allUpSent && !firstEndSent) {
        firstEndSent = true;
        push({ push: 'first-end', live, at: performance.now(), reason: key });
      }
    });
    void (async () => {
      try {
        await call.answer();
      } catch {
        counters.answerFailed++;
        return;
      }
      counters.answered++;
      if (call.state !== 'answered') return;
      counted = true;
      live++;
      if (!allUpSent && live >= target) {
        allUpSent = true;
        push({ push: 'all-up', live, at: performance.now() });
      }
      try {
        const r = await call.play(PROMPT_SEQUENCE, { language: 'en-US', bargeIn: false, loop: true });
        counters.playResults[r] = (counters.playResults[r] ?? 0) + 1;
      } catch {
        counters.playFailed++;
        await call.hangup({ protocol: 'SIP', cause: 500, text: 'prompt failed' });
      }
    })();
  });

  await backend.start();

  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  let window: { wall0: number; cpu0: NodeJS.CpuUsage; ticks0: number; late0: number } | undefined;
  let profiler: Session | undefined;

  const snapshot = (): MemorySnapshot => {
    const m = process.memoryUsage();
    const c = process.cpuUsage();
    return {
      at: performance.now(),
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      liveCalls: live,
      activeCalls: backend.activeCalls,
      cpuUserUs: c.user,
      cpuSystemUs: c.system,
    };
  };

  serveRpc({
    snapshot: (req: RpcRequest) => {
      if (req.gc === true) {
        // Twice: the first pass may leave finalised objects for the second.
        global.gc?.();
        global.gc?.();
      }
      return snapshot();
    },
    arm: (req: RpcRequest) => {
      target = Number(req.target);
      allUpSent = false;
      firstEndSent = false;
      return { live };
    },
    counters: (): ServerCounters => ({ ...counters, liveCalls: live, activeCalls: backend.activeCalls }),
    'window-start': async (req: RpcRequest) => {
      if (req.profile === true) {
        profiler = new Session();
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
        await profiler.post('Profiler.start');
      }
      eld.reset();
      eld.enable();
      txGaps.reset();
      sends.total = sends.connected = 0;
      tickIntervals.reset();
      tickSpans.reset();
      for (const h of byPosition) h.reset();
      Object.assign(gc, { minorCount: 0, minorMs: 0, majorCount: 0, majorMs: 0, maxPauseMs: 0 });
      recordingTx = true;
      const p = engine.pacerStats;
      window = { wall0: performance.now(), cpu0: process.cpuUsage(), ticks0: p.ticks, late0: p.lateTicks };
      return { ok: true };
    },
    'window-end': async (req: RpcRequest): Promise<WindowStats> => {
      const w = window;
      if (w === undefined) throw new Error('no window started');
      const cpu = process.cpuUsage(w.cpu0);
      const wallMs = performance.now() - w.wall0;
      eld.disable();
      recordingTx = false;
      const p = engine.pacerStats;
      window = undefined;
      // The histogram counts the timer's own period in every sample: take it out.
      const delay = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
      const stats: WindowStats = {
        wallMs,
        senderGapsMs: txGaps.summary(),
        rtpSends: { ...sends },
        tickIntervalMs: tickIntervals.summary(),
        tickSpanMs: tickSpans.summary(),
        gapByPositionMs: byPosition.map((h) => h.summary()),
        gc: { ...gc },
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        cpuPercentOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / wallMs,
        eventLoopDelayMs: { p50: delay(eld.percentile(50)), p99: delay(eld.percentile(99)), p999: delay(eld.percentile(99.9)), max: delay(eld.max) },
        pacerTicks: p.ticks - w.ticks0,
        pacerLateTicks: p.lateTicks - w.late0,
      };
      if (profiler !== undefined) {
        const { profile } = await profiler.post('Profiler.stop');
        profiler.disconnect();
        profiler = undefined;
        const file = String(req.profileFile ?? 'server.cpuprofile');
        writeFileSync(file, JSON.stringify(profile));
        stats.profileFile = file;
      }
      return stats;
    },
    stop: async () => {
      await backend.stop();
      logger.flush();
      setTimeout(() => process.exit(0), 100);
      return { ok: true };
    },
  });
  push({ push: 'ready', sipPort: backend.sipPort('udp') ?? args.sipPort, pid: process.pid });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
