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
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { EmbeddedBackend } from '../../src/telephony/embedded/backend.js';
import { MediaEngine, type MediaEngineOptions } from '../../src/telephony/embedded/media/engine.js';
import { DEFAULT_PACER_SLOTS } from '../../src/telephony/embedded/media/pacer.js';
import type { MediaEngineLike } from '../../src/telephony/embedded/media-port.js';
import type { InboundCall } from '../../src/telephony/types.js';
import type { HistogramSummary } from './histogram.js';
import { collectWorkerProbes, installProbe, mergeProbes, startWorkerProbes, type GcStats, type ProbeDump } from './media-probe.js';
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
  /** Media worker threads (0 = the engine on the main thread, as before rtp.workers existed; 1 = one worker thread). */
  workers: number;
  /** Workers wake on the timer only, without the precise last-millisecond sleep (comparison). */
  imprecise?: boolean;
  /** Scheduling priority of the media worker threads (rtp.workerPriority). */
  priority?: 'normal' | 'high' | 'realtime';
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
  /** A slot's wake-up to its next wake-up (should be 20 ms). */
  tickIntervalMs: HistogramSummary;
  /** Pacer wake-up to the end of its last stream's onTick: how long one slot's sends take. */
  tickSpanMs: HistogramSummary;
  /** A stream's turn-to-turn gap by its position in its slot's burst: first tenth of the burst, ..., last tenth. */
  gapByPositionMs: HistogramSummary[];
  /** GC of the media threads (the main thread too when the engine runs there). */
  gc: GcStats;
  /** GC of the main thread when the media runs in workers. */
  mainGc?: GcStats | undefined;
  /** Stream turns more than 25 ms after the previous one, by cause (media-probe.ts). */
  lateTurns: ProbeDump['late'];
  /** Event-loop delay of the worst media thread. */
  mediaEventLoopDelayMs: { p50: number; p99: number; max: number };
  workers: number;
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
  // The main thread's probe: the media's timing when the engine runs here, the main thread's GC otherwise.
  const mainProbe = installProbe(args.rtpMin, args.rtpMax);
  const logger = createLogger({ level: config.log.level, destination: args.logFile, name: 'pay-ivr-bench' });
  // The engine createDefaultMedia would build, with the pacer's slot count set by the bench.
  const engineOpts: Omit<MediaEngineOptions, 'mediaRanges'> = {
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
    ...(args.imprecise === true ? { preciseWake: false } : {}),
  };
  let engine: MediaEngineLike;
  if (args.workers >= 1) {
    // Loaded only here, so this server also runs against a tree from before media workers existed.
    const { MediaWorkerPool } = await import('../../src/telephony/embedded/media-workers/pool.js');
    engine = new MediaWorkerPool({ ...engineOpts, workers: args.workers, ...(args.priority !== undefined ? { priority: args.priority } : {}), preload: new URL('./media-probe.ts', import.meta.url).href });
  } else {
    engine = new MediaEngine(engineOpts);
  }
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
  let window: { wall0: number; cpu0: NodeJS.CpuUsage } | undefined;
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
      mainProbe.start();
      if (args.workers >= 1) startWorkerProbes();
      window = { wall0: performance.now(), cpu0: process.cpuUsage() };
      return { ok: true };
    },
    'window-end': async (req: RpcRequest): Promise<WindowStats> => {
      const w = window;
      if (w === undefined) throw new Error('no window started');
      const cpu = process.cpuUsage(w.cpu0);
      const wallMs = performance.now() - w.wall0;
      eld.disable();
      const mainDump = mainProbe.dump();
      const media = args.workers >= 1 ? mergeProbes(await collectWorkerProbes(args.workers)) : mergeProbes([mainDump]);
      window = undefined;
      // The histogram counts the timer's own period in every sample: take it out.
      const delay = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
      const stats: WindowStats = {
        wallMs,
        senderGapsMs: media.senderGaps.summary(),
        rtpSends: media.sends,
        tickIntervalMs: media.slotIntervals.summary(),
        tickSpanMs: media.burstSpans.summary(),
        gapByPositionMs: media.byPosition.map((h) => h.summary()),
        gc: media.gc,
        mainGc: args.workers >= 1 ? mainDump.gc : undefined,
        lateTurns: media.late,
        mediaEventLoopDelayMs: media.eventLoopDelayMs,
        workers: args.workers,
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        cpuPercentOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / wallMs,
        eventLoopDelayMs: { p50: delay(eld.percentile(50)), p99: delay(eld.percentile(99)), p999: delay(eld.percentile(99.9)), max: delay(eld.max) },
        pacerTicks: media.bursts,
        pacerLateTicks: media.lateBursts,
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
