import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './tools.js';

/**
 * baresip (Debian baresip-core 1.0) as a headless softphone for tests: a temp config dir
 * (g711, an 8 kHz silence WAV as audio source, aubridge as a sink, ctrl_tcp), started as a child
 * process and driven over ctrl_tcp (netstring JSON: {"command","params","token"}).
 */

export interface BaresipEvent {
  event: true;
  type: string;
  class?: string;
  param?: string;
  id?: string;
  peeruri?: string;
}

interface BaresipResponse {
  response: true;
  ok: boolean;
  data: string;
  token?: string;
}

export interface BaresipOptions {
  /** SIP listen port; baresip also takes port+1 for TLS, so keep port+1 free. */
  sipPort: number;
  ctrlPort: number;
  rtpMin: number;
  rtpMax: number;
  /**
   * The account line's parameters after the AOR (default: PCMU/PCMA, no registration). For
   * mandatory SDES-SRTP add `;mediaenc=srtp-mand` (the srtp module is then loaded).
   */
  accountParams?: string;
  /**
   * CA file baresip trusts for SIP over TLS (`sip_cafile`). baresip 1.0 does not check the
   * server's certificate either way (it connects without this too); given for correctness.
   */
  tlsCaFile?: string;
  /** Length of the silent audio source; baresip ends its calls when it runs out (default 30 s). */
  audioSeconds?: number;
}

/** 8 kHz mono PCM16 silence (RIFF/WAVE, 44-byte header). */
function silenceWav(seconds: number): Buffer {
  const data = 8000 * 2 * seconds;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0, 'latin1');
  b.writeUInt32LE(36 + data, 4);
  b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  b.writeUInt32LE(data, 40);
  return b;
}

export class Baresip {
  readonly events: BaresipEvent[] = [];
  readonly #proc: ChildProcess;
  readonly #dir: string;
  #sock: net.Socket | undefined;
  #buf = Buffer.alloc(0);
  #pending = new Map<string, (r: BaresipResponse) => void>();
  #eventWaiters: { pred: (e: BaresipEvent) => boolean; resolve: (e: BaresipEvent) => void }[] = [];
  #nextToken = 1;
  #output = '';

  private constructor(proc: ChildProcess, dir: string) {
    this.#proc = proc;
    this.#dir = dir;
    const keep = (d: Buffer): void => {
      this.#output = (this.#output + d.toString()).slice(-8000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
  }

  get output(): string {
    return this.#output;
  }

  static async start(o: BaresipOptions): Promise<Baresip> {
    const dir = mkdtempSync(join(tmpdir(), 'payivr-baresip-'));
    const wav = join(dir, 'silence.wav');
    writeFileSync(wav, silenceWav(o.audioSeconds ?? 30));
    writeFileSync(
      join(dir, 'config'),
      [
        'poll_method epoll',
        `sip_listen 127.0.0.1:${o.sipPort}`,
        'net_interface 127.0.0.1',
        `audio_source aufile,${wav}`,
        'audio_player aubridge,sink',
        `audio_alert aufile,${wav}`,
        `rtp_ports ${o.rtpMin}-${o.rtpMax}`,
        'dns_server 127.0.0.1:53',
        'module_path /usr/lib/baresip/modules',
        'module g711.so',
        ...(o.accountParams?.includes('mediaenc=srtp') === true ? ['module srtp.so'] : []),
        ...(o.tlsCaFile !== undefined ? [`sip_cafile ${o.tlsCaFile}`] : []),
        'module aufile.so',
        'module aubridge.so',
        'module_app account.so',
        'module_app menu.so',
        'module_app ctrl_tcp.so',
        `ctrl_tcp_listen 127.0.0.1:${o.ctrlPort}`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'accounts'), `<sip:caller@127.0.0.1>${o.accountParams ?? ';regint=0;audio_codecs=PCMU,PCMA'}\n`);
    writeFileSync(join(dir, 'contacts'), '');
    const proc = spawn(requireTool('baresip'), ['-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const b = new Baresip(proc, dir);
    // ctrl_tcp listens once baresip is ready: retry the connection for a while.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await b.#connect(o.ctrlPort);
        return b;
      } catch (e) {
        if (Date.now() > deadline || proc.exitCode !== null) {
          await b.stop();
          throw new Error(`baresip did not start: ${String(e)}\n${b.output}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async #connect(port: number): Promise<void> {
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => this.#onData(d));
    this.#sock = sock;
  }

  #onData(d: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, d]);
    for (;;) {
      const colon = this.#buf.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.#buf.toString('latin1', 0, colon));
      if (!Number.isInteger(len) || this.#buf.length < colon + 1 + len + 1) return;
      const json = this.#buf.toString('utf8', colon + 1, colon + 1 + len);
      this.#buf = this.#buf.subarray(colon + 1 + len + 1);
      let msg: BaresipEvent | BaresipResponse;
      try {
        msg = JSON.parse(json) as BaresipEvent | BaresipResponse;
      } catch {
        continue;
      }
      if ('response' in msg) {
        const cb = msg.token !== undefined ? this.#pending.get(msg.token) : undefined;
        if (msg.token !== undefined) this.#pending.delete(msg.token);
        cb?.(msg);
      } else {
        this.events.push(msg);
        for (const w of [...this.#eventWaiters]) {
          if (w.pred(msg)) {
            this.#eventWaiters.splice(this.#eventWaiters.indexOf(w), 1);
            w.resolve(msg);
          }
        }
      }
    }
  }

  /** Sends a ctrl_tcp command and resolves with its response. */
  command(command: string, params?: string): Promise<BaresipResponse> {
    const token = String(this.#nextToken++);
    const json = JSON.stringify({ command, ...(params !== undefined ? { params } : {}), token });
    return new Promise<BaresipResponse>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`baresip: no response to ${command}`)), 5000);
      this.#pending.set(token, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.#sock?.write(`${Buffer.byteLength(json)}:${json},`);
    });
  }

  /** Resolves with the first event of that type at or after index `from` (already seen or future). */
  waitEvent(type: string, timeoutMs = 10_000, from = 0): Promise<BaresipEvent> {
    const seen = this.events.slice(from).find((e) => e.type === type);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<BaresipEvent>((resolve, reject) => {
      const w = {
        pred: (e: BaresipEvent) => e.type === type,
        resolve: (e: BaresipEvent) => {
          clearTimeout(t);
          resolve(e);
        },
      };
      const t = setTimeout(() => {
        this.#eventWaiters.splice(this.#eventWaiters.indexOf(w), 1);
        reject(new Error(`baresip: no ${type} event; got ${this.events.map((e) => e.type).join(',')}`));
      }, timeoutMs);
      this.#eventWaiters.push(w);
    });
  }

  /** Stops the process (SIGTERM, then SIGKILL) and removes the config dir. */
  async stop(): Promise<void> {
    this.#sock?.destroy();
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      const exited = new Promise<void>((r) => this.#proc.once('exit', () => r()));
      this.#proc.kill('SIGTERM');
      const t = setTimeout(() => this.#proc.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
