/**
 * Evidence for a media engine change, not a benchmark of pay-ivr itself: what one RTP packet costs
 * Node's dgram on this machine, sent the way media/session.ts sends it (unconnected socket,
 * address and port on every send, literal-address lookup) versus from a connected socket
 * (connect() once, send(buf) per packet). 1000 sockets each send one 172-byte packet per round,
 * back to back like one pacer tick, to a sink in another process; 300 rounds, 20 ms apart.
 *
 *   npx tsx bench/support/udp-send-cost.ts
 *
 * Ports: senders 127.0.0.1:43000-43999, sink 127.0.0.1:44910 (clear of sipp-load's ranges as
 * long as that bench runs with 1000 calls or fewer).
 */
import { fork } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { quantileSorted } from './histogram.js';

const N = 1000;
const ROUNDS = 300;
const FIRST_PORT = 43000;
const SINK_PORT = 44910;
const HOST = '127.0.0.1';
const literal = (address: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void): void => cb(null, address, 4);

function sinkMain(): void {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  let n = 0;
  sock.on('message', () => n++);
  sock.bind(SINK_PORT, HOST, () => process.send?.({ ready: true }));
  process.on('message', () => process.send?.({ received: n }, () => process.exit(0)));
  process.on('disconnect', () => process.exit(0));
}

async function bindAll(connected: boolean): Promise<Socket[]> {
  const out: Socket[] = [];
  for (let i = 0; i < N; i++) {
    const s = createSocket({ type: 'udp4', lookup: literal as never });
    await new Promise<void>((r) => s.bind(FIRST_PORT + i, HOST, () => r()));
    if (connected) await new Promise<void>((r) => s.connect(SINK_PORT, HOST, () => r()));
    out.push(s);
  }
  return out;
}

async function round(connected: boolean): Promise<{ p50: number; p99: number }> {
  const socks = await bindAll(connected);
  const buf = Buffer.alloc(172, 0xff);
  const ms: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t = performance.now();
    if (connected) for (const s of socks) s.send(buf);
    else for (const s of socks) s.send(buf, SINK_PORT, HOST);
    ms.push(performance.now() - t);
    await new Promise((res) => setTimeout(res, 20));
  }
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  ms.sort((a, b) => a - b);
  return { p50: quantileSorted(ms, 0.5), p99: quantileSorted(ms, 0.99) };
}

async function main(): Promise<void> {
  const sink = fork(fileURLToPath(import.meta.url), ['sink'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  process.on('exit', () => sink.kill('SIGKILL'));
  await new Promise<void>((r) => sink.once('message', () => r()));
  console.log(`${N} sockets, one 172-byte packet each per round, ${ROUNDS} rounds; time of one round (= one pacer tick's sends)`);
  for (const connected of [false, true, false, true]) {
    const r = await round(connected);
    console.log(`${connected ? 'connected  ' : 'unconnected'}  round p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  = ${((r.p50 * 1000) / N).toFixed(2)} µs per packet (p50)`);
  }
  const received = await new Promise<number>((r) => {
    sink.once('message', (m) => r((m as { received: number }).received));
    sink.send('report');
  });
  console.log(`sink received ${received} of ${4 * N * ROUNDS}`);
}

if (process.argv[2] === 'sink') sinkMain();
else
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
