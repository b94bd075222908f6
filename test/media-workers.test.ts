import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { readAmount, readDigits } from '../src/domain/readback.js';
import { headerValue } from '../src/telephony/embedded/sip/message.js';
import { liveMediaWorkerThreads, splitPortRange } from '../src/telephony/embedded/media-workers/pool.js';
import { mediaWorkerCount } from '../src/telephony/embedded/media-factory.js';
import { SipPeer, offerSdp } from './support/sip-peer.js';
import { RtpPeer, expectPromptSequence, type PromptRef } from './support/rtp-peer.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';

/**
 * The embedded backend with its media in worker threads (rtp.workers: 2, ADR 0003): two calls at
 * once land on the two workers (each owns half of the RTP ports), the caller hears the prompts
 * bit-exact, RFC 2833 digits typed in the worker's RTP stream reach the dialogue on the main
 * thread, and app.stop() leaves no worker thread behind.
 */

const SIP_PORT = 25072;
const PROMPTS = 'prompts';
const LANG = 'en-US';
const RTP_MIN = 35400;
const RTP_MAX = 35499;
const en = (ids: string[]): PromptRef[] => ids.map((id) => ({ language: LANG, id }));

let app: App | undefined;
let sip: SipPeer;
let peers: RtpPeer[] = [];
let logFile: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-workers-'));
  logFile = join(dir, 'pay-ivr.log');
  const config = parseConfig({
    journal: { dataDir: join(dir, 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: RTP_MIN, portMax: RTP_MAX, workers: 2 },
    admin: { enabled: false },
    profiles: { default: { language: LANG, currency: 'USD', amountSource: 'context', psp: { type: 'sandbox' }, handBack: { automated: 'sip:+18005550100@127.0.0.1' } } },
  });
  app = await startApp(config, createLogger({ level: 'debug', destination: logFile }));
  sip = await SipPeer.open('udp', SIP_PORT);
  peers = [await RtpPeer.open({ port: 35600, codec: 'PCMU' }), await RtpPeer.open({ port: 35602, codec: 'PCMU' })];
});

afterAll(async () => {
  for (const p of peers) p.close();
  await sip?.close();
  await app?.stop();
});

async function heard(rtp: RtpPeer, fragments: PromptRef[], from: number, timeoutMs = 30_000): Promise<void> {
  await rtp.waitFor(
    () => {
      try {
        expectPromptSequence(rtp.audio(from), fragments, PROMPTS, 'PCMU');
        return true;
      } catch {
        return false;
      }
    },
    timeoutMs,
    `prompt sequence ${fragments[0]?.id}... (${fragments.length} fragments)`,
  );
}

describe('rtp.workers', () => {
  it("'auto' is one worker per core up to maxWorkers; 0 and 1 keep the media on the main thread", () => {
    const rtp = parseConfig({}).rtp;
    expect(rtp.workers).toBe('auto');
    expect(mediaWorkerCount(rtp, 4)).toBe(4);
    expect(mediaWorkerCount({ ...rtp, maxWorkers: 3 }, 16)).toBe(3);
    expect(mediaWorkerCount(rtp, 1)).toBe(0);
    expect(mediaWorkerCount({ ...rtp, workers: 1 }, 8)).toBe(0);
    expect(mediaWorkerCount({ ...rtp, workers: 0 }, 8)).toBe(0);
    expect(() => parseConfig({ rtp: { workers: -1 } })).toThrow(/rtp\.workers/);
  });

  it('each worker owns a contiguous share of the even RTP ports; too few ports is a config error', () => {
    expect(splitPortRange(20000, 30000, 2)).toEqual([
      { portMin: 20000, portMax: 24999 },
      { portMin: 25000, portMax: 30000 },
    ]);
    expect(splitPortRange(35001, 35008, 3)).toEqual([
      { portMin: 35002, portMax: 35003 },
      { portMin: 35004, portMax: 35005 },
      { portMin: 35006, portMax: 35008 },
    ]);
    expect(() => splitPortRange(40000, 40003, 3)).toThrow(/rtp\.workers/);
  });
});

describe('two calls on two media workers', () => {
  it('both hear their prompts; RFC 2833 digits reach the dialogue; the calls sit on different workers', async () => {
    const calls = peers.map((rtp, i) => {
      const c = sip.newCall();
      const uui = `00${Buffer.from(`acct=A${i}|amt=49.90|cur=USD|ref=INV-W${i}`).toString('hex')}`;
      sip.send(sip.invite(c, { user: '+18005550123', sdp: offerSdp(rtp.port, '0 101'), extra: [`User-to-User: ${uui};encoding=hex`, `x-inin-cnv: cnv-worker-${i}`] }));
      return { c, rtp };
    });
    const ports: number[] = [];
    for (const { c, rtp } of calls) {
      const ok = await sip.response(c.callId, 200, 'INVITE', 15_000);
      c.to = headerValue(ok, 'to');
      sip.send(sip.inDialog(c, 'ACK', { cseq: 1 }));
      const port = Number(/m=audio (\d+)/.exec(ok.body.toString())?.[1]);
      ports.push(port);
      rtp.setTarget('127.0.0.1', port);
      rtp.start();
    }
    // Least-loaded placement: one call on each worker, i.e. one port in each half of the range.
    const [lower, upper] = splitPortRange(RTP_MIN, RTP_MAX, 2);
    expect(ports.filter((p) => p >= lower!.portMin && p <= lower!.portMax)).toHaveLength(1);
    expect(ports.filter((p) => p >= upper!.portMin && p <= upper!.portMax)).toHaveLength(1);

    await Promise.all(calls.map(({ rtp }) => heard(rtp, en(['welcome', 'you-are-about-to-pay', ...readAmount(LANG, 4990, 'USD'), 'amount-context-menu']), 0)));
    for (const { rtp } of calls) {
      let mark = rtp.received.length;
      await rtp.sendDigit('1');
      await heard(rtp, en(['enter-card-number']), mark);
      mark = rtp.received.length;
      for (const d of '4242424242424242#') await rtp.sendDigit(d as DtmfDigit);
      await heard(rtp, en(['card-ending-in', ...readDigits(LANG, '4242'), 'confirm-menu']), mark);
    }
    for (const { c } of calls) {
      sip.send(sip.inDialog(c, 'BYE', { cseq: 2 }));
      await sip.response(c.callId, 200, 'BYE');
    }
    await app?.idle();
  }, 120_000);

  it('the log, written by both threads, holds no card digits', () => {
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('media workers started');
    expect(log).toContain('"mediaWorker":1');
    for (const secret of ['4242424242424242', '424242424242']) expect(log.includes(secret), secret.slice(0, 4)).toBe(false);
  });

  it('app.stop() ends every media worker thread', async () => {
    expect(liveMediaWorkerThreads()).toBe(2);
    await app?.stop();
    app = undefined;
    expect(liveMediaWorkerThreads()).toBe(0);
  });
});
