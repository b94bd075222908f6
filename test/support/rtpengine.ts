/**
 * A real rtpengine (Debian package rtpengine-daemon) for one test: userspace forwarding
 * (`--table=-1`), loopback only, no system config file, its own ng and CLI ports, RTP port range
 * and DTMF event destination, its log (stderr) and pid file in a temp dir. `start` resolves once the daemon answers `ping`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtpengine from 'rtpengine-client';

export const RTPENGINE_BIN = process.env.RTPENGINE_BIN ?? '/usr/bin/rtpengine';

export interface RtpengineDaemonOptions {
  ngPort: number;
  dtmfLogPort: number;
  portMin: number;
  portMax: number;
  /** Address of the DTMF event destination (default 127.0.0.1). */
  dtmfLogAddress?: string;
  logLevel?: number;
  /** rtpengine's CLI port (it always opens one; default ngPort + 5). */
  cliPort?: number;
  /** The daemon binary (default RTPENGINE_BIN). */
  bin?: string;
  /** Signalling and media threads (default 2 and 1: what a test needs, on a shared machine). */
  threads?: number;
  mediaThreads?: number;
}

/** An error whose report is its message alone (no stack): the operator only needs to install a package. */
function plainError(message: string): Error {
  const e = new Error(message);
  e.stack = message;
  return e;
}

export class RtpengineDaemon {
  readonly host = '127.0.0.1';
  readonly opts: RtpengineDaemonOptions;
  readonly dir: string;
  readonly logFile: string;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  private constructor(opts: RtpengineDaemonOptions, dir: string) {
    this.opts = opts;
    this.dir = dir;
    this.logFile = join(dir, 'rtpengine.log');
  }

  get ngPort(): number {
    return this.opts.ngPort;
  }

  /** The daemon's process while it runs (a bench tracks it with the rest of its children). */
  get process(): ChildProcess | undefined {
    return this.#proc;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  static async start(opts: RtpengineDaemonOptions): Promise<RtpengineDaemon> {
    const bin = opts.bin ?? RTPENGINE_BIN;
    if (!existsSync(bin)) {
      const msg = `rtpengine not found at ${bin}: install the Debian package rtpengine-daemon (apt-get install rtpengine-daemon)`;
      console.error(msg);
      throw plainError(msg);
    }
    const d = new RtpengineDaemon(opts, mkdtempSync(join(tmpdir(), 'pay-ivr-rtpengine-')));
    try {
      await d.restart();
    } catch (e) {
      await d.dispose();
      throw e;
    }
    return d;
  }

  /** Starts the daemon (again, after `kill`), with the same ports, appending to the same log. */
  async restart(): Promise<void> {
    const o = this.opts;
    const args = [
      // Not the package's /etc/rtpengine/rtpengine.conf (its CLI and HTTP ports, recording dir).
      '--config-file=none',
      '--table=-1',
      '--foreground',
      '--log-stderr',
      `--log-level=${o.logLevel ?? 6}`,
      `--interface=${this.host}`,
      `--listen-ng=${this.host}:${o.ngPort}`,
      `--listen-cli=${this.host}:${o.cliPort ?? o.ngPort + 5}`,
      `--port-min=${o.portMin}`,
      `--port-max=${o.portMax}`,
      `--dtmf-log-dest=${o.dtmfLogAddress ?? '127.0.0.1'}:${o.dtmfLogPort}`,
      `--pidfile=${join(this.dir, 'rtpengine.pid')}`,
      `--num-threads=${o.threads ?? 2}`,
      `--media-num-threads=${o.mediaThreads ?? 1}`,
      '--http-threads=1',
    ];
    const fd = openSync(this.logFile, 'a');
    const proc = spawn(o.bin ?? RTPENGINE_BIN, args, { stdio: ['ignore', fd, fd], cwd: this.dir });
    closeSync(fd);
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    try {
      await this.#waitForPing(5_000);
    } catch (e) {
      await this.stop();
      throw plainError(`rtpengine did not answer ping: ${(e as Error).message}; log tail: ${this.log().slice(-600)}`);
    }
  }

  async #waitForPing(totalMs: number): Promise<void> {
    const client = new rtpengine.Client({ localAddress: this.host, timeout: 200 });
    client.on('error', () => undefined);
    const t0 = Date.now();
    try {
      for (;;) {
        if (!this.running) throw new Error('rtpengine exited');
        try {
          const r = await client.ping({ host: this.host, port: this.opts.ngPort }, {});
          if (r.result === 'pong') return;
        } catch {
          // not up yet
        }
        if (Date.now() - t0 > totalMs) throw new Error(`no pong within ${totalMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      client.close();
    }
  }

  /** Ends the daemon at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    if (this.running) this.#proc?.kill('SIGKILL');
    await this.#exited;
  }

  /** Stops the daemon (SIGTERM, SIGKILL after 3 s). */
  async stop(): Promise<void> {
    if (!this.running) return;
    const proc = this.#proc as ChildProcess;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Everything the daemon logged so far. */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Stops the daemon and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
