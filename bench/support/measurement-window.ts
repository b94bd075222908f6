/**
 * The server side of a bench's measurement window, shared by load-server.ts (sipp-load) and
 * product-server.ts (product-load): wall time and process CPU, the main thread's event-loop
 * delay, the media probes of the main thread and of the media workers (media-probe.ts), an
 * optional V8 CPU profile of the main thread; and the process's memory snapshot.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { RpcRequest } from './rpc.js';
import { collectWorkerProbes, mergeProbes, startWorkerProbes, type Probe, type ProbeDump } from './media-probe.js';

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

/** Memory and CPU of this process now; with gc (needs --expose-gc), after two full collections. */
export function memorySnapshot(liveCalls: number, activeCalls: number, gc = false): MemorySnapshot {
  if (gc) {
    // Twice: the first pass may leave finalised objects for the second.
    global.gc?.();
    global.gc?.();
  }
  const m = process.memoryUsage();
  const c = process.cpuUsage();
  return { at: performance.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, liveCalls, activeCalls, cpuUserUs: c.user, cpuSystemUs: c.system };
}

export interface WindowMeasurements {
  wallMs: number;
  cpu: NodeJS.CpuUsage;
  cpuPercentOfOneCore: number;
  /** The main thread's event-loop delay, the monitor's own period taken out. */
  mainEventLoopDelayMs: { p50: number; p99: number; p999: number; max: number };
  /** The main thread's probe (its GC when the media runs in workers). */
  main: ProbeDump;
  /** The media threads' probes added up: the workers', or the main thread's without workers. */
  media: ReturnType<typeof mergeProbes>;
  /** Where the CPU profile went, when one was taken. */
  profileFile?: string;
}

const ELD_RESOLUTION_MS = 5;

export class MeasurementWindow {
  readonly #probe: Probe;
  readonly #workers: number;
  readonly #eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  #open: { wall0: number; cpu0: NodeJS.CpuUsage } | undefined;
  #profiler: Session | undefined;

  /** probe: this thread's (installProbe); workers: media worker threads (0 = media on this thread). */
  constructor(probe: Probe, workers: number) {
    this.#probe = probe;
    this.#workers = workers;
  }

  async start(profile: boolean): Promise<void> {
    if (profile) {
      this.#profiler = new Session();
      this.#profiler.connect();
      await this.#profiler.post('Profiler.enable');
      await this.#profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
      await this.#profiler.post('Profiler.start');
    }
    this.#eld.reset();
    this.#eld.enable();
    this.#probe.start();
    if (this.#workers >= 1) startWorkerProbes();
    this.#open = { wall0: performance.now(), cpu0: process.cpuUsage() };
  }

  /** Closes the window; the profile, if one runs, is written to profileFile. */
  async end(profileFile: string): Promise<WindowMeasurements> {
    const w = this.#open;
    if (w === undefined) throw new Error('no window started');
    const cpu = process.cpuUsage(w.cpu0);
    const wallMs = performance.now() - w.wall0;
    this.#eld.disable();
    const main = this.#probe.dump();
    const media = this.#workers >= 1 ? mergeProbes(await collectWorkerProbes(this.#workers)) : mergeProbes([main]);
    this.#open = undefined;
    // The histogram counts the timer's own period in every sample: take it out.
    const delay = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
    const out: WindowMeasurements = {
      wallMs,
      cpu,
      cpuPercentOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / wallMs,
      mainEventLoopDelayMs: { p50: delay(this.#eld.percentile(50)), p99: delay(this.#eld.percentile(99)), p999: delay(this.#eld.percentile(99.9)), max: delay(this.#eld.max) },
      main,
      media,
    };
    if (this.#profiler !== undefined) {
      const { profile } = await this.#profiler.post('Profiler.stop');
      this.#profiler.disconnect();
      this.#profiler = undefined;
      writeFileSync(profileFile, JSON.stringify(profile));
      out.profileFile = profileFile;
    }
    return out;
  }

  /**
   * The 'window-start' ({ profile }) and 'window-end' ({ profileFile }) requests of a server's
   * serveRpc; window-end answers with what report makes of the measurements.
   */
  rpcHandlers<T>(defaultProfileFile: string, report: (w: WindowMeasurements) => T): Record<'window-start' | 'window-end', (req: RpcRequest) => Promise<unknown>> {
    return {
      'window-start': async (req) => {
        await this.start(req.profile === true);
        return { ok: true };
      },
      'window-end': async (req) => report(await this.end(String(req.profileFile ?? defaultProfileFile))),
    };
  }
}
