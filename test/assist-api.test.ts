import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PanelTokens } from '../src/assist/panel-token.js';
import type { CaptureSnapshot } from '../src/assist/service.js';
import type { JournalAttempt } from '../src/journal/types.js';
import { FakeEdgeCall } from './support/fake-edge.js';
import { ASSIST_KEY, SseReader, TOKEN_SECRET, startAssistHarness, type AssistHarness } from './support/assist-harness.js';
import { cardDigitHits } from './support/run-texts.js';

/**
 * The Agent Assist API on the admin server, driven as a Genesys data action and the agent panel
 * would, with an in-memory relayed call that emits the caller's keys as rtpengine reports them,
 * and the sandbox PSP behind the same resilient gateway and payment journal the IVR uses.
 * Ports: admin 52101, sandbox PSP 52102; the timeout harness 52103/52104.
 */

const VISA = '4242424242424242';
const EXPIRY = '1230';
const CVC = '737';
const DECLINE_FUNDS = '4000000000009995';
const CARD_SECRETS = [VISA, VISA.slice(0, 12), DECLINE_FUNDS, DECLINE_FUNDS.slice(0, 12), `${EXPIRY}${CVC}`, `${VISA}${EXPIRY}`];

let h: AssistHarness;
const produced: { where: string; text: string }[] = [];
const key = { authorization: `Bearer ${ASSIST_KEY}` };
let sessionSeq = 0;

function newCall(): FakeEdgeCall {
  sessionSeq += 1;
  return h.host.add(new FakeEdgeCall(`edge-session-${String(sessionSeq).padStart(4, '0')}-abcdef`, { conversationId: `cnv-${sessionSeq}` }));
}

async function call(method: string, path: string, opts: { auth?: string | undefined; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const headers: Record<string, string> = {};
  if (opts.auth !== undefined) headers.authorization = opts.auth;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${h.base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await r.text();
  produced.push({ where: `${method} ${path} -> ${r.status}`, text });
  return { status: r.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), text };
}

interface Started {
  captureId: string;
  panelToken: string;
  panelPath: string;
  capture: CaptureSnapshot;
}

async function start(c: FakeEdgeCall, extra: Record<string, unknown> = {}): Promise<Started> {
  const r = await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: c.sessionId, amount: 4990, reference: 'INV-2041', ...extra } });
  expect(r.status, r.text).toBe(201);
  return r.body as unknown as Started;
}

function stream(s: Started): SseReader {
  return new SseReader(`${h.base}/v1/assist/captures/${s.captureId}/events`, `Bearer ${s.panelToken}`);
}

beforeAll(async () => {
  h = await startAssistHarness({ adminPort: 52101, pspPort: 52102 });
});

afterAll(async () => {
  await h?.stop();
});

describe('assist API: who may do what', () => {
  it('start needs an API key: none or a wrong one is 401; the admin token is not one', async () => {
    const c = newCall();
    const body = { sessionId: c.sessionId, amount: 4990, reference: 'INV-1' };
    expect((await call('POST', '/v1/assist/captures', { body })).status).toBe(401);
    expect((await call('POST', '/v1/assist/captures', { auth: 'Bearer wrong-key-0000000000000000000', body })).status).toBe(401);
    expect((await call('POST', '/v1/assist/captures', { auth: 'Bearer admin-token-0123456789abcdef', body })).status).toBe(401);
    expect(c.ops).toEqual([]);
  });

  it('a panel token opens its own capture only; wrong, forged or expired tokens are 401', async () => {
    const a = newCall();
    const b = newCall();
    const sa = await start(a);
    const sb = await start(b);
    expect((await call('GET', `/v1/assist/captures/${sa.captureId}`, { auth: `Bearer ${sa.panelToken}` })).status).toBe(200);
    // The API key may look too (the data action).
    expect((await call("GET", `/v1/assist/captures/${sa.captureId}`, { auth: key.authorization })).status).toBe(200);
    // A's token on B.
    for (const [m, p] of [
      ['GET', ''],
      ['GET', '/events'],
      ['POST', '/clear-field'],
      ['POST', '/charge'],
      ['POST', '/cancel'],
    ] as const) {
      expect((await call(m, `/v1/assist/captures/${sb.captureId}${p}`, { auth: `Bearer ${sa.panelToken}` })).status, `${m} ${p}`).toBe(403);
      expect((await call(m, `/v1/assist/captures/${sb.captureId}${p}`, {})).status, `${m} ${p}`).toBe(401);
    }
    const forged = sa.panelToken.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
    expect((await call('GET', `/v1/assist/captures/${sa.captureId}`, { auth: `Bearer ${forged}` })).status).toBe(401);
    // Another capture's id in a token signed with another key.
    const other = new PanelTokens({ secret: 'x'.repeat(40), ttlSeconds: 60 }).issue(sb.captureId).token;
    expect((await call('GET', `/v1/assist/captures/${sb.captureId}`, { auth: `Bearer ${other}` })).status).toBe(401);
    // Signed with the right key, but expired.
    const expired = new PanelTokens({ secret: TOKEN_SECRET, ttlSeconds: 60, now: () => Date.now() - 120_000 }).issue(sa.captureId).token;
    expect((await call('GET', `/v1/assist/captures/${sa.captureId}`, { auth: `Bearer ${expired}` })).status).toBe(401);
    // The API key is not a panel token, and a panel token cannot start a capture.
    expect((await call('POST', '/v1/assist/captures', { auth: `Bearer ${sa.panelToken}`, body: { sessionId: newCall().sessionId, amount: 100, reference: 'x' } })).status).toBe(401);
    for (const s of [sa, sb]) expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(200);
  });

  it('unknown session 404, ended call 410, second capture on a call 409, bad bodies 400 with the field path', async () => {
    const unknown = await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: 'no-such-session-0000', amount: 4990, reference: 'INV-1' } });
    expect(unknown.status).toBe(404);
    const gone = newCall();
    gone.end();
    expect((await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: gone.sessionId, amount: 4990, reference: 'INV-1' } })).status).toBe(410);

    const c = newCall();
    const s = await start(c);
    const again = await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: c.sessionId, amount: 4990, reference: 'INV-1' } });
    expect(again.status).toBe(409);
    expect(c.ops.filter((o) => o.startsWith('block')).length).toBe(1);

    const bad = async (body: unknown): Promise<unknown> => {
      const r = await call('POST', '/v1/assist/captures', { auth: key.authorization, body });
      expect(r.status, r.text).toBe(400);
      return r.body.path;
    };
    const fresh = newCall().sessionId;
    expect(await bad({ amount: 4990, reference: 'INV-1' })).toBe('sessionId');
    expect(await bad({ sessionId: fresh, amount: '49.90', reference: 'INV-1' })).toBe('amount');
    expect(await bad({ sessionId: fresh, amount: 49.9, reference: 'INV-1' })).toBe('amount');
    expect(await bad({ sessionId: fresh, amount: 4990, reference: 'INV-1', currency: 'eur' })).toBe('currency');
    expect(await bad({ sessionId: fresh, amount: 4990 })).toBe('reference');
    expect(await bad({ sessionId: fresh, amount: 4990, reference: 'INV-1', pan: '4242' })).toBe('(body)');
    // Checked against the profile: currency accepted, amount within its bounds, no card-like reference.
    expect(await bad({ sessionId: fresh, amount: 4990, reference: 'INV-1', currency: 'GBP' })).toBe('currency');
    expect(await bad({ sessionId: fresh, amount: 99, reference: 'INV-1' })).toBe('amount');
    expect(await bad({ sessionId: fresh, amount: 300_000, reference: 'INV-1', currency: 'USD' })).toBe('amount');
    expect(await bad({ sessionId: fresh, amount: 4990, reference: `REF ${VISA}` })).toBe('reference');
    expect(await bad({ sessionId: fresh, amount: 4990, reference: 'INV-1', language: 'de-DE' })).toBe('language');

    const badField = await call('POST', `/v1/assist/captures/${s.captureId}/clear-field`, { auth: `Bearer ${s.panelToken}`, body: { field: 'cardNumber' } });
    expect(badField.status).toBe(400);
    expect(badField.body.path).toBe('field');
    // Charging an incomplete card is refused.
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/charge`, { auth: `Bearer ${s.panelToken}` })).status).toBe(409);
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(200);
    // Once ended, the same call takes a new capture.
    await expect.poll(() => c.ops.includes('unblock')).toBe(true);
    const next = await start(c);
    expect((await call('POST', `/v1/assist/captures/${next.captureId}/cancel`, { auth: `Bearer ${next.panelToken}` })).status).toBe(200);
  });

  it('an event stream the panel closes is let go (no listener left behind)', async () => {
    const c = newCall();
    const s = await start(c);
    const a = stream(s);
    const b = stream(s);
    await a.waitFor(() => true);
    await b.waitFor(() => true);
    expect(h.service.streams(s.captureId)).toBe(2);
    a.close();
    await expect.poll(() => h.service.streams(s.captureId)).toBe(1);
    c.press('4');
    await b.waitFor((e) => (e.data as CaptureSnapshot).view.pan.digits === 1);
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(200);
    await b.done;
    expect(h.service.streams(s.captureId)).toBe(0);
  });

  it('a media anchor that does not block the keys means no capture (502), and the call is free again', async () => {
    const c = newCall();
    c.failBlock = true;
    const r = await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: c.sessionId, amount: 4990, reference: 'INV-1' } });
    expect(r.status).toBe(502);
    c.press('4242');
    const s = await start(c);
    expect(s.capture.view.pan.digits).toBe(0);
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(200);
  });
});

describe('assist API: captures', () => {
  it('an approved Visa: keys blocked before any progress, masked progress live, charge, result, keys unblocked after it', async () => {
    const c = newCall();
    const s = await start(c);
    expect(c.ops[0]).toBe('block:tone');
    expect(s.capture).toMatchObject({ status: 'running', amount: 4990, currency: 'EUR', amountText: '49.90', reference: 'INV-2041', conversationId: c.conversationId });
    expect(s.panelPath).toBe(`/assist/panel#token=${s.panelToken}`);
    // The first prompt was asked of the caller leg, from the configured prompt pack.
    await expect.poll(() => c.ops).toContain('play:/srv/prompts/en-US/enter-card-number.wav');
    const events = stream(s);
    await events.waitFor((e) => e.type === 'progress');

    c.press('4242');
    await events.waitFor((e) => e.type === 'progress' && (e.data as CaptureSnapshot).view.pan.digits === 4);
    const typing = (events.events.at(-1)?.data as CaptureSnapshot).view;
    expect(typing.pan).toMatchObject({ digits: 4, status: 'typing', brand: 'visa' });
    expect(typing.pan.last4).toBeUndefined();
    c.press(`${VISA.slice(4)}#`);
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.field === 'expiry');
    expect(c.ops).toContain('play:/srv/prompts/en-US/enter-expiry.wav');
    c.press(EXPIRY);
    c.press(CVC);
    const ready = await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready');
    expect((ready.data as CaptureSnapshot).view).toMatchObject({ pan: { status: 'valid', brand: 'visa', last4: '4242', digits: 16 }, expiry: { entered: true }, securityCode: { entered: true, required: true } });
    expect(c.ops).toContain('play:/srv/prompts/en-US/enter-security-code-3.wav');
    // Genesys (and the agent) heard the replacement tone for every key, never a digit.
    expect(c.genesysHeard.length).toBe(VISA.length + 1 + EXPIRY.length + CVC.length);
    expect(new Set(c.genesysHeard)).toEqual(new Set(['<tone>']));

    const charged = await call('POST', `/v1/assist/captures/${s.captureId}/charge`, { auth: `Bearer ${s.panelToken}` });
    expect(charged.status).toBe(202);
    const end = await events.waitFor((e) => e.type === 'ended');
    const final = end.data as CaptureSnapshot;
    expect(final.status).toBe('ended');
    expect(final.result).toMatchObject({ outcome: 'approved', reason: 'charged', brand: 'visa', last4: '4242' });
    expect(final.result?.pspReference).toMatch(/^pi_/);
    await events.done;
    expect(events.closed).toBe(true);

    // Order on the call: block, then every key, then the unblock after the result.
    const unblockAt = c.ops.indexOf('unblock');
    expect(unblockAt).toBeGreaterThan(c.ops.lastIndexOf('key'));
    expect(c.ops.filter((o) => o === 'unblock')).toHaveLength(1);
    expect(c.blocked).toBeUndefined();
    // The first event came after the block (the block is the first op; the stream opened after the start answered).
    expect(events.events[0]?.type).toBe('progress');

    const state = await call('GET', `/v1/assist/captures/${s.captureId}`, { auth: `Bearer ${s.panelToken}` });
    expect(state.body).toMatchObject({ status: 'ended', result: { outcome: 'approved', last4: '4242', pspReference: final.result?.pspReference } });

    // One charge at the PSP, journaled before the send and settled with its outcome.
    const ledger = h.psp.sandbox?.charges() ?? [];
    expect(ledger.filter((l) => l.amount === 4990)).toHaveLength(1);
    const attempts = h.journal.journal.spool.entries('j:').map(([, v]) => v as JournalAttempt).filter((a) => a.callRef === s.captureId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ state: 'settled', outcome: 'approved', origin: 'call', amount: 4990, currency: 'EUR', reference: 'INV-2041', brand: 'visa', last4: '4242', attempt: 1, callId: c.anchor.callId });
    // The result record and the reports segment (mode assist).
    const result = await h.store.getById(s.captureId);
    expect(result).toMatchObject({ outcome: 'approved', mode: 'agent', stage: 'ended', brand: 'visa', last4: '4242', conversationId: c.conversationId, amount: 4990, reference: 'INV-2041' });
    await expect.poll(async () => (await h.reports.store.range(0, Date.now() + 1000, 1000)).filter((g) => g.id === s.captureId).length).toBe(1);
    const seg = (await h.reports.store.range(0, Date.now() + 1000, 1000)).find((g) => g.id === s.captureId);
    expect(seg).toMatchObject({ mode: 'assist', outcome: 'approved', last4: '4242', attempts: { charges: 1 } });
    expect(seg?.steps.map((x) => x.step)).toEqual(['card-number', 'expiry', 'security-code', 'charging', 'result']);
    produced.push({ where: 'sse approved', text: events.raw });
  });

  it('a declined card ends the capture declined with its class; the agent starts another', async () => {
    const c = newCall();
    const s = await start(c);
    const events = stream(s);
    c.press(`${DECLINE_FUNDS}#${EXPIRY}${CVC}`);
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready');
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/charge`, { auth: `Bearer ${s.panelToken}` })).status).toBe(202);
    const end = await events.waitFor((e) => e.type === 'ended');
    expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'declined', declineClass: 'insufficient-funds', last4: '9995' });
    await expect.poll(() => c.ops.includes('unblock')).toBe(true);
    produced.push({ where: 'sse declined', text: events.raw });
  });

  it("the agent's clear-field and cancel: keys unblocked, nothing charged", async () => {
    const c = newCall();
    const s = await start(c);
    const events = stream(s);
    c.press(`${VISA}#12`);
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.expiry.digits === 2);
    const cleared = await call('POST', `/v1/assist/captures/${s.captureId}/clear-field`, { auth: `Bearer ${s.panelToken}` });
    expect(cleared.status).toBe(200);
    expect((cleared.body as unknown as CaptureSnapshot).view).toMatchObject({ field: 'expiry', expiry: { digits: 0, status: 'empty' }, pan: { status: 'valid' } });
    const panCleared = await call('POST', `/v1/assist/captures/${s.captureId}/clear-field`, { auth: `Bearer ${s.panelToken}`, body: { field: 'pan' } });
    expect((panCleared.body as unknown as CaptureSnapshot).view).toMatchObject({ field: 'pan', pan: { digits: 0, status: 'empty' } });
    const before = h.psp.sandbox?.ledger().length;
    const cancelled = await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` });
    expect(cancelled.status).toBe(200);
    const end = await events.waitFor((e) => e.type === 'ended');
    expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'cancelled', reason: 'agent' });
    expect(c.ops.at(-1)).toBe('unblock');
    expect(h.psp.sandbox?.ledger().length).toBe(before);
    // Ended: commands are refused, the state is still there.
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(409);
    expect((await call('GET', `/v1/assist/captures/${s.captureId}`, { auth: `Bearer ${s.panelToken}` })).body).toMatchObject({ status: 'ended' });
    produced.push({ where: 'sse cancel', text: events.raw });
  });

  it('a hang-up mid-capture ends it (hangup); no unblock on a call that is gone', async () => {
    const c = newCall();
    const s = await start(c);
    const events = stream(s);
    c.press('42424242');
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.pan.digits === 8);
    c.end('caller');
    const end = await events.waitFor((e) => e.type === 'ended');
    expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'hangup', reason: 'hangup' });
    expect(c.ops).not.toContain('unblock');
    expect(c.listenerCount('digit')).toBe(0);
    expect(c.listenerCount('ended')).toBe(1); // the host's own listener only
    await expect.poll(async () => (await h.store.getById(s.captureId))?.outcome).toBe('hangup');
    // The ended call now answers 410.
    expect((await call('POST', '/v1/assist/captures', { auth: key.authorization, body: { sessionId: c.sessionId, amount: 4990, reference: 'INV-1' } })).status).toBe(410);
    produced.push({ where: 'sse hangup', text: events.raw });
  });

  it('a hang-up while the charge is with the PSP waits for its real outcome', async () => {
    const c = newCall();
    const s = await start(c);
    const events = stream(s);
    c.press(`${VISA}#${EXPIRY}${CVC}`);
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready');
    h.psp.sandbox?.inject({ fault: { kind: 'latency', ms: 300 } });
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/charge`, { auth: `Bearer ${s.panelToken}` })).status).toBe(202);
    // Cancel is refused while the PSP has the card.
    expect((await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` })).status).toBe(409);
    c.end('caller');
    const end = await events.waitFor((e) => e.type === 'ended');
    expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'approved', last4: '4242' });
    expect(c.ops).not.toContain('unblock');
    produced.push({ where: 'sse hangup charging', text: events.raw });
  });

  it('a key flood ends the field invalid, is ignored, and the capture goes on after a clear', async () => {
    const c = newCall();
    const s = await start(c);
    const events = stream(s);
    await events.waitFor(() => true);
    c.press(`${VISA}*`.repeat(2_000));
    const flooded = await call('GET', `/v1/assist/captures/${s.captureId}`, { auth: `Bearer ${s.panelToken}` });
    expect((flooded.body as unknown as CaptureSnapshot).view.pan).toMatchObject({ status: 'invalid', problem: 'too-many-keys', digits: 0 });
    expect((flooded.body as unknown as CaptureSnapshot).status).toBe('running');
    // Each flooded key that changed nothing sent no event.
    expect(events.events.length).toBeLessThan(100);
    await call('POST', `/v1/assist/captures/${s.captureId}/clear-field`, { auth: `Bearer ${s.panelToken}` });
    c.press(`${VISA}#`);
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.field === 'expiry');
    await call('POST', `/v1/assist/captures/${s.captureId}/cancel`, { auth: `Bearer ${s.panelToken}` });
    await events.done;
    produced.push({ where: 'sse flood', text: events.raw });
  });

  it('a capture not finished in captureTimeoutSeconds ends (cancelled, timeout) and unblocks', async () => {
    const t = await startAssistHarness({ adminPort: 52103, pspPort: 52104, assist: { captureTimeoutSeconds: 1, dtmfSecurity: 'silence' } });
    try {
      const c = t.host.add(new FakeEdgeCall('edge-session-timeout-0001'));
      const r = await fetch(`${t.base}/v1/assist/captures`, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body: JSON.stringify({ sessionId: c.sessionId, amount: 4990, reference: 'INV-T' }) });
      expect(r.status).toBe(201);
      const s = (await r.json()) as Started;
      expect(c.ops[0]).toBe('block:silence');
      const events = new SseReader(`${t.base}/v1/assist/captures/${s.captureId}/events`, `Bearer ${s.panelToken}`);
      c.press('4242');
      const end = await events.waitFor((e) => e.type === 'ended');
      expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'cancelled', reason: 'timeout' });
      expect(c.ops.at(-1)).toBe('unblock');
      expect(c.genesysHeard).toEqual(['<silence>', '<silence>', '<silence>', '<silence>']);
      produced.push(...(await t.producedTexts()).map((x) => ({ where: `timeout ${x.where}`, text: x.text })), { where: 'sse timeout', text: events.raw });
    } finally {
      await t.stop();
    }
  });
});

describe('assist API: card data', () => {
  it('no card digits in any log line, API answer, event, journal, result, segment, metric or PSP ledger', async () => {
    produced.push(...(await h.producedTexts()));
    expect(produced.filter((p) => p.where.startsWith('sse ')).length).toBeGreaterThanOrEqual(6);
    expect(produced.filter((p) => p.where === 'log')[0]?.text).toContain('capture started');
    // The project's one scan: a secret bounded by non-digits and not after a '.', since a metric's
    // float such as 1.4000000000000002 ends with a test card number (it fails when it cannot find one).
    expect(cardDigitHits(produced, CARD_SECRETS)).toEqual([]);
    for (const t of produced) expect(/"(pan|cvc|cvv|expiry|securityCode)"\s*:\s*"\d/.test(t.text), `card field in ${t.where}`).toBe(false);
  });
});
