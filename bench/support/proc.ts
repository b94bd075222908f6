import { readFileSync } from 'node:fs';

/** CPU figures from /proc (Linux): per-process ticks and machine-wide busy time. */

const CLK_TCK = 100;

/** User + system CPU time of a process in µs, or undefined when it is gone. */
export function processCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1_000_000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Max resident set size of a process in bytes (VmHWM), or undefined. */
export function processPeakRss(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

export interface MachineCpu {
  user: number;
  system: number;
  softirq: number;
  idle: number;
  total: number;
}

/** Aggregate jiffies of all CPUs from /proc/stat. */
export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return { user: user + nice, system: system + irq, softirq, idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Percentages of all cores between two samples (100 % = every core busy). */
export function machineCpuDelta(a: MachineCpu, b: MachineCpu): { busy: number; user: number; system: number; softirq: number } {
  const t = Math.max(1, b.total - a.total);
  return {
    busy: (100 * (t - (b.idle - a.idle))) / t,
    user: (100 * (b.user - a.user)) / t,
    system: (100 * (b.system - a.system)) / t,
    softirq: (100 * (b.softirq - a.softirq)) / t,
  };
}
