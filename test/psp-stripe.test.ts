import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../src/psp/sandbox/index.js';
import { APPROVED_TEST_CARDS } from '../src/psp/sandbox/cards.js';
import { StripeGateway } from '../src/psp/stripe.js';
import { ResilientGateway } from '../src/psp/resilient.js';
import { ADAPTER_TIMEOUT_MS, FAST_RETRY, TEST_CVC, captureLogs, card, chargeRequest, findCardData } from './support/psp-fixtures.js';
import { describeFaultSuite, type FaultTally, type PspHarness } from './support/psp-suite.js';
import { declineCases } from './support/decline-cards.js';

const logs = captureLogs();
let sandbox: Sandbox;
let gateway: ResilientGateway;
const tally: FaultTally = { charges: 0, approved: 0 };
const usedPans = new Set<string>();

const newAdapter = (timeoutMs = ADAPTER_TIMEOUT_MS): StripeGateway => new StripeGateway({ apiKey: 'sk_test_unit', baseUrl: sandbox.url, timeoutMs, logger: logs.logger });
const req = (pan: string, over: Parameters<typeof chargeRequest>[1] = {}): ReturnType<typeof chargeRequest> => {
  usedPans.add(pan);
  return chargeRequest(pan, over);
};

beforeAll(async () => {
  sandbox = await startSandbox({ logger: logs.logger });
  gateway = new ResilientGateway(newAdapter(), { ...FAST_RETRY, logger: logs.logger });
});

afterAll(async () => {
  await gateway.close();
  await sandbox.close();
});

describe('Stripe adapter against the sandbox (official stripe SDK, PaymentIntents)', () => {
  it('approves the test number of every brand as a MOTO PaymentIntent, one charge each', async () => {
    for (const pan of APPROVED_TEST_CARDS) {
      const r = req(pan);
      const out = await gateway.charge(r);
      expect(out.status, pan.slice(-4)).toBe('approved');
      if (out.status !== 'approved') continue;
      expect(out.transactionId).toMatch(/^pi_/);
      expect(out.authCode).toMatch(/^[A-Z0-9]{6}$/);
      const booked = sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey);
      expect(booked).toHaveLength(1);
      expect(booked[0]).toMatchObject({ id: out.transactionId, amount: 4990, currency: 'eur', moto: true, last4: pan.slice(-4), reference: 'INV-77' });
    }
  });

  it('approves an unlisted number that passes Luhn, and a card without security code', async () => {
    const out = await gateway.charge(req('4111111111111111', { card: card('4111111111111111', null) }));
    expect(out.status).toBe('approved');
  });

  // Stripe's decline codes.
  const declines = declineCases({
    '4000000000000002': 'generic_decline',
    '4000000000009995': 'insufficient_funds',
    '4000000000000069': 'expired_card',
    '4000000000000127': 'incorrect_cvc',
    '4242424242424241': 'incorrect_number',
    '4000000000000119': 'processing_error',
    '4000000000009987': 'lost_card',
    '4000000000009979': 'stolen_card',
    '4100000000000019': 'fraudulent',
    '4000000000006975': 'card_velocity_exceeded',
  });
  it.each(declines)('declines %s as %s (%s), with no charge on the books', async (pan, cls, code) => {
    const r = req(pan);
    const out = await gateway.charge(r);
    expect(out).toMatchObject({ status: 'declined', declineClass: cls, pspCode: code });
    expect(sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey)).toHaveLength(0);
  });

  it('declines an expiry in the past as expired-card', async () => {
    const out = await gateway.charge(req('4242424242424242', { card: card('4242424242424242', TEST_CVC, '0120') }));
    expect(out).toMatchObject({ status: 'declined', declineClass: 'expired-card', pspCode: 'invalid_expiry_year' });
  });

  it('a resend with the same key is replayed by the PSP: same PaymentIntent, one charge', async () => {
    const raw = newAdapter();
    const r = req('4242424242424242');
    const a = await raw.charge(r);
    const b = await raw.charge(r);
    expect(a.status).toBe('approved');
    expect(b).toEqual(a);
    const posts = sandbox.requests().filter((x) => x.idempotencyKey === r.idempotencyKey);
    expect(posts.map((p) => p.handling)).toEqual(['executed', 'replayed']);
    expect(posts[0]?.bodyDigest).toBe(posts[1]?.bodyDigest);
    expect(sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey)).toHaveLength(1);
    await raw.close();
  });

  it('finds an earlier attempt by transaction id and by idempotency key; undefined when there is none', async () => {
    const r = req('4242424242424242');
    const out = await gateway.charge(r);
    expect(out.status).toBe('approved');
    const byKey = await gateway.lookup({ idempotencyKey: r.idempotencyKey });
    expect(byKey).toEqual(out);
    const byId = await gateway.lookup({ transactionId: out.status === 'approved' ? out.transactionId : '' });
    expect(byId).toEqual(out);
    const d = req('4000000000009995');
    const declined = await gateway.charge(d);
    expect(await gateway.lookup({ idempotencyKey: d.idempotencyKey })).toEqual(declined);
    expect(await gateway.lookup({ idempotencyKey: 'payivr-no-such-key' })).toBeUndefined();
    expect(await gateway.lookup({ transactionId: 'pi_doesnotexist' })).toBeUndefined();
  });

  it('a wrong API key is a protocol error: psp-error at once, no resend, breaker untouched', async () => {
    const strict = await startSandbox({ stripeKeys: ['sk_test_right'], logger: logs.logger });
    const g = new ResilientGateway(new StripeGateway({ apiKey: 'sk_test_wrong', baseUrl: strict.url, timeoutMs: ADAPTER_TIMEOUT_MS, logger: logs.logger }), { ...FAST_RETRY, logger: logs.logger });
    const out = await g.charge(req('4242424242424242'));
    expect(out).toEqual({ status: 'failed', reason: 'psp-protocol-error' });
    expect(strict.requests().map((x) => [x.handling, x.status])).toEqual([['rejected', 401]]);
    expect(strict.ledger()).toHaveLength(0);
    expect(g.breakerState).toBe('closed');
    await g.close();
    await strict.close();
  });

  const harness = (): PspHarness => ({
    label: 'stripe',
    logger: logs.logger,
    newAdapter: (t) => newAdapter(t),
    inject: (rule) => sandbox.inject({ face: 'stripe', ...rule }),
    setDown: (d) => sandbox.setDown(d),
    clearFaults: () => sandbox.clearFaults(),
    chargesFor: (key) => sandbox.charges().filter((c) => c.idempotencyKey === key).length,
    postsFor: (key) => sandbox.requests().filter((r) => r.method === 'POST' && r.idempotencyKey === key).map((r) => ({ digest: r.bodyDigest, handling: r.handling })),
  });
  usedPans.add('4242424242424242');
  describeFaultSuite(harness, tally);

  it('fault tests: charges on the sandbox books equal approved outcomes', () => {
    console.log(`[psp-stripe] fault tests: sandbox charges=${tally.charges} approved outcomes=${tally.approved}`);
    expect(tally.approved).toBeGreaterThanOrEqual(8);
    expect(tally.charges).toBe(tally.approved);
  });

  it('leaks no card data: not in any log line, the sandbox ledger or its request records', () => {
    const lines = logs.lines();
    expect(lines.length).toBeGreaterThan(50);
    const dumps = [JSON.stringify(sandbox.ledger()), JSON.stringify(sandbox.requests())];
    expect(findCardData([...lines, ...dumps], [...usedPans])).toEqual([]);
  });
});
