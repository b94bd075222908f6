import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeDtmfPcap, type DtmfStep } from './dtmf-pcap.js';
import { requireTool } from './tools.js';

/** Runs one of the sipp-scenarios/genesys scenarios as the Genesys side of a call. */

export interface GenesysCallOptions {
  scenario: 'payment' | 'refer-refused' | 'caller-hangup' | 'payment-or-bye' | 'conference';
  /** Where pay-ivr listens (PAYIVR_E2E_TARGET=host:port runs the same suite against a real stack). */
  target: string;
  /** The ASCII UUI (the test hex-encodes it with the 00 discriminator). Undefined: no UUI header. */
  uui?: string | undefined;
  conversationId: string;
  /** Keys the caller presses. */
  steps: DtmfStep[];
  /** Called number (Request-URI user). */
  service?: string;
  localPort: number;
  mediaPort: number;
  /** caller-hangup: ms after the answer. */
  hangupMs?: number;
  timeoutS?: number;
  /** Writes the caller's audio pcap at the path instead of `steps` as RFC 2833 events (in-band keys); returns its length in ms. */
  pcap?: (path: string) => number;
  /** SIP transport of the Genesys side (default UDP). */
  transport?: 'udp' | 'tcp';
}

export interface GenesysCallResult {
  exitCode: number;
  referTo?: string | undefined;
  /** The decoded ASCII of the User-to-User carried in the Refer-To. */
  resultUui?: string | undefined;
  byeReason?: string | undefined;
  /** payment-or-bye, conference: the Reason of the BYE pay-ivr sent instead of a REFER ('' when none). */
  byeReceived?: string | undefined;
  dir: string;
  output: string;
  pcapMs: number;
}

export const E2E_TARGET = process.env.PAYIVR_E2E_TARGET ?? '127.0.0.1:25060';

export function hexUui(ascii: string): string {
  return `00${Buffer.from(ascii, 'latin1').toString('hex').toUpperCase()}`;
}

/** Decodes the User-to-User value inside a Refer-To URI (`...?User-to-User=00<hex>%3Bencoding%3Dhex>`). */
export function decodeReferToUui(referTo: string): string | undefined {
  const m = /User-to-User=([0-9A-Fa-f]+)/.exec(referTo);
  if (!m?.[1]) return undefined;
  const hex = m[1];
  if (!hex.startsWith('00')) throw new Error(`UUI without the 00 protocol discriminator: ${hex.slice(0, 4)}`);
  return Buffer.from(hex.slice(2), 'hex').toString('latin1');
}

export function parseUui(ascii: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of ascii.split('|')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

export async function runGenesysCall(o: GenesysCallOptions): Promise<GenesysCallResult> {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-sipp-'));
  const pcap = join(dir, 'keys.pcap');
  const durationMs = o.pcap !== undefined ? o.pcap(pcap) : writeDtmfPcap(pcap, o.steps).durationMs;
  const template = readFileSync(resolve('sipp-scenarios/genesys', `${o.scenario}.xml`), 'utf8');
  let xml = template.replace(/play_pcap_audio="[^"]*"/, `play_pcap_audio="${pcap}"`);
  if (o.uui === undefined) xml = xml.replace(/^\s*User-to-User: \[uui\];encoding=hex\r?\n/m, '');
  if (o.hangupMs !== undefined) xml = xml.replace(/<pause milliseconds="\d+" \/>/, `<pause milliseconds="${o.hangupMs}" />`);
  const sf = join(dir, 'scenario.xml');
  writeFileSync(sf, xml);
  const args = [
    '-sf', sf, '-m', '1', '-i', '127.0.0.1', '-p', String(o.localPort), '-mi', '127.0.0.1', '-mp', String(o.mediaPort),
    '-s', o.service ?? '+18005550123', '-key', 'uui', o.uui === undefined ? '' : hexUui(o.uui), '-key', 'cnv', o.conversationId,
    '-trace_logs', '-log_file', join(dir, 'sipp.log'), '-trace_err', '-error_file', join(dir, 'errors.log'),
    '-timeout', `${o.timeoutS ?? 120}s`, '-timeout_error', '-nostdin', '-t', o.transport === 'tcp' ? 't1' : 'u1',
    o.target,
  ];
  const output = await new Promise<{ code: number; out: string }>((res) => {
    const p = spawn(requireTool('sipp'), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => res({ code: code ?? -1, out }));
  });
  const log = existsSync(join(dir, 'sipp.log')) ? readFileSync(join(dir, 'sipp.log'), 'utf8') : '';
  const referTo = /REFER-TO (.*)/.exec(log)?.[1]?.trim();
  const byeReason = /BYE-REASON (.*)/.exec(log)?.[1]?.trim();
  const byeReceived = /BYE-RECEIVED ?(.*)/.exec(log)?.[1]?.trim();
  const errs = readdirSync(dir).filter((f) => f.startsWith('errors')).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
  return {
    exitCode: output.code,
    referTo,
    resultUui: referTo ? decodeReferToUui(referTo) : undefined,
    byeReason,
    byeReceived,
    dir,
    // SIPp's error file first: the final screen that follows is long and says little.
    output: `${errs.slice(0, 3000)}\n${output.out.slice(-3000)}`,
    pcapMs: durationMs,
  };
}
