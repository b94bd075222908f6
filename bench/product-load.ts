/**
 * The whole product under load (issue 13): N simultaneous Genesys-like payments placed by SIPp
 * with sipp-scenarios/genesys/payment.xml and the approved-Visa pcap (RFC 2833 keys), against
 * startApp in its own process (bench/support/product-server.ts: embedded SIP, media engine,
 * dialogue, sandbox PSP, memory store). Reports calls completed (the whole SIPp scenario: 200,
 * REFER, 202, NOTIFYs, BYE), payments approved and handed back (the res= of each REFER's
 * User-to-User), INVITE-to-200, RTP gap figures on those calls and memory per call.
 *
 *   npm run bench -- product-load                       # 1,000 payments at 100 calls/s
 *   npm run bench -- product-load --calls 50 --workers 0
 *   npm run bench -- product-load --calls 20 --caller pcap-thread
 *
 * The callers' RTP (--caller):
 * - event-loop (default): SIPp does the SIP only. Its scenario is payment.xml rewritten at run
 *   time (in the run's directory): the SDP's m= port comes from an -inf CSV that lists the ports
 *   of bench/support/rtp-caller.ts round-robin, and the <nop> that plays the pcap is gone. The
 *   caller process replays the pcap's RTP to every server stream that reaches it, from one event
 *   loop, and times what the server sends: gaps as the callers receive them.
 * - pcap-thread: SIPp plays the pcap itself (<exec play_pcap_audio>), a thread per call; at
 *   1,000 calls those threads saturate this 2-core machine before the product does.
 *
 * RTP gaps are also taken at the sender (each server RTP socket's send-to-send gap,
 * media-probe.ts), with either caller. The measurement window runs from the moment all N calls
 * are up to the first hang-up (after the first hand-back).
 *
 * Addresses: 127.0.0.1; server SIP 26060/udp, RTP from 40000 sized from N, SIPp 39990 (media
 * 39980), caller RTP 39900-39907.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { MemorySnapshot } from './support/measurement-window.js';
import { f1, f2, fms, mib } from './support/format.js';
import { machineCpu, machineCpuDelta, processCpuUs } from './support/proc.js';
import type { ProductCounters, ProductServerArgs, ProductWindow } from './support/product-server.js';
import type { CallerReport } from './support/rtp-caller.js';
import { priorityOption, raiseChild } from './support/priority.js';
import { RpcClient, type RpcPush } from './support/rpc.js';
import { SippProcess } from './support/sipp-runner.js';
import { BenchChildren, runBench } from './support/children.js';
import { requireTool } from '../test/support/tools.js';

const ROOT = resolve(import.meta.dirname, '..');
const SIP_PORT = 26060;
const RTP_MIN = 40000;
const SIPP_PORT = 39990;
const SIPP_MEDIA_PORT = 39980;
const CALLER_PORT = 39900;
const CALLER_PORTS = 8;
const PCAP = 'sipp-scenarios/genesys/pcap/approved-visa.pcap';
const CALLERS = ['event-loop', 'pcap-thread'] as const;
const UUI = 'acct=C-1001|amt=49.90|cur=USD|ref=INV-77';
const TARGET = { inviteP99Ms: 20, bytesPerCall: 64_000 };

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '100' },
    caller: { type: 'string', default: 'event-loop' },
    workers: { type: 'string', default: 'auto' },
    priority: { type: 'string', default: 'high' },
    'caller-priority': { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-capture': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help === true) {
  console.log('usage: npm run bench -- product-load [--calls N=1000] [--rate CPS=100] [--workers auto|W] [--priority normal|high|realtime] [--caller-priority P] [--caller event-loop|pcap-thread] [--no-capture] [--profile] [--out results.json]');
  console.log('  --caller: who sends the callers\' RTP (the pcap): bench/support/rtp-caller.ts, one event loop (default), or SIPp, a thread per call');
  console.log('  --priority: rtp.workerPriority of the server (default high); --caller-priority: the event-loop caller\'s (default: as --priority)');
  console.log('  INVITE-to-200 is also taken on the wire: tshark captures the SIP port on lo (--no-capture: SIPp\'s figure only)');
  process.exit(0);
}
const calls = Number(values.calls);
const rate = Number(values.rate);
const workers = values.workers === 'auto' ? Math.min(8, availableParallelism()) : Number(values.workers);
if (!(Number.isInteger(calls) && calls >= 1 && calls <= 10_000)) throw new Error('--calls must be 1..10000');
if (!(rate > 0 && rate <= 1000)) throw new Error('--rate must be 1..1000');
if (!(Number.isInteger(workers) && workers >= 0 && workers <= 64)) throw new Error('--workers must be auto or 0..64');
const caller = values.caller as (typeof CALLERS)[number];
const priority = priorityOption('--priority', values.priority);
const callerPriority = priorityOption('--caller-priority', values['caller-priority'] ?? values.priority);
if (!CALLERS.includes(caller)) throw new Error(`--caller must be one of ${CALLERS.join(', ')}`);

const children = new BenchChildren('SIPp, the server and the caller');
const sleep = (ms: number): Promise<'timeout'> => new Promise((r) => setTimeout(() => r('timeout'), ms));

/**
 * INVITE-to-200 per call on the wire (kernel timestamps of a tshark capture of the SIP port):
 * what the server took, without SIPp's own scheduling, which with 1,000 pcap threads adds its own.
 */
function wireInviteTo200(pcap: string): number[] {
  let out: string;
  try {
    out = execFileSync(requireTool('tshark'), ['-r', pcap, '-Y', 'sip.CSeq.method == "INVITE"', '-T', 'fields', '-e', 'frame.time_relative', '-e', 'sip.Call-ID', '-e', 'sip.Method', '-e', 'sip.Status-Code'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  } catch {
    return [];
  }
  const invite = new Map<string, number>();
  const ms: number[] = [];
  for (const line of out.split('\n')) {
    const [t, callId, method, status] = line.split('\t');
    if (t === undefined || callId === undefined || callId === '') continue;
    if (method === 'INVITE' && !invite.has(callId)) invite.set(callId, Number(t));
    else if (status === '200' && invite.has(callId)) {
      ms.push((Number(t) - (invite.get(callId) as number)) * 1000);
      invite.delete(callId);
    }
  }
  return ms.sort((a, b) => a - b);
}

/** The res= of every REFER's User-to-User (hex after the 00 discriminator) in SIPp's -trace_logs file. */
function handBacks(logFile: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(logFile)) return out;
  for (const m of readFileSync(logFile, 'utf8').matchAll(/REFER-TO .*?User-to-User=00([0-9A-Fa-f]+)/g)) {
    const ascii = Buffer.from(m[1] ?? '', 'hex').toString('latin1');
    const res = /(?:^|\|)res=([^|]*)/.exec(ascii)?.[1] ?? '?';
    out[res] = (out[res] ?? 0) + 1;
  }
  return out;
}

/** One replacement in payment.xml that must happen: a scenario that no longer has the text fails the run. */
function replaceIn(text: string, pattern: string | RegExp, by: string, what: string): string {
  const out = text.replace(pattern, by);
  if (out === text) throw new Error(`sipp-scenarios/genesys/payment.xml: ${what} not found (the scenario changed: update bench/product-load.ts)`);
  return out;
}

/**
 * The Genesys scenario for this run, derived from payment.xml (one scenario, no copy in the
 * repository): one conversation id per call; with the pcap-thread caller the pcap at an absolute
 * path; with the event-loop caller no pcap at all and the SDP's media port from the -inf CSV,
 * which lists the caller's ports round-robin (SEQUENTIAL: call i takes line i mod K).
 */
function writeScenario(dir: string): { scenario: string; injectionFile?: string } {
  let xml = replaceIn(readFileSync(join(ROOT, 'sipp-scenarios/genesys/payment.xml'), 'utf8'), 'x-inin-cnv: [cnv]', 'x-inin-cnv: bench-[call_number]', 'x-inin-cnv: [cnv]');
  const scenario = join(dir, 'payment.xml');
  if (caller === 'pcap-thread') {
    writeFileSync(scenario, replaceIn(xml, /play_pcap_audio="[^"]*"/, `play_pcap_audio="${join(ROOT, PCAP)}"`, 'play_pcap_audio'));
    return { scenario };
  }
  xml = replaceIn(xml, 'm=audio [media_port] ', 'm=audio [field0] ', 'the SDP line m=audio [media_port]');
  xml = replaceIn(xml, /[ \t]*<nop>\s*<action>\s*<exec play_pcap_audio="[^"]*"\s*\/>\s*<\/action>\s*<\/nop>[ \t]*\n/, '', 'the <nop> that runs play_pcap_audio');
  writeFileSync(scenario, xml);
  const injectionFile = join(dir, 'caller-ports.csv');
  writeFileSync(injectionFile, ['SEQUENTIAL', ...Array.from({ length: CALLER_PORTS }, (_, i) => `${CALLER_PORT + i};`)].join('\n') + '\n');
  return { scenario, injectionFile };
}

/** The event-loop caller (bench/support/rtp-caller.ts), once its ports are bound. */
async function startCaller(): Promise<RpcClient> {
  const child = fork(join(ROOT, 'bench/support/rtp-caller.ts'), ['127.0.0.1', String(CALLER_PORT), String(CALLER_PORTS), join(ROOT, PCAP)], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  raiseChild(child, 'the rtp caller', callerPriority);
  const rpc = new RpcClient(child, 'rtp caller');
  const ready = new Promise<RpcPush>((resolve) => rpc.onPush((p) => p.push === 'ready' && resolve(p)));
  const exited = new Promise<never>((_, reject) => child.on('exit', (c, sig) => reject(new Error(`rtp caller exited (${c ?? sig})`))));
  exited.catch(() => undefined);
  const r = await Promise.race([ready, exited, sleep(30_000).then(() => Promise.reject(new Error('rtp caller did not start in 30 s')))]);
  console.error(`rtp caller: ${String(r.pcapPackets)} RTP packets, ${(Number(r.pcapMs) / 1000).toFixed(1)} s, on 127.0.0.1:${CALLER_PORT}-${CALLER_PORT + CALLER_PORTS - 1}`);
  return rpc;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-product-load-'));
  console.error(`product-load: ${calls} payments at ${rate} calls/s, ${workers >= 1 ? `${workers} media worker(s)` : 'media on the main thread'}, ${caller} caller; files in ${dir}`);
  const serverArgs: ProductServerArgs = {
    sipPort: SIP_PORT,
    rtpMin: RTP_MIN,
    rtpMax: Math.min(65534, RTP_MIN + 2 * Math.ceil(calls * 1.1 + 20) + 1),
    workers,
    promptsDir: join(ROOT, 'prompts'),
    logFile: join(dir, 'server.log'),
    maxConcurrentCalls: calls + 100,
    priority,
  };
  const child = fork(join(ROOT, 'bench/support/product-server.ts'), [JSON.stringify(serverArgs)], { cwd: ROOT, execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const server = new RpcClient(child, 'product server');
  const pushes: RpcPush[] = [];
  const waiters: { name: string; resolve: (p: RpcPush) => void }[] = [];
  server.onPush((p) => {
    const i = waiters.findIndex((w) => w.name === p.push);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(p);
    else pushes.push(p);
  });
  const next = (name: string): Promise<RpcPush> => {
    const i = pushes.findIndex((p) => p.push === name);
    if (i >= 0) return Promise.resolve(pushes.splice(i, 1)[0] as RpcPush);
    return new Promise((r) => waiters.push({ name, resolve: r }));
  };
  const exited = new Promise<never>((_, reject) => child.on('exit', (c, s) => reject(new Error(`product server exited (${c ?? s})`))));
  exited.catch(() => undefined);
  await Promise.race([next('ready'), exited, sleep(60_000).then(() => Promise.reject(new Error('product server did not start in 60 s')))]);
  await sleep(1000);
  const baseline = await server.request<MemorySnapshot>('snapshot', { gc: true });

  const { scenario, injectionFile } = writeScenario(dir);
  const callerRpc = caller === 'event-loop' ? await startCaller() : undefined;
  const referLog = join(dir, 'refer.log');
  let tshark: ChildProcess | undefined;
  const capture = join(dir, 'sip.pcap');
  if (values['no-capture'] !== true) {
    // Its own process group: an aborted run kills tshark's dumpcap with it.
    tshark = spawn(requireTool('tshark'), ['-i', 'lo', '-f', `udp port ${SIP_PORT}`, '-w', capture, '-q'], { stdio: 'ignore', detached: true });
    children.add(tshark, true);
    await sleep(2000);
  }
  await server.request('arm', { target: calls });
  const rampS = calls / rate;
  const loadBefore = loadavg()[0] ?? 0;
  const sipp = new SippProcess({
    scenario,
    dir: join(dir, 'sipp'),
    target: `127.0.0.1:${SIP_PORT}`,
    localPort: SIPP_PORT,
    mediaPort: SIPP_MEDIA_PORT,
    ...(injectionFile !== undefined ? { injectionFile } : {}),
    calls,
    ratePerSecond: rate,
    service: '+18005550123',
    extraArgs: ['-key', 'uui', `00${Buffer.from(UUI, 'latin1').toString('hex').toUpperCase()}`, '-key', 'cnv', 'bench', '-trace_logs', '-log_file', referLog],
    globalTimeoutS: Math.ceil(rampS + 240),
  });
  children.sipp = sipp;
  const t0 = performance.now();
  const progress = setInterval(() => {
    void server
      .request<ProductCounters>('counters')
      .then((c) => console.error(`  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${c.activeCalls} calls up, ${c.offered} offered, ended ${JSON.stringify(c.ended)}`))
      .catch(() => undefined);
  }, 5000);
  const allUp = next('all-up');
  const firstEnd = next('first-end');
  const started = await Promise.race([allUp.then(() => 'all-up' as const), sipp.exited.then(() => 'sipp-exit' as const), sleep((rampS + 30) * 1000)]);
  const c0 = await server.request<ProductCounters>('counters');
  let window: ProductWindow | undefined;
  let callerReport: CallerReport | undefined;
  let mid: MemorySnapshot | undefined;
  let machine: ReturnType<typeof machineCpuDelta> | undefined;
  let sippCpu: number | undefined;
  let loadDuring = 0;
  let note = started === 'all-up' ? 'all calls up' : started === 'timeout' ? `window started with ${c0.activeCalls} of ${calls} calls up` : 'SIPp exited before all calls were up';
  if (started !== 'sipp-exit') {
    await Promise.all([server.request('window-start', { profile: values.profile === true }), callerRpc?.request('start')]);
    const m0 = machineCpu();
    const w0 = performance.now();
    const s0 = sipp.pid !== undefined ? processCpuUs(sipp.pid) : undefined;
    const midTimer = setTimeout(() => {
      void server.request<MemorySnapshot>('snapshot', { gc: false }).then((s) => (mid = s), () => undefined);
      loadDuring = loadavg()[0] ?? 0;
    }, 8000);
    const ended = await Promise.race([firstEnd.then((p) => `first call ended (${String(p.reason)})`), sipp.exited.then(() => 'SIPp exited'), sleep(120_000).then(() => 'deadline')]);
    clearTimeout(midTimer);
    await callerRpc?.request('stop');
    const s1 = sipp.pid !== undefined ? processCpuUs(sipp.pid) : undefined;
    machine = machineCpuDelta(m0, machineCpu());
    sippCpu = s0 !== undefined && s1 !== undefined ? ((s1 - s0) / 1000 / (performance.now() - w0)) * 100 : undefined;
    window = await server.request<ProductWindow>('window-end', { profileFile: join(dir, 'product.cpuprofile') }, 60_000);
    note += `; window ended: ${ended}`;
  }
  const code = await sipp.exited;
  clearInterval(progress);
  const result = sipp.result(code);
  const counters = await server.request<ProductCounters>('counters');
  const outcomes = handBacks(referLog);
  if (callerRpc !== undefined) {
    callerReport = await callerRpc.request<CallerReport>('report');
    await callerRpc.request('close').catch(() => undefined);
  }
  let wire: number[] = [];
  if (tshark !== undefined) {
    tshark.kill('SIGINT');
    await new Promise((r) => tshark?.once('exit', r));
    wire = wireInviteTo200(capture);
  }
  await server.request('stop').catch(() => undefined);

  const perCall = mid !== undefined ? (mid.rss - baseline.rss) / Math.max(1, mid.liveCalls) : Number.NaN;
  const rows: [string, string, string][] = [];
  rows.push(['payments placed / completed (whole SIPp scenario)', `${calls} / ${result.successful} (failed ${result.failed})`, `${calls}`]);
  rows.push(['approved (res= of the hand-back REFER)', `${outcomes['approved'] ?? 0}  ${JSON.stringify(outcomes)}`, `${calls}`]);
  rows.push(['handed back (REFER received, 202 + NOTIFY 200)', `${result.successful}`, `${calls}`]);
  rows.push(['INVITE-to-200 at SIPp p50 / p99 / max, mean (ms)', `${fms(result.inviteTo200Ms.p50)} / ${fms(result.inviteTo200Ms.p99)} / ${fms(result.inviteTo200Ms.max)}, ${f2(result.inviteTo200Ms.mean)} (n=${result.inviteTo200Ms.count})`, `p99 < ${TARGET.inviteP99Ms}: ${result.inviteTo200Ms.p99 < TARGET.inviteP99Ms ? 'PASS' : 'MISS'}`]);
  if (wire.length > 0) {
    const q = (p: number): number => wire[Math.min(wire.length - 1, Math.max(0, Math.ceil(wire.length * p) - 1))] as number;
    rows.push(['INVITE-to-200 on the wire p50 / p99 / max (ms)', `${f2(q(0.5))} / ${f2(q(0.99))} / ${f2(wire[wire.length - 1])} (n=${wire.length})`, `p99 < ${TARGET.inviteP99Ms}: ${q(0.99) < TARGET.inviteP99Ms ? 'PASS' : 'MISS'}`]);
  }
  if (window !== undefined) {
    const g = window.senderGapsMs;
    rows.push(['RTP gap at the sender p50 / p99 / p99.9 / max (ms)', `${f2(g.p50)} / ${f2(g.p99)} / ${f2(g.p999)} / ${f2(g.max)} (${g.count} gaps)`, `p99 20 +/- 5: ${Math.abs(g.p99 - 20) <= 5 ? 'PASS' : 'MISS'}`]);
    rows.push(['sender gaps > 30 ms / > 40 ms', `${window.senderGapsOver30} / ${window.senderGapsOver40}`, '']);
    rows.push(['late turns (> 25 ms): gc / wake-up / burst', `${window.lateTurns.total}: ${window.lateTurns.gc} / ${window.lateTurns.wakeUp} / ${window.lateTurns.burst}`, '']);
    rows.push(['RTP sends / from connected sockets', `${window.rtpSends.total} / ${window.rtpSends.connected}`, '']);
    rows.push(['server CPU in window (% of one core)', `${f1(window.cpuPercentOfOneCore)} %`, '']);
    rows.push(['event-loop delay p99 / max: main thread, worst media thread (ms)', `${f2(window.mainEventLoopDelayMs.p99)} / ${f2(window.mainEventLoopDelayMs.max)}, ${f2(window.mediaEventLoopDelayMs.p99)} / ${f2(window.mediaEventLoopDelayMs.max)}`, '']);
    rows.push(['GC media threads: scavenges / mark-compacts, longest', `${window.gc.minorCount} / ${window.gc.majorCount}, ${f1(window.gc.maxPauseMs)} ms`, '']);
    if (window.mainGc !== undefined) rows.push(['GC main thread: scavenges / mark-compacts, longest', `${window.mainGc.minorCount} / ${window.mainGc.majorCount}, ${f1(window.mainGc.maxPauseMs)} ms`, '']);
    rows.push(['window', `${(window.wallMs / 1000).toFixed(1)} s`, '']);
  }
  if (callerReport !== undefined && window !== undefined) {
    const c = callerReport;
    const g = c.gapsMs;
    rows.push(['RTP gap at the callers (received) p50 / p99 / p99.9 / max (ms)', `${f2(g.p50)} / ${f2(g.p99)} / ${f2(g.p999)} / ${f2(g.max)} (${g.count} gaps, ${c.streams} streams)`, `p99 20 +/- 5: ${Math.abs(g.p99 - 20) <= 5 ? 'PASS' : 'MISS'}`]);
    rows.push(['received gaps > 30 ms / > 40 ms; streams with a gap > 30 ms', `${c.gapsOver30} / ${c.gapsOver40}; ${c.streamsOver30} of ${c.streams}`, `none over 30: ${c.gapsOver30 === 0 ? 'PASS' : 'MISS'}`]);
    rows.push(['received loss / reordered', `${(100 * c.lossRatio).toFixed(3)} % (${c.missing}) / ${c.reordered}`, '']);
    rows.push(['caller CPU (% of one core) / event-loop delay p99, max / send lateness p99, max (ms)', `${f1(c.cpuPercentOfOneCore)} % / ${f2(c.eventLoopDelayMs.p99)}, ${f2(c.eventLoopDelayMs.max)} / ${f2(c.sendLatenessMs.p99)}, ${f2(c.sendLatenessMs.max)}`, '']);
  }
  if (callerReport !== undefined) {
    const c = callerReport;
    rows.push(['caller streams started / whole pcap sent; packets sent, send errors', `${c.streamsStarted} / ${c.streamsReplayed}; ${c.packetsSent}, ${c.sendErrors}`, `${calls}`]);
  }
  rows.push(['RSS baseline / mid-window', `${mib(baseline.rss)} / ${mid !== undefined ? `${mib(mid.rss)} (${mid.liveCalls} calls)` : 'n/a'}`, '']);
  rows.push(['RSS per call', `${f1(perCall / 1000)} kB`, `< ${TARGET.bytesPerCall / 1000} kB: ${perCall < TARGET.bytesPerCall ? 'PASS' : 'MISS'}`]);
  if (machine !== undefined) rows.push(['machine busy in window (of 200 %) / SIPp CPU', `${f1(machine.busy * cpus().length)} % (softirq ${f1(machine.softirq)}) / ${f1(sippCpu)} %`, '']);
  rows.push(['load average before / mid-window (1 min)', `${loadBefore.toFixed(2)} / ${loadDuring.toFixed(2)}`, '']);
  console.log('');
  console.log(`product-load: ${calls} payments, ${rate} calls/s, ${workers >= 1 ? `${workers} media worker(s) at ${priority} priority` : 'media on the main thread'}, ${caller} caller${caller === 'event-loop' ? ` at ${callerPriority} priority` : ''}, ${new Date().toISOString()}`);
  console.log(`window: ${note}`);
  console.log('| figure | measured | target |');
  console.log('|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
  if (Object.keys(result.failures).length > 0) console.log(`SIPp failures: ${JSON.stringify(result.failures)}, retransmissions ${result.retransmissions}`);
  if (result.errorsTail.trim() !== '') console.log(`SIPp errors (tail):\n${result.errorsTail.trim().split('\n').slice(-6).join('\n')}`);
  console.log(`server: ${JSON.stringify(counters)}`);
  const out = { calls, rate, workers, caller, dir, callerReport, baseline, mid, window, sipp: result, outcomes, counters, machine, sippCpu, loadBefore, loadDuring, wireInviteTo200Ms: wire };
  writeFileSync(join(dir, 'results.json'), JSON.stringify(out, null, 2));
  if (values.out !== undefined) writeFileSync(values.out, JSON.stringify(out, null, 2));
  console.log(`files: ${dir}`);
}

runBench(main, children);
