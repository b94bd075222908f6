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
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { EmbeddedBackend } from '../../src/telephony/embedded/backend.js';
import { DEFAULT_PACER_SLOTS } from '../../src/telephony/embedded/media/pacer.js';
import type { InboundCall } from '../../src/telephony/types.js';
import type { HistogramSummary } from './histogram.js';
import { MeasurementWindow, memorySnapshot } from './measurement-window.js';
import { installProbe, type GcStats, type ProbeDump } from './media-probe.js';
import { createProbedMedia } from './probed-media.js';
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

/** Moved to measurement-window.ts; re-exported for the benches that import it from here. */
export type { MemorySnapshot } from './measurement-window.js';

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

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ServerArgs;
  const config = parseConfig({
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: args.sipPort }] },
    rtp: { host: '127.0.0.1', portMin: args.rtpMin, portMax: args.rtpMax, noRtpTimeoutMs: args.noRtpTimeoutMs, ...(args.priority !== undefined ? { workerPriority: args.priority } : {}) },
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
  const engine = await createProbedMedia(config, logger, args.workers, {
    pacerSlots,
    connectSockets: args.connectSockets,
    ...(args.imprecise === true ? { preciseWake: false } : {}),
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

  const measurement = new MeasurementWindow(mainProbe, args.workers);

  serveRpc({
    snapshot: (req: RpcRequest) => memorySnapshot(live, backend.activeCalls, req.gc === true),
    arm: (req: RpcRequest) => {
      target = Number(req.target);
      allUpSent = false;
      firstEndSent = false;
      return { live };
    },
    counters: (): ServerCounters => ({ ...counters, liveCalls: live, activeCalls: backend.activeCalls }),
    ...measurement.rpcHandlers('server.cpuprofile', (w): WindowStats => {
      const media = w.media;
      return {
        wallMs: w.wallMs,
        senderGapsMs: media.senderGaps.summary(),
        rtpSends: media.sends,
        tickIntervalMs: media.slotIntervals.summary(),
        tickSpanMs: media.burstSpans.summary(),
        gapByPositionMs: media.byPosition.map((h) => h.summary()),
        gc: media.gc,
        mainGc: args.workers >= 1 ? w.main.gc : undefined,
        lateTurns: media.late,
        mediaEventLoopDelayMs: media.eventLoopDelayMs,
        workers: args.workers,
        cpuUserUs: w.cpu.user,
        cpuSystemUs: w.cpu.system,
        cpuPercentOfOneCore: w.cpuPercentOfOneCore,
        eventLoopDelayMs: w.mainEventLoopDelayMs,
        pacerTicks: media.bursts,
        pacerLateTicks: media.lateBursts,
        ...(w.profileFile !== undefined ? { profileFile: w.profileFile } : {}),
      };
    }),
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
