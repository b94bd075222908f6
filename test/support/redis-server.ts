import { spawn } from 'node:child_process';
import { requireTool } from './tools.js';

/** A real redis-server on 127.0.0.1 for a test file: no persistence, stopped by `stop()`. */
export interface RedisServer {
  readonly url: string;
  stop(): Promise<void>;
  /** kill -9 (an outage as a crash). */
  kill(): Promise<void>;
}

/**
 * `persistDir`: an append-only file fsync'd on every write in that directory (a restart keeps the
 * data, as in production); without it nothing is persisted.
 */
export async function startRedisServer(port: number, opts: { persistDir?: string } = {}): Promise<RedisServer> {
  const persist = opts.persistDir !== undefined ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', opts.persistDir] : ['--appendonly', 'no'];
  const server = spawn(requireTool('redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persist, '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    server.once('exit', (code) => reject(new Error(`redis-server exited (${String(code)}): ${out}`)));
    server.once('error', reject);
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    },
    kill: async () => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGKILL');
      await exited;
    },
  };
}
