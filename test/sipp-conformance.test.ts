import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { ConformanceHarness, killAllSipp, runSipp, sippMessages, type SippRun } from './support/sipp.js';

/**
 * Conformance with a real peer: SIPp (Debian sip-tester) against the embedded backend with its
 * real media engine. Each scenario in sipp-scenarios/conformance is one call; the test checks
 * both SIPp's verdict and what the app saw.
 */

const SIP_PORT = 15100;
const FAST_PORT = 15102;
let nextLocal = 15110;
let nextMedia = 15200;

function ports(): { localPort: number; mediaPort: number } {
  const p = { localPort: nextLocal, mediaPort: nextMedia };
  nextLocal += 1;
  nextMedia += 4;
  return p;
}

function ok(run: SippRun): void {
  if (run.code !== 0) throw new Error(`sipp exited ${run.code}:\n${run.output}\n${run.messages.slice(-3000)}`);
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SIPp writes header values with their leading space. */
function norm(logs: string): string {
  return logs.replace(/ {2,}/g, ' ');
}

const REFER_TO = 'sip:+33140000000@127.0.0.1?User-to-User=007265733D617070726F766564%3Bencoding%3Dhex';

describe('SIPp conformance', () => {
  const h = new ConformanceHarness({ sipPort: SIP_PORT, rtpMin: 31000, rtpMax: 31499 });
  // Shrunk timers for the no-ACK scenario (64*T1 = 3.2 s instead of 32 s).
  const fast = new ConformanceHarness({ sipPort: FAST_PORT, rtpMin: 31500, rtpMax: 31999, timers: { t1: 50, t2: 400, t4: 500 } });

  beforeAll(async () => {
    await h.start();
    await fast.start();
  });
  afterAll(async () => {
    killAllSipp();
    await h.stop();
    await fast.stop();
  });

  for (const transport of ['udp', 'tcp'] as const) {
    it(`basic call over ${transport}: the RFC 2833 digit from the pcap reaches the app, pay-ivr hangs up with Reason`, async () => {
      h.script = { answer: true, prompt: { fragments: ['enter-card-number'], bargeIn: true }, hangupOnDigit: true };
      const run = await runSipp({ scenario: 'basic-dtmf.xml', target: h.target, transport, ...ports() });
      ok(run);
      const rec = h.last();
      expect(rec?.digits).toEqual([{ digit: '1', source: 'rfc4733' }]);
      expect(rec?.plays).toEqual(['interrupted']);
      expect(rec?.ended).toEqual({ by: 'local', reason: 'hangup' });
      expect(norm(run.logs)).toContain('BYE-REASON SIP;cause=200;text="digit received"');
      expect(rec?.call.remote.transport).toBe(transport);
    });
  }

  it('CANCEL before answer: 200 then 487', async () => {
    h.script = { answer: false };
    const run = await runSipp({ scenario: 'cancel.xml', target: h.target, ...ports() });
    ok(run);
    await until(() => h.last()?.ended !== undefined);
    expect(h.last()?.ended).toEqual({ by: 'remote', reason: 'CANCEL' });
    expect(run.messages).toMatch(/SIP\/2\.0 487 Request Terminated/);
  });

  it('caller BYE during a prompt: 200, play resolves "ended", ended once', async () => {
    h.script = { answer: true, prompt: { fragments: ['enter-card-number'], loop: true, bargeIn: false } };
    const run = await runSipp({ scenario: 'caller-bye.xml', target: h.target, ...ports() });
    ok(run);
    const rec = h.last();
    await until(() => rec?.plays.length === 1);
    expect(rec?.plays).toEqual(['ended']);
    expect(rec?.ended).toEqual({ by: 'remote', reason: 'BYE' });
    expect(rec?.endedCount).toBe(1);
    expect(h.backend.activeCalls).toBe(0);
  });

  it('OPTIONS: 200 with Allow, Accept and Supported', async () => {
    const run = await runSipp({ scenario: 'options.xml', target: h.target, ...ports() });
    ok(run);
    expect(norm(run.logs)).toContain('ALLOW INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, PRACK');
  });

  it('REFER accepted: 202, NOTIFY 100 and NOTIFY 200 answered, the app sees ok', async () => {
    h.script = { answer: true, prompt: { fragments: ['please-wait'], loop: true, bargeIn: false }, referTo: REFER_TO };
    const run = await runSipp({ scenario: 'refer-accepted.xml', target: h.target, ...ports() });
    ok(run);
    const rec = h.last();
    expect(rec?.refer).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' });
    expect(norm(run.logs)).toContain(`REFER-TO <${REFER_TO}>`);
    expect(norm(run.logs)).toContain('BYE-REASON SIP;cause=200;text="Call transferred"');
    // Both NOTIFYs got 200 from pay-ivr.
    const okToNotify = sippMessages(run).filter((m) => m.dir === 'received' && /^SIP\/2\.0 200 /.test(m.text) && /CSeq: [23] NOTIFY/.test(m.text));
    expect(okToNotify).toHaveLength(2);
  });

  it('REFER refused (403): the app sees the refusal and hangs up', async () => {
    h.script = { answer: true, referTo: REFER_TO };
    const run = await runSipp({ scenario: 'refer-refused.xml', target: h.target, ...ports() });
    ok(run);
    expect(h.last()?.refer).toMatchObject({ ok: false, referStatus: 403 });
    expect(norm(run.logs)).toContain('BYE-REASON SIP;cause=403;text="Transfer failed"');
  });

  it('re-INVITE hold then unhold, then caller BYE', async () => {
    h.script = { answer: true, prompt: { fragments: ['please-wait'], loop: true, bargeIn: false } };
    const run = await runSipp({ scenario: 'reinvite-hold.xml', target: h.target, ...ports() });
    ok(run);
    expect(norm(run.logs)).toMatch(/ANSWER-DIRECTION a=(recvonly|inactive)/);
    expect(norm(run.logs)).toContain('ANSWER-DIRECTION a=sendrecv');
    expect(h.last()?.ended).toEqual({ by: 'remote', reason: 'BYE' });
  });

  it('no ACK after 200: pay-ivr retransmits the 200 until 64*T1, sends no BYE, ended "no-ack"', async () => {
    fast.script = { answer: true };
    const run = await runSipp({ scenario: 'no-ack.xml', target: fast.target, ...ports() });
    ok(run);
    const rec = fast.last();
    await until(() => rec?.ended !== undefined);
    expect(rec?.ended).toEqual({ by: 'error', reason: 'no-ack' });
    const received200 = sippMessages(run).filter((m) => m.dir === 'received' && /^SIP\/2\.0 200 /.test(m.text) && /CSeq: 1 INVITE/.test(m.text));
    expect(received200.length).toBeGreaterThanOrEqual(3);
  });

  it('garbage datagrams and a malformed request (400) leave the service working', async () => {
    const sock = dgram.createSocket('udp4');
    const send = (b: Buffer | string): Promise<void> => new Promise((r) => sock.send(b, SIP_PORT, '127.0.0.1', () => r()));
    await send(Buffer.from([0, 1, 2, 3, 0xff, 0xfe]));
    await send('INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKg\r\n');
    await send(Buffer.alloc(30000, 0x41));
    await send('SIP/2.0 200 OK\r\n\r\n');
    await send('\r\n\r\n');
    sock.close();
    const bad = await runSipp({ scenario: 'malformed.xml', target: h.target, ...ports() });
    ok(bad);
    h.script = { answer: true, prompt: { fragments: ['enter-card-number'], bargeIn: true }, hangupOnDigit: true };
    const run = await runSipp({ scenario: 'basic-dtmf.xml', target: h.target, ...ports() });
    ok(run);
    expect(h.last()?.digits.map((d) => d.digit)).toEqual(['1']);
  });
});
