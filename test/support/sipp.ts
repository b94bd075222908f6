import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { configSchema, type Config } from '../../src/config/schema.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { EmbeddedBackend } from '../../src/telephony/embedded/backend.js';
import type { CallEndInfo, DtmfSource, InboundCall, PlayResult, ReferResult } from '../../src/telephony/types.js';
import type { DtmfDigit } from '../../src/domain/dtmf.js';
import { requireTool } from './tools.js';

/**
 * SIPp as a child process, and a conformance harness: an EmbeddedBackend (real SIP stack and
 * media engine) with a tiny scripted app (answer, play, collect digits, refer, hang up) — not
 * the payment dialogue.
 */

export const SCENARIOS = resolve('sipp-scenarios/conformance');
export const SIPP_PCAPS = '/usr/share/sip-tester';

export interface SippRun {
  code: number;
  /** stdout + stderr + error file, trimmed. */
  output: string;
  /** The -trace_msg message log (what SIPp sent and received); see sippMessages(). */
  messages: string;
  /** The -trace_logs log (<log> actions). */
  logs: string;
  dir: string;
}

const running = new Set<ChildProcess>();

export interface SippOptions {
  /** The scenario file: relative to sipp-scenarios/conformance, or an absolute path. */
  scenario: string;
  target: string;
  localPort: number;
  mediaPort: number;
  transport?: 'udp' | 'tcp';
  service?: string;
  keys?: Record<string, string>;
  timeoutS?: number;
  /** SIPp's control port (-cp; default SIPp's own 8888 and up). */
  controlPort?: number;
}

/** A SIPp process under way: its trace folder can be read while it runs. */
export interface SippProcess {
  dir: string;
  /** A trace file of the folder as it is now ('' when not written yet). */
  read(file: 'messages.log' | 'logs.log' | 'errors.log'): string;
  /** Resolves when SIPp exits; the folder is kept (the caller removes it). */
  done: Promise<SippRun>;
}

/** Starts one SIPp scenario (one call) and returns at once. */
export function startSipp(o: SippOptions): SippProcess {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-conf-'));
  const args = [
    '-sf', resolve(SCENARIOS, o.scenario),
    '-i', '127.0.0.1', '-p', String(o.localPort),
    '-mi', '127.0.0.1', '-mp', String(o.mediaPort),
    '-t', o.transport === 'tcp' ? 't1' : 'u1',
    '-m', '1',
    '-s', o.service ?? '+33140000001',
    '-timeout', `${o.timeoutS ?? 30}s`, '-timeout_error',
    '-trace_err', '-error_file', join(dir, 'errors.log'),
    '-trace_msg', '-message_file', join(dir, 'messages.log'),
    '-trace_logs', '-log_file', join(dir, 'logs.log'),
    '-nostdin',
  ];
  if (o.controlPort !== undefined) args.push('-cp', String(o.controlPort));
  for (const [k, v] of Object.entries(o.keys ?? {})) args.push('-key', k, v);
  args.push(o.target);
  const read = (f: string): string => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  const done = new Promise<{ code: number; out: string }>((res) => {
    const p = spawn(requireTool('sipp'), args, { cwd: resolve('.'), stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(p);
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-20000)));
    p.stderr.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-20000)));
    p.on('close', (c) => {
      running.delete(p);
      res({ code: c ?? -1, out: text });
    });
  }).then(({ code, out }) => {
    const errs = readdirSync(dir).filter((f) => f.startsWith('errors')).map((f) => read(f)).join('\n');
    return { code, output: `${out}\n${errs}`.slice(-6000), messages: read('messages.log'), logs: read('logs.log'), dir };
  });
  return { dir, read, done };
}

/** Runs one SIPp scenario to completion (one call). */
export async function runSipp(o: SippOptions): Promise<SippRun> {
  const result = await startSipp(o).done;
  if (process.env.KEEP_SIPP_LOGS === undefined) rmSync(result.dir, { recursive: true, force: true });
  return result;
}

/** The SIP messages of a -trace_msg log, with their direction as seen by SIPp. */
export function sippMessages(run: SippRun): { dir: 'sent' | 'received'; text: string }[] {
  const out: { dir: 'sent' | 'received'; text: string }[] = [];
  for (const block of run.messages.split(/^-{10,}.*$/m)) {
    const m = /^\s*(?:UDP|TCP)? ?(?:Unexpected )?(?:UDP |TCP )?message (sent|received)[^\n]*\n([\s\S]*)$/i.exec(block);
    if (m !== null) out.push({ dir: m[1] === 'sent' ? 'sent' : 'received', text: (m[2] as string).trim() });
  }
  return out;
}

/** Kills any SIPp still running (afterAll). */
export function killAllSipp(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}

/** What the scripted app does with a call. */
export interface AppScript {
  answer: boolean;
  /** Prompt played after the answer (looped when `loop`). */
  prompt?: { fragments: string[]; loop?: boolean; bargeIn?: boolean };
  /** After the first digit: hang up. */
  hangupOnDigit?: boolean;
  /** After the answer: REFER to this URI, then hang up whatever the result. */
  referTo?: string;
}

export interface CallRecord {
  call: InboundCall;
  digits: { digit: DtmfDigit; source: DtmfSource }[];
  plays: PlayResult[];
  refer?: ReferResult;
  ended?: CallEndInfo;
  endedCount: number;
}

export class ConformanceHarness {
  readonly backend: EmbeddedBackend;
  readonly records: CallRecord[] = [];
  script: AppScript = { answer: true };
  readonly sipPort: number;

  constructor(opts: { sipPort: number; rtpMin: number; rtpMax: number; timers?: { t1: number; t2: number; t4: number }; logger?: Logger; config?: Record<string, unknown> }) {
    this.sipPort = opts.sipPort;
    const config: Config = configSchema.parse({
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: opts.sipPort }, { transport: 'tcp', host: '127.0.0.1', port: opts.sipPort }] },
      rtp: { host: '127.0.0.1', portMin: opts.rtpMin, portMax: opts.rtpMax, noRtpTimeoutMs: 20_000 },
      promptsDir: resolve('prompts'),
      ...(opts.config ?? {}),
    });
    this.backend = new EmbeddedBackend(config, opts.logger ?? silentLogger, opts.timers !== undefined ? { timers: opts.timers } : {});
    this.backend.on('call', (call) => this.#onCall(call));
  }

  get target(): string {
    return `127.0.0.1:${this.sipPort}`;
  }

  async start(): Promise<void> {
    await this.backend.start();
  }

  async stop(): Promise<void> {
    await this.backend.stop();
  }

  last(): CallRecord | undefined {
    return this.records[this.records.length - 1];
  }

  #onCall(call: InboundCall): void {
    const script = this.script;
    const rec: CallRecord = { call, digits: [], plays: [], endedCount: 0 };
    this.records.push(rec);
    call.on('ended', (info) => {
      rec.ended = info;
      rec.endedCount += 1;
    });
    let playing: Promise<unknown> = Promise.resolve();
    call.on('digit', (digit, source) => {
      rec.digits.push({ digit, source });
      // Hang up once the barged-in prompt has settled, so the test sees how it ended.
      if (script.hangupOnDigit === true && rec.digits.length === 1) {
        void playing.then(() => call.hangup({ protocol: 'SIP', cause: 200, text: 'digit received' }));
      }
    });
    if (!script.answer) return;
    void (async () => {
      try {
        await call.answer();
        if (script.prompt !== undefined) {
          const p = script.prompt;
          playing = call
            .play(p.fragments, { language: 'en-US', bargeIn: p.bargeIn ?? true, loop: p.loop ?? false })
            .then((r) => rec.plays.push(r))
            .catch(() => rec.plays.push('ended'));
        }
        if (script.referTo !== undefined) {
          rec.refer = await call.refer(script.referTo, { timeoutMs: 10_000 });
          call.stopPlay();
          await call.hangup(rec.refer.ok ? { protocol: 'SIP', cause: 200, text: 'Call transferred' } : { protocol: 'SIP', cause: rec.refer.referStatus, text: 'Transfer failed' });
        }
      } catch {
        // The call ended under the app: nothing to do, 'ended' tells the test.
      }
    })();
  }
}

export function pcap(name: string): string {
  return join(SIPP_PCAPS, name);
}
