/**
 * Scheduling priority of a media worker thread (rtp.workerPriority, docs/adr/0003-media-workers.md).
 *
 * A media worker sleeps most of each 20 ms frame and must run the moment its pacer's timer is
 * due; on a busy host it otherwise waits behind SIP, the dialogue, GC threads and other
 * processes, and every stream of its bursts gets a late packet (the bench measured 35 ms gaps at
 * 1,000 calls on an otherwise idle 2-core machine, none over 30 ms with the worker raised).
 * Media servers do the same (FreeSWITCH -rp, Asterisk -p).
 *
 *  - normal: the thread keeps the process's priority;
 *  - high: nice -10 for this thread (Linux setpriority on the thread id): it wins the CPU against
 *    ordinary work when both are runnable, but cannot starve the host;
 *  - realtime: SCHED_FIFO priority 10 (through util-linux `chrt`): it preempts every ordinary
 *    thread at once. A real-time thread that never sleeps would leave the cores to the kernel's
 *    real-time throttling only (5 %), so only with admission limits that keep the media threads
 *    well under a core each.
 * Both need CAP_SYS_NICE or a raised RLIMIT_NICE / RLIMIT_RTPRIO; without them the worker falls
 * back (realtime -> high -> normal) and says why once.
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { MediaThreadPriority } from '../../../config/media-options.js';

/** The nice value of a 'high' media thread. */
export const HIGH_NICE = -10;
/** The SCHED_FIFO priority of a 'realtime' media thread: above every ordinary thread, below the kernel's own (50). */
export const REALTIME_FIFO_PRIORITY = 10;

interface PriorityOutcome {
  /** What the thread runs at now. */
  applied: MediaThreadPriority;
  /** Why it is lower than asked, one reason per level that failed. */
  refused: string[];
}

/** The OS calls, injectable for tests. */
export interface PriorityOs {
  /** This thread's kernel thread id. */
  threadId(): number;
  setNice(tid: number, nice: number): void;
  setFifo(tid: number, priority: number): void;
}

const linuxOs: PriorityOs = {
  threadId() {
    // "/proc/thread-self" resolves to "<pid>/task/<tid>" for the calling thread (Linux >= 3.17).
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) throw new Error('no thread id in /proc/thread-self');
    return tid;
  },
  setNice(tid, nice) {
    setPriority(tid, nice);
  },
  setFifo(tid, priority) {
    execFileSync('chrt', ['--fifo', '--pid', String(priority), String(tid)], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 });
  },
};

function reason(e: unknown): string {
  if (e instanceof Error) {
    const stderr = (e as { stderr?: unknown }).stderr;
    const detail = Buffer.isBuffer(stderr) ? stderr.toString('utf8').trim() : '';
    return detail !== '' ? detail : e.message;
  }
  return String(e);
}

/** Raises the calling thread to `want`, falling back a level at a time; never throws. */
export function raiseThisThread(want: MediaThreadPriority, os: PriorityOs = linuxOs): PriorityOutcome {
  if (want === 'normal') return { applied: 'normal', refused: [] };
  let tid: number;
  try {
    tid = os.threadId();
  } catch (e) {
    return { applied: 'normal', refused: [`thread id: ${reason(e)}`] };
  }
  return raiseThread(tid, want, os);
}

/** Raises the thread `tid` (a process id names its main thread) to `want`, falling back a level at a time; never throws. */
export function raiseThread(tid: number, want: MediaThreadPriority, os: PriorityOs = linuxOs): PriorityOutcome {
  const refused: string[] = [];
  if (want === 'normal') return { applied: 'normal', refused };
  if (want === 'realtime') {
    try {
      os.setFifo(tid, REALTIME_FIFO_PRIORITY);
      return { applied: 'realtime', refused };
    } catch (e) {
      refused.push(`realtime (SCHED_FIFO ${REALTIME_FIFO_PRIORITY}): ${reason(e)}`);
    }
  }
  try {
    os.setNice(tid, HIGH_NICE);
    return { applied: 'high', refused };
  } catch (e) {
    refused.push(`high (nice ${HIGH_NICE}): ${reason(e)}`);
  }
  return { applied: 'normal', refused };
}
