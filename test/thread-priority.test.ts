import { describe, expect, it } from 'vitest';
import { HIGH_NICE, raiseThisThread, raiseThread, REALTIME_FIFO_PRIORITY, type PriorityOs } from '../src/telephony/embedded/media-workers/thread-priority.js';

/** What the code asked the OS for, with each call failing when told to. */
function fakeOs(fail: { tid?: boolean; nice?: boolean; fifo?: boolean } = {}): PriorityOs & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    threadId() {
      if (fail.tid === true) throw new Error('ENOENT: /proc/thread-self');
      return 4242;
    },
    setNice(tid, nice) {
      calls.push(`nice ${tid} ${nice}`);
      if (fail.nice === true) throw new Error('EACCES: permission denied');
    },
    setFifo(tid, prio) {
      calls.push(`fifo ${tid} ${prio}`);
      if (fail.fifo === true) throw Object.assign(new Error('Command failed: chrt'), { stderr: Buffer.from('chrt: failed to set pid 4242\'s policy: Operation not permitted\n') });
    },
  };
}

describe('media thread priority (rtp.workerPriority)', () => {
  it('normal asks the OS for nothing', () => {
    const os = fakeOs();
    expect(raiseThisThread('normal', os)).toEqual({ applied: 'normal', refused: [] });
    expect(os.calls).toEqual([]);
  });

  it('high sets nice -10 on this thread only', () => {
    const os = fakeOs();
    expect(raiseThisThread('high', os)).toEqual({ applied: 'high', refused: [] });
    expect(os.calls).toEqual([`nice 4242 ${HIGH_NICE}`]);
  });

  it('realtime sets SCHED_FIFO and nothing else', () => {
    const os = fakeOs();
    expect(raiseThisThread('realtime', os)).toEqual({ applied: 'realtime', refused: [] });
    expect(os.calls).toEqual([`fifo 4242 ${REALTIME_FIFO_PRIORITY}`]);
  });

  it('falls back a level at a time and says why (the OS message, chrt\'s own words)', () => {
    const os = fakeOs({ fifo: true });
    const r = raiseThread(99, 'realtime', os);
    expect(r.applied).toBe('high');
    expect(r.refused).toEqual([`realtime (SCHED_FIFO ${REALTIME_FIFO_PRIORITY}): chrt: failed to set pid 4242's policy: Operation not permitted`]);
    const none = raiseThread(99, 'realtime', fakeOs({ fifo: true, nice: true }));
    expect(none.applied).toBe('normal');
    expect(none.refused).toHaveLength(2);
    expect(none.refused[1]).toBe(`high (nice ${HIGH_NICE}): EACCES: permission denied`);
  });

  it('without a thread id (no /proc) it stays normal and never throws', () => {
    const os = fakeOs({ tid: true });
    expect(raiseThisThread('realtime', os)).toEqual({ applied: 'normal', refused: ['thread id: ENOENT: /proc/thread-self'] });
    expect(os.calls).toEqual([]);
  });
});
