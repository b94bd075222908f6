import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Node child processes of a test (pay-ivr, the sandbox PSP), each one's stdout and stderr kept in
 * a file of the run's folder (the card-digit scan reads it), all killed at the end.
 */
export class NodeChildren {
  readonly #all = new Set<ChildProcess>();

  constructor(private readonly dir: () => string) {}

  /** `node <args>`, output to `<dir>/<logFile>`; `env` adds to this process's environment. */
  spawn(args: string[], logFile: string, env: Record<string, string> = {}): ChildProcess {
    const out = join(this.dir(), logFile);
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const chunks: string[] = [];
    const save = (d: Buffer): void => {
      chunks.push(d.toString());
      writeFileSync(out, chunks.join(''));
    };
    p.stdout?.on('data', save);
    p.stderr?.on('data', save);
    this.#all.add(p);
    p.once('exit', () => this.#all.delete(p));
    return p;
  }

  /** Children still running. */
  get running(): ChildProcess[] {
    return [...this.#all];
  }
}

/** kill -9 and wait until the process is gone (nothing when it already is). */
export async function kill9(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}
