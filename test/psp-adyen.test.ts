import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../src/psp/sandbox/index.js';
import { ADYEN_HOLDER_NAME_TRIGGERS, APPROVED_TEST_CARDS } from '../src/psp/sandbox/cards.js';
import { AdyenGateway, ADYEN_API_VERSION, adyenBaseUrl } from '../src/psp/adyen.js';
import { ResilientGateway } from '../src/psp/resilient.js';
import { adyenDeclineClass } from '../src/psp/decline-codes.js';
import { ADAPTER_TIMEOUT_MS, FAST_RETRY, TEST_CVC, captureLogs, card, chargeRequest, findCardData } from './support/psp-fixtures.js';
import { describeFaultSuite, type FaultTally, type PspHarness } from './support/psp-suite.js';
import { declineCases } from './support/decline-cards.js';

const logs = captureLogs();
let sandbox: Sandbox;
let gateway: ResilientGateway;
const tally: FaultTally = { charges: 0, approved: 0 };
const usedPans = new Set<string>(['4242424242424242']);

const newAdapter = (timeoutMs = ADAPTER_TIMEOUT_MS): AdyenGateway =>
  new AdyenGateway({
    apiKey: 'test-adyen-key',
    merchantAccount: 'TestMerchant',
    baseUrl: `${sandbox.url}/${ADYEN_API_VERSION}`,
    timeoutMs,
    logger: logs.logger,
    // We collect no cardholder name by phone; the tests pass Adyen's test triggers this way.
    holderName: (r) => r.metadata.testHolderName,
  });
const req = (pan: string, over: Parameters<typeof chargeRequest>[1] = {}): ReturnType<typeof chargeRequest> => {
  usedPans.add(pan);
  return chargeRequest(pan, over);
};

beforeAll(async () => {
  sandbox = await startSandbox({ logger: logs.logger, adyenKeys: ['test-adyen-key'] });
  gateway = new ResilientGateway(newAdapter(), { ...FAST_RETRY, logger: logs.logger });
});

afterAll(async () => {
  await gateway.close();
  await sandbox.close();
});

describe('Adyen adapter against the sandbox (Checkout /payments, shopperInteraction Moto)', () => {
  it('uses the test URL by default, the live URL with its prefix, or an explicit base URL', () => {
    expect(adyenBaseUrl({ environment: 'test' })).toBe(`https://checkout-test.adyen.com/${ADYEN_API_VERSION}`);
    expect(adyenBaseUrl({ environment: 'live', liveUrlPrefix: '1797a841fbb37ca7-AdyenDemo' })).toBe(`https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout/${ADYEN_API_VERSION}`);
    expect(() => adyenBaseUrl({ environment: 'live' })).toThrow(/liveUrlPrefix/);
  });

  it('approves the test number of every brand as a Moto payment in minor units, one charge each', async () => {
    for (const pan of APPROVED_TEST_CARDS) {
      const r = req(pan, { amount: 12345, currency: 'EUR' });
      const out = await gateway.charge(r);
      expect(out.status, pan.slice(-4)).toBe('approved');
      if (out.status !== 'approved') continue;
      expect(out.transactionId).toMatch(/^[A-Z0-9]{16}$/);
      expect(out.authCode).toMatch(/^[A-Z0-9]{6}$/);
      const booked = sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey);
      expect(booked).toHaveLength(1);
      expect(booked[0]).toMatchObject({ id: out.transactionId, face: 'adyen', amount: 12345, currency: 'EUR', moto: true, last4: pan.slice(-4), reference: 'INV-77' });
    }
  });

  // Adyen's refusal reason codes.
  const declines = declineCases({
    '4000000000000002': '2',
    '4000000000009995': '12',
    '4000000000000069': '6',
    '4000000000000127': '24',
    '4000000000000119': '4',
    '4000000000009987': '5',
    '4000000000009979': '5',
    '4100000000000019': '20',
    '4242424242424241': 'validation-101',
  });
  it.each(declines)('declines %s as %s (refusal %s), with no charge on the books', async (pan, cls, code) => {
    const r = req(pan);
    const out = await gateway.charge(r);
    expect(out).toMatchObject({ status: 'declined', declineClass: cls, pspCode: code });
    expect(sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey)).toHaveLength(0);
  });

  it('declines an expiry in the past as expired-card (refusal 6)', async () => {
    const out = await gateway.charge(req('4242424242424242', { card: card('4242424242424242', TEST_CVC, '0120') }));
    expect(out).toMatchObject({ status: 'declined', declineClass: 'expired-card', pspCode: '6' });
  });

  it("honours every documented holderName trigger and maps each refusal to Adyen's class", async () => {
    for (const [name, result] of ADYEN_HOLDER_NAME_TRIGGERS) {
      const out = await gateway.charge(req('4242424242424242', { metadata: { testHolderName: name } }));
      if (result === 'Authorised') expect(out.status, name).toBe('approved');
      // Pending at the PSP: replayed until the budget ends, still pending: unconfirmed.
      else if (result === 'Received') expect(out, name).toEqual({ status: 'unknown', reason: 'adyen-received-budget-exhausted' });
      else {
        const expected = result.resultCode === 'Error' ? 'processing-error' : adyenDeclineClass(result.refusalReasonCode);
        expect(out, name).toMatchObject({ status: 'declined', declineClass: expected, pspCode: result.refusalReasonCode });
      }
    }
    const spot = async (name: string): Promise<unknown> => gateway.charge(req('4242424242424242', { metadata: { testHolderName: name } }));
    expect(await spot('NOT_ENOUGH_BALANCE')).toMatchObject({ declineClass: 'insufficient-funds' });
    expect(await spot('CVC_DECLINED')).toMatchObject({ declineClass: 'incorrect-cvc' });
    expect(await spot('CARD_EXPIRED')).toMatchObject({ declineClass: 'expired-card' });
    expect(await spot('FRAUD')).toMatchObject({ declineClass: 'fraud' });
    expect(await spot('ISSUER_UNAVAILABLE')).toMatchObject({ declineClass: 'processing-error' });
    expect(await spot('DECLINED_NON_GENERIC')).toMatchObject({ declineClass: 'do-not-honor' });
  });

  it('a resend with the same key returns the first answer: same pspReference, one charge', async () => {
    const raw = newAdapter();
    const r = req('4242424242424242');
    const a = await raw.charge(r);
    const b = await raw.charge(r);
    expect(a.status).toBe('approved');
    expect(b).toEqual(a);
    const posts = sandbox.requests().filter((x) => x.idempotencyKey === r.idempotencyKey);
    expect(posts.map((p) => p.handling)).toEqual(['executed', 'replayed']);
    expect(sandbox.charges().filter((c) => c.idempotencyKey === r.idempotencyKey)).toHaveLength(1);
    await raw.close();
  });

  it('has no read-back API: lookup answers undefined and the resilient layer finds attempts by replay', async () => {
    const raw = newAdapter();
    expect(raw.capabilities).toEqual({ idempotentReplay: true, lookupByKey: false, lookupById: false });
    expect(await raw.lookup({ idempotencyKey: 'payivr-x' })).toBeUndefined();
    await raw.close();
  });

  it('a wrong API key is a protocol error: psp-error at once, no resend', async () => {
    const g = new ResilientGateway(
      new AdyenGateway({ apiKey: 'wrong', merchantAccount: 'TestMerchant', baseUrl: `${sandbox.url}/${ADYEN_API_VERSION}`, timeoutMs: ADAPTER_TIMEOUT_MS, logger: logs.logger }),
      { ...FAST_RETRY, logger: logs.logger },
    );
    const r = req('4242424242424242');
    const before = sandbox.requests().length;
    expect(await g.charge(r)).toEqual({ status: 'failed', reason: 'psp-protocol-error' });
    expect(sandbox.requests().slice(before).map((x) => [x.handling, x.status])).toEqual([['rejected', 401]]);
    await g.close();
  });

  const harness = (): PspHarness => ({
    label: 'adyen',
    logger: logs.logger,
    newAdapter: (t) => newAdapter(t),
    inject: (rule) => sandbox.inject({ face: 'adyen', ...rule }),
    setDown: (d) => sandbox.setDown(d),
    clearFaults: () => sandbox.clearFaults(),
    chargesFor: (key) => sandbox.charges().filter((c) => c.idempotencyKey === key).length,
    postsFor: (key) => sandbox.requests().filter((r) => r.method === 'POST' && r.idempotencyKey === key).map((r) => ({ digest: r.bodyDigest, handling: r.handling })),
  });
  describeFaultSuite(harness, tally);

  it('fault tests: charges on the sandbox books equal approved outcomes', () => {
    console.log(`[psp-adyen] fault tests: sandbox charges=${tally.charges} approved outcomes=${tally.approved}`);
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
