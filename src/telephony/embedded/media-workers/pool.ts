import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { DtmfDigit } from '../../../domain/dtmf.js';
import { describeError, PayIvrError } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { DtmfSource, PlayOptions, PlayResult } from '../../types.js';
import type { MediaEngineOptions } from '../media/engine.js';
import type { MediaEngineLike, MediaSessionEvents, MediaSessionLike } from '../media-port.js';
import type { AsyncRequest, FromWorker, WireError, WorkerInit } from './protocol.js';
import { SyncChannel } from './sync-call.js';
import type { MediaThreadPriority } from '../../../config/media-options.js';

const START_TIMEOUT_MS = 30_000;

/** Media worker threads of this process that have not exited (tests: nothing may outlive stop()). */
let threadsAlive = 0;
export function liveMediaWorkerThreads(): number {
  return threadsAlive;
}
const STOP_TIMEOUT_MS = 5_000;
/** Sessions each worker keeps created ahead of the calls, so that placing a call costs no round trip. */
const SPARES_PER_WORKER = 4;
/** After a spare could not be created (ports used up), wait this long before asking again. */
const SPARE_RETRY_MS = 1000;
/**
 * Young generation cap of a worker's V8 heap. The media path allocates a little per packet
 * (dgram's send request), which V8 answers by growing the young generation to its default
 * maximum (tens of MB per thread, resident) although almost nothing survives a scavenge;
 * capped, the scavenges come more often and are as short, and the bench's memory per call
 * fell by a third to a half (docs/benchmarks.md).
 */
const WORKER_YOUNG_GENERATION_MB = 6;

interface MediaWorkerPoolOptions extends Omit<MediaEngineOptions, 'mediaRanges'> {
  /** security.mediaRanges entries (each worker builds its own MediaRanges from them). */
  mediaRanges?: readonly string[];
  /** Worker threads (>= 1); the RTP port range is split evenly between them. */
  workers: number;
  /** Module each worker imports before its engine starts (bench instrumentation only). */
  preload?: string;
  /** Scheduling priority of the worker threads (rtp.workerPriority; default normal). */
  priority?: MediaThreadPriority;
}

function toError(e: WireError): PayIvrError {
  return new PayIvrError(e.code, e.message, e.details === undefined ? undefined : { details: e.details });
}

/** Even ports of [min, max] split into `n` contiguous shares (RFC 3550: RTP on even ports). */
export function splitPortRange(min: number, max: number, n: number): { portMin: number; portMax: number }[] {
  const first = min + (min & 1);
  const count = max >= first ? Math.floor((max - first) / 2) + 1 : 0;
  const per = Math.floor(count / n);
  if (per < 1) {
    throw new PayIvrError('ERR_CONFIG_INVALID', `rtp.workers: ${n} media workers need at least ${n} even RTP ports in ${min}-${max}`);
  }
  return Array.from({ length: n }, (_, k) => {
    const portMin = first + 2 * k * per;
    return { portMin, portMax: k === n - 1 ? max : portMin + 2 * per - 1 };
  });
}

/**
 * How to start the worker script: the compiled .js next to this file, or, when running from
 * TypeScript sources (tsx, vitest, the bench), the .ts through tsx's loader registered inside
 * the worker (a loader given on the main thread's command line does not reach workers on Node 20).
 */
function workerEntry(): { script: string | URL; eval: boolean } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { script: new URL('./media-worker.js', here), eval: false };
  const tsxDir = dirname(createRequire(here).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const entry = new URL('./media-worker.ts', here).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); }).catch((e) => { console.error('media worker boot failed', e); process.exit(1); });`;
  return { script: boot, eval: true };
}

/** One worker thread and what the main thread knows about it. */
class WorkerHandle {
  readonly index: number;
  readonly worker: Worker;
  readonly sync: SyncChannel;
  readonly sessions = new Map<number, RemoteMediaSession>();
  /** False once it exited or is being stopped: no new sessions. */
  alive = true;
  /** The scheduling priority the thread got (it may be lower than asked). */
  priority: MediaThreadPriority = 'normal';
  /** Why it is lower than asked. */
  refused: string[] = [];
  /** Sessions created ahead (port bound, nothing negotiated) and the ones asked for. */
  readonly spares: { sid: number; port: number }[] = [];
  sparesAsked = 0;
  /** Spares the worker handed over to a synchronous create before their 'spare-ready' arrived here. */
  readonly claimed = new Set<number>();
  spareBlockedUntil = 0;

  constructor(index: number, worker: Worker, sync: SyncChannel) {
    this.index = index;
    this.worker = worker;
    this.sync = sync;
  }

  post(m: AsyncRequest): void {
    if (this.alive) this.worker.postMessage(m);
  }
}

/**
 * The embedded media engine spread over worker threads (ADR 0003): each worker runs an unchanged
 * MediaEngine with its share of the RTP ports and its own paced sender loop, so pacing, RTP
 * receive and their GC use every core and never wait behind SIP. SIP and the dialogue stay on the
 * main thread and see each call's media through a RemoteMediaSession (the same MediaSessionLike
 * port as in-process). A new call goes to the worker with the fewest sessions.
 */
export class MediaWorkerPool implements MediaEngineLike {
  readonly #opts: MediaWorkerPoolOptions;
  readonly #log: Logger;
  readonly #shares: { portMin: number; portMax: number }[];
  #handles: WorkerHandle[] = [];
  #running = false;
  #nextSid = 0;

  constructor(opts: MediaWorkerPoolOptions) {
    if (!(Number.isInteger(opts.workers) && opts.workers >= 1)) throw new PayIvrError('ERR_CONFIG_INVALID', 'rtp.workers must be a positive integer');
    this.#opts = opts;
    this.#log = opts.logger;
    this.#shares = splitPortRange(opts.portMin, opts.portMax, opts.workers);
  }

  get workers(): number {
    return this.#handles.filter((h) => h.alive).length;
  }

  /** The scheduling priority each worker thread got, in worker order. */
  get priorities(): MediaThreadPriority[] {
    return this.#handles.map((h) => h.priority);
  }

  /** Sessions per worker, in worker order (tests, bench). */
  get load(): number[] {
    return this.#handles.map((h) => h.sessions.size);
  }

  get sessions(): number {
    let n = 0;
    for (const h of this.#handles) n += h.sessions.size;
    return n;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const started = await Promise.allSettled(this.#shares.map((_, k) => this.#spawn(k)));
    const handles = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(handles.map((h) => this.#terminate(h)));
      throw failed.reason instanceof PayIvrError ? failed.reason : new PayIvrError('ERR_BACKEND_UNAVAILABLE', `media worker failed to start: ${describeError(failed.reason)}`);
    }
    this.#handles = handles;
    this.#running = true;
    for (const h of handles) this.#refill(h);
    this.#log.info({ workers: handles.length, shares: this.#shares.map((s) => `${s.portMin}-${s.portMax}`), priority: handles.map((h) => h.priority) }, 'media workers started');
    const lower = handles.find((h) => h.refused.length > 0);
    if (lower !== undefined) {
      // Once for the pool: every worker asks the same OS for the same thing.
      this.#log.warn({ asked: this.#opts.priority, running: lower.priority, refused: lower.refused }, 'media workers run at a lower scheduling priority than rtp.workerPriority asks (grant CAP_SYS_NICE, or raise RLIMIT_NICE / RLIMIT_RTPRIO)');
    }
  }

  #spawn(k: number): Promise<WorkerHandle> {
    const share = this.#shares[k] as { portMin: number; portMax: number };
    const { logger: _logger, workers: _workers, preload, mediaRanges, priority = 'normal', ...engine } = this.#opts;
    const flag = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = { engine: { ...engine, ...share }, mediaRanges: [...(mediaRanges ?? [])], logLevel: this.#log.level, flag, replyPort: port1, priority, ...(preload !== undefined ? { preload } : {}) };
    const entry = workerEntry();
    const worker = new Worker(entry.script, {
      eval: entry.eval,
      workerData: init,
      transferList: [port1],
      name: `pay-ivr media ${k}`,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    // The main thread's SIP sockets keep the process alive; a worker alone must not.
    worker.unref();
    threadsAlive++;
    const handle = new WorkerHandle(k, worker, new SyncChannel(flag, port2 as MessagePort, (m) => worker.postMessage(m)));
    const log = this.#log.child({ mediaWorker: k });
    return new Promise<WorkerHandle>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        reject(new PayIvrError('ERR_BACKEND_UNAVAILABLE', `media worker ${k} did not start in ${START_TIMEOUT_MS} ms`));
        void worker.terminate();
      }, START_TIMEOUT_MS);
      worker.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'ready':
            ready = true;
            clearTimeout(timer);
            handle.priority = m.priority;
            handle.refused = m.refused;
            resolve(handle);
            return;
          case 'start-failed':
            clearTimeout(timer);
            reject(toError(m.error));
            void worker.terminate();
            return;
          case 'log':
            relayLog(log, m.line);
            return;
          case 'stopped':
            handle.worker.emit('pay-ivr:stopped');
            return;
          case 'spare-ready':
            handle.sparesAsked--;
            // A spare already handed over by a synchronous create is not a spare any more.
            if (handle.claimed.delete(m.sid)) return;
            if (handle.alive) handle.spares.push({ sid: m.sid, port: m.port });
            return;
          case 'spare-failed':
            handle.sparesAsked--;
            handle.spareBlockedUntil = Date.now() + SPARE_RETRY_MS;
            return;
          default:
            handle.sessions.get(m.sid)?.deliver(m);
        }
      });
      worker.on('error', (e) => log.error({ err: describeError(e) }, 'media worker failed'));
      worker.on('exit', (code) => {
        threadsAlive--;
        clearTimeout(timer);
        const wasAlive = handle.alive;
        handle.alive = false;
        if (!ready) {
          reject(new PayIvrError('ERR_BACKEND_UNAVAILABLE', `media worker ${k} exited during start (code ${code})`));
          return;
        }
        if (!wasAlive) return;
        // Its calls have no media any more: each one ends as a dead stream would (rtp-timeout).
        log.error({ code, calls: handle.sessions.size }, 'media worker exited; its calls end');
        for (const s of [...handle.sessions.values()]) s.lost();
        if (this.#running) void this.#replace(k);
      });
    });
  }

  async #replace(k: number): Promise<void> {
    try {
      const h = await this.#spawn(k);
      if (!this.#running) {
        await this.#terminate(h);
        return;
      }
      this.#handles[k] = h;
      this.#refill(h);
      this.#log.warn({ mediaWorker: k }, 'media worker replaced');
    } catch (e) {
      this.#log.error({ mediaWorker: k, err: describeError(e) }, 'media worker could not be replaced');
    }
  }

  async #terminate(h: WorkerHandle): Promise<void> {
    if (h.alive) {
      const stopped = new Promise<void>((resolve) => {
        h.worker.once('pay-ivr:stopped', () => resolve());
        h.worker.once('exit', () => resolve());
      });
      h.worker.postMessage({ t: 'stop' } satisfies AsyncRequest);
      h.alive = false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
    }
    h.alive = false;
    for (const s of [...h.sessions.values()]) s.lost(false);
    await h.worker.terminate();
  }

  /** Closes every session, stops each worker's engine and ends the threads. */
  async stop(): Promise<void> {
    this.#running = false;
    const handles = this.#handles;
    this.#handles = [];
    await Promise.all(handles.map((h) => this.#terminate(h)));
  }

  /** Asks the worker for spare sessions up to SPARES_PER_WORKER (answers arrive as events). */
  #refill(h: WorkerHandle): void {
    if (!h.alive || Date.now() < h.spareBlockedUntil) return;
    while (h.spares.length + h.sparesAsked < SPARES_PER_WORKER) {
      h.sparesAsked++;
      h.post({ t: 'spare', sid: ++this.#nextSid });
    }
  }

  /**
   * A session on the least-loaded worker: one of its spares when it has one (no round trip),
   * else created synchronously; another worker when that one's ports are used up.
   */
  createSession(): MediaSessionLike {
    if (!this.#running) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'media engine not started');
    const order = this.#handles.filter((h) => h.alive).sort((a, b) => a.sessions.size - b.sessions.size);
    if (order.length === 0) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'no media worker running');
    const least = order[0] as WorkerHandle;
    const spare = least.spares.shift();
    if (spare !== undefined) {
      least.post({ t: 'claim', sid: spare.sid });
      const s = new RemoteMediaSession(least, spare.sid, spare.port);
      least.sessions.set(spare.sid, s);
      this.#refill(least);
      return s;
    }
    let last: unknown;
    for (const h of order) {
      const sid = ++this.#nextSid;
      try {
        const got = h.sync.call({ t: 'create', sid }) as { sid: number; port: number };
        if (got.sid !== sid) {
          const i = h.spares.findIndex((x) => x.sid === got.sid);
          if (i >= 0) h.spares.splice(i, 1);
          else h.claimed.add(got.sid);
        }
        const s = new RemoteMediaSession(h, got.sid, got.port);
        h.sessions.set(got.sid, s);
        return s;
      } catch (e) {
        last = e;
        if (!(e instanceof PayIvrError && e.code === 'ERR_RTP_PORTS_EXHAUSTED')) throw e;
      }
    }
    throw last;
  }

  hasPrompt(language: string, id: string): boolean {
    const h = this.#handles.find((x) => x.alive);
    return h === undefined ? false : (h.sync.call({ t: 'has-prompt', language, id }) as boolean);
  }
}

/** Writes a worker's pino line through the main logger (its redaction, its destination). */
function relayLog(log: Logger, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, name: _name, ...rest } = rec;
  const label = typeof level === 'number' ? log.levels.labels[level] : undefined;
  const fn = label === 'fatal' || label === 'error' || label === 'warn' || label === 'info' || label === 'debug' || label === 'trace' ? label : 'info';
  log[fn](rest, typeof msg === 'string' ? msg : '');
}

/**
 * The main thread's view of one call's media in a worker. SDP calls are synchronous round trips;
 * play/stop/digits are messages; digits and rtp-timeout come back as events.
 */
class RemoteMediaSession extends TypedEmitter<MediaSessionEvents> implements MediaSessionLike {
  readonly localPort: number;
  readonly #h: WorkerHandle;
  readonly #sid: number;
  readonly #plays = new Map<number, { resolve: (r: PlayResult) => void; reject: (e: Error) => void }>();
  #nextPid = 0;
  #closed = false;

  constructor(h: WorkerHandle, sid: number, port: number) {
    super();
    this.#h = h;
    this.#sid = sid;
    this.localPort = port;
  }

  answerOffer(offerSdp: string): string | undefined {
    if (this.#closed) return undefined;
    return this.#h.sync.call({ t: 'answer', sid: this.#sid, sdp: offerSdp }) as string | undefined;
  }

  createOffer(): string {
    if (this.#closed) throw new PayIvrError('ERR_CALL_ENDED', 'media session closed');
    return this.#h.sync.call({ t: 'offer', sid: this.#sid }) as string;
  }

  applyAnswer(answerSdp: string): boolean {
    if (this.#closed) return false;
    return this.#h.sync.call({ t: 'apply', sid: this.#sid, sdp: answerSdp }) as boolean;
  }

  confirm(): void {
    if (!this.#closed) this.#h.post({ t: 'confirm', sid: this.#sid });
  }

  updateOffer(offerSdp: string): string | undefined {
    if (this.#closed) return undefined;
    return this.#h.sync.call({ t: 'update', sid: this.#sid, sdp: offerSdp }) as string | undefined;
  }

  play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult> {
    if (this.#closed) return Promise.resolve('ended');
    const pid = ++this.#nextPid;
    return new Promise<PlayResult>((resolve, reject) => {
      this.#plays.set(pid, { resolve, reject });
      this.#h.post({ t: 'play', sid: this.#sid, pid, fragments: [...fragments], options: { ...options } });
    });
  }

  stopPlay(): void {
    if (!this.#closed) this.#h.post({ t: 'stop-play', sid: this.#sid });
  }

  listenForInbandKeys(): void {
    if (!this.#closed) this.#h.post({ t: 'inband', sid: this.#sid });
  }

  injectDigit(digit: DtmfDigit, source: DtmfSource): void {
    if (!this.#closed) this.#h.post({ t: 'inject', sid: this.#sid, digit, source });
  }

  close(): void {
    if (this.#closed) return;
    this.#h.post({ t: 'close', sid: this.#sid });
    this.#end();
  }

  /** @internal An event from the worker. */
  deliver(m: Exclude<FromWorker, { t: 'ready' | 'stopped' | 'start-failed' | 'log' }>): void {
    if (this.#closed) return;
    switch (m.t) {
      case 'played': {
        const p = this.#plays.get(m.pid);
        this.#plays.delete(m.pid);
        p?.resolve(m.result);
        return;
      }
      case 'play-failed': {
        const p = this.#plays.get(m.pid);
        this.#plays.delete(m.pid);
        p?.reject(toError(m.error));
        return;
      }
      case 'digit':
        this.emit('digit', m.digit, m.source);
        return;
      case 'rtp-timeout':
        this.emit('rtp-timeout');
        return;
    }
  }

  /** @internal Its worker is gone: pending plays end; with `timeout`, the call is told its media died. */
  lost(timeout = true): void {
    if (this.#closed) return;
    if (timeout) this.emit('rtp-timeout');
    this.#end();
  }

  #end(): void {
    this.#closed = true;
    this.#h.sessions.delete(this.#sid);
    for (const p of this.#plays.values()) p.resolve('ended');
    this.#plays.clear();
    this.removeAllListeners();
  }
}
