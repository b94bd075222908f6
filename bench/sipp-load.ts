/**
 * SIPp load benchmark of the embedded SIP/RTP engine (issue 3): N concurrent calls (default
 * 1,000) held for S seconds (default 60) with prompts playing, on this machine.
 *
 *   npm run bench -- sipp-load                      # 1000 calls x 60 s, 100 calls/s (about 2.5 min)
 *   npm run bench -- sipp-load --calls 200 --hold 20
 *   npm run bench -- sipp-load --profile            # + V8 CPU profile of the server's steady state
 *
 * Three processes besides SIPp: this one (orchestration only), the pay-ivr server
 * (bench/support/load-server.ts: EmbeddedBackend answering and looping prompts) and the RTP sink
 * (bench/support/rtp-sink.ts: timestamps every packet). Each call's SDP points at the sink, so
 * the server's RTP goes there and SIPp only does SIP. Phases:
 *   1. calibration: one call alone for --calibrate seconds; its gap spread is the floor of what
 *      the sink can see (server pacer + sink scheduling, on an idle machine);
 *   2. baseline memory of the idle server after a GC;
 *   3. the load: SIPp places --calls calls at --rate; the measurement window runs from the moment
 *      all of them are answered and playing to the first hang-up; memory is read mid-window
 *      (as is) and at its end after a GC (live heap).
 * Targets are marked PASS/MISS; the exit code is 0 either way (a benchmark, not a test).
 *
 * Knee mode (--knee 1000,1500,1750,2000): one load phase per call count, on the same server
 * and sink; the knee is the largest N with the RTP gap p99 within 20 +/- 5 ms, no gap over 40 ms,
 * no loss and every call completed.
 *
 * Addresses: everything on 127.0.0.1. Server SIP 26060/udp, server RTP from 40000 up, sized from
 * the call count (two ports per call plus 10 %), sink 39900-39907, SIPp SIP 39990 and its (unused)
 * media port 39980.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { formatProfile, summariseProfile, type ProfileSummary } from './support/cpuprofile.js';
import type { HistogramSummary } from './support/histogram.js';
import type { MemorySnapshot, ServerArgs, ServerCounters, WindowStats } from './support/load-server.js';
import { f1, f2, fms, mib } from './support/format.js';
import { machineCpu, machineCpuDelta, processCpuUs } from './support/proc.js';
import { RpcClient, type RpcPush } from './support/rpc.js';
import type { SinkReport } from './support/rtp-sink.js';
import { SippProcess, type SippLoadResult } from './support/sipp-runner.js';
import { BenchChildren, runBench } from './support/children.js';
import { DEFAULT_PACER_SLOTS } from '../src/telephony/embedded/media/pacer.js';
import { availableParallelism } from 'node:os';
import { priorityOption, raiseChild, type MediaThreadPriority } from './support/priority.js';

const ROOT = resolve(import.meta.dirname, '..');
const SIP_PORT = 26060;
const RTP_MIN = 40000;
const RTP_TOP = 65534;
const SINK_PORT = 39900;
const SINK_PORTS = 8;
const SIPP_PORT = 39990;
const SIPP_MEDIA_PORT = 39980;

/** The server's RTP range for a call count: an even port per call, 10 % spare (ports another process holds are skipped). */
function rtpMaxFor(calls: number): number {
  return Math.min(RTP_TOP, RTP_MIN + 2 * Math.ceil(calls * 1.1 + 20) + 1);
}
const MAX_CALLS = Math.floor(((RTP_TOP - RTP_MIN) / 2 - 20) / 1.1);
const SCENARIO = join(ROOT, 'sipp-scenarios/load/uac-hold.xml');

const TARGET = { completedPct: 99.9, gapToleranceMs: 5, inviteTo200P99Ms: 50, bytesPerCall: 100_000 };

interface Options {
  calls: number;
  holdS: number;
  rate: number;
  calibrateS: number;
  profile: boolean;
  out: string | undefined;
  pacerSlots: number;
  returnMs: number;
  unconnected: boolean;
  settleS: number;
  /** Media worker threads of the server (0 = in-process engine; 1 = one worker thread, which rtp.workers does not offer). */
  workers: number;
  /** Call counts of knee mode (empty: one run of --calls). */
  knee: number[];
  imprecise: boolean;
  /** Scheduling priority of the server's media worker threads, and of the sink's thread. */
  priority: MediaThreadPriority;
  sinkPriority: MediaThreadPriority;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '1000' },
      hold: { type: 'string', default: '60' },
      rate: { type: 'string', default: '100' },
      calibrate: { type: 'string', default: '10' },
      profile: { type: 'boolean', default: false },
      out: { type: 'string' },
      'pacer-slots': { type: 'string', default: '0' },
      'return-rtp': { type: 'string', default: '0' },
      unconnected: { type: 'boolean', default: false },
      settle: { type: 'string', default: '0' },
      workers: { type: 'string', default: 'auto' },
      imprecise: { type: 'boolean', default: false },
      priority: { type: 'string', default: 'high' },
      'sink-priority': { type: 'string' },
      knee: { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log('usage: npm run bench -- sipp-load [--calls N=1000] [--hold S=60] [--rate CPS=100] [--calibrate S=10] [--profile] [--out results.json] [--settle S] [--pacer-slots S] [--return-rtp MS] [--unconnected]');
    console.log('  --settle S: after the last call, wait S s (SIP transactions linger 32 s) and read memory again (leak check)');
    console.log('  --return-rtp MS: the sink sends one RTP packet back to every stream each MS ms (0 = off), so the server latches and connects its sockets');
    console.log('  --unconnected: the server never connect()s its RTP sockets (to compare with the default)');
    console.log('  --workers W: media worker threads of the server (default auto = one per core, like rtp.workers; 0 = engine on the main thread; 1 = one worker thread)');
    console.log('  --imprecise: media workers wake on the timer only (no precise sleep of the last millisecond), for comparison');
    console.log('  --priority P: scheduling priority of the media worker threads, normal|high|realtime (default high, like rtp.workerPriority)');
    console.log('  --sink-priority P: the sink\'s (default: as --priority; the sink stands for the far end, another machine, and must not be starved by what it measures)');
    console.log('  --knee N1,N2,...: one load phase per call count (same server), then the largest N that meets the gap targets');
    console.log(`  --pacer-slots S: phase slots of the engine's pacer, 1..20 (default ${DEFAULT_PACER_SLOTS}; 1 = one burst of every stream per 20 ms frame)`);
    process.exit(0);
  }
  const o: Options = {
    calls: Number(values.calls),
    holdS: Number(values.hold),
    rate: Number(values.rate),
    calibrateS: Number(values.calibrate),
    profile: values.profile === true,
    out: values.out,
    pacerSlots: Number(values['pacer-slots']),
    returnMs: Number(values['return-rtp']),
    unconnected: values.unconnected === true,
    settleS: Number(values.settle),
    workers: values.workers === 'auto' ? Math.min(8, availableParallelism()) : Number(values.workers),
    knee: values.knee === '' || values.knee === undefined ? [] : values.knee.split(',').map((x) => Number(x.trim())),
    imprecise: values.imprecise === true,
    priority: priorityOption('--priority', values.priority),
    sinkPriority: priorityOption('--sink-priority', values['sink-priority'] ?? values.priority),
  };
  if (!(Number.isInteger(o.workers) && o.workers >= 0 && o.workers <= 64)) throw new Error('--workers must be auto or 0..64');
  for (const n of o.knee) if (!(Number.isInteger(n) && n >= 1 && n <= MAX_CALLS)) throw new Error(`--knee: call counts must be 1..${MAX_CALLS}`);
  if (!(o.returnMs === 0 || (o.returnMs >= 20 && o.returnMs <= 1000))) throw new Error('--return-rtp must be 0 or 20..1000 ms');
  if (!(o.settleS >= 0 && o.settleS <= 300)) throw new Error('--settle must be 0..300 seconds');
  if (!(Number.isInteger(o.pacerSlots) && o.pacerSlots >= 0 && o.pacerSlots <= 20)) throw new Error('--pacer-slots must be 0..20');
  if (!(Number.isInteger(o.calls) && o.calls >= 1 && o.calls <= MAX_CALLS)) throw new Error(`--calls must be 1..${MAX_CALLS}`);
  if (!(o.holdS >= 2 && o.holdS <= 500)) throw new Error('--hold must be 2..500 seconds');
  if (!(o.rate > 0 && o.rate <= 1000)) throw new Error('--rate must be 1..1000 calls/s');
  if (!(o.calibrateS >= 0)) throw new Error('--calibrate must be >= 0');
  return o;
}

// ---- process bookkeeping: everything started is stopped, also on Ctrl-C and errors ---------------

const children = new BenchChildren('SIPp, the server and the sink');

function forkChild(script: string, args: string[], execArgv: string[]): ChildProcess {
  const c = fork(join(ROOT, script), args, {
    cwd: ROOT,
    execArgv: ['--import', 'tsx', ...execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return children.add(c);
}

/** Resolves with the next push of that name from the child. */
class Pushes {
  readonly #waiters: { name: string; resolve: (p: RpcPush) => void }[] = [];
  readonly #seen: RpcPush[] = [];

  constructor(rpc: RpcClient) {
    rpc.onPush((p) => {
      const i = this.#waiters.findIndex((w) => w.name === p.push);
      if (i >= 0) this.#waiters.splice(i, 1)[0]?.resolve(p);
      else this.#seen.push(p);
    });
  }

  next(name: string): Promise<RpcPush> {
    const i = this.#seen.findIndex((p) => p.push === name);
    if (i >= 0) return Promise.resolve(this.#seen.splice(i, 1)[0] as RpcPush);
    return new Promise((resolve) => this.#waiters.push({ name, resolve }));
  }

  /** Forget pushes nobody waited for (between phases). */
  clear(): void {
    this.#seen.length = 0;
    this.#waiters.length = 0;
  }
}

const sleep = (ms: number): Promise<'timeout'> => new Promise((r) => setTimeout(() => r('timeout'), ms));

// ---- one SIPp phase with a measurement window -----------------------------------------------------

interface PhaseResult {
  sipp: SippLoadResult;
  sink: SinkReport | undefined;
  window: WindowStats | undefined;
  windowNote: string;
  liveAtWindowStart: number;
  midSnapshot: MemorySnapshot | undefined;
  gcSnapshot: MemorySnapshot | undefined;
  machine: { busy: number; user: number; system: number; softirq: number } | undefined;
  sippCpuPct: number | undefined;
  profile: ProfileSummary | undefined;
  profileFile: string | undefined;
}

async function runPhase(
  name: string,
  o: { calls: number; rate: number; holdS: number; profile: boolean },
  ctx: { dir: string; server: RpcClient; sink: RpcClient; serverPushes: Pushes; injection: string },
): Promise<PhaseResult> {
  const { server, sink, serverPushes } = ctx;
  serverPushes.clear();
  await server.request('arm', { target: o.calls });
  const rampS = o.calls / o.rate;
  const sipp = new SippProcess({
    scenario: SCENARIO,
    dir: join(ctx.dir, name),
    target: `127.0.0.1:${SIP_PORT}`,
    localPort: SIPP_PORT,
    mediaPort: SIPP_MEDIA_PORT,
    calls: o.calls,
    ratePerSecond: o.rate,
    holdMs: o.holdS * 1000,
    injectionFile: ctx.injection,
    globalTimeoutS: Math.ceil(rampS + o.holdS + 60),
  });
  children.sipp = sipp;
  const t0 = performance.now();
  const progress = setInterval(() => {
    void server
      .request<ServerCounters>('counters')
      .then((c) => console.error(`  [${name}] ${((performance.now() - t0) / 1000).toFixed(0)} s: ${c.liveCalls} calls playing, ${c.offered} offered`))
      .catch(() => undefined);
  }, 5000);
  try {
    // Window start: every call answered and playing, or the ramp is long over (some failed).
    const allUp = serverPushes.next('all-up');
    const firstEnd = serverPushes.next('first-end');
    const started = await Promise.race([allUp.then(() => 'all-up' as const), sipp.exited.then(() => 'sipp-exit' as const), sleep((rampS + 15) * 1000)]);
    let windowNote = 'all calls up';
    if (started === 'sipp-exit') {
      const code = await sipp.exited;
      return { sipp: sipp.result(code), sink: undefined, window: undefined, windowNote: 'SIPp exited before all calls were up', liveAtWindowStart: 0, midSnapshot: undefined, gcSnapshot: undefined, machine: undefined, sippCpuPct: undefined, profile: undefined, profileFile: undefined };
    }
    const c0 = await server.request<ServerCounters>('counters');
    if (started === 'timeout') windowNote = `ramp timed out: window started with ${c0.liveCalls} of ${o.calls} calls up`;
    await sink.request('start');
    await server.request('window-start', { profile: o.profile });
    const w0 = performance.now();
    const m0 = machineCpu();
    const s0 = sipp.pid !== undefined ? processCpuUs(sipp.pid) : undefined;
    // Mid-window memory, as it is (no GC: a GC here would show up in the gaps).
    const expectedWindowS = Math.max(1, o.holdS - rampS);
    let midSnapshot: MemorySnapshot | undefined;
    const mid = setTimeout(() => {
      void server
        .request<MemorySnapshot>('snapshot', { gc: false })
        .then((s) => (midSnapshot = s))
        .catch(() => undefined);
    }, (expectedWindowS * 1000) / 2);
    const ended = await Promise.race([firstEnd.then((p) => `first call ended (${String(p.reason)})`), sipp.exited.then(() => 'SIPp exited'), sleep((o.holdS + 5) * 1000).then(() => 'deadline')]);
    clearTimeout(mid);
    await sink.request('stop');
    const m1 = machineCpu();
    const s1 = sipp.pid !== undefined ? processCpuUs(sipp.pid) : undefined;
    const wallMs = performance.now() - w0;
    const profileFile = o.profile ? join(ctx.dir, `${name}-server.cpuprofile`) : undefined;
    const window = await server.request<WindowStats>('window-end', { profileFile }, 120_000);
    // Live heap with every call still up but one: a GC, now that the window is closed.
    const gcSnapshot = await server.request<MemorySnapshot>('snapshot', { gc: true });
    const sinkReport = await sink.request<SinkReport>('report');
    windowNote += `; window ended: ${ended}`;
    const code = await sipp.exited;
    return {
      sipp: sipp.result(code),
      sink: sinkReport,
      window,
      windowNote,
      liveAtWindowStart: c0.liveCalls,
      midSnapshot,
      gcSnapshot,
      machine: machineCpuDelta(m0, m1),
      sippCpuPct: s0 !== undefined && s1 !== undefined ? ((s1 - s0) / 1000 / wallMs) * 100 : undefined,
      profile: profileFile !== undefined ? summariseProfile(profileFile, ROOT) : undefined,
      profileFile,
    };
  } finally {
    clearInterval(progress);
    sipp.kill();
    children.sipp = undefined;
  }
}

async function waitIdle(server: RpcClient, timeoutMs: number): Promise<ServerCounters> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const c = await server.request<ServerCounters>('counters');
    if (c.activeCalls === 0 || performance.now() > until) return c;
    await sleep(250);
  }
}

// ---- report -----------------------------------------------------------------------------------------

const mark = (ok: boolean | undefined): string => (ok === undefined ? '' : ok ? 'PASS' : 'MISS');

function gapLine(g: HistogramSummary): string {
  return `${f2(g.p50)} / ${f2(g.p99)} / ${f2(g.p999)} / ${f2(g.max)}`;
}

interface Row {
  figure: string;
  value: string;
  target: string;
  verdict: string;
}

function table(rows: Row[]): string {
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => [r.figure, r.value, r.target, r.verdict][i]!.length), ['figure', 'measured', 'target', ''][i]!.length));
  const line = (c: string[]): string => `| ${c.map((s, i) => s.padEnd(w[i]!)).join(' | ')} |`;
  return [line(['figure', 'measured', 'target', '']), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map((r) => line([r.figure, r.value, r.target, r.verdict]))].join('\n');
}

// ---- knee mode -------------------------------------------------------------------------------------------

interface KneeStep {
  calls: number;
  completed: number;
  gap: HistogramSummary | undefined;
  senderGap: HistogramSummary | undefined;
  lossPackets: number;
  gapsOver40: number;
  streamsOver30: number;
  late: WindowStats['lateTurns'] | undefined;
  inviteP99: number;
  serverCpu: number | undefined;
  machineBusy: number | undefined;
  loadAvg: number;
  rssPerCallKb: number | undefined;
  /** GC of the media threads in the window. */
  mediaGc: WindowStats['gc'] | undefined;
  pass: boolean;
}

async function runKnee(
  o: Options,
  ctx: { dir: string; server: RpcClient; sink: RpcClient; serverPushes: Pushes; injection: string },
  serverExit: Promise<never>,
  baseline: MemorySnapshot,
): Promise<void> {
  const steps: KneeStep[] = [];
  for (const n of o.knee) {
    const holdS = Math.max(o.holdS, Math.ceil(n / o.rate) + 15);
    console.error(`knee: ${n} calls x ${holdS} s`);
    const loadAvg = loadavg()[0] ?? 0;
    const r = await Promise.race([runPhase(`knee-${n}`, { calls: n, rate: o.rate, holdS, profile: false }, ctx), serverExit]);
    await waitIdle(ctx.server, 20_000);
    await sleep(2000);
    const sk = r.sink;
    const gap = sk?.gapsMs;
    const pass =
      r.sipp.successful === n && sk !== undefined && gap !== undefined && gap.count > 0 && Math.abs(gap.p99 - 20) <= TARGET.gapToleranceMs && gap.max <= 40 && sk.missing === 0;
    const step: KneeStep = {
      calls: n,
      completed: r.sipp.successful,
      gap,
      senderGap: r.window?.senderGapsMs,
      lossPackets: sk?.missing ?? Number.NaN,
      gapsOver40: sk?.gapsOver40 ?? Number.NaN,
      streamsOver30: sk?.streamsOver30 ?? Number.NaN,
      late: r.window?.lateTurns,
      inviteP99: r.sipp.inviteTo200Ms.p99,
      serverCpu: r.window?.cpuPercentOfOneCore,
      machineBusy: r.machine !== undefined ? r.machine.busy * cpus().length : undefined,
      loadAvg,
      rssPerCallKb: r.midSnapshot !== undefined ? (r.midSnapshot.rss - baseline.rss) / Math.max(1, r.midSnapshot.liveCalls) / 1000 : undefined,
      mediaGc: r.window?.gc,
      pass,
    };
    steps.push(step);
    console.error(`  ${n}: p99 ${f2(gap?.p99)} max ${f2(gap?.max)} ms, loss ${step.lossPackets}, ${pass ? 'PASS' : 'MISS'}`);
  }
  const knee = steps.filter((x) => x.pass).reduce((m, x) => Math.max(m, x.calls), 0);
  console.log('');
  console.log(`sipp-load knee: ${o.workers >= 1 ? `${o.workers} media worker(s) at ${o.priority} priority` : 'engine on the main thread'}, sink at ${o.sinkPriority} priority, ${o.rate} calls/s, ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  console.log('| calls | completed | gap p50 / p99 / p99.9 / max (ms) at the sink | gaps > 40 ms | streams > 30 ms | loss | sender gap p99 / max | late turns gc / wake-up / burst | media GC scavenges / mark-compacts, longest (ms) | INVITE p99 | server CPU | machine busy (of 200 %) | load avg | RSS/call | |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const x of steps) {
    console.log(
      `| ${x.calls} | ${x.completed} | ${x.gap !== undefined ? gapLine(x.gap) : 'n/a'} | ${x.gapsOver40} | ${x.streamsOver30} | ${x.lossPackets} | ${f2(x.senderGap?.p99)} / ${f2(x.senderGap?.max)} | ${x.late !== undefined ? `${x.late.gc} / ${x.late.wakeUp} / ${x.late.burst}` : 'n/a'} | ${x.mediaGc !== undefined ? `${x.mediaGc.minorCount} / ${x.mediaGc.majorCount}, ${f1(x.mediaGc.maxPauseMs)}` : 'n/a'} | ${fms(x.inviteP99)} | ${f1(x.serverCpu)} % | ${f1(x.machineBusy)} % | ${x.loadAvg.toFixed(2)} | ${f1(x.rssPerCallKb)} kB | ${x.pass ? 'PASS' : 'MISS'} |`,
    );
  }
  console.log(`knee (largest N with p99 within 20 +/- 5 ms, max <= 40 ms, 0 loss, all completed): ${knee > 0 ? knee : 'none of the steps'}`);
  for (const x of steps.filter((s) => s.calls === 1000)) {
    const ok = x.gap !== undefined && x.gap.max <= 30 && x.streamsOver30 === 0;
    console.log(`1,000 calls, no gap over 30 ms: max ${f2(x.gap?.max)} ms at the sink (${f2(x.senderGap?.max)} ms at the sender), ${x.streamsOver30} streams with a gap over 30 ms: ${ok ? 'PASS' : 'MISS'}`);
  }
  writeFileSync(join(ctx.dir, 'knee.json'), JSON.stringify({ options: o, steps, knee }, null, 2));
  if (o.out !== undefined) writeFileSync(o.out, JSON.stringify({ options: o, steps, knee }, null, 2));
  console.log(`files: ${ctx.dir}`);
}

// ---- main ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = options();
  const loadBefore = loadavg()[0] ?? 0;
  const dir = mkdtempSync(join(tmpdir(), 'payivr-sipp-load-'));
  mkdirSync(dir, { recursive: true });
  console.error(`sipp-load: ${o.calls} calls x ${o.holdS} s at ${o.rate} calls/s; files in ${dir}`);

  // The sink: one CSV line per call spreads the calls over the sink's ports.
  const injection = join(dir, 'sink.csv');
  writeFileSync(injection, ['SEQUENTIAL', ...Array.from({ length: SINK_PORTS }, (_, i) => `${SINK_PORT + i};127.0.0.1;`)].join('\n') + '\n');

  const sinkChild = forkChild('bench/support/rtp-sink.ts', ['127.0.0.1', String(SINK_PORT), String(SINK_PORTS), String(o.returnMs)], []);
  const sink = new RpcClient(sinkChild, 'rtp sink');
  raiseChild(sinkChild, 'the sink', o.sinkPriority);
  const sinkReady = new Pushes(sink).next('ready');

  const serverArgs: ServerArgs = {
    sipPort: SIP_PORT,
    rtpMin: RTP_MIN,
    rtpMax: rtpMaxFor(Math.max(o.calls, ...o.knee)),
    promptsDir: join(ROOT, 'prompts'),
    logFile: join(dir, 'server.log'),
    noRtpTimeoutMs: Math.min(600_000, (o.holdS + Math.max(o.calls, ...o.knee) / o.rate + 60) * 1000),
    maxConcurrentCalls: Math.max(o.calls, ...o.knee) + 100,
    pacerSlots: o.pacerSlots,
    connectSockets: !o.unconnected,
    workers: o.workers,
    imprecise: o.imprecise,
    priority: o.priority,
  };
  const serverChild = forkChild('bench/support/load-server.ts', [JSON.stringify(serverArgs)], ['--expose-gc']);
  const server = new RpcClient(serverChild, 'server');
  const serverPushes = new Pushes(server);
  const serverExit = new Promise<never>((_, reject) => serverChild.on('exit', (c, s) => reject(new Error(`server exited (${c ?? s})`))));
  serverExit.catch(() => undefined);
  const sinkExit = new Promise<never>((_, reject) => sinkChild.on('exit', (c, s) => reject(new Error(`sink exited (${c ?? s})`))));
  sinkExit.catch(() => undefined);
  await Promise.race([Promise.all([sinkReady, serverPushes.next('ready')]), serverExit, sinkExit, sleep(30_000).then(() => Promise.reject(new Error('server or sink did not start in 30 s')))]);

  const ctx = { dir, server, sink, serverPushes, injection };
  let calibration: PhaseResult | undefined;
  if (o.calibrateS > 0) {
    console.error(`calibration: 1 call for ${o.calibrateS} s`);
    calibration = await Promise.race([runPhase('calibration', { calls: 1, rate: 1, holdS: o.calibrateS, profile: false }, ctx), serverExit]);
    await waitIdle(server, 10_000);
  }
  await sleep(1000);
  const baseline = await server.request<MemorySnapshot>('snapshot', { gc: true });
  console.error(`baseline: RSS ${mib(baseline.rss)}, heap used ${mib(baseline.heapUsed)}`);

  if (o.knee.length > 0) {
    await runKnee(o, ctx, serverExit, baseline);
    await server.request('stop').catch(() => undefined);
    await sink.request('close').catch(() => undefined);
    return;
  }

  const beforeLoad = await server.request<ServerCounters>('counters');
  console.error(`load: ${o.calls} calls`);
  const load = await Promise.race([runPhase('load', { calls: o.calls, rate: o.rate, holdS: o.holdS, profile: o.profile }, ctx), serverExit]);
  const afterCounters = await waitIdle(server, 15_000);
  await sleep(500);
  const end = await server.request<MemorySnapshot>('snapshot', { gc: true });
  let settled: MemorySnapshot | undefined;
  if (o.settleS > 0) {
    console.error(`settle: ${o.settleS} s idle before the last memory reading`);
    await sleep(o.settleS * 1000);
    settled = await server.request<MemorySnapshot>('snapshot', { gc: true });
  }
  await server.request('stop').catch(() => undefined);
  await sink.request('close').catch(() => undefined);

  // ---- figures ----
  const s = load.sipp;
  const completedPct = (100 * s.successful) / o.calls;
  const rows: Row[] = [];
  rows.push({ figure: 'calls attempted / completed', value: `${o.calls} / ${s.successful} (${completedPct.toFixed(2)} %)`, target: `>= ${TARGET.completedPct} %`, verdict: mark(completedPct >= TARGET.completedPct) });
  rows.push({ figure: 'INVITE-to-200 p50 / p99 / max (ms)', value: `${fms(s.inviteTo200Ms.p50)} / ${fms(s.inviteTo200Ms.p99)} / ${fms(s.inviteTo200Ms.max)} (n=${s.inviteTo200Ms.count})`, target: `p99 < ${TARGET.inviteTo200P99Ms}`, verdict: mark(s.inviteTo200Ms.count > 0 ? s.inviteTo200Ms.p99 < TARGET.inviteTo200P99Ms : false) });
  const sk = load.sink;
  if (sk !== undefined) {
    const within = sk.gapsMs.count > 0 ? (100 * (sk.gapsMs.count - sk.gapsOutside15to25)) / sk.gapsMs.count : Number.NaN;
    const p99ok = Math.abs(sk.gapsMs.p99 - 20) <= TARGET.gapToleranceMs;
    rows.push({ figure: 'RTP gap p50 / p99 / p99.9 / max (ms)', value: gapLine(sk.gapsMs), target: `p99 within 20 +/- ${TARGET.gapToleranceMs}`, verdict: mark(p99ok) });
    if (load.window !== undefined) rows.push({ figure: 'sender-side gap p50 / p99 / p99.9 / max (ms)', value: gapLine(load.window.senderGapsMs), target: '', verdict: '' });
    rows.push({ figure: 'RTP gaps within 15..25 ms', value: `${f2(within)} % of ${sk.gapsMs.count}`, target: '>= 99 %', verdict: mark(within >= 99) });
    rows.push({ figure: 'RTP streams / packets/s / audio', value: `${sk.streams} / ${sk.packetsPerSecond.toFixed(0)} / ${f1((100 * sk.audioPackets) / Math.max(1, sk.packets))} %`, target: `${o.calls} / ${o.calls * 50}`, verdict: '' });
    rows.push({ figure: 'RTP loss / reordered', value: `${(100 * sk.lossRatio).toFixed(3)} % (${sk.missing}) / ${sk.reordered}`, target: '', verdict: '' });
    rows.push({ figure: 'streams with a gap > 25 ms / > 30 ms', value: `${sk.streamsWithLateGap} / ${sk.streamsOver30}`, target: '', verdict: '' });
    rows.push({ figure: 'gaps > 30 ms / > 40 ms', value: `${sk.gapsOver30} / ${sk.gapsOver40}`, target: '', verdict: '' });
  }
  if (calibration?.sink !== undefined) rows.push({ figure: 'calibration (1 call) gap p50/p99/p99.9/max', value: gapLine(calibration.sink.gapsMs), target: '', verdict: '' });
  const full = load.midSnapshot;
  if (full !== undefined) {
    const perCall = (full.rss - baseline.rss) / Math.max(1, full.liveCalls);
    rows.push({ figure: 'RSS baseline / at full load', value: `${mib(baseline.rss)} / ${mib(full.rss)} (${full.liveCalls} calls)`, target: '', verdict: '' });
    rows.push({ figure: 'RSS per call', value: `${(perCall / 1000).toFixed(1)} kB`, target: `< ${TARGET.bytesPerCall / 1000} kB`, verdict: mark(perCall < TARGET.bytesPerCall) });
    rows.push({ figure: 'heapUsed per call (as is)', value: `${((full.heapUsed - baseline.heapUsed) / Math.max(1, full.liveCalls) / 1000).toFixed(1)} kB`, target: '', verdict: '' });
  }
  if (load.gcSnapshot !== undefined) {
    const g = load.gcSnapshot;
    rows.push({ figure: 'heapUsed per call (after GC)', value: `${((g.heapUsed - baseline.heapUsed) / Math.max(1, g.liveCalls) / 1000).toFixed(1)} kB (${g.liveCalls} calls)`, target: '', verdict: '' });
    rows.push({ figure: 'external+arrayBuffers per call (after GC)', value: `${((g.external - baseline.external) / Math.max(1, g.liveCalls) / 1000).toFixed(1)} kB`, target: '', verdict: '' });
  }
  rows.push({ figure: 'RSS / heapUsed after all calls ended', value: `${mib(end.rss)} / ${mib(end.heapUsed)}`, target: '', verdict: '' });
  if (settled !== undefined) rows.push({ figure: `RSS / heapUsed ${o.settleS} s later`, value: `${mib(settled.rss)} / ${mib(settled.heapUsed)} (baseline heap ${mib(baseline.heapUsed)})`, target: '', verdict: '' });
  const w = load.window;
  if (w !== undefined) {
    rows.push({ figure: 'server CPU in window (% of one core)', value: `${f1(w.cpuPercentOfOneCore)} % (user ${f1(w.cpuUserUs / 10 / w.wallMs)}, sys ${f1(w.cpuSystemUs / 10 / w.wallMs)})`, target: '', verdict: '' });
    rows.push({ figure: 'main-thread event-loop delay p50/p99/max (ms)', value: `${f2(w.eventLoopDelayMs.p50)} / ${f2(w.eventLoopDelayMs.p99)} / ${f2(w.eventLoopDelayMs.max)}`, target: '', verdict: '' });
    rows.push({ figure: 'RTP sends from connected sockets', value: `${w.rtpSends.connected} of ${w.rtpSends.total} (${f1((100 * w.rtpSends.connected) / Math.max(1, w.rtpSends.total))} %)`, target: '', verdict: '' });
    rows.push({ figure: 'pacer slot bursts / late bursts', value: `${w.pacerTicks} / ${w.pacerLateTicks}`, target: '', verdict: '' });
    rows.push({ figure: 'pacer wake-up interval p50/p99/p99.9/max', value: gapLine(w.tickIntervalMs), target: '', verdict: '' });
    rows.push({ figure: 'pacer burst duration p50/p99/p99.9/max', value: gapLine(w.tickSpanMs), target: '', verdict: '' });
    rows.push({ figure: 'turn gap p99 by place in burst (1st..10th tenth)', value: w.gapByPositionMs.map((g) => f1(g.p99)).join(' '), target: '', verdict: '' });
    rows.push({ figure: 'GC of the media threads: scavenges / mark-compacts', value: `${w.gc.minorCount} (${f1(w.gc.minorMs)} ms) / ${w.gc.majorCount} (${f1(w.gc.majorMs)} ms), longest ${f1(w.gc.maxPauseMs)} ms`, target: '', verdict: '' });
    if (w.mainGc !== undefined) rows.push({ figure: 'GC of the main thread (SIP)', value: `${w.mainGc.minorCount} (${f1(w.mainGc.minorMs)} ms) / ${w.mainGc.majorCount} (${f1(w.mainGc.majorMs)} ms), longest ${f1(w.mainGc.maxPauseMs)} ms`, target: '', verdict: '' });
    rows.push({ figure: 'late turns (> 25 ms) at the sender: gc / wake-up / burst', value: `${w.lateTurns.total}: ${w.lateTurns.gc} / ${w.lateTurns.wakeUp} / ${w.lateTurns.burst}`, target: '', verdict: '' });
    rows.push({ figure: 'media threads / worst event-loop delay p99, max', value: `${w.workers >= 1 ? `${w.workers} worker(s)` : 'main thread'} / ${f2(w.mediaEventLoopDelayMs.p99)}, ${f2(w.mediaEventLoopDelayMs.max)} ms`, target: '', verdict: '' });
    rows.push({ figure: 'window', value: `${(w.wallMs / 1000).toFixed(1)} s`, target: '', verdict: '' });
  }
  if (sk !== undefined) rows.push({ figure: 'sink CPU / event-loop delay p99', value: `${f1(sk.sinkCpuPercentOfOneCore)} % / ${f2(sk.sinkEventLoopDelayMs.p99)} ms`, target: '', verdict: '' });
  if (load.sippCpuPct !== undefined) rows.push({ figure: 'SIPp CPU (% of one core)', value: `${f1(load.sippCpuPct)} %`, target: '', verdict: '' });
  if (load.machine !== undefined) {
    rows.push({ figure: 'machine CPU busy (all cores)', value: `${f1(load.machine.busy)} % of ${cpus().length} cores (user ${f1(load.machine.user)}, sys ${f1(load.machine.system)}, softirq ${f1(load.machine.softirq)})`, target: '', verdict: '' });
    if (w !== undefined && sk !== undefined && load.sippCpuPct !== undefined) {
      // Busy core-time not charged to the three bench processes: kernel softirq (loopback
      // delivery) and anything else running on the machine.
      const others = (load.machine.busy * cpus().length) - w.cpuPercentOfOneCore - sk.sinkCpuPercentOfOneCore - load.sippCpuPct;
      rows.push({ figure: 'CPU outside server/sink/SIPp (% of one core)', value: others < 0 ? `${f1(others)} % (about 0: sampling noise)` : `${f1(others)} %`, target: '', verdict: '' });
    }
  }
  rows.push({ figure: 'load average before the run (1 min)', value: loadBefore.toFixed(2), target: '', verdict: '' });

  console.log('');
  console.log(`sipp-load: ${o.calls} calls x ${o.holdS} s, ${o.rate} calls/s, ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${release()}`);
  console.log(`pacer: ${o.pacerSlots > 0 ? o.pacerSlots : DEFAULT_PACER_SLOTS} phase slots per 20 ms frame${o.pacerSlots > 0 ? '' : ' (engine default)'}; wake-up and burst figures are per slot`);
  console.log(`RTP sockets: ${o.unconnected ? 'never connected' : 'connected once latched'}; return RTP from the sink: ${o.returnMs > 0 ? `one packet per stream every ${o.returnMs} ms` : 'none (no latching)'}`);
  console.log(`media: ${o.workers >= 1 ? `${o.workers} worker thread(s)${o.imprecise ? ', timer-only wake-ups' : ', precise wake-ups'}, ${o.priority} priority` : 'engine on the main thread'}; sink at ${o.sinkPriority} priority`);
  console.log(`window: ${load.windowNote}`);
  console.log(table(rows));
  if (Object.keys(s.failures).length > 0 || s.exitCode !== 0) console.log(`SIPp exit ${s.exitCode}, failures: ${JSON.stringify(s.failures)}, retransmissions ${s.retransmissions}`);
  if (s.errorsTail.trim() !== '') console.log(`SIPp errors (tail):\n${s.errorsTail.trim().split('\n').slice(-8).join('\n')}`);
  const endedInLoad: Record<string, number> = {};
  for (const [k, v] of Object.entries(afterCounters.ended)) if (v - (beforeLoad.ended[k] ?? 0) > 0) endedInLoad[k] = v - (beforeLoad.ended[k] ?? 0);
  console.log(
    `server, load phase: ${JSON.stringify({ offered: afterCounters.offered - beforeLoad.offered, answered: afterCounters.answered - beforeLoad.answered, answerFailed: afterCounters.answerFailed - beforeLoad.answerFailed, playFailed: afterCounters.playFailed - beforeLoad.playFailed, ended: endedInLoad, stillActive: afterCounters.activeCalls })}`,
  );
  if (load.profile !== undefined) {
    console.log(`\nserver CPU profile of the window (${load.profileFile}):`);
    console.log(formatProfile(load.profile));
  }
  const results = { options: o, date: new Date().toISOString(), dir, calibration, baseline, load, end, settled, server: afterCounters, rows };
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 2));
  if (o.out !== undefined) writeFileSync(o.out, JSON.stringify(results, null, 2));
  console.log(`\nfiles (SIPp stats, response times, server log, results.json): ${dir}`);
}

runBench(main, children);
