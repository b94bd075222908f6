import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { readAmount, readDigits, readExpiry } from '../src/domain/readback.js';
import { headerValue, type SipRequest } from '../src/telephony/embedded/sip/message.js';
import { SipPeer, offerSdp } from './support/sip-peer.js';
import { RtpPeer, expectPromptSequence, type PromptRef } from './support/rtp-peer.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';

/**
 * What the caller hears, proven on the wire: a scripted SIP caller with an RTP client of our own
 * records every packet pay-ivr sends during a real payment, and the G.711 payload must contain the
 * prompt files (bit-exact) in the order the dialogue says them.
 */

const SIP_PORT = 25070;
const PROMPTS = 'prompts';
const LANG = 'en-US';
const en = (ids: string[]): PromptRef[] => ids.map((id) => ({ language: LANG, id }));

let app: App;
let sip: SipPeer;
let rtp: RtpPeer;
let logFile: string;

beforeAll(async () => {
  logFile = join(mkdtempSync(join(tmpdir(), 'payivr-audio-')), 'pay-ivr.log');
  const config = parseConfig({
    journal: { dataDir: join(dirname(logFile), 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: 35000, portMax: 35099 },
    admin: { enabled: false },
    profiles: { default: { language: LANG, currency: 'USD', amountSource: 'context', psp: { type: 'sandbox' }, handBack: { automated: 'sip:+18005550100@127.0.0.1' } } },
  });
  app = await startApp(config, createLogger({ level: 'debug', destination: logFile }));
  sip = await SipPeer.open('udp', SIP_PORT);
  rtp = await RtpPeer.open({ port: 35200, codec: 'PCMU' });
});

afterAll(async () => {
  rtp?.close();
  await sip?.close();
  await app?.stop();
});

/** Waits until the received audio (from packet index `from`) holds the fragments back to back. */
async function heard(fragments: PromptRef[], from: number, timeoutMs = 30_000): Promise<number> {
  let offsets: number[] = [];
  await rtp.waitFor(
    () => {
      try {
        offsets = expectPromptSequence(rtp.audio(from), fragments, PROMPTS, 'PCMU');
        return true;
      } catch {
        return false;
      }
    },
    timeoutMs,
    `prompt sequence ${fragments[0]?.id}... (${fragments.length} fragments)`,
  );
  return offsets[0] as number;
}

async function keys(k: string): Promise<void> {
  for (const d of k) await rtp.sendDigit(d as DtmfDigit);
}

describe('the caller hears the prompts, in order', () => {
  it('a whole payment, from the welcome to the approval, then the hand-back REFER', async () => {
    const c = sip.newCall();
    const uui = `00${Buffer.from('acct=A1|amt=49.90|cur=USD|ref=INV-9').toString('hex')}`;
    sip.send(sip.invite(c, { user: '+18005550123', sdp: offerSdp(rtp.port, '0 101'), extra: [`User-to-User: ${uui};encoding=hex`, 'x-inin-cnv: cnv-audio'] }));
    const ok = await sip.response(c.callId, 200, 'INVITE', 10_000);
    c.to = headerValue(ok, 'to');
    sip.send(sip.inDialog(c, 'ACK', { cseq: 1 }));
    const m = /m=audio (\d+)/.exec(ok.body.toString());
    rtp.setTarget('127.0.0.1', Number(m?.[1]));
    rtp.start();

    // 1. Welcome, the amount from the UUI read back, and the menu: one prompt (a key would barge in).
    await heard(en(['welcome', 'you-are-about-to-pay', ...readAmount(LANG, 4990, 'USD'), 'amount-context-menu']), 0);
    let mark = rtp.received.length;
    await keys('1');
    await heard(en(['enter-card-number']), mark);
    mark = rtp.received.length;
    await keys('4242424242424242#');
    // 2. The card read back masked: last 4 only.
    await heard(en(['card-ending-in', ...readDigits(LANG, '4242'), 'confirm-menu']), mark);
    mark = rtp.received.length;
    await keys('1');
    await heard(en(['enter-expiry']), mark);
    mark = rtp.received.length;
    await keys('1234');
    await heard(en(['you-entered', ...readExpiry(LANG, 12, 2034), 'confirm-menu']), mark);
    mark = rtp.received.length;
    await keys('1');
    await heard(en(['enter-security-code-3']), mark);
    mark = rtp.received.length;
    await keys('737');
    // 3. Please wait, then the approval with the amount.
    const wait = await heard(en(['processing-payment']), mark);
    const approved = await heard(en(['payment-approved', 'amount-paid', ...readAmount(LANG, 4990, 'USD')]), mark);
    expect(approved).toBeGreaterThan(wait);

    // 4. The hand-back REFER; Genesys accepts it and hangs up.
    const refer = (await sip.request('REFER', c.callId, 30_000)) as SipRequest;
    expect(headerValue(refer, 'refer-to')).toMatch(/^<sip:\+18005550100@127\.0\.0\.1\?User-to-User=00[0-9A-F]+%3Bencoding%3Dhex>$/);
    sip.respond(refer, 202);
    sip.send(sip.inDialog(c, 'NOTIFY', { cseq: 2, extra: ['Event: refer', 'Subscription-State: terminated;reason=noresource'], body: 'SIP/2.0 200 OK\r\n', contentType: 'message/sipfrag;version=2.0' }));
    await sip.response(c.callId, 200, 'NOTIFY');
    sip.send(sip.inDialog(c, 'BYE', { cseq: 3 }));
    await sip.response(c.callId, 200, 'BYE');
    await app.idle();
    const [stored] = await app.store.getByConversationId('cnv-audio');
    expect(stored).toMatchObject({ outcome: 'approved', last4: '4242', handBack: { status: 'accepted' } });
  }, 120_000);

  it('RTP never went idle while the PSP worked: one packet every frame, no loss, consistent timestamps', () => {
    const pkts = rtp.received.filter((p) => p.payloadType === 0);
    expect(pkts.length).toBeGreaterThan(500);
    let seqBreaks = 0;
    let badSteps = 0;
    let idleHoles = 0;
    for (let i = 1; i < pkts.length; i++) {
      const a = pkts[i - 1]!;
      const b = pkts[i]!;
      if (((a.sequence + 1) & 0xffff) !== b.sequence) seqBreaks++;
      // +160 per frame; after a stall of the sender the pacer skips frames rather than bursting,
      // which RTP expresses as a larger step of whole frames (never zero, never backwards).
      const step = (b.timestamp - a.timestamp) >>> 0;
      if (step === 0 || step % 160 !== 0 || step > 160 * 50) badSteps++;
      // Genesys hangs up after seconds of idle RTP: a one-second hole would be a real failure,
      // far outside any scheduling jitter.
      if (b.at - a.at > 1000) idleHoles++;
      expect(b.payload.length).toBe(160);
    }
    expect(seqBreaks).toBe(0);
    expect(badSteps).toBe(0);
    expect(idleHoles).toBe(0);
  });

  it('the log of the call holds no card digits', () => {
    const log = readFileSync(logFile, 'utf8');
    expect(log.length).toBeGreaterThan(500);
    for (const secret of ['4242424242424242', '424242424242', '"1234"', '"737"']) expect(log.includes(secret), secret.slice(0, 4)).toBe(false);
  });
});
