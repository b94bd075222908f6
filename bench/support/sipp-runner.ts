import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { quantileSorted } from './histogram.js';
import { requireTool } from '../../test/support/tools.js';

/**
 * SIPp as the load generator of bench/sipp-load.ts: one run of a UAC scenario with its
 * statistics (-trace_stat), per-call response times (-trace_rtt) and errors in a directory.
 */

export interface SippLoadOptions {
  scenario: string;
  dir: string;
  target: string;
  localPort: number;
  mediaPort: number;
  calls: number;
  ratePerSecond: number;
  /** -d: the scenario's <pause/> (uac-hold); undefined for scenarios without one. */
  holdMs?: number;
  /** CSV for -inf (first line SEQUENTIAL). */
  injectionFile?: string;
  globalTimeoutS: number;
  /** Request-URI user (-s); default 1000. */
  service?: string;
  /** More SIPp arguments (keys, -trace_logs). */
  extraArgs?: string[];
}

export interface SippLoadResult {
  exitCode: number;
  created: number;
  successful: number;
  failed: number;
  retransmissions: number;
  /** Non-zero Failed* counters of the final statistics line. */
  failures: Record<string, number>;
  /** INVITE sent to 200 received, ms (SIPp's clock: 1 ms resolution). */
  inviteTo200Ms: { count: number; p50: number; p99: number; max: number; mean: number };
  errorsTail: string;
}

export class SippProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number>;
  readonly #opts: SippLoadOptions;

  constructor(opts: SippLoadOptions) {
    this.#opts = opts;
    mkdirSync(opts.dir, { recursive: true });
    const args = [
      '-sf', opts.scenario,
      ...(opts.injectionFile !== undefined ? ['-inf', opts.injectionFile] : []),
      '-i', '127.0.0.1', '-p', String(opts.localPort),
      '-mi', '127.0.0.1', '-mp', String(opts.mediaPort),
      '-t', 'u1',
      '-s', opts.service ?? '1000',
      '-m', String(opts.calls), '-l', String(opts.calls),
      '-r', String(opts.ratePerSecond), '-rp', '1000',
      ...(opts.holdMs !== undefined ? ['-d', String(opts.holdMs)] : []),
      ...(opts.extraArgs ?? []),
      '-trace_rtt', '-rtt_freq', '1',
      '-trace_stat', '-stf', join(opts.dir, 'stat.csv'), '-fd', '1',
      '-trace_err', '-error_file', join(opts.dir, 'errors.log'),
      '-trace_screen', '-screen_file', join(opts.dir, 'screen.log'),
      '-timeout', `${opts.globalTimeoutS}s`, '-timeout_error',
      '-nostdin',
      opts.target,
    ];
    const out = openSync(join(opts.dir, 'sipp.out'), 'w');
    this.child = spawn(requireTool('sipp'), args, { cwd: opts.dir, stdio: ['ignore', out, out] });
    closeSync(out);
    this.exited = new Promise<number>((resolve) => {
      this.child.on('error', () => resolve(-1));
      this.child.on('exit', (code, signal) => resolve(code ?? (signal !== null ? 128 : -1)));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** Reads SIPp's files once it has exited. */
  result(exitCode: number): SippLoadResult {
    const dir = this.#opts.dir;
    const stat = parseStat(join(dir, 'stat.csv'));
    const rtts = readRtts(dir);
    rtts.sort((a, b) => a - b);
    const failures: Record<string, number> = {};
    for (const [k, v] of Object.entries(stat)) {
      if (k.startsWith('Failed') && k.endsWith('(C)') && k !== 'FailedCall(C)' && v > 0) failures[k.slice(0, -3)] = v;
    }
    const errFile = join(dir, 'errors.log');
    return {
      exitCode,
      created: stat['TotalCallCreated'] ?? 0,
      successful: stat['SuccessfulCall(C)'] ?? 0,
      failed: stat['FailedCall(C)'] ?? 0,
      retransmissions: stat['Retransmissions(C)'] ?? 0,
      failures,
      inviteTo200Ms: {
        count: rtts.length,
        p50: quantileSorted(rtts, 0.5),
        p99: quantileSorted(rtts, 0.99),
        max: rtts.length > 0 ? (rtts[rtts.length - 1] as number) : Number.NaN,
        mean: rtts.reduce((a, b) => a + b, 0) / Math.max(1, rtts.length),
      },
      errorsTail: existsSync(errFile) ? readFileSync(errFile, 'utf8').slice(-2000) : '',
    };
  }
}

/** The last line of -trace_stat, as counter name -> number (durations and dates are skipped). */
function parseStat(file: string): Record<string, number> {
  if (!existsSync(file)) return {};
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const head = (lines[0] ?? '').split(';');
  const last = (lines[lines.length - 1] ?? '').split(';');
  const out: Record<string, number> = {};
  head.forEach((name, i) => {
    const v = last[i];
    if (name !== '' && v !== undefined && /^-?\d+(\.\d+)?$/.test(v)) out[name] = Number(v);
  });
  return out;
}

/** Response times 1 from <scenario>_<pid>_rtt.csv (Date_ms;response_time_ms;rtd_no). */
function readRtts(dir: string): number[] {
  const out: number[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('_rtt.csv'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n').slice(1)) {
      const [, ms, no] = line.split(';');
      if (ms !== undefined && no?.trim() === '1') out.push(Number(ms));
    }
  }
  return out;
}
