import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { BroadcastChannel } from 'node:worker_threads';
import { silentLogger } from '../src/log.js';
import { isPayIvrError } from '../src/errors.js';
import { liveMediaWorkerThreads, MediaWorkerPool } from '../src/telephony/embedded/media-workers/pool.js';
import type { MediaThreadPriority } from '../src/config/media-options.js';
import { HIGH_NICE, REALTIME_FIFO_PRIORITY } from '../src/telephony/embedded/media-workers/thread-priority.js';
import { RtpPeer } from './support/rtp-peer.js';
import { offerSdp } from './support/sip-peer.js';

/**
 * MediaWorkerPool on its own (ADR 0003): placement on the least-loaded worker, every port of the
 * range usable across workers and a clean error after that, and a worker that dies: its calls are
 * told (rtp-timeout, pending plays end) and a replacement takes new calls.
 */

const pools: MediaWorkerPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.stop();
  expect(liveMediaWorkerThreads()).toBe(0);
});

function pool(portMin: number, portMax: number, preload?: string, priority?: MediaThreadPriority): MediaWorkerPool {
  const p = new MediaWorkerPool({ host: '127.0.0.1', portMin, portMax, promptsDir: 'prompts', noRtpTimeoutMs: 30_000, logger: silentLogger, workers: 2, ...(preload !== undefined ? { preload } : {}), ...(priority !== undefined ? { priority } : {}) });
  pools.push(p);
  return p;
}

const until = async (what: string, f: () => boolean, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** This process's threads as the kernel schedules them: nice, SCHED_* policy and real-time priority (proc(5) stat fields 19, 41, 40). */
function threadSchedule(): { tid: number; nice: number; policy: number; rtPriority: number }[] {
  return readdirSync('/proc/self/task').flatMap((t) => {
    try {
      const f = readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return [{ tid: Number(t), nice: Number(f[16]), policy: Number(f[38]), rtPriority: Number(f[37]) }];
    } catch {
      return []; // a thread that ended meanwhile
    }
  });
}
const SCHED_FIFO = 1;

describe('MediaWorkerPool', () => {
  // The test runs as root (CI): the kernel must show exactly the two worker threads raised.
  it('raises each worker thread, and only those, to rtp.workerPriority (high: nice -10; realtime: SCHED_FIFO)', async () => {
    const before = threadSchedule();
    expect(before.filter((t) => t.nice === HIGH_NICE || t.policy === SCHED_FIFO)).toEqual([]);
    const high = pool(36500, 36515, undefined, 'high');
    await high.start();
    expect(high.priorities).toEqual(['high', 'high']);
    const raised = threadSchedule().filter((t) => t.nice === HIGH_NICE);
    expect(raised).toHaveLength(2);
    expect(raised.map((t) => t.tid)).not.toContain(process.pid);
    await high.stop();

    const rt = pool(36520, 36535, undefined, 'realtime');
    await rt.start();
    expect(rt.priorities).toEqual(['realtime', 'realtime']);
    const fifo = threadSchedule().filter((t) => t.policy === SCHED_FIFO);
    expect(fifo.map((t) => t.rtPriority)).toEqual([REALTIME_FIFO_PRIORITY, REALTIME_FIFO_PRIORITY]);
    expect(fifo.map((t) => t.tid)).not.toContain(process.pid);
    // A worker is still a working media engine at that priority.
    expect(rt.createSession().localPort).toBeGreaterThanOrEqual(36520);
  }, 60_000);

  it('places calls on the least-loaded worker and uses every port of the range before ERR_RTP_PORTS_EXHAUSTED', async () => {
    // 8 even ports: 4 per worker.
    const p = pool(36100, 36115);
    await p.start();
    const ports = new Set<number>();
    for (let i = 0; i < 8; i++) ports.add(p.createSession().localPort);
    expect(ports.size).toBe(8);
    expect(p.load).toEqual([4, 4]);
    expect(p.sessions).toBe(8);
    let err: unknown;
    try {
      p.createSession();
    } catch (e) {
      err = e;
    }
    expect(isPayIvrError(err, 'ERR_RTP_PORTS_EXHAUSTED')).toBe(true);
  }, 60_000);

  it('a session answers an offer and, once confirmed, plays to the far end; close frees its place', async () => {
    const p = pool(36200, 36219);
    await p.start();
    const rtp = await RtpPeer.open({ port: 36300, codec: 'PCMU' });
    try {
      const s = p.createSession();
      const answer = s.answerOffer(offerSdp(rtp.port, '0 101'));
      expect(answer).toMatch(new RegExp(`m=audio ${s.localPort} RTP/AVP 0`));
      s.confirm(); // the ACK: RTP may leave from now on
      const played = s.play(['h-4'], { language: 'en-US', bargeIn: false });
      await expect(played).resolves.toBe('done');
      expect(rtp.received.length).toBeGreaterThan(5);
      await expect(s.play(['no-such-prompt'], { language: 'en-US', bargeIn: false })).rejects.toMatchObject({ code: 'ERR_PROMPT_MISSING' });
      s.close();
      expect(p.sessions).toBe(0);
      await expect(s.play(['h-4'], { language: 'en-US', bargeIn: false })).resolves.toBe('ended');
    } finally {
      rtp.close();
    }
  }, 60_000);

  it('a worker that dies ends its calls (rtp-timeout, plays resolve ended) and is replaced', async () => {
    const p = pool(36400, 36439, new URL('./fixtures/media-worker-exit.ts', import.meta.url).href);
    await p.start();
    const a = p.createSession();
    const b = p.createSession();
    expect(p.load).toEqual([1, 1]);
    let timeouts = 0;
    a.on('rtp-timeout', () => timeouts++);
    b.on('rtp-timeout', () => timeouts++);
    const playing = a.play(['wait-music'], { language: 'en-US', bargeIn: false, loop: true });
    const ch = new BroadcastChannel('test-media-worker-exit');
    ch.postMessage({ kill: 'all' });
    ch.close();
    await expect(playing).resolves.toBe('ended');
    await until('both calls told', () => timeouts === 2);
    expect(p.sessions).toBe(0);
    await until('two replacement workers', () => p.workers === 2 && liveMediaWorkerThreads() === 2);
    const c = p.createSession();
    expect(c.localPort).toBeGreaterThanOrEqual(36400);
    c.close();
  }, 60_000);
  it('a worker that crashes is replaced at the same priority (the replacement thread is raised too)', async () => {
    const p = pool(36700, 36715, new URL('./fixtures/media-worker-exit.ts', import.meta.url).href, 'high');
    await p.start();
    const first = threadSchedule().filter((t) => t.nice === HIGH_NICE).map((t) => t.tid);
    expect(first).toHaveLength(2);
    const ch = new BroadcastChannel('test-media-worker-exit');
    ch.postMessage({ kill: 'all' });
    ch.close();
    await until('the old threads gone', () => threadSchedule().every((t) => !first.includes(t.tid)));
    await until('two replacement workers', () => p.workers === 2 && liveMediaWorkerThreads() === 2);
    expect(p.priorities).toEqual(['high', 'high']);
    const raised = threadSchedule().filter((t) => t.nice === HIGH_NICE);
    expect(raised).toHaveLength(2);
    expect(raised.map((t) => t.tid).some((tid) => first.includes(tid))).toBe(false);
  }, 60_000);
});
