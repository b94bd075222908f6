import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import type { CallEndInfo, DtmfSource, HangupReason, InboundCall, StoredDialog } from '../src/telephony/types.js';
import { backendKinds, waitUntil, type Caller, type KeyMethod, type Offer, type Stack } from './support/call-port/driver.js';
import { startStack } from './support/call-port/stacks.js';

/**
 * One conformance suite for the call port (src/telephony/types.ts): every case runs on every
 * backend, so the embedded engine and drachtio-server + FreeSWITCH keep the same promises.
 * - embedded: EmbeddedBackend with a real SIP/RTP caller on UDP (the audio is checked);
 * - drachtio-fakes: DrachtioBackend between FakeDrachtio and FakeFreeswitch (what FreeSWITCH was
 *   told to play and what it reports stand for the audio);
 * - drachtio-real, only when PAYIVR_REAL_DRACHTIO and its companions name a running stack
 *   (docs/test-suite.md): DrachtioBackend on it, the same wire caller as the embedded one.
 * The drivers are in test/support/call-port/. Lane e2e-b, ports 47000-47999.
 */

const PORTS = { sip: 47060, rtpMin: 47100, rtpMax: 47199, drachtio: 47122, esl: 47121, fsSip: 47180, relay: 47123, listen: 47185 };

/** An offer the app never handles gets 480 after this long. */
const OFFER_TIMEOUT_MS = 600;
const WAIT_MS = 5000;
const LANGUAGE = 'en-US';
const REFER_TO = 'sip:+33140000000@127.0.0.1';

interface Answered {
  call: InboundCall;
  caller: Caller;
  digits: [DtmfDigit, DtmfSource][];
  ends: CallEndInfo[];
}

function watch(call: InboundCall): Pick<Answered, 'digits' | 'ends'> {
  const digits: [DtmfDigit, DtmfSource][] = [];
  const ends: CallEndInfo[] = [];
  call.on('digit', (d, src) => digits.push([d, src]));
  call.on('ended', (i) => ends.push(i));
  return { digits, ends };
}

/** INVITE, the app answers, 200 OK, ACK: a call in progress. */
async function answered(s: Stack, offer: Offer = 'sdp'): Promise<Answered> {
  const caller = await s.invite(offer);
  const call = await s.nextCall();
  const seen = watch(call);
  const answering = call.answer();
  answering.catch(() => undefined); // awaited below; a failure must not also surface as unhandled
  const ok = await caller.final();
  expect(ok.status).toBe(200);
  caller.ack();
  await answering;
  expect(call.state).toBe('answered');
  return { call, caller, ...seen };
}

/** The caller hangs up and the call ends by remote BYE. */
async function callerHangsUp(a: Answered): Promise<void> {
  expect(await a.caller.bye()).toBe(200);
  await waitUntil(() => a.ends.length === 1, WAIT_MS, "'ended'");
  expect(a.ends).toEqual([{ by: 'remote', reason: 'BYE' }]);
}

const KEYS: { method: KeyMethod; offer: Offer; source: DtmfSource }[] = [
  { method: 'rfc4733', offer: 'sdp', source: 'rfc4733' },
  { method: 'info-dtmf-relay', offer: 'sdp', source: 'sip-info' },
  { method: 'info-dtmf', offer: 'sdp', source: 'sip-info' },
  // In-band tones count only when no telephone-event was negotiated.
  { method: 'inband', offer: 'sdp-no-telephone-event', source: 'inband' },
];

/** Short prompts whose pitches lie apart (a tone check tells them from each other). */
const SEQUENCE = ['balance-is', 'card-not-recognised', 'key-hash'];
/** Long enough (8 x 160 ms) for a key to land while it plays. */
const LONG_SEQUENCE = ['amount-context-menu', 'amount-invalid', 'amount-maximum-is', 'amount-minimum-is', 'brand-not-accepted-diners', 'brand-not-accepted-jcb', 'cur-jpy-n', 'payment-cancelled'];

describe('call port conformance: the backends of a run', () => {
  it('are the embedded engine and the fakes, plus the real drachtio stack only when its env names it', () => {
    expect(backendKinds({})).toEqual(['embedded', 'drachtio-fakes']);
    expect(backendKinds({ PAYIVR_REAL_DRACHTIO: '' })).toEqual(['embedded', 'drachtio-fakes']);
    expect(backendKinds({ PAYIVR_REAL_DRACHTIO: '127.0.0.1:9022' })).toEqual(['embedded', 'drachtio-fakes', 'drachtio-real']);
  });
});

describe.each(backendKinds())('call port conformance: %s', (kind) => {
  let s: Stack;
  beforeEach(async () => {
    s = await startStack(kind, PORTS, { offerTimeoutMs: OFFER_TIMEOUT_MS });
  });
  afterEach(async () => {
    await s.close();
  });

  it('answer: 200 OK with an SDP answer, the ACK confirms the call', async () => {
    const caller = await s.invite('sdp');
    const call = await s.nextCall();
    expect(call.state).toBe('offered');
    expect(call.callId).toBe(caller.callId);
    expect(call.calledUser).toBe('+33140000001');
    const answering = call.answer();
    answering.catch(() => undefined); // awaited below; a failure must not also surface as unhandled
    const ok = await caller.final();
    expect(ok.status).toBe(200);
    expect(ok.header('content-type')).toBe('application/sdp');
    expect(ok.body).toMatch(/^m=audio \d+ RTP\/AVP 0\b/m);
    caller.ack();
    await answering;
    expect(call.state).toBe('answered');
    expect(s.backend.activeCalls).toBe(1);
  });

  it('prompts: the fragments are played to the caller in full and in order; play() resolves done', async () => {
    const { call, caller } = await answered(s);
    const playing = call.play(SEQUENCE, { language: LANGUAGE, bargeIn: false });
    await caller.heard(LANGUAGE, SEQUENCE);
    expect(await playing).toBe('done');
  });

  describe.each(KEYS)('keys by $method', ({ method, offer, source }) => {
    it(`${method}: arrive as 'digit' events with source ${source}`, async () => {
      const { caller, digits } = await answered(s, offer);
      const typed: DtmfDigit[] = ['1', '5', '#'];
      for (const [i, d] of typed.entries()) {
        await caller.key(d, method);
        await waitUntil(() => digits.length === i + 1, WAIT_MS, `digit #${i + 1}`);
      }
      expect(digits).toEqual(typed.map((d) => [d, source]));
    });
  });

  it('barge-in: a key stops the prompt, play() resolves interrupted and the digit is delivered', async () => {
    const { call, caller, digits } = await answered(s);
    const playing = call.play(LONG_SEQUENCE, { language: LANGUAGE, bargeIn: true });
    await caller.hearing(LANGUAGE, LONG_SEQUENCE);
    await caller.key('4', 'rfc4733');
    expect(await playing).toBe('interrupted');
    await caller.cutShort(LANGUAGE, LONG_SEQUENCE);
    expect(digits).toEqual([['4', 'rfc4733']]);
  });

  it('REFER accepted: 202, NOTIFY sipfrag 100 then 200 -> ok', async () => {
    const { call, caller } = await answered(s);
    const result = call.refer(REFER_TO, { timeoutMs: WAIT_MS });
    const seen = await caller.handleRefer('accepted');
    expect(seen.referTo).toBe(`<${REFER_TO}>`);
    expect(await result).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' });
  });

  it('REFER declined: NOTIFY sipfrag 603 -> not ok, the call goes on', async () => {
    const { call, caller } = await answered(s);
    const result = call.refer(REFER_TO, { timeoutMs: WAIT_MS });
    await caller.handleRefer('declined');
    expect(await result).toMatchObject({ ok: false, referStatus: 202, finalStatus: 603 });
    expect(call.state).toBe('answered');
  });

  it('REFER without NOTIFY: times out (408), the call goes on', async () => {
    const { call, caller } = await answered(s);
    const result = call.refer(REFER_TO, { timeoutMs: 300 });
    await caller.handleRefer('silent');
    const r = await result;
    expect(r).toMatchObject({ ok: false, referStatus: 408 });
    expect(r.finalStatus).toBeUndefined();
    expect(call.state).toBe('answered');
  });

  it("the caller hangs up: BYE answered 200, 'ended' by remote once, our hangup() then sends nothing", async () => {
    const a = await answered(s);
    await callerHangsUp(a);
    expect(a.call.state).toBe('ended');
    await waitUntil(() => s.backend.activeCalls === 0, WAIT_MS, 'no active call');
    await a.call.hangup({ protocol: 'SIP', cause: 200, text: 'done' });
    expect(a.ends).toHaveLength(1);
    expect(a.caller.byeCount()).toBe(0);
  });

  it("we hang up: BYE with the Reason header, 'ended' by local once", async () => {
    const { call, caller, ends } = await answered(s);
    const reason: HangupReason = { protocol: 'Q.850', cause: 16, text: 'Normal call clearing' };
    await Promise.all([call.hangup(reason), call.hangup({ protocol: 'SIP', cause: 500, text: 'second' })]);
    const bye = await caller.byeReceived();
    expect(bye.reason).toBe('Q.850;cause=16;text="Normal call clearing"');
    await waitUntil(() => ends.length === 1, WAIT_MS, "'ended'");
    expect(ends).toEqual([{ by: 'local', reason: 'hangup' }]);
    expect(caller.byeCount()).toBe(1);
  });

  it("CANCEL before the answer: 487 to the INVITE, 'ended' by remote CANCEL", async () => {
    const caller = await s.invite('sdp');
    const call = await s.nextCall();
    const { ends } = watch(call);
    const final = await caller.cancel();
    expect(final.status).toBe(487);
    await waitUntil(() => ends.length === 1, WAIT_MS, "'ended'");
    expect(ends).toEqual([{ by: 'remote', reason: 'CANCEL' }]);
    expect(call.state).toBe('ended');
  });

  it('drain: OPTIONS 503 with Retry-After, a new INVITE 503 (from the node, or from drachtio-server once the route is withdrawn), the call in progress goes on', async () => {
    const a = await answered(s);
    s.backend.drain(17);
    expect(s.backend.draining).toBe(true);
    expect(s.backend.ready).toBe(false);
    expect(await s.options()).toEqual({ status: 503, retryAfter: '17' });
    const fresh = await s.invite('sdp');
    const refused = await fresh.final();
    expect(refused.status).toBe(503);
    if (s.kind === 'embedded') expect(refused.header('retry-after')).toBe('17');
    else {
      // drachtio: the draining node withdrew its INVITE route, so drachtio-server gives new calls
      // to the fleet's other nodes and, with none left, answers 503 itself (without Retry-After,
      // which it cannot add): the node is never offered the call (docs/architecture.md, parity).
      expect(refused.header('retry-after')).toBeUndefined();
      expect(s.backend.activeCalls).toBe(1);
    }
    // The call taken before the drain still takes keys and ends normally.
    await a.caller.key('3', 'info-dtmf-relay');
    await waitUntil(() => a.digits.length === 1, WAIT_MS, 'digit');
    expect(a.call.state).toBe('answered');
    await callerHangsUp(a);
  });

  it('crash recovery: a new instance given the stored dialog sends the caller a BYE', async () => {
    const a = await answered(s);
    const state = a.call.dialogState?.();
    expect(state).toBeDefined();
    // As the journal keeps it: plain data.
    const stored = JSON.parse(JSON.stringify(state)) as StoredDialog;
    await s.crash();
    expect(a.caller.byeCount()).toBe(0);
    await s.restart();
    const end = s.backend.endStoredDialog?.bind(s.backend);
    expect(end).toBeDefined();
    const status = await (end as NonNullable<typeof end>)(stored, { protocol: 'SIP', cause: 503, text: 'service restarted' });
    const bye = await a.caller.byeReceived();
    expect(bye.reason).toBe('SIP;cause=503;text="service restarted"');
    expect(status).toBe(200);
    expect(a.caller.byeCount()).toBe(1);
  });

  it('peer checks: in-dialog INFO and BYE from a third address get 403; after the INFO the call goes on, after the BYE only where the dialog survives it', async () => {
    const a = await answered(s);
    expect(await a.caller.thirdParty('INFO')).toBe(403);
    expect(a.call.state).toBe('answered');
    // Nothing of the third party's INFO became a digit; the caller's own keys still count.
    await a.caller.key('7', 'info-dtmf-relay');
    await waitUntil(() => a.digits.length === 1, WAIT_MS, 'digit');
    expect(a.digits).toEqual([['7', 'sip-info']]);
    expect(await a.caller.thirdParty('BYE')).toBe(403);
    if (s.kind === 'embedded') {
      expect(a.call.state).toBe('answered');
      expect(a.ends).toEqual([]);
      await callerHangsUp(a);
      return;
    }
    // drachtio-server (v0.9.10) drops its dialog as it relays any BYE, whatever the app answers:
    // nothing can pass in the dialog any more (the caller's INFO gets drachtio-server's own 503),
    // so the call ends at once by error instead of lingering without signalling.
    await waitUntil(() => a.ends.length === 1, WAIT_MS, "'ended'");
    expect(a.ends).toEqual([{ by: 'error', reason: 'dialog-lost' }]);
    expect(await a.caller.info('application/dtmf', '1')).toBe(503);
    expect(a.digits).toHaveLength(1);
  });

  it('INFO validation: a bad DTMF body gets 400, a type other than DTMF 415, no digit', async () => {
    const a = await answered(s);
    expect(await a.caller.info('application/dtmf-relay', 'Signal=Z\r\nDuration=160\r\n')).toBe(400);
    expect(await a.caller.info('text/plain', '5')).toBe(415);
    await a.caller.key('2', 'info-dtmf');
    await waitUntil(() => a.digits.length === 1, WAIT_MS, 'digit');
    expect(a.digits).toEqual([['2', 'sip-info']]);
    expect(a.call.state).toBe('answered');
  });

  it('late offer: an INVITE without SDP is answered with our offer, the ACK carries the answer, media flows', async () => {
    const caller = await s.invite('none');
    const call = await s.nextCall();
    const answering = call.answer();
    answering.catch(() => undefined); // awaited below; a failure must not also surface as unhandled
    const ok = await caller.final();
    expect(ok.status).toBe(200);
    expect(ok.header('content-type')).toBe('application/sdp');
    expect(ok.body).toMatch(/^m=audio \d+ RTP\/AVP /m);
    caller.ack();
    await answering;
    expect(call.state).toBe('answered');
    const playing = call.play(SEQUENCE.slice(0, 1), { language: LANGUAGE, bargeIn: false });
    await caller.heard(LANGUAGE, SEQUENCE.slice(0, 1));
    expect(await playing).toBe('done');
  });

  it('480 when the app never answers the offer', async () => {
    const caller = await s.invite('sdp');
    const call = await s.nextCall();
    const { ends } = watch(call);
    const final = await caller.final();
    expect(final.status).toBe(480);
    await waitUntil(() => ends.length === 1, WAIT_MS, "'ended'");
    expect(call.state).toBe('ended');
    expect(s.backend.activeCalls).toBe(0);
  });
});
