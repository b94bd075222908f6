import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baresip } from './support/baresip.js';
import { ConformanceHarness } from './support/sipp.js';

/**
 * A real softphone against the embedded backend: baresip dials over UDP and TCP, sends keys as
 * RFC 2833 events on the payload it negotiated, and the app must see exactly those digits.
 */

const SIP_PORT = 15500;

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('baresip softphone', () => {
  const h = new ConformanceHarness({ sipPort: SIP_PORT, rtpMin: 31600, rtpMax: 31699 });
  let phone: Baresip;

  beforeAll(async () => {
    await h.start();
    phone = await Baresip.start({ sipPort: 15510, ctrlPort: 15515, rtpMin: 15520, rtpMax: 15559 });
  });
  afterAll(async () => {
    await phone?.stop();
    await h.stop();
  });

  for (const transport of ['udp', 'tcp'] as const) {
    it(`dials over ${transport}, its RFC 2833 keys reach the app in order, caller hangs up`, async () => {
      h.script = { answer: true, prompt: { fragments: ['enter-card-number'], loop: true, bargeIn: false } };
      const from = phone.events.length;
      const before = h.records.length;
      const tp = transport === 'tcp' ? ';transport=tcp' : '';
      const dial = await phone.command('dial', `sip:+33140000001@127.0.0.1:${SIP_PORT}${tp}`);
      expect(dial.ok).toBe(true);
      await phone.waitEvent('CALL_ESTABLISHED', 10_000, from);
      await until(() => h.records.length === before + 1 && h.last()?.call.state === 'answered');
      const rec = h.last();
      expect(rec?.call.remote.transport).toBe(transport);
      // Let RTP flow both ways first (baresip sends its events on the established stream).
      await phone.waitEvent('CALL_RTPESTAB', 5000, from).catch(() => undefined);
      for (const key of ['4', '2', '#']) {
        const r = await phone.command('sndcode', key);
        expect(r.ok).toBe(true);
        await new Promise((res) => setTimeout(res, 300));
      }
      await until(() => (rec?.digits.length ?? 0) >= 3, 5000);
      expect(rec?.digits).toEqual([
        { digit: '4', source: 'rfc4733' },
        { digit: '2', source: 'rfc4733' },
        { digit: '#', source: 'rfc4733' },
      ]);
      const closedFrom = phone.events.length;
      await phone.command('hangup');
      await phone.waitEvent('CALL_CLOSED', 5000, closedFrom);
      await until(() => rec?.ended !== undefined);
      expect(rec?.ended).toEqual({ by: 'remote', reason: 'BYE' });
      expect(rec?.endedCount).toBe(1);
    });
  }

  it('pay-ivr hangs up: baresip sees the call closed', async () => {
    h.script = { answer: true, prompt: { fragments: ['enter-card-number'], bargeIn: true }, hangupOnDigit: true };
    const from = phone.events.length;
    await phone.command('dial', `sip:+33140000001@127.0.0.1:${SIP_PORT}`);
    await phone.waitEvent('CALL_ESTABLISHED', 10_000, from);
    await new Promise((res) => setTimeout(res, 300));
    await phone.command('sndcode', '9');
    const closed = await phone.waitEvent('CALL_CLOSED', 5000, from);
    expect(closed.type).toBe('CALL_CLOSED');
    expect(h.last()?.digits.map((d) => d.digit)).toEqual(['9']);
    expect(h.last()?.ended).toEqual({ by: 'local', reason: 'hangup' });
  });
});
