import { spawn } from 'node:child_process';

/** A real redis-server on 127.0.0.1 for a test file: no persistence, stopped by `stop()`. */
export interface RedisServer {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startRedisServer(port: number): Promise<RedisServer> {
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
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
      if (server.exitCode !== null) return;
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    },
  };
}
