/**
 * Scheduling priority in the benches: the server's media workers get rtp.workerPriority; the
 * process that stands for the far end (the RTP sink, the callers) gets the same by default. On a
 * real network the far end is another machine; on this one box it must not be starved by what
 * it measures, or its own lateness reads as the server's gaps.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { MEDIA_THREAD_PRIORITIES, type MediaThreadPriority } from '../../src/config/media-options.js';
import { raiseThread } from '../../src/telephony/embedded/media-workers/thread-priority.js';

export type { MediaThreadPriority };

/** A command-line value as a priority, or an error naming the option. */
export function priorityOption(name: string, v: string): MediaThreadPriority {
  const p = MEDIA_THREAD_PRIORITIES.find((x) => x === v);
  if (p === undefined) throw new Error(`${name} must be one of ${MEDIA_THREAD_PRIORITIES.join(', ')}`);
  return p;
}

/** Raises a one-threaded child (its JS runs on the thread the process id names); says so when it could not. */
export function raiseChild(child: ChildProcess, what: string, want: MediaThreadPriority): void {
  if (child.pid === undefined) return;
  const r = raiseThread(child.pid, want);
  if (r.refused.length > 0) console.error(`${what} runs at ${r.applied} priority: ${r.refused.join('; ')}`);
}

/**
 * Raises every thread a process has now (/proc/<pid>/task): for multi-threaded peers (rtpengine's
 * workers, SIPp, a node process's helper threads). Threads it starts later keep its priority.
 */
export function raiseProcess(pid: number | undefined, what: string, want: MediaThreadPriority): void {
  if (pid === undefined || want === 'normal') return;
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    return;
  }
  const refused = new Set<string>();
  for (const tid of tids) for (const r of raiseThread(tid, want).refused) refused.add(r);
  if (refused.size > 0) console.error(`${what} runs below ${want} priority: ${[...refused].join('; ')}`);
}
