/**
 * The whole product for bench/product-load.ts, in its own process: startApp (the embedded SIP
 * stack, the media engine, the dialogue, the sandbox PSP in-process, the memory store), exactly
 * what `pay-ivr serve` runs, with the bench's timing probe in the media threads. The parent drives
 * it over IPC like load-server.ts: memory snapshots, a measurement window, counters, and the
 * pushes 'all-up' (the target number of calls is up) and 'first-end'.
 *
 *   argv: one JSON object, see ProductServerArgs
 */
import { performance } from 'node:perf_hooks';
import { startApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import type { InboundCall } from '../../src/telephony/types.js';
import type { HistogramSummary } from './histogram.js';
import { MeasurementWindow, memorySnapshot } from './measurement-window.js';
import { installProbe, type GcStats, type ProbeDump } from './media-probe.js';
import { createProbedMedia } from './probed-media.js';
import { push, serveRpc, type RpcRequest } from './rpc.js';

export interface ProductServerArgs {
  sipPort: number;
  rtpMin: number;
  rtpMax: number;
  /** Media worker threads (0 = the engine on the main thread). */
  workers: number;
  promptsDir: string;
  logFile: string;
  maxConcurrentCalls: number;
  /** rtp.workerPriority. */
  priority: 'normal' | 'high' | 'realtime';
}

export interface ProductWindow {
  wallMs: number;
  senderGapsMs: HistogramSummary;
  senderGapsOver30: number;
  senderGapsOver40: number;
  rtpSends: { total: number; connected: number };
  lateTurns: ProbeDump['late'];
  gc: GcStats;
  mainGc: GcStats | undefined;
  cpuPercentOfOneCore: number;
  mainEventLoopDelayMs: { p50: number; p99: number; p999: number; max: number };
  mediaEventLoopDelayMs: { p50: number; p99: number; max: number };
}

export interface ProductCounters {
  offered: number;
  ended: Record<string, number>;
  activeCalls: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ProductServerArgs;
  const config = parseConfig({
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: args.sipPort }] },
    rtp: { host: '127.0.0.1', portMin: args.rtpMin, portMax: args.rtpMax, noRtpTimeoutMs: 120_000, workerPriority: args.priority },
    promptsDir: args.promptsDir,
    security: { allowList: ['127.0.0.1/32'], ratePerSource: 1000, maxConcurrentCalls: args.maxConcurrentCalls },
    log: { level: 'warn', file: args.logFile },
    admin: { enabled: false },
    profiles: {
      default: {
        language: 'en-US',
        currency: 'USD',
        amountSource: 'context',
        minAmount: 100,
        maxAmount: 500_000,
        allowedBrands: ['visa', 'mastercard', 'amex'],
        timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
        psp: { type: 'sandbox' },
        handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: 'genesys.example' },
      },
    },
  });
  const mainProbe = installProbe(args.rtpMin, args.rtpMax);
  const logger = createLogger({ level: 'warn', destination: args.logFile, name: 'pay-ivr-bench' });
  const media = await createProbedMedia(config, logger, args.workers);
  // The options' media is what rtp.workers would build, with the probe preloaded in the workers.
  const app = await startApp(config, logger, { media } as Parameters<typeof startApp>[2]);

  const counters: ProductCounters = { offered: 0, ended: {}, activeCalls: 0 };
  let target = Number.POSITIVE_INFINITY;
  let allUpSent = false;
  let firstEndSent = false;
  app.backend.on('call', (call: InboundCall) => {
    counters.offered++;
    call.once('ended', (info) => {
      const key = `${info.by}:${info.reason}`;
      counters.ended[key] = (counters.ended[key] ?? 0) + 1;
      if (allUpSent && !firstEndSent) {
        firstEndSent = true;
        push({ push: 'first-end', at: performance.now(), reason: key });
      }
    });
  });
  setInterval(() => {
    if (!allUpSent && app.backend.activeCalls >= target) {
      allUpSent = true;
      push({ push: 'all-up', live: app.backend.activeCalls, at: performance.now() });
    }
  }, 50).unref();

  const measurement = new MeasurementWindow(mainProbe, args.workers);

  serveRpc({
    snapshot: (req: RpcRequest) => memorySnapshot(app.backend.activeCalls, app.backend.activeCalls, req.gc === true),
    arm: (req: RpcRequest) => {
      target = Number(req.target);
      allUpSent = false;
      firstEndSent = false;
      return { ok: true };
    },
    counters: (): ProductCounters => ({ ...counters, activeCalls: app.backend.activeCalls }),
    ...measurement.rpcHandlers('product.cpuprofile', (w): ProductWindow => {
      const m = w.media;
      return {
        wallMs: w.wallMs,
        senderGapsMs: m.senderGaps.summary(),
        senderGapsOver30: m.senderGaps.countAbove(30),
        senderGapsOver40: m.senderGaps.countAbove(40),
        rtpSends: m.sends,
        lateTurns: m.late,
        gc: m.gc,
        mainGc: args.workers >= 1 ? w.main.gc : undefined,
        cpuPercentOfOneCore: w.cpuPercentOfOneCore,
        mainEventLoopDelayMs: w.mainEventLoopDelayMs,
        mediaEventLoopDelayMs: m.eventLoopDelayMs,
      };
    }),
    stop: async () => {
      await app.stop();
      logger.flush();
      setTimeout(() => process.exit(0), 100);
      return { ok: true };
    },
  });
  push({ push: 'ready', pid: process.pid });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
