import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { hexUui } from './genesys-sipp.js';
import { cliArgs } from './dist.js';
import { requireTool } from './tools.js';
import dgram from 'node:dgram';
import { shortPromptsDir } from './short-prompts.js';

/**
 * A pay-ivr fleet on loopback for tests: nodes as real `pay-ivr serve` child processes (embedded
 * backend, Redis store), the shipped Kamailio configuration in front, and SIPp in load mode
 * playing Genesys through Kamailio.
 */

const ROOT = resolve(import.meta.dirname, '../..');

export interface NodeSpec {
  name: string;
  sipPort: number;
  adminPort: number;
  rtpPortMin: number;
  redisUrl: string;
  pspUrl: string;
  token: string;
  dir: string;
  drainMaxMs?: number;
}

export interface FleetNode {
  readonly spec: NodeSpec;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Every log line the node wrote so far (pino JSON). */
  log(): string;
  api(path: string, init?: RequestInit): Promise<Response>;
}

export function nodeConfig(s: NodeSpec): Record<string, unknown> {
  return {
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: s.sipPort }, { transport: 'tcp', host: '127.0.0.1', port: s.sipPort }] },
    rtp: { host: '127.0.0.1', portMin: s.rtpPortMin, portMax: s.rtpPortMin + 1998, noRtpTimeoutMs: 120_000 },
    store: { type: 'redis', redisUrl: s.redisUrl, keyPrefix: 'fleet:' },
    admin: { host: '127.0.0.1', port: s.adminPort, apiToken: s.token },
    log: { level: 'info', file: join(s.dir, `${s.name}.log`) },
    // One spool per node (a spool has one owner); a restarted node finds its own again.
    journal: { dataDir: join(s.dir, `${s.name}-data`), nodeId: s.name },
    security: { allowList: ['127.0.0.0/8'], ratePerSource: 200 },
    drain: { maxMs: s.drainMaxMs ?? 120_000, retryAfterSeconds: 5 },
    // The fleet tests check calls, results and the books, not the audio: the short pack.
    promptsDir: shortPromptsDir(),
    profiles: {
      default: {
        currency: 'EUR',
        psp: { type: 'sandbox', url: s.pspUrl },
        handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: '127.0.0.1' },
      },
    },
  };
}

/** Starts `pay-ivr serve` for the spec and waits until /ready answers 200. */
export async function startNode(s: NodeSpec): Promise<FleetNode> {
  const cfgFile = join(s.dir, `${s.name}.yaml`);
  writeFileSync(cfgFile, stringify(nodeConfig(s)));
  const logFile = join(s.dir, `${s.name}.log`);
  const child = spawn(process.execPath, cliArgs('serve', '--config', cfgFile), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PAYIVR_CONFIG: '' },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  const node: FleetNode = {
    spec: s,
    process: child,
    exited,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    api: (path, init) => fetch(`http://127.0.0.1:${s.adminPort}${path}`, { ...init, headers: { authorization: `Bearer ${s.token}`, ...init?.headers } }),
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node ${s.name} exited at start: ${stderr.slice(-2000)}`);
    const ok = await fetch(`http://127.0.0.1:${s.adminPort}/ready`).then((r) => r.status === 200, () => false);
    if (ok) return node;
    if (Date.now() > deadline) throw new Error(`node ${s.name} not ready in 30 s: ${stderr.slice(-2000)}`);
    await sleep(200);
  }
}

export interface Kamailio {
  readonly port: number;
  log(): string;
  stop(): Promise<void>;
}

/** The shipped docker/kamailio/kamailio.cfg, with the test's node list and a 1 s probe interval. */
export async function startKamailio(o: { port: number; nodes: number[]; dir: string; probeIntervalS?: number }): Promise<Kamailio> {
  const list = join(o.dir, 'dispatcher.list');
  writeFileSync(list, o.nodes.map((p) => `1 sip:127.0.0.1:${p} 0 0\n`).join(''));
  const args = [
    '-f', join(ROOT, 'docker/kamailio/kamailio.cfg'), '-DD', '-E', '-n', '2',
    '-l', `udp:127.0.0.1:${o.port}`, '-l', `tcp:127.0.0.1:${o.port}`,
    '-A', `DISPATCHER_LIST="${list}"`, '-A', `PROBE_INTERVAL=${o.probeIntervalS ?? 1}`, '-A', 'NODE_TIMEOUT_MS=1000',
    '-w', o.dir, '-Y', o.dir,
  ];
  const child = spawn(requireTool('kamailio'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  // Ready when it answers an OPTIONS (any reply: the listeners are up).
  const deadline = Date.now() + 15_000;
  while (!(await answersOptions(o.port))) {
    if (child.exitCode !== null) throw new Error(`kamailio exited at start:\n${out.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`kamailio did not answer OPTIONS in 15 s:\n${out.slice(-3000)}`);
  }
  return {
    port: o.port,
    log: () => out,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** True when something answers a SIP OPTIONS on 127.0.0.1:`port` (UDP) within 200 ms. */
function answersOptions(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 200);
    sock.once('message', (m) => done(m.toString('latin1').startsWith('SIP/2.0 ')));
    sock.once('error', () => done(false));
    sock.bind(0, '127.0.0.1', () => {
      const { port: local } = sock.address();
      const branch = `z9hG4bK-ready-${Date.now()}`;
      const msg = [
        `OPTIONS sip:127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: <sip:probe@127.0.0.1:${local}>;tag=ready`,
        `To: <sip:127.0.0.1:${port}>`,
        `Call-ID: ready-${branch}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      sock.send(msg, port, '127.0.0.1');
    });
  });
}

export interface LoadRun {
  /** Resolves when SIPp is done. */
  readonly done: Promise<LoadResult>;
}

export interface LoadResult {
  exitCode: number;
  /** Calls SIPp counted as successful / failed (from its statistics file). */
  successful: number;
  failed: number;
  created: number;
  output: string;
  /** Conversation ids of the calls placed (x-inin-cnv): call number n is `<prefix>-n`. */
  conversationIds: string[];
  /** How each call ended, by SIPp call number (from 1). */
  ends: Map<number, CallEnd>;
}

/** How one call of a load run ended, as SIPp saw it. */
export interface CallEnd {
  /** The hand-back REFER's Refer-To, when one came. */
  referTo?: string | undefined;
  /** A BYE from pay-ivr instead (payment-or-bye scenario), with its Reason. */
  byeReason?: string | undefined;
}

/**
 * SIPp in load mode: `calls` Genesys-like approved-Visa payments at `rate` per second, each with
 * its own conversation id (`<prefix>-<call number>`), through `target`. With the payment-or-bye
 * scenario a call pay-ivr ends with a BYE (a node restarted after a crash) is an expected end.
 */
export function startLoad(o: { target: string; calls: number; rate: number; localPort: number; mediaPort: number; dir: string; prefix: string; uui: string; scenario?: 'payment' | 'payment-or-bye' }): LoadRun {
  const template = readFileSync(join(ROOT, `sipp-scenarios/genesys/${o.scenario ?? 'payment'}.xml`), 'utf8');
  const xml = template
    .replace(/play_pcap_audio="[^"]*"/, `play_pcap_audio="${join(ROOT, 'sipp-scenarios/genesys/pcap/approved-visa.pcap')}"`)
    .replace(/x-inin-cnv: \[cnv\]/, `x-inin-cnv: ${o.prefix}-[call_number]`)
    // One log line per call end, with its call number.
    .replace(/<log message="(REFER-TO|BYE-RECEIVED) /g, '<log message="CALL [call_number] $1 ')
    // A caller nobody ends gives up after 90 s instead of 180 s (the run's length).
    .replace(/<recv request="BYE" timeout="180000">/, '<recv request="BYE" timeout="90000">');
  const sf = join(o.dir, `${o.prefix}.xml`);
  writeFileSync(sf, xml);
  const callLog = join(o.dir, `${o.prefix}-calls.log`);
  const args = [
    '-sf', sf, '-m', String(o.calls), '-r', String(o.rate), '-l', String(o.calls), '-i', '127.0.0.1', '-p', String(o.localPort),
    '-mi', '127.0.0.1', '-mp', String(o.mediaPort), '-s', '+18005550123', '-key', 'uui', hexUui(o.uui), '-key', 'cnv', 'unused',
    '-trace_stat', '-stf', join(o.dir, `${o.prefix}-stat.csv`), '-trace_err', '-error_file', join(o.dir, `${o.prefix}-errors.log`),
    '-trace_logs', '-log_file', callLog,
    '-timeout', '400s', '-timeout_error', '-nostdin', '-t', 'u1',
    o.target,
  ];
  const child = spawn(requireTool('sipp'), args, { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const done = new Promise<LoadResult>((res) => {
    child.on('close', (code) => {
      const stat = readStat(join(o.dir, `${o.prefix}-stat.csv`));
      const errs = readdirSync(o.dir).filter((f) => f.startsWith(`${o.prefix}-errors`)).map((f) => readFileSync(join(o.dir, f), 'utf8')).join('\n');
      const ends = new Map<number, CallEnd>();
      for (const m of (existsSync(callLog) ? readFileSync(callLog, 'utf8') : '').matchAll(/CALL (\d+) (REFER-TO|BYE-RECEIVED) (.*)/g)) {
        const e = ends.get(Number(m[1])) ?? {};
        if (m[2] === 'REFER-TO') e.referTo = m[3]?.trim();
        else e.byeReason = m[3]?.trim();
        ends.set(Number(m[1]), e);
      }
      res({
        exitCode: code ?? -1,
        ...stat,
        output: `${errs.slice(0, 4000)}\n${out.slice(-4000)}`,
        conversationIds: Array.from({ length: o.calls }, (_, i) => `${o.prefix}-${i + 1}`),
        ends,
      });
    });
  });
  return { done };
}

/** SIPp's statistics CSV: the last line's cumulative counters. */
function readStat(file: string): { successful: number; failed: number; created: number } {
  if (!existsSync(file)) return { successful: 0, failed: 0, created: 0 };
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const head = (lines[0] ?? '').split(';');
  const last = (lines[lines.length - 1] ?? '').split(';');
  const col = (name: string): number => Number(last[head.indexOf(name)] ?? 0);
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)'), created: col('TotalCallCreated') };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
