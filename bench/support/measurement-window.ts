/**
 * A bench process's measurement window. ProcessWindow: wall time, CPU and main-thread event-loop
 * delay of any bench process (the servers, rtp-caller.ts). MeasurementWindow: the server side,
 * shared by load-server.ts (sipp-load) and product-server.ts (product-load): that, plus the media
 * probes of the main thread and of the media workers (media-probe.ts) and an optional V8 CPU
 * profile of the main thread. And the process's memory snapshot.
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

export interface ProcessFigures {
  wallMs: number;
  cpu: NodeJS.CpuUsage;
  cpuPercentOfOneCore: number;
  /** The main thread's event-loop delay, the monitor's own period taken out. */
  eventLoopDelayMs: { p50: number; p99: number; p999: number; max: number };
}

/** Wall time, CPU and event-loop delay of this process from open() to close() (or to now while open). */
export class ProcessWindow {
  readonly #resolutionMs: number;
  readonly #eld: ReturnType<typeof monitorEventLoopDelay>;
  #wall0 = 0;
  #wall1: number | undefined;
  #cpu0: NodeJS.CpuUsage = { user: 0, system: 0 };
  #cpu: NodeJS.CpuUsage | undefined;

  /** resolutionMs: the event-loop delay monitor's period (a timer of its own). */
  constructor(resolutionMs = 5) {
    this.#resolutionMs = resolutionMs;
    this.#eld = monitorEventLoopDelay({ resolution: resolutionMs });
  }

  get isOpen(): boolean {
    return this.#wall1 === undefined && this.#wall0 > 0;
  }

  open(): void {
    this.#eld.reset();
    this.#eld.enable();
    this.#wall1 = undefined;
    this.#cpu = undefined;
    this.#wall0 = performance.now();
    this.#cpu0 = process.cpuUsage();
  }

  close(): void {
    if (!this.isOpen) return;
    this.#cpu = process.cpuUsage(this.#cpu0);
    this.#wall1 = performance.now();
    this.#eld.disable();
  }

  figures(): ProcessFigures {
    const wallMs = (this.#wall1 ?? performance.now()) - this.#wall0;
    const cpu = this.#cpu ?? process.cpuUsage(this.#cpu0);
    // The histogram counts the timer's own period in every sample: take it out.
    const delay = (ns: number): number => Math.max(0, ns / 1e6 - this.#resolutionMs);
    const eld = this.#eld;
    return {
      wallMs,
      cpu,
      cpuPercentOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / Math.max(1, wallMs),
      eventLoopDelayMs: { p50: delay(eld.percentile(50)), p99: delay(eld.percentile(99)), p999: delay(eld.percentile(99.9)), max: delay(eld.max) },
    };
  }
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

export class MeasurementWindow {
  readonly #probe: Probe;
  readonly #workers: number;
  readonly #process = new ProcessWindow();
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
    this.#probe.start();
    if (this.#workers >= 1) startWorkerProbes();
    this.#process.open();
  }

  /** Closes the window; the profile, if one runs, is written to profileFile. */
  async end(profileFile: string): Promise<WindowMeasurements> {
    if (!this.#process.isOpen) throw new Error('no window started');
    this.#process.close();
    const { eventLoopDelayMs, ...p } = this.#process.figures();
    const main = this.#probe.dump();
    const media = this.#workers >= 1 ? mergeProbes(await collectWorkerProbes(this.#workers)) : mergeProbes([main]);
    const out: WindowMeasurements = { ...p, mainEventLoopDelayMs: eventLoopDelayMs, main, media };
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
