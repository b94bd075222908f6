/**
 * The bench's timing probe of the media engine, installed in the thread that runs it: the main
 * thread (in-process engine) or each media worker (imported there as the pool's `preload`, see
 * src/telephony/embedded/media-workers/). It wraps dgram's send (sender-side gap of every RTP
 * socket) and MediaSession.onTick (pacer bursts), watches GC and the thread's event-loop delay,
 * and sorts every late turn of a stream (> 25 ms since its previous turn) by its cause:
 *   - gc: a GC pause overlapped the delay;
 *   - wake-up: the stream's slot woke up late (timer lateness, other work on the thread, preemption);
 *   - burst: the slot woke on time but the stream's place in the burst came later than last time.
 * Workers answer on a BroadcastChannel (PROBE_CHANNEL); the main thread calls the functions directly.
 */
import dgram from 'node:dgram';
import { constants as perfConstants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { BroadcastChannel, isMainThread, threadId, workerData } from 'node:worker_threads';
import { MediaSession } from '../../src/telephony/embedded/media/session.js';
import { Histogram, type HistogramDump } from './histogram.js';

export const PROBE_CHANNEL = 'payivr-bench-media-probe';
const LATE_MS = 25;
const ELD_RESOLUTION_MS = 5;

export interface GcStats {
  minorCount: number;
  minorMs: number;
  majorCount: number;
  majorMs: number;
  maxPauseMs: number;
}

export interface ProbeDump {
  thread: number;
  senderGaps: HistogramDump;
  sends: { total: number; connected: number };
  /** A slot's wake-up to its next wake-up (sampled on the first stream of each burst). */
  slotIntervals: HistogramDump;
  /** Wake-up to the end of the burst's last onTick. */
  burstSpans: HistogramDump;
  /** A stream's turn-to-turn gap by its place in its burst, tenths. */
  byPosition: HistogramDump[];
  bursts: number;
  /** Bursts that served more than one frame (the slot was at least a frame late). */
  lateBursts: number;
  gc: GcStats;
  /** Turns more than 25 ms after the stream's previous turn, by cause. */
  late: { total: number; gc: number; wakeUp: number; burst: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

const TX_LAST = Symbol('benchLastSend');
const TX_RTP = Symbol('benchIsRtp');
const TURN_T = Symbol('benchTurnAt');
const TURN_NOW = Symbol('benchTurnWake');
type TimedSocket = dgram.Socket & { [TX_LAST]?: number; [TX_RTP]?: boolean };
type TimedSession = MediaSession & { [TURN_T]?: number; [TURN_NOW]?: number };

export interface Probe {
  start(): void;
  dump(): ProbeDump;
}

let installed: Probe | undefined;

/** Installs the wrappers once per thread; RTP sockets are those bound in rtpMin..rtpMax. */
export function installProbe(rtpMin: number, rtpMax: number): Probe {
  if (installed !== undefined) return installed;
  let recording = false;
  const senderGaps = new Histogram();
  const sends = { total: 0, connected: 0 };
  const slotIntervals = new Histogram();
  const burstSpans = new Histogram();
  const byPosition = Array.from({ length: 10 }, () => new Histogram(0.05, 500));
  const gc: GcStats = { minorCount: 0, minorMs: 0, majorCount: 0, majorMs: 0, maxPauseMs: 0 };
  const late = { total: 0, gc: 0, wakeUp: 0, burst: 0 };
  let bursts = 0;
  let lateBursts = 0;
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  // The last GC pauses (start, end), to tell whether one overlapped a late turn.
  const GC_RING = 64;
  const gcStart = new Float64Array(GC_RING);
  const gcEnd = new Float64Array(GC_RING);
  let gcIdx = 0;
  const gcOverlaps = (from: number, to: number): boolean => {
    for (let i = 0; i < GC_RING; i++) if (gcEnd[i]! > from && gcStart[i]! < to) return true;
    return false;
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcStart[gcIdx] = e.startTime;
      gcEnd[gcIdx] = e.startTime + e.duration;
      gcIdx = (gcIdx + 1) % GC_RING;
      if (!recording) continue;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minorCount++;
        gc.minorMs += e.duration;
      } else {
        gc.majorCount++;
        gc.majorMs += e.duration;
      }
      gc.maxPauseMs = Math.max(gc.maxPauseMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });

  const proto = dgram.Socket.prototype as unknown as { send: (...a: unknown[]) => void };
  const send = proto.send;
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
      if (recording) {
        if (last !== undefined) senderGaps.add(now - last);
        sends.total++;
        // A connected socket's send carries no port (send(buf) or send(buf, cb)).
        if (typeof a[1] !== 'number') sends.connected++;
      }
      this[TX_LAST] = now;
    }
    send.apply(this, a);
  };

  const tickProto = MediaSession.prototype as unknown as { onTick: (frames: number, skipped: number, now: number) => void };
  const onTick = tickProto.onTick;
  let burst = Number.NaN;
  let burstEnd = 0;
  let index = 0;
  let lastBurstSize = 1;
  tickProto.onTick = function timedTick(this: TimedSession, frames: number, skipped: number, now: number): void {
    if (now !== burst) {
      if (!Number.isNaN(burst) && recording) burstSpans.add(burstEnd - burst);
      if (index > 0) lastBurstSize = index;
      burst = now;
      index = 0;
      if (recording) {
        bursts++;
        if (frames > 1) lateBursts++;
      }
    }
    const t = performance.now();
    const lastT = this[TURN_T];
    const lastNow = this[TURN_NOW];
    if (recording && lastT !== undefined && lastNow !== undefined) {
      const gap = t - lastT;
      if (index === 0) slotIntervals.add(now - lastNow);
      byPosition[Math.min(9, Math.floor((index * 10) / Math.max(1, lastBurstSize)))]?.add(gap);
      if (gap > LATE_MS) {
        late.total++;
        const wakeExcess = now - lastNow - 20;
        const placeExcess = t - now - (lastT - lastNow);
        if (gcOverlaps(lastT, t)) late.gc++;
        else if (wakeExcess >= placeExcess) late.wakeUp++;
        else late.burst++;
      }
    }
    this[TURN_T] = t;
    this[TURN_NOW] = now;
    index++;
    onTick.call(this, frames, skipped, now);
    burstEnd = performance.now();
  };

  const probe: Probe = {
    start() {
      senderGaps.reset();
      slotIntervals.reset();
      burstSpans.reset();
      for (const h of byPosition) h.reset();
      sends.total = sends.connected = 0;
      Object.assign(gc, { minorCount: 0, minorMs: 0, majorCount: 0, majorMs: 0, maxPauseMs: 0 });
      Object.assign(late, { total: 0, gc: 0, wakeUp: 0, burst: 0 });
      bursts = lateBursts = 0;
      eld.reset();
      eld.enable();
      recording = true;
    },
    dump() {
      recording = false;
      eld.disable();
      const ms = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
      return {
        thread: threadId,
        senderGaps: senderGaps.dump(),
        sends: { ...sends },
        slotIntervals: slotIntervals.dump(),
        burstSpans: burstSpans.dump(),
        byPosition: byPosition.map((h) => h.dump()),
        bursts,
        lateBursts,
        gc: { ...gc },
        late: { ...late },
        eventLoopDelayMs: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
      };
    },
  };
  installed = probe;
  return probe;
}

/** Asks every worker's probe for its figures (the window ends for them now). */
export async function collectWorkerProbes(expected: number, timeoutMs = 10_000): Promise<ProbeDump[]> {
  const ch = new BroadcastChannel(PROBE_CHANNEL);
  const got: ProbeDump[] = [];
  try {
    return await new Promise<ProbeDump[]>((resolve) => {
      const timer = setTimeout(() => resolve(got), timeoutMs);
      ch.onmessage = (ev: unknown) => {
        const d = (ev as { data: { kind?: string; dump?: ProbeDump } }).data;
        if (d.kind !== 'dump' || d.dump === undefined) return;
        got.push(d.dump);
        if (got.length >= expected) {
          clearTimeout(timer);
          resolve(got);
        }
      };
      ch.postMessage({ kind: 'dump-request' });
    });
  } finally {
    ch.close();
  }
}

export function startWorkerProbes(): void {
  const ch = new BroadcastChannel(PROBE_CHANNEL);
  ch.postMessage({ kind: 'start' });
  ch.close();
}

/** Adds up the probes of several threads. */
export function mergeProbes(dumps: ProbeDump[]): {
  senderGaps: Histogram;
  slotIntervals: Histogram;
  burstSpans: Histogram;
  byPosition: Histogram[];
  sends: { total: number; connected: number };
  bursts: number;
  lateBursts: number;
  gc: GcStats;
  late: ProbeDump['late'];
  eventLoopDelayMs: { p50: number; p99: number; max: number };
} {
  const senderGaps = new Histogram();
  const slotIntervals = new Histogram();
  const burstSpans = new Histogram();
  const byPosition = Array.from({ length: 10 }, () => new Histogram(0.05, 500));
  const sends = { total: 0, connected: 0 };
  const gc: GcStats = { minorCount: 0, minorMs: 0, majorCount: 0, majorMs: 0, maxPauseMs: 0 };
  const late = { total: 0, gc: 0, wakeUp: 0, burst: 0 };
  let bursts = 0;
  let lateBursts = 0;
  const eld = { p50: 0, p99: 0, max: 0 };
  for (const d of dumps) {
    senderGaps.merge(d.senderGaps);
    slotIntervals.merge(d.slotIntervals);
    burstSpans.merge(d.burstSpans);
    d.byPosition.forEach((h, i) => byPosition[i]?.merge(h));
    sends.total += d.sends.total;
    sends.connected += d.sends.connected;
    bursts += d.bursts;
    lateBursts += d.lateBursts;
    gc.minorCount += d.gc.minorCount;
    gc.minorMs += d.gc.minorMs;
    gc.majorCount += d.gc.majorCount;
    gc.majorMs += d.gc.majorMs;
    gc.maxPauseMs = Math.max(gc.maxPauseMs, d.gc.maxPauseMs);
    late.total += d.late.total;
    late.gc += d.late.gc;
    late.wakeUp += d.late.wakeUp;
    late.burst += d.late.burst;
    // The worst thread's figures.
    eld.p50 = Math.max(eld.p50, d.eventLoopDelayMs.p50);
    eld.p99 = Math.max(eld.p99, d.eventLoopDelayMs.p99);
    eld.max = Math.max(eld.max, d.eventLoopDelayMs.max);
  }
  return { senderGaps, slotIntervals, burstSpans, byPosition, sends, bursts, lateBursts, gc, late, eventLoopDelayMs: eld };
}

// In a media worker (imported as the pool's preload): install and answer on the channel.
if (!isMainThread) {
  const init = workerData as { engine?: { portMin: number; portMax: number } } | undefined;
  if (init?.engine !== undefined) {
    const probe = installProbe(init.engine.portMin, init.engine.portMax);
    const ch = new BroadcastChannel(PROBE_CHANNEL);
    ch.onmessage = (ev: unknown) => {
      const kind = (ev as { data: { kind?: string } }).data.kind;
      if (kind === 'start') probe.start();
      else if (kind === 'dump-request') ch.postMessage({ kind: 'dump', dump: probe.dump() });
    };
    // The channel must not keep a stopped worker alive.
    (ch as unknown as { unref?: () => void }).unref?.();
  }
}
