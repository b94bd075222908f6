/**
 * What a bench starts is stopped: at exit, on SIGINT / SIGTERM / SIGHUP, and when its main()
 * ends either way (runBench). One place for the child bookkeeping of sipp-load and product-load.
 */
import type { ChildProcess } from 'node:child_process';
import type { SippProcess } from './sipp-runner.js';

export class BenchChildren {
  readonly #children = new Set<ChildProcess>();
  /** Children started in a process group of their own, killed as a group (tshark and its dumpcap). */
  readonly #groups = new Set<ChildProcess>();
  /** The SIPp run in progress, if any (stopped with the rest). */
  sipp: SippProcess | undefined;

  /** `what` names the children in the line printed on a signal. */
  constructor(what: string) {
    process.on('exit', () => this.killAll());
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        console.error(`\n${sig}: stopping ${what}`);
        this.killAll();
        process.exit(130);
      });
    }
  }

  /** Tracks a child until it exits; `group`: it was spawned detached, and its own children go with it. */
  add<T extends ChildProcess>(c: T, group = false): T {
    this.#children.add(c);
    if (group) this.#groups.add(c);
    c.on('exit', () => {
      this.#children.delete(c);
      this.#groups.delete(c);
    });
    return c;
  }

  killAll(): void {
    this.sipp?.kill();
    for (const c of this.#children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      if (this.#groups.has(c) && c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
          continue;
        } catch {
          // the group is gone already: kill the child itself
        }
      }
      c.kill('SIGKILL');
    }
  }
}

/** Runs a bench's main(): exit 0 when it ends, 1 with the stack when it throws; children stopped either way. */
export function runBench(main: () => Promise<void>, children: BenchChildren): void {
  main()
    .then(() => {
      children.killAll();
      process.exit(0);
    })
    .catch((e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      children.killAll();
      process.exit(1);
    });
}
