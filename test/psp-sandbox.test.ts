import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../src/psp/sandbox/index.js';
import { createGateway } from '../src/psp/index.js';
import { configSchema } from '../src/config/schema.js';
import { captureLogs, chargeRequest, findCardData } from './support/psp-fixtures.js';

const logs = captureLogs();
let sb: Sandbox;
const STRIPE_AUTH = { authorization: 'Bearer sk_test_wire' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const ADYEN = { 'x-api-key': 'wire-key', 'content-type': 'application/json' };

function stripeForm(pan: string, extra: Record<string, string> = {}): string {
  return new URLSearchParams({
    amount: '4990',
    currency: 'eur',
    confirm: 'true',
    'payment_method_data[type]': 'card',
    'payment_method_data[card][number]': pan,
    'payment_method_data[card][exp_month]': '8',
    'payment_method_data[card][exp_year]': '2039',
    'payment_method_data[card][cvc]': '917',
    'payment_method_options[card][moto]': 'true',
    'metadata[reference]': 'INV-77',
    'expand[0]': 'latest_charge',
    ...extra,
  }).toString();
}

function adyenBody(pan: string, holderName?: string): string {
  return JSON.stringify({
    amount: { value: 4990, currency: 'EUR' },
    reference: 'INV-77',
    merchantAccount: 'TestMerchant',
    paymentMethod: { type: 'scheme', number: pan, expiryMonth: '08', expiryYear: '2039', cvc: '917', ...(holderName ? { holderName } : {}) },
    shopperInteraction: 'Moto',
  });
}

const post = (path: string, headers: Record<string, string>, body: string): Promise<Response> => fetch(`${sb.url}${path}`, { method: 'POST', headers, body });

beforeAll(async () => {
  sb = await startSandbox({ logger: logs.logger });
});
afterAll(async () => {
  await sb.close();
});

describe('sandbox, Stripe face (PaymentIntents wire format)', () => {
  it('creates and confirms a MOTO PaymentIntent from a form-encoded body', async () => {
    const res = await post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM, 'idempotency-key': 'wire-1' }, stripeForm('4242424242424242'));
    expect(res.status).toBe(200);
    expect(res.headers.get('idempotency-key')).toBe('wire-1');
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    const pi = (await res.json()) as Record<string, unknown>;
    expect(pi).toMatchObject({ object: 'payment_intent', status: 'succeeded', amount: 4990, currency: 'eur', metadata: { reference: 'INV-77' }, payment_method_options: { card: { moto: true } } });
    expect(pi.latest_charge).toMatchObject({ object: 'charge', status: 'succeeded', payment_method_details: { card: { brand: 'visa', last4: '4242', moto: true } } });
  });

  it('replays the first answer for the same key and parameters, refuses the key with other parameters', async () => {
    const h = { ...STRIPE_AUTH, ...FORM, 'idempotency-key': 'wire-2' };
    const a = await post('/v1/payment_intents', h, stripeForm('4242424242424242'));
    const b = await post('/v1/payment_intents', h, stripeForm('4242424242424242'));
    expect(a.headers.get('idempotent-replayed')).toBeNull();
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(((await b.json()) as { id: string }).id).toBe(((await a.json()) as { id: string }).id);
    const c = await post('/v1/payment_intents', h, stripeForm('4242424242424242', { amount: '5000' }));
    expect(c.status).toBe(400);
    expect(await c.json()).toMatchObject({ error: { type: 'idempotency_error' } });
    expect(sb.charges().filter((x) => x.idempotencyKey === 'wire-2')).toHaveLength(1);
  });

  it('answers a card decline with HTTP 402 and the documented error shape', async () => {
    const res = await post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM }, stripeForm('4000000000009995'));
    expect(res.status).toBe(402);
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', payment_intent: { status: 'requires_payment_method' } });
    const id = (body.error.payment_intent as { id: string }).id;
    const got = await fetch(`${sb.url}/v1/payment_intents/${id}`, { headers: STRIPE_AUTH });
    expect(await got.json()).toMatchObject({ id, last_payment_error: { decline_code: 'insufficient_funds' } });
  });

  it('searches by metadata, refuses missing credentials and bad parameters', async () => {
    await post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM }, stripeForm('4242424242424242', { 'metadata[idempotency_key]': 'find-me' }));
    const q = new URLSearchParams({ query: "metadata['idempotency_key']:'find-me'" });
    const s = await fetch(`${sb.url}/v1/payment_intents/search?${q}`, { headers: STRIPE_AUTH });
    const found = (await s.json()) as { object: string; data: unknown[] };
    expect(found.object).toBe('search_result');
    expect(found.data).toHaveLength(1);
    expect((await post('/v1/payment_intents', FORM, stripeForm('4242424242424242'))).status).toBe(401);
    expect((await post('/v1/payment_intents', { authorization: 'Bearer pk_test_x', ...FORM }, stripeForm('4242424242424242'))).status).toBe(401);
    const noAmount = await post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM }, stripeForm('4242424242424242').replace('amount=4990&', ''));
    expect(noAmount.status).toBe(400);
    expect(await noAmount.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'parameter_missing', param: 'amount' } });
    const json = await post('/v1/payment_intents', { ...STRIPE_AUTH, 'content-type': 'application/json' }, '{}');
    expect(json.status).toBe(400);
  });

  it('refuses a second request while the first with the same key is executing (409)', async () => {
    sb.inject({ fault: { kind: 'latency', ms: 300 }, face: 'stripe' });
    const h = { ...STRIPE_AUTH, ...FORM, 'idempotency-key': 'wire-flight' };
    const first = post('/v1/payment_intents', h, stripeForm('4242424242424242'));
    await new Promise((r) => setTimeout(r, 50));
    const second = await post('/v1/payment_intents', h, stripeForm('4242424242424242'));
    expect(second.status).toBe(409);
    expect(await second.json()).toMatchObject({ error: { code: 'idempotency_key_in_use' } });
    expect((await first).status).toBe(200);
  });
});

describe('sandbox, Adyen face (/payments wire format)', () => {
  it('authorises a Moto payment in minor units and records it', async () => {
    const res = await post('/v72/payments', { ...ADYEN, 'idempotency-key': 'wire-a1' }, adyenBody('5555555555554444'));
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ resultCode: 'Authorised', amount: { value: 4990, currency: 'EUR' }, merchantReference: 'INV-77' });
    expect(body.pspReference).toMatch(/^[A-Z0-9]{16}$/);
    expect(sb.charges().find((c) => c.id === body.pspReference)).toMatchObject({ face: 'adyen', moto: true, last4: '4444', brand: 'mastercard' });
    const again = await post('/v72/payments', { ...ADYEN, 'idempotency-key': 'wire-a1' }, adyenBody('5555555555554444'));
    expect(((await again.json()) as { pspReference: string }).pspReference).toBe(body.pspReference);
  });

  it('honours holderName triggers and documented refusal codes', async () => {
    const r = await post('/v72/payments', ADYEN, adyenBody('4242424242424242', 'NOT_ENOUGH_BALANCE'));
    expect(await r.json()).toMatchObject({ resultCode: 'Refused', refusalReason: 'Not enough balance', refusalReasonCode: '12' });
    const e = await post('/v72/payments', ADYEN, adyenBody('4242424242424242', 'ERROR'));
    expect(await e.json()).toMatchObject({ resultCode: 'Error', refusalReasonCode: '4' });
    const p = await post('/v72/payments', ADYEN, adyenBody('4242424242424242', 'PENDING'));
    expect(await p.json()).toMatchObject({ resultCode: 'Received' });
  });

  it('answers validation errors and credentials in the Adyen error shape', async () => {
    const luhn = await post('/v72/payments', ADYEN, adyenBody('4242424242424241'));
    expect(luhn.status).toBe(422);
    expect(await luhn.json()).toEqual({ status: 422, errorCode: '101', message: 'Invalid card number', errorType: 'validation' });
    const noKey = await post('/v72/payments', { 'content-type': 'application/json' }, adyenBody('4242424242424242'));
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({ errorType: 'security' });
    const noMerchant = await post('/v72/payments', ADYEN, JSON.stringify({ ...JSON.parse(adyenBody('4242424242424242')), merchantAccount: undefined }));
    expect(await noMerchant.json()).toMatchObject({ status: 422, errorCode: '901' });
  });

  it('refuses a key still in flight with Transient-Error: true', async () => {
    sb.inject({ fault: { kind: 'latency', ms: 300 }, face: 'adyen' });
    const h = { ...ADYEN, 'idempotency-key': 'wire-a-flight' };
    const first = post('/v72/payments', h, adyenBody('4242424242424242'));
    await new Promise((r) => setTimeout(r, 50));
    const second = await post('/v72/payments', h, adyenBody('4242424242424242'));
    expect(second.status).toBe(422);
    expect(second.headers.get('transient-error')).toBe('true');
    expect(await second.json()).toMatchObject({ errorCode: '704' });
    expect((await first).status).toBe(200);
  });
});

describe('sandbox faults and control endpoints', () => {
  it('injects HTTP statuses with Retry-After, lost replies (charged) and hangs; and can be driven over HTTP', async () => {
    sb.inject({ fault: { kind: 'status', status: 503, retryAfterSeconds: 2 } });
    const s = await post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM }, stripeForm('4242424242424242'));
    expect(s.status).toBe(503);
    expect(s.headers.get('retry-after')).toBe('2');
    expect(await s.json()).toMatchObject({ error: { type: 'api_error' } });

    const ctl = await fetch(`${sb.url}/_sandbox/faults`, { method: 'POST', body: JSON.stringify({ fault: { kind: 'reply-lost' }, face: 'adyen' }) });
    expect(ctl.status).toBe(200);
    const before = sb.charges().length;
    await expect(post('/v72/payments', { ...ADYEN, 'idempotency-key': 'lost-1' }, adyenBody('4242424242424242'))).rejects.toThrow();
    expect(sb.charges().length).toBe(before + 1);
    const charges = (await (await fetch(`${sb.url}/_sandbox/charges`)).json()) as { idempotencyKey: string }[];
    expect(charges.filter((c) => c.idempotencyKey === 'lost-1')).toHaveLength(1);

    sb.inject({ fault: { kind: 'hang' } });
    const hung = post('/v1/payment_intents', { ...STRIPE_AUTH, ...FORM }, stripeForm('4242424242424242'));
    const settled = hung.then(
      () => 'answered',
      () => 'failed',
    );
    await expect(Promise.race([settled, new Promise((r) => setTimeout(() => r('still waiting'), 200))])).resolves.toBe('still waiting');
    expect(sb.requests().at(-1)).toMatchObject({ handling: 'fault', fault: 'hang' });

    await fetch(`${sb.url}/_sandbox/down`, { method: 'POST', body: JSON.stringify({ down: true }) });
    expect((await post('/v72/payments', ADYEN, adyenBody('4242424242424242'))).status).toBe(503);
    await fetch(`${sb.url}/_sandbox/down`, { method: 'POST', body: JSON.stringify({ down: false }) });
    expect((await post('/v72/payments', ADYEN, adyenBody('4242424242424242'))).status).toBe(200);
    expect((await fetch(`${sb.url}/_sandbox/faults`, { method: 'POST', body: '{"fault":{"kind":"nope"}}' })).status).toBe(400);
  });

  it('keeps no card data: ledger, request records and logs hold last 4 only', () => {
    const dumps = [JSON.stringify(sb.ledger()), JSON.stringify(sb.requests())];
    expect(findCardData([...dumps, ...logs.lines()], ['4242424242424242', '4000000000009995', '5555555555554444', '4242424242424241'])).toEqual([]);
    expect(sb.ledger().every((e) => /^\d{4}$/.test(e.last4))).toBe(true);
  });
});

describe('createGateway with the built-in sandbox (what npm start uses)', () => {
  it('starts an in-process sandbox for the default profile and charges through the Stripe face', async () => {
    const cfg = configSchema.parse({});
    const profile = cfg.profiles.default;
    if (!profile) throw new Error('no default profile');
    expect(profile.psp).toMatchObject({ type: 'sandbox', face: 'stripe' });
    const h = await createGateway(profile.psp, profile.retry, logs.logger);
    expect(h.gateway.name).toBe('sandbox-stripe');
    const r = chargeRequest('4242424242424242');
    const out = await h.gateway.charge(r);
    expect(out.status).toBe('approved');
    expect(h.sandbox?.charges().map((c) => c.idempotencyKey)).toEqual([r.idempotencyKey]);
    const url = h.sandbox?.url ?? '';
    await h.close();
    await h.close();
    await expect(fetch(`${url}/_sandbox/health`)).rejects.toThrow();
  });

  it('uses the Adyen face when asked, and an external sandbox by URL', async () => {
    const retry = configSchema.parse({}).profiles.default?.retry;
    if (!retry) throw new Error('no default profile');
    const h = await createGateway({ type: 'sandbox', face: 'adyen', timeoutMs: 2000 }, retry, logs.logger);
    expect(h.gateway.name).toBe('sandbox-adyen');
    expect((await h.gateway.charge(chargeRequest('4000000000009995'))).status).toBe('declined');
    await h.close();
    const ext = await createGateway({ type: 'sandbox', face: 'stripe', url: sb.url, timeoutMs: 2000 }, retry, logs.logger);
    expect(ext.sandbox).toBeUndefined();
    const r = chargeRequest('4242424242424242');
    expect((await ext.gateway.charge(r)).status).toBe('approved');
    expect(sb.charges().filter((c) => c.idempotencyKey === r.idempotencyKey)).toHaveLength(1);
    await ext.close();
  });
});
