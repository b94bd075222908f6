/**
 * The edge role under load (issue 18, Agent Assist): pay-ivr as the B2BUA between a carrier and
 * Genesys, every call's media anchored on one real rtpengine (userspace forwarding, `--table=-1`).
 * How many calls does the pair relay on this machine, and what does it add to the calls?
 *
 *   npm run build && npm run bench -- edge-relay                      # steps 50,100,250,400
 *   npm run bench -- edge-relay --steps 50,100,250 --hold 30 --rate 50
 *   npm run bench -- edge-relay --calls 250                           # one step of 250
 *
 * What runs (127.0.0.1; run it in a network namespace of its own, the ports are fixed):
 * - rtpengine (test/support/rtpengine.ts, the tests' starter): ng 22222, media 40000-53999 (below the namespace's ephemeral range);
 * - pay-ivr as it ships: `node dist/cli.js serve` with edge.enabled, SIP 5060/udp toward the
 *   carrier, Genesys at 5070/udp, the real rtpengine anchor. pay-ivr carries SIP and ng only:
 *   the media goes through rtpengine, never through pay-ivr;
 * - per step: SIPp as Genesys (UAS on 5070, sipp-scenarios/edge/genesys-answer.xml with the SDP
 *   naming the sink's port), SIPp as the carrier (UAC on 5080, carrier-call.xml held for --hold
 *   seconds, the SDP naming the caller's port), bench/support/rtp-caller.ts in driven mode (one
 *   event loop sends every call's 20 ms RTP toward rtpengine's carrier-side port), and
 *   bench/support/rtp-sink.ts on the Genesys side (times every relayed packet, and sends each
 *   call's RTP back every 20 ms, so rtpengine relays both directions as in a real call).
 *
 * Where each call's media goes: rtpengine's carrier-side port is only in the SDP of the 200 OK
 * that SIPp received. The bench asks rtpengine instead (ng `list`, then one `query` per new
 * call, during the ramp only, never in the measurement window), and tells the caller where to
 * send. Those queries cost rtpengine a little CPU in the ramp figure.
 *
 * Scheduling: every thread of everything the bench starts runs at --priority (default high, nice
 * -10; realtime: SCHED_FIFO 10). On a machine shared with other work, the far ends (the caller,
 * the sink, both SIPps) would otherwise be starved too, and their lateness read as the edge's.
 *
 * Figures per step: INVITE-to-200 at the carrier (SIPp, 1 ms resolution), packets lost on the
 * relayed path (sequence gaps at the sink; the return path at the caller), the jitter the relay
 * adds (the sink's interarrival p99 minus the caller's send-to-send p99, and the same for the
 * RFC 3550 jitter estimate), and CPU of pay-ivr and rtpengine in the ramp (SIP + ng) and in the
 * window (media). The measurement window opens 2 s after every call is up and closes 2 s before
 * the first call's hold ends.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import rtpengine from 'rtpengine-client';
import { f1, f2 } from './support/format.js';
import { machineCpu, machineCpuDelta, processCpuUs } from './support/proc.js';
import type { CallerReport } from './support/rtp-caller.js';
import type { SinkReport } from './support/rtp-sink.js';
import { priorityOption, raiseProcess } from './support/priority.js';
import { RpcClient, type RpcPush } from './support/rpc.js';
import { SippProcess, type SippLoadResult } from './support/sipp-runner.js';
import { BenchChildren, runBench } from './support/children.js';
import { RtpengineDaemon } from '../test/support/rtpengine.js';
import { requireTool } from '../test/support/tools.js';

const ROOT = resolve(import.meta.dirname, '..');
const HOST = '127.0.0.1';
const EDGE_SIP = 5060;
const GENESYS_SIP = 5070;
const GENESYS_SIPP_MEDIA = 5072;
const CARRIER_SIP = 5080;
const CARRIER_SIPP_MEDIA = 5082;
const CALLER_PORT = 30000;
const SINK_PORT = 31000;
const NG_PORT = 22222;
const DTMF_LOG_PORT = 22300;
const MEDIA_MIN = 40000;
const MEDIA_MAX = 53999;
const PCAP = 'sipp-scenarios/genesys/pcap/approved-visa.pcap';
const TARGET = { calls: 250, addedJitterP99Ms: 5, setupP99Ms: 50 };
/** The window opens this long after the last call is up and closes this long before the first call's hold ends. */
const SETTLE_MS = 2000;

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '50,100,250,400' },
    calls: { type: 'string' },
    hold: { type: 'string', default: '30' },
    rate: { type: 'string', default: '50' },
    'rtpengine-threads': { type: 'string', default: String(Math.max(2, cpus().length)) },
    priority: { type: 'string', default: 'high' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help === true) {
  console.log('usage: npm run bench -- edge-relay [--steps 50,100,250,400 | --calls N] [--hold S=30] [--rate CPS=50] [--rtpengine-threads T] [--priority normal|high|realtime]');
  console.log('  --priority: every thread of everything the bench starts (rtpengine, pay-ivr, both SIPps, the RTP peers); default high (nice -10), so that others\' load on a shared machine does not read as the edge\'s');
  console.log('  each step: N calls set up at --rate calls/s through pay-ivr (edge role) and rtpengine, held --hold s with RTP both ways, then hung up');
  console.log('  runs dist/ (npm run build first); run it in a network namespace of its own (fixed ports 5060-5082, 22222, 30000, 31000, 40000-53999)');
  process.exit(0);
}
const steps = (values.calls ?? values.steps).split(',').map((s) => Number(s.trim()));
const holdS = Number(values.hold);
const rate = Number(values.rate);
const rtpThreads = Number(values['rtpengine-threads']);
const priority = priorityOption('--priority', values.priority);
if (steps.length === 0 || !steps.every((n) => Number.isInteger(n) && n >= 1 && n <= 4000)) throw new Error('--steps / --calls: calls 1..4000, comma-separated');
if (!(Number.isInteger(holdS) && holdS >= 10 && holdS <= 3600)) throw new Error('--hold must be 10..3600 s');
if (!(rate > 0 && rate <= 500)) throw new Error('--rate must be 1..500 calls/s');
if (!(Number.isInteger(rtpThreads) && rtpThreads >= 1 && rtpThreads <= 64)) throw new Error('--rtpengine-threads must be 1..64');
for (const n of steps) {
  if (holdS * 1000 < (n / rate) * 1000 + 2 * SETTLE_MS + 5000) throw new Error(`--hold ${holdS} s is too short for ${n} calls at ${rate}/s: the ramp takes ${(n / rate).toFixed(1)} s and the window needs 5 s more than 2 x ${SETTLE_MS / 1000} s`);
}

const children = new BenchChildren('SIPp, pay-ivr, rtpengine and the RTP peers');
const sleep = (ms: number): Promise<'timeout'> => new Promise((r) => setTimeout(() => r('timeout'), ms));

/** One replacement in a scenario of sipp-scenarios/edge that must happen (the scenario changed otherwise). */
function replaceIn(text: string, pattern: string | RegExp, by: string, what: string): string {
  const out = text.replace(pattern, by);
  if (out === text) throw new Error(`sipp-scenarios/edge: ${what} not found (the scenario changed: update bench/edge-relay.ts)`);
  return out;
}

/** The two scenarios of this run, from sipp-scenarios/edge (no copy in the repository): SDP ports of the RTP peers, the carrier's hold from -d. */
function writeScenarios(dir: string): { carrier: string; genesys: string } {
  const edge = join(ROOT, 'sipp-scenarios/edge');
  let carrier = readFileSync(join(edge, 'carrier-call.xml'), 'utf8');
  carrier = replaceIn(carrier, 'm=audio [media_port] ', `m=audio ${CALLER_PORT} `, 'carrier-call.xml: m=audio [media_port]');
  carrier = replaceIn(carrier, /<pause milliseconds="\d+" \/>/, '<pause />', 'carrier-call.xml: <pause milliseconds=.../>');
  const genesys = replaceIn(readFileSync(join(edge, 'genesys-answer.xml'), 'utf8'), 'm=audio [media_port] ', `m=audio ${SINK_PORT} `, 'genesys-answer.xml: m=audio [media_port]');
  const out = { carrier: join(dir, 'carrier-call.xml'), genesys: join(dir, 'genesys-answer.xml') };
  writeFileSync(out.carrier, carrier);
  writeFileSync(out.genesys, genesys);
  return out;
}

/** pay-ivr's config: the edge role toward SIPp-as-Genesys and this rtpengine; admission wide enough for the ramp. */
function writeConfig(dir: string, maxCalls: number): string {
  const config = {
    sip: { listen: [{ transport: 'udp', host: HOST, port: EDGE_SIP }] },
    security: { ratePerSource: Math.max(100, Math.ceil(rate * 4)), maxConcurrentCalls: maxCalls + 100 },
    admin: { enabled: false },
    journal: { dataDir: join(dir, 'data') },
    log: { level: 'info', file: join(dir, 'pay-ivr.log') },
    edge: {
      enabled: true,
      genesys: { host: HOST, port: GENESYS_SIP, transport: 'udp' },
      rtpengine: { host: HOST, port: NG_PORT, dtmfLogAddress: HOST, dtmfLogPort: DTMF_LOG_PORT },
    },
  };
  const file = join(dir, 'pay-ivr.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** pay-ivr as it ships (dist/cli.js serve), once its log says it started. */
async function startPayIvr(dir: string, configFile: string): Promise<ChildProcess> {
  const cli = join(ROOT, 'dist/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const out = openSync(join(dir, 'pay-ivr.out'), 'w');
  const child = spawn(process.execPath, [cli, 'serve', '--config', configFile], { cwd: dir, stdio: ['ignore', out, out] });
  closeSync(out);
  children.add(child);
  const log = join(dir, 'pay-ivr.log');
  const t0 = performance.now();
  while (performance.now() - t0 < 20_000) {
    if (child.exitCode !== null) throw new Error(`pay-ivr exited (${child.exitCode}): ${readFileSync(join(dir, 'pay-ivr.out'), 'utf8').slice(-800)}`);
    if (existsSync(log) && readFileSync(log, 'utf8').includes('"pay-ivr started"')) {
      raiseProcess(child.pid, 'pay-ivr', priority);
      return child;
    }
    await sleep(100);
  }
  throw new Error('pay-ivr did not start in 20 s');
}

async function stopChild(c: ChildProcess | undefined, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill(signal);
  if ((await Promise.race([exited, sleep(graceMs)])) === 'timeout') {
    c.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

/** An RTP peer (rtp-caller / rtp-sink) forked for one step, once its ports are bound. */
async function forkPeer(file: string, args: string[], name: string): Promise<{ child: ChildProcess; rpc: RpcClient }> {
  const child = fork(join(ROOT, 'bench/support', file), args, { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const rpc = new RpcClient(child, name);
  const ready = new Promise<RpcPush>((r) => rpc.onPush((p) => p.push === 'ready' && r(p)));
  const exited = new Promise<never>((_, reject) => child.on('exit', (c, sig) => reject(new Error(`${name} exited (${c ?? sig})`))));
  exited.catch(() => undefined);
  await Promise.race([ready, exited, sleep(30_000).then(() => Promise.reject(new Error(`${name} did not start in 30 s`)))]);
  raiseProcess(child.pid, name, priority);
  return { child, rpc };
}

/** SIPp as Genesys: a UAS that answers `calls` calls and takes their BYE. */
function startGenesys(scenario: string, dir: string, calls: number): { child: ChildProcess; exited: Promise<number> } {
  mkdirSync(dir, { recursive: true });
  const out = openSync(join(dir, 'sipp.out'), 'w');
  const args = ['-sf', scenario, '-i', HOST, '-p', String(GENESYS_SIP), '-mi', HOST, '-mp', String(GENESYS_SIPP_MEDIA), '-t', 'u1', '-m', String(calls), '-trace_err', '-error_file', join(dir, 'errors.log'), '-nostdin'];
  const child = spawn(requireTool('sipp'), args, { cwd: dir, stdio: ['ignore', out, out] });
  closeSync(out);
  children.add(child);
  const exited = new Promise<number>((r) => child.on('exit', (c, s) => r(c ?? (s !== null ? 128 : -1))));
  return { child, exited };
}

interface NgStream {
  'local port'?: number;
  endpoint?: { address?: string; port?: number };
}
interface NgQuery {
  tags?: Record<string, { medias?: { streams?: NgStream[] }[] }>;
}

/**
 * Finds each new call's carrier-side rtpengine port (ng list, then query) and starts the caller's
 * stream to it; resolves when `calls` streams were started or at the deadline.
 */
async function discoverCalls(ng: rtpengine.UdpClient, caller: RpcClient, calls: number, deadline: number, onFirst: () => void): Promise<number> {
  const dest = { host: HOST, port: NG_PORT };
  const done = new Set<string>();
  while (done.size < calls && performance.now() < deadline) {
    const list = await ng.list(dest, { limit: 100_000 }).catch(() => undefined);
    const ids = Array.isArray(list?.['calls']) ? (list['calls'] as unknown[]).filter((c): c is string => typeof c === 'string') : [];
    for (const id of ids) {
      if (done.has(id)) continue;
      const q = (await ng.query(dest, { 'call-id': id }).catch(() => undefined)) as NgQuery | undefined;
      const streams = Object.values(q?.tags ?? {}).flatMap((t) => (t.medias ?? []).flatMap((m) => m.streams ?? []));
      const toCaller = streams.find((s) => s.endpoint?.port === CALLER_PORT && s['local port'] !== undefined);
      // The Genesys leg must be answered too, or rtpengine has nowhere to relay to yet.
      const toSink = streams.find((s) => s.endpoint?.port === SINK_PORT);
      if (toCaller === undefined || toSink === undefined) continue;
      await caller.request('call', { address: HOST, port: toCaller['local port'] });
      if (done.size === 0) onFirst();
      done.add(id);
    }
    if (done.size < calls) await sleep(100);
  }
  return done.size;
}

interface StepResult {
  calls: number;
  up: number;
  sipp: SippLoadResult;
  sink: SinkReport | undefined;
  caller: CallerReport | undefined;
  rampS: number;
  cpu: { payIvrRamp: number; rtpengineRamp: number; payIvrWindow: number; rtpengineWindow: number; machineWindow: number };
  leftInRtpengine: number;
  /** 1-minute load average when the step started (the machine may be shared). */
  loadBefore: number;
  note: string;
}

const cpuPct = (pid: number | undefined, from: number | undefined, ms: number): number => {
  const now = pid !== undefined ? processCpuUs(pid) : undefined;
  return now !== undefined && from !== undefined ? ((now - from) / 1000 / Math.max(1, ms)) * 100 : Number.NaN;
};

async function runStep(n: number, dir: string, scenarios: { carrier: string; genesys: string }, payIvr: ChildProcess, rtp: RtpengineDaemon, ng: rtpengine.UdpClient): Promise<StepResult> {
  const loadBefore = loadavg()[0] ?? 0;
  const stepDir = join(dir, `step-${n}`);
  mkdirSync(stepDir, { recursive: true });
  const sink = await forkPeer('rtp-sink.ts', [HOST, String(SINK_PORT), '1', '20'], 'rtp sink');
  const caller = await forkPeer('rtp-caller.ts', [HOST, String(CALLER_PORT), '1', join(ROOT, PCAP), 'driven'], 'rtp caller');
  const genesys = startGenesys(scenarios.genesys, join(stepDir, 'genesys'), n);
  await sleep(500);
  raiseProcess(genesys.child.pid, 'SIPp (Genesys)', priority);
  const rtpPid = rtp.process?.pid;
  const ramp0 = { t: performance.now(), pay: processCpuUs(payIvr.pid as number), rtp: rtpPid !== undefined ? processCpuUs(rtpPid) : undefined };
  const sipp = new SippProcess({
    scenario: scenarios.carrier,
    dir: join(stepDir, 'carrier'),
    target: `${HOST}:${EDGE_SIP}`,
    localPort: CARRIER_SIP,
    mediaPort: CARRIER_SIPP_MEDIA,
    calls: n,
    ratePerSecond: rate,
    holdMs: holdS * 1000,
    service: '+18005550123',
    globalTimeoutS: Math.ceil(n / rate + holdS + 60),
  });
  children.sipp = sipp;
  // SIPp's threads exist once it has read its scenario: raise them a moment after the start.
  setTimeout(() => raiseProcess(sipp.pid, 'SIPp (carrier)', priority), 100);
  let firstUp = 0;
  const up = await discoverCalls(ng, caller.rpc, n, performance.now() + (n / rate + 30) * 1000, () => (firstUp = performance.now()));
  const rampMs = performance.now() - ramp0.t;
  const cpu = { payIvrRamp: cpuPct(payIvr.pid, ramp0.pay, rampMs), rtpengineRamp: cpuPct(rtpPid, ramp0.rtp, rampMs), payIvrWindow: Number.NaN, rtpengineWindow: Number.NaN, machineWindow: Number.NaN };
  let note = up === n ? `all ${n} calls up in ${(rampMs / 1000).toFixed(1)} s` : `${up} of ${n} calls up by the deadline`;
  let sinkReport: SinkReport | undefined;
  let callerReport: CallerReport | undefined;
  // The first call's hold ends about holdS after its 200 OK; the window ends SETTLE_MS before that.
  const windowEnd = firstUp + holdS * 1000 - SETTLE_MS;
  await sleep(SETTLE_MS);
  const windowMs = windowEnd - performance.now();
  if (up > 0 && windowMs >= 3000 && sipp.child.exitCode === null) {
    const w0 = { t: performance.now(), pay: processCpuUs(payIvr.pid as number), rtp: rtpPid !== undefined ? processCpuUs(rtpPid) : undefined, m: machineCpu() };
    await Promise.all([sink.rpc.request('start'), caller.rpc.request('start')]);
    await Promise.race([sleep(windowMs), sipp.exited]);
    await Promise.all([sink.rpc.request('stop'), caller.rpc.request('stop')]);
    const wMs = performance.now() - w0.t;
    cpu.payIvrWindow = cpuPct(payIvr.pid, w0.pay, wMs);
    cpu.rtpengineWindow = cpuPct(rtpPid, w0.rtp, wMs);
    cpu.machineWindow = machineCpuDelta(w0.m, machineCpu()).busy * cpus().length;
    sinkReport = await sink.rpc.request<SinkReport>('report');
    callerReport = await caller.rpc.request<CallerReport>('report');
    note += `; window ${(wMs / 1000).toFixed(1)} s`;
  } else note += '; no measurement window (too few calls up or too little hold left)';
  // Every call hangs up at the end of its hold; bounded by SIPp's own global timeout, then killed.
  const code = await Promise.race([sipp.exited, sleep((n / rate + holdS + 90) * 1000).then(() => -2)]);
  if (code === -2) sipp.kill();
  const result = sipp.result(code === -2 ? await sipp.exited : code);
  children.sipp = undefined;
  if ((await Promise.race([genesys.exited, sleep(10_000)])) === 'timeout') await stopChild(genesys.child, 'SIGKILL', 1000);
  await caller.rpc.request('hangup-all').catch(() => undefined);
  await Promise.all([caller.rpc.request('close').catch(() => undefined), sink.rpc.request('close').catch(() => undefined)]);
  await Promise.all([stopChild(caller.child, 'SIGTERM', 3000), stopChild(sink.child, 'SIGTERM', 3000)]);
  // pay-ivr deletes each rtpengine call at the BYE: what is left is a leak (or a delete still on its way).
  await sleep(1000);
  const left = await ng.list({ host: HOST, port: NG_PORT }, { limit: 100_000 }).catch(() => undefined);
  const leftInRtpengine = Array.isArray(left?.['calls']) ? (left['calls'] as unknown[]).length : -1;
  return { calls: n, up, sipp: result, sink: sinkReport, caller: callerReport, rampS: rampMs / 1000, cpu, leftInRtpengine, loadBefore, note };
}

/** Relay-added p99: what the sink measured minus what the caller sent. */
function added(r: StepResult): { gapP99: number; jitterP99: number } {
  if (r.sink === undefined || r.caller === undefined) return { gapP99: Number.NaN, jitterP99: Number.NaN };
  return { gapP99: r.sink.gapsMs.p99 - r.caller.sendGapsMs.p99, jitterP99: r.sink.jitterMs.p99 - r.caller.sendJitterMs.p99 };
}

function holds(r: StepResult): boolean {
  const a = added(r);
  return r.up === r.calls && r.sipp.successful === r.calls && r.sipp.inviteTo200Ms.p99 < TARGET.setupP99Ms && a.gapP99 < TARGET.addedJitterP99Ms;
}

function print(results: StepResult[], dir: string): void {
  console.log('');
  console.log(`edge-relay: pay-ivr (edge role, dist/) + rtpengine (userspace, --table=-1, ${rtpThreads} threads), everything at ${priority} priority, ${rate} calls/s, hold ${holdS} s, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}`);
  console.log('| calls | up / completed (failed) | set-up INVITE→200 p50 / p99 / max (ms) | relayed packets / lost (→Genesys; ←carrier) | interarrival p99: sent → received = added (ms) | RFC 3550 jitter p99: sent → received = added (ms) | max gap received (ms) | CPU ramp: pay-ivr / rtpengine | CPU window: pay-ivr / rtpengine / machine (of 200 %) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const s = r.sink;
    const c = r.caller;
    const a = added(r);
    const su = r.sipp.inviteTo200Ms;
    const relayed = s !== undefined && c !== undefined ? `${s.packets} / ${s.missing} (${(100 * s.lossRatio).toFixed(3)} %); ${c.packets} / ${c.missing}` : 'n/a';
    const gaps = s !== undefined && c !== undefined ? `${f2(c.sendGapsMs.p99)} → ${f2(s.gapsMs.p99)} = ${f2(a.gapP99)}` : 'n/a';
    const jit = s !== undefined && c !== undefined ? `${f2(c.sendJitterMs.p99)} → ${f2(s.jitterMs.p99)} = ${f2(a.jitterP99)}` : 'n/a';
    console.log(
      `| ${r.calls} | ${r.up} / ${r.sipp.successful} (${r.sipp.failed}) | ${su.p50} / ${su.p99} / ${su.max} | ${relayed} | ${gaps} | ${jit} | ${s !== undefined ? f2(s.gapsMs.max) : 'n/a'} | ${f1(r.cpu.payIvrRamp)} % / ${f1(r.cpu.rtpengineRamp)} % | ${f1(r.cpu.payIvrWindow)} % / ${f1(r.cpu.rtpengineWindow)} % / ${f1(r.cpu.machineWindow)} % |`,
    );
  }
  for (const r of results) {
    const extra: string[] = [];
    if (Object.keys(r.sipp.failures).length > 0) extra.push(`SIPp failures ${JSON.stringify(r.sipp.failures)}, retransmissions ${r.sipp.retransmissions}`);
    if (r.sink !== undefined) extra.push(`sink: ${r.sink.streams} streams, gaps > 30 ms ${r.sink.gapsOver30}, reordered ${r.sink.reordered}, sink CPU ${f1(r.sink.sinkCpuPercentOfOneCore)} %`);
    if (r.caller !== undefined) extra.push(`caller: ${r.caller.packetsSentInWindow} sent in window, send errors ${r.caller.sendErrors}, strays ${r.caller.strays}, caller CPU ${f1(r.caller.cpuPercentOfOneCore)} %, event-loop p99 ${f2(r.caller.eventLoopDelayMs.p99)} ms`);
    if (r.leftInRtpengine !== 0) extra.push(`rtpengine calls left after the step: ${r.leftInRtpengine}`);
    extra.push(`load average before the step ${r.loadBefore.toFixed(2)}`);
    console.log(`${r.calls} calls: ${r.note}${extra.length > 0 ? `; ${extra.join('; ')}` : ''}`);
    if (r.sipp.errorsTail.trim() !== '') console.log(`  SIPp errors (tail): ${r.sipp.errorsTail.trim().split('\n').slice(-3).join(' | ')}`);
  }
  const best = results.filter(holds).reduce((m, r) => Math.max(m, r.calls), 0);
  const pass = best >= TARGET.calls;
  console.log(
    `verdict: ${pass ? 'PASS' : 'MISS'}: the edge relayed ${best > 0 ? `up to ${best}` : 'no step of'} concurrent calls with every call up, added interarrival p99 < ${TARGET.addedJitterP99Ms} ms and set-up p99 < ${TARGET.setupP99Ms} ms (target: at least ${TARGET.calls})`,
  );
  console.log(`files: ${dir}`);
}

async function main(): Promise<void> {
  requireTool('sipp');
  const dir = mkdtempSync(join(tmpdir(), 'payivr-edge-relay-'));
  console.error(`edge-relay: steps ${steps.join(', ')} calls, ${rate} calls/s, hold ${holdS} s; files in ${dir}`);
  const scenarios = writeScenarios(dir);
  const rtp = await RtpengineDaemon.start({ ngPort: NG_PORT, dtmfLogPort: DTMF_LOG_PORT, portMin: MEDIA_MIN, portMax: MEDIA_MAX, threads: rtpThreads, mediaThreads: 1 });
  const ng = new rtpengine.Client({ localAddress: HOST, timeout: 2000 });
  ng.on('error', () => undefined);
  let payIvr: ChildProcess | undefined;
  try {
    if (rtp.process !== undefined) children.add(rtp.process);
    raiseProcess(rtp.process?.pid, 'rtpengine', priority);
    payIvr = await startPayIvr(dir, writeConfig(dir, Math.max(...steps)));
    const results: StepResult[] = [];
    for (const n of steps) {
      console.error(`  step ${n} calls ...`);
      const r = await runStep(n, dir, scenarios, payIvr, rtp, ng);
      results.push(r);
      console.error(`  step ${n}: ${r.note}`);
      writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 2));
      await sleep(2000);
    }
    print(results, dir);
  } finally {
    ng.close();
    await stopChild(payIvr, 'SIGINT', 5000);
    await rtp.stop();
    // Its log goes with the run's files; its own temp dir goes.
    writeFileSync(join(dir, 'rtpengine.log'), rtp.log());
    await rtp.dispose();
  }
}

runBench(main, children);
