import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promptFromWav } from '../../src/telephony/embedded/media/prompt-library.js';
import { requireTool } from './tools.js';

/**
 * A packet capture of loopback (tshark, inside the test's network namespace) and what a sniffer
 * on the path would get out of it: SIP in clear, the TLS version, RTP events (RFC 2833/4733) and
 * G.711 audio. The checks work on plain calls too, so each can be seen to find what it looks for.
 */

export class Capture {
  readonly file: string;
  readonly #proc: ChildProcess;
  #stderr = '';

  private constructor(file: string, proc: ChildProcess) {
    this.file = file;
    this.#proc = proc;
    proc.stderr?.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
    });
  }

  /** Starts tshark on lo with a capture filter; resolves once it captures. */
  static async start(file: string, filter: string): Promise<Capture> {
    const proc = spawn(requireTool('tshark'), ['-i', 'lo', '-n', '-q', '-w', file, '-f', filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    const c = new Capture(file, proc);
    const deadline = Date.now() + 10_000;
    while (!c.#stderr.includes('Capturing on')) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`tshark did not start: ${c.#stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return c;
  }

  /** Stops the capture (SIGINT: tshark flushes the file). */
  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.#proc.once('exit', () => r()));
    // Give the kernel a moment to hand over the last packets.
    await new Promise((r) => setTimeout(r, 500));
    this.#proc.kill('SIGINT');
    await exited;
  }
}

function tshark(args: string[]): string[] {
  const r = spawnSync('tshark', ['-n', ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.length > 0);
}

/** The bytes carried to/from a SIP port, in capture order (TCP/TLS stream bytes, UDP datagrams). */
export function bytesOnPort(file: string, port: number): Buffer {
  const lines = tshark(['-r', file, '-Y', `(tcp.port==${port} && tcp.len>0) || udp.port==${port}`, '-T', 'fields', '-e', 'tcp.payload', '-e', 'udp.payload']);
  return Buffer.concat(lines.map((l) => Buffer.from(l.replace(/\s/g, ''), 'hex')));
}

/** True when a SIP request line can be read in the bytes of that port. */
export function sipReadable(file: string, port: number): boolean {
  const text = bytesOnPort(file, port).toString('latin1');
  return /(INVITE|ACK|BYE|REFER|NOTIFY) sip:/.test(text) || text.includes('SIP/2.0 200');
}

/** TLS versions the server chose, per ServerHello on the port: '1.2' or '1.3'. */
export function tlsVersions(file: string, port: number): string[] {
  const lines = tshark(['-r', file, '-d', `tcp.port==${port},tls`, '-Y', 'tls.handshake.type==2', '-T', 'fields', '-e', 'tls.handshake.version', '-e', 'tls.handshake.extensions.supported_version']);
  return lines.map((l) => {
    const [legacy = '', chosen = ''] = l.split('\t');
    const v = chosen !== '' ? chosen : legacy;
    return v === '0x0304' ? '1.3' : v === '0x0303' ? '1.2' : v;
  });
}

/** TLS application-data records on the port (so a "nothing readable" finding is not about an empty stream). */
export function tlsAppDataRecords(file: string, port: number): number {
  return tshark(['-r', file, '-d', `tcp.port==${port},tls`, '-Y', 'tls.record.content_type==23', '-T', 'fields', '-e', 'frame.number']).length;
}

export interface RtpPacket {
  src: number;
  dst: number;
  pt: number;
  timestamp: number;
  payload: Buffer;
  /** When the packet was captured (Unix ms). */
  timeMs: number;
}

/**
 * Every UDP packet to or from `ports` read as RTP the way a sniffer would (tshark's RTP
 * dissector forced on those ports): header fields and payload bytes. With SRTP the header stays
 * in clear, so the payload type still says PCMU or 101; only the payload is encrypted.
 */
export function rtpPackets(file: string, ports: readonly number[]): RtpPacket[] {
  if (ports.length === 0) return [];
  const decodeAs = ports.flatMap((p) => ['-d', `udp.port==${p},rtp`]);
  // Filter on the ports too: tshark also follows SDP it can read in clear (other calls' RTP).
  const lines = tshark(['-r', file, ...decodeAs, '-Y', `rtp && udp.port in {${ports.join(', ')}}`, '-T', 'fields', '-E', 'separator=/t', '-e', 'udp.srcport', '-e', 'udp.dstport', '-e', 'rtp.p_type', '-e', 'rtp.timestamp', '-e', 'udp.payload', '-e', 'frame.time_epoch']);
  return lines.map((l) => {
    const [src = '', dst = '', pt = '', ts = '', udp = '', epoch = ''] = l.split('\t');
    const datagram = Buffer.from(udp.replace(/:/g, ''), 'hex');
    const cc = (datagram[0] ?? 0) & 0x0f;
    return { src: Number(src), dst: Number(dst), pt: Number(pt.split(',')[0]), timestamp: Number(ts), payload: datagram.subarray(12 + 4 * cc), timeMs: Number(epoch) * 1000 };
  });
}

/**
 * tshark's own RFC 2833 dissector (rtpevent, on the payload type its preference names, 101 by
 * default): the event codes it reports for packets to or from `ports`. With SRTP the header still
 * says 101, so tshark decodes ciphertext as events too: codes 0-255 at random instead of keys.
 */
export function tsharkEventCodes(file: string, ports: readonly number[]): number[] {
  if (ports.length === 0) return [];
  const decodeAs = ports.flatMap((p) => ['-d', `udp.port==${p},rtp`]);
  return tshark(['-r', file, ...decodeAs, '-Y', `rtpevent && udp.port in {${ports.join(', ')}}`, '-T', 'fields', '-e', 'rtpevent.event_id']).map((l) => Number(l.split(',')[0]));
}

/** UDP ports seen in the capture within [min, max]. */
export function udpPortsIn(file: string, min: number, max: number): number[] {
  const lines = tshark(['-r', file, '-Y', `udp.port>=${min} && udp.port<=${max}`, '-T', 'fields', '-e', 'udp.srcport', '-e', 'udp.dstport']);
  const set = new Set<number>();
  for (const l of lines) for (const p of l.split('\t').map(Number)) if (p >= min && p <= max) set.add(p);
  return [...set].sort((a, b) => a - b);
}

/**
 * The keys a sniffer reads from RFC 4733 events: one key per event (RTP timestamp), the event
 * code of its first packet, only packets that parse as a DTMF event (code 0-15, volume <= 63).
 */
export function eventKeys(packets: readonly RtpPacket[], eventPt: number): string {
  const KEYS = '0123456789*#ABCD';
  const seen = new Map<string, string>();
  for (const p of packets) {
    if (p.pt !== eventPt || p.payload.length < 4) continue;
    const code = p.payload[0] as number;
    const volume = (p.payload[1] as number) & 0x3f;
    const id = `${p.src}/${p.timestamp}`;
    if (code > 15 || volume > 63 || seen.has(id)) continue;
    seen.set(id, KEYS[code] as string);
  }
  return [...seen.values()].join('');
}

/** 6-byte windows of the en-US prompts in both laws at every 4th offset: known plaintext. */
export function promptAudioIndex(promptsDir: string, language = 'en-US'): Set<number> {
  const index = new Set<number>();
  const dir = join(promptsDir, language);
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.wav')) continue;
    const p = promptFromWav(readFileSync(join(dir, f)), f);
    for (const b of [p.PCMU, p.PCMA]) for (let i = 0; i + 6 <= b.length; i += 4) index.add(b.readUIntBE(i, 6));
  }
  return index;
}

/**
 * Does this payload decode as G.711 a listener would recognise: digital silence (one byte value
 * throughout: what the softphone's silent source and pay-ivr's idle stream send), or a stretch of
 * the prompt audio pay-ivr plays. Four consecutive offsets (near the start and near the end) meet the 4-aligned index.
 */
export function isKnownG711(payload: Buffer, prompts: Set<number>): boolean {
  if (payload.length < 40) return false;
  if (payload.every((b) => b === payload[0])) return true;
  for (const start of [16, payload.length - 30]) {
    for (let o = start; o < start + 4; o++) if (prompts.has(payload.readUIntBE(o, 6))) return true;
  }
  return false;
}
