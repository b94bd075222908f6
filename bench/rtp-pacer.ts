/**
 * RTP pacer benchmark: one MediaEngine with N sessions (default 1000), every session playing a
 * looped prompt to a sink in a separate process, which timestamps every packet and measures the
 * inter-packet gap per stream. Prints gap p50/p99/max, packets/s, loss, engine CPU and RSS per
 * session.
 *
 *   npx tsx bench/rtp-pacer.ts                 # N=1000, 20 s
 *   BENCH_N=200 BENCH_SECONDS=10 BENCH_SRTP=1 npx tsx bench/rtp-pacer.ts
 *
 * Addresses: the engine binds 127.0.0.2 (ports 32000-33999), the sink 127.0.0.3, so the bench
 * never takes a port another test binds on 127.0.0.1.
 */
import { fork } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log.js';
import { MediaEngine, type MediaSession } from '../src/telephony/embedded/media/engine.js';

const N = Number(process.env.BENCH_N ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const WARMUP_MS = 2000;
const SRTP = process.env.BENCH_SRTP === '1';
const ENGINE_HOST = process.env.BENCH_ENGINE_HOST ?? '127.0.0.2';
const SINK_HOST = process.env.BENCH_SINK_HOST ?? '127.0.0.3';
const SINK_SOCKETS = 20;
const SINK_PORT = 32000;
const BUCKET_MS = 0.01;
const BUCKETS = 20_000; // 0..200 ms

type ToSink = { cmd: 'reset' } | { cmd: 'report' };
interface SinkReport {
  packets: number;
  streams: number;
  gaps: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  meanGap: number;
  seqBreaks: number;
  tsBreaks: number;
  elapsedMs: number;
}

// ---- sink (child process) ----------------------------------------------------------------------

interface Stream {
  last: number;
  seq: number;
  ts: number;
}

function runSink(): void {
  const hist = new Uint32Array(BUCKETS + 1);
  const streams = new Map<number, Stream>();
  let packets = 0;
  let gaps = 0;
  let gapSum = 0;
  let max = 0;
  let seqBreaks = 0;
  let tsBreaks = 0;
  let t0 = performance.now();
  const sockets: Socket[] = [];
  const onMessage = (msg: Buffer, rinfo: { port: number }): void => {
    const now = performance.now();
    packets++;
    const seq = msg.readUInt16BE(2);
    const ts = msg.readUInt32BE(4);
    const s = streams.get(rinfo.port);
    if (s === undefined) {
      streams.set(rinfo.port, { last: now, seq, ts });
      return;
    }
    const gap = now - s.last;
    gaps++;
    gapSum += gap;
    if (gap > max) max = gap;
    hist[Math.min(BUCKETS, Math.floor(gap / BUCKET_MS))]!++;
    if (seq !== ((s.seq + 1) & 0xffff)) seqBreaks++;
    else if (ts !== ((s.ts + 160) >>> 0)) tsBreaks++;
    s.last = now;
    s.seq = seq;
    s.ts = ts;
  };
  const pct = (q: number): number => {
    const target = Math.ceil(gaps * q);
    let acc = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      acc += hist[i]!;
      if (acc >= target) return (i + 0.5) * BUCKET_MS;
    }
    return max;
  };
  let bound = 0;
  for (let i = 0; i < SINK_SOCKETS; i++) {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    sock.on('message', onMessage);
    sock.bind(SINK_PORT + i, SINK_HOST, () => {
      if (++bound === SINK_SOCKETS) process.send?.({ ready: true });
    });
    sockets.push(sock);
  }
  process.on('message', (m: ToSink) => {
    if (m.cmd === 'reset') {
      hist.fill(0);
      packets = gaps = gapSum = max = seqBreaks = tsBreaks = 0;
      for (const s of streams.values()) s.last = performance.now();
      t0 = performance.now();
    } else if (m.cmd === 'report') {
      const r: SinkReport = {
        packets,
        streams: streams.size,
        gaps,
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        max,
        meanGap: gapSum / Math.max(1, gaps),
        seqBreaks,
        tsBreaks,
        elapsedMs: performance.now() - t0,
      };
      process.send?.(r, () => {
        for (const s of sockets) s.close();
        process.exit(0);
      });
    }
  });
}

// ---- engine (parent) ---------------------------------------------------------------------------

function offer(port: number): string {
  const lines = ['v=0', 'o=sink 1 1 IN IP4 ' + SINK_HOST, 's=-', `c=IN IP4 ${SINK_HOST}`, 't=0 0'];
  if (SRTP) {
    lines.push(`m=audio ${port} RTP/SAVP 0 101`, `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 5).toString('base64')}`);
  } else {
    lines.push(`m=audio ${port} RTP/AVP 0 101`);
  }
  lines.push('a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', 'a=sendrecv', '');
  return lines.join('\r\n');
}

async function runEngine(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const sink = fork(self, ['sink'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve) => sink.once('message', () => resolve()));

  const engine = new MediaEngine({
    host: ENGINE_HOST,
    portMin: 32000,
    portMax: 32000 + 2 * N + 200,
    promptsDir: join(import.meta.dirname, '..', 'prompts'),
    noRtpTimeoutMs: 3_600_000,
    logger: silentLogger,
    srtp: SRTP ? 'required' : 'optional',
  });
  await engine.start();
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const sessions: MediaSession[] = [];
  for (let i = 0; i < N; i++) {
    const s = engine.createSession();
    if (s.answerOffer(offer(SINK_PORT + (i % SINK_SOCKETS))) === undefined) throw new Error('offer refused');
    // Every call plays looped wait music: the pacer copies prompt audio, not only silence.
    void s.play(['wait-music'], { language: 'en-US', bargeIn: false, loop: true });
    sessions.push(s);
  }
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;

  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  sink.send({ cmd: 'reset' } satisfies ToSink);
  const pacer0 = engine.pacerStats;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - wall0;
  const pacer1 = engine.pacerStats;
  lag.disable();
  const report = await new Promise<SinkReport>((resolve) => {
    sink.once('message', (m) => resolve(m as SinkReport));
    sink.send({ cmd: 'report' } satisfies ToSink);
  });
  await engine.stop();

  const expected = (N * report.elapsedMs) / 20;
  const f = (x: number, d = 2): string => x.toFixed(d);
  const out = {
    sessions: N,
    srtp: SRTP,
    seconds: f(report.elapsedMs / 1000, 1),
    streamsSeen: report.streams,
    packets: report.packets,
    packetsPerSecond: Math.round(report.packets / (report.elapsedMs / 1000)),
    deliveredVsExpected: `${f((100 * report.packets) / expected, 2)}%`,
    gapMs: { p50: f(report.p50), p99: f(report.p99), p999: f(report.p999), max: f(report.max), mean: f(report.meanGap, 3) },
    sequenceBreaks: report.seqBreaks,
    timestampBreaks: report.tsBreaks,
    pacer: { ticks: pacer1.ticks - pacer0.ticks, lateTicks: pacer1.lateTicks - pacer0.lateTicks },
    eventLoopDelayMs: { p50: f(lag.percentile(50) / 1e6), p99: f(lag.percentile(99) / 1e6), max: f(lag.max / 1e6) },
    engineCpuPercentOfOneCore: f((100 * (cpu.user + cpu.system)) / 1000 / wall, 1),
    rssPerSessionKiB: f((rssAfter - rssBefore) / 1024 / N, 1),
    rssTotalMiB: f(rssAfter / 1024 / 1024, 1),
  };
  console.log(JSON.stringify(out, null, 2));
}

if (process.argv[2] === 'sink') runSink();
else
  runEngine().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
