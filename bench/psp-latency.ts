/**
 * PSP adapter latency: for each adapter against the in-process sandbox, N sequential charges
 * (default 300) through the adapter, interleaved with N raw POSTs of the same wire request
 * (same endpoint, a fresh idempotency key each) as baselines: one with `fetch` (undici), one with
 * a bare `http.request` on a keep-alive agent (the least a client can do). Prints medians and
 * p95 and the latency the adapter adds (adapter minus baseline), for the bare adapter and through
 * the ResilientGateway.
 *
 *   npx tsx bench/psp-latency.ts
 *   BENCH_N=1000 npx tsx bench/psp-latency.ts
 *
 * The sandbox binds 127.0.0.1 on an ephemeral port.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { silentLogger } from '../src/log.js';
import { SensitiveDigits, type CardData } from '../src/domain/sensitive.js';
import { startSandbox } from '../src/psp/sandbox/index.js';
import { StripeGateway } from '../src/psp/stripe.js';
import { AdyenGateway, ADYEN_API_VERSION } from '../src/psp/adyen.js';
import { RestGateway, type RestPspConfig } from '../src/psp/rest.js';
import { ResilientGateway } from '../src/psp/resilient.js';
import type { PspAdapter } from '../src/psp/adapter.js';
import type { PaymentGateway, ChargeRequest } from '../src/psp/types.js';
import { newIdempotencyKey } from '../src/psp/idempotency.js';

const N = Number(process.env.BENCH_N ?? 300);
const WARMUP = 30;
const PAN = '4242424242424242';
const STRIPE_KEY = 'sk_test_bench';
const ADYEN_KEY = 'bench-adyen-key';

function card(): CardData {
  return { pan: SensitiveDigits.from(PAN), expiry: SensitiveDigits.from('0839'), securityCode: SensitiveDigits.from('917') };
}

function request(): ChargeRequest {
  return { amount: 4990, currency: 'EUR', card: card(), reference: 'BENCH-1', idempotencyKey: newIdempotencyKey(), metadata: { conversationId: 'bench' } };
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

interface Row {
  adapter: string;
  baseMed: number;
  baseP95: number;
  httpMed: number;
  httpP95: number;
  rawMed: number;
  rawP95: number;
  resMed: number;
  resP95: number;
}

type Wire = { path: string; headers: () => Record<string, string>; body: (key: string) => string };

async function measure(name: string, raw: PaymentGateway, resilient: PaymentGateway, wire: Wire): Promise<Row> {
  const timeIt = async (f: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  const base: number[] = [];
  const bare: number[] = [];
  const a: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const req1 = request();
    const req2 = request();
    const k1 = newIdempotencyKey();
    const k2 = newIdempotencyKey();
    const tb = await timeIt(() => fetchOk(wire.path, { ...wire.headers(), 'idempotency-key': k1 }, wire.body(k1)));
    const th = await timeIt(() => httpOk(wire.path, { ...wire.headers(), 'idempotency-key': k2 }, wire.body(k2)));
    const ta = await timeIt(async () => {
      const out = await raw.charge(req1);
      if (out.status !== 'approved') throw new Error(`${name}: ${JSON.stringify(out)}`);
    });
    const tr = await timeIt(async () => {
      const out = await resilient.charge(req2);
      if (out.status !== 'approved') throw new Error(`${name} (resilient): ${JSON.stringify(out)}`);
    });
    if (i >= WARMUP) {
      base.push(tb);
      bare.push(th);
      a.push(ta);
      r.push(tr);
    }
  }
  for (const x of [base, bare, a, r]) x.sort((p, q) => p - q);
  return { adapter: name, baseMed: quantile(base, 0.5), baseP95: quantile(base, 0.95), httpMed: quantile(bare, 0.5), httpP95: quantile(bare, 0.95), rawMed: quantile(a, 0.5), rawP95: quantile(a, 0.95), resMed: quantile(r, 0.5), resP95: quantile(r, 0.95) };
}

const sandbox = await startSandbox({ stripeKeys: [STRIPE_KEY], adyenKeys: [ADYEN_KEY] });
const retry = { budgetMs: 20_000, maxSends: 3, backoffMs: 500, maxBackoffMs: 4_000, breakerFailures: 5, breakerResetMs: 30_000 };
const closers: PspAdapter[] = [];
const pair = (make: () => PspAdapter): [PspAdapter, ResilientGateway] => {
  const raw = make();
  const inner = make();
  closers.push(raw, inner);
  return [raw, new ResilientGateway(inner, retry)];
};

const stripeForm = (key: string): string =>
  new URLSearchParams({
    amount: '4990',
    currency: 'eur',
    confirm: 'true',
    'automatic_payment_methods[enabled]': 'true',
    'automatic_payment_methods[allow_redirects]': 'never',
    error_on_requires_action: 'true',
    'payment_method_data[type]': 'card',
    'payment_method_data[card][number]': PAN,
    'payment_method_data[card][exp_month]': '8',
    'payment_method_data[card][exp_year]': '2039',
    'payment_method_data[card][cvc]': '917',
    'payment_method_options[card][moto]': 'true',
    description: 'BENCH-1',
    'metadata[conversationId]': 'bench',
    'metadata[reference]': 'BENCH-1',
    'metadata[idempotency_key]': key,
    'expand[0]': 'latest_charge',
  }).toString();
const adyenJson = (): string =>
  JSON.stringify({
    amount: { value: 4990, currency: 'EUR' },
    reference: 'BENCH-1',
    merchantAccount: 'BenchMerchant',
    paymentMethod: { type: 'scheme', number: PAN, expiryMonth: '08', expiryYear: '2039', cvc: '917' },
    shopperInteraction: 'Moto',
    metadata: { conversationId: 'bench' },
  });
async function fetchOk(path: string, headers: Record<string, string>, body: string): Promise<void> {
  const res = await fetch(`${sandbox.url}${path}`, { method: 'POST', headers, body });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`baseline ${path}: HTTP ${res.status}`);
}
const agent = new http.Agent({ keepAlive: true });
function httpOk(path: string, headers: Record<string, string>, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${sandbox.url}${path}`, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`baseline ${path}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Generic REST, configured to speak to the sandbox's Adyen face (any JSON gateway would do).
const restCfg: RestPspConfig = {
  type: 'rest',
  url: `${sandbox.url}/${ADYEN_API_VERSION}/payments`,
  authHeader: 'X-API-Key',
  idempotent: true,
  idempotencyHeader: 'Idempotency-Key',
  bodyTemplate: {
    amount: { value: '{{amount}}', currency: '{{currency}}' },
    reference: '{{reference}}',
    merchantAccount: 'BenchMerchant',
    paymentMethod: { type: 'scheme', number: '{{pan}}', expiryMonth: '{{expMonth}}', expiryYear: '{{expYear}}', cvc: '{{cvc}}' },
    shopperInteraction: 'Moto',
    metadata: { conversationId: '{{metadata.conversationId}}' },
  },
  response: { statusPath: 'resultCode', approvedValues: ['Authorised'], declinedValues: ['Refused'], transactionIdPath: 'pspReference', authCodePath: 'additionalData.authCode', declineCodePath: 'refusalReasonCode', declineMap: {} },
  timeoutMs: 10_000,
};

const stripeWire: Wire = { path: '/v1/payment_intents', headers: () => ({ authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded' }), body: stripeForm };
const adyenWire: Wire = { path: `/${ADYEN_API_VERSION}/payments`, headers: () => ({ 'x-api-key': ADYEN_KEY, 'content-type': 'application/json' }), body: adyenJson };

const rows: Row[] = [];
{
  const [raw, res] = pair(() => new StripeGateway({ apiKey: STRIPE_KEY, baseUrl: sandbox.url, timeoutMs: 10_000, logger: silentLogger }));
  rows.push(await measure('stripe (stripe SDK)', raw, res, stripeWire));
}
{
  const [raw, res] = pair(() => new AdyenGateway({ apiKey: ADYEN_KEY, merchantAccount: 'BenchMerchant', baseUrl: `${sandbox.url}/${ADYEN_API_VERSION}`, timeoutMs: 10_000, logger: silentLogger }));
  rows.push(await measure('adyen (/payments)', raw, res, adyenWire));
}
{
  const [raw, res] = pair(() => new RestGateway({ config: restCfg, authValue: ADYEN_KEY, logger: silentLogger }));
  rows.push(await measure('rest (generic)', raw, res, adyenWire));
}

const f = (x: number): string => x.toFixed(3).padStart(7);
console.log(`PSP adapter latency against the in-process sandbox: N=${N} sequential charges each (after ${WARMUP} warm-up), node ${process.version}`);
console.log('ms; baselines post the same wire request to the same endpoint; added = adapter minus baseline (median, p95)');
console.log('adapter              | fetch  med     p95 | http   med     p95 | adapter med    p95 | added vs fetch  | added vs http   | +resilient med p95 | resilient vs http');
for (const x of rows) {
  console.log(
    [
      x.adapter.padEnd(20),
      `${f(x.baseMed)} ${f(x.baseP95)}`,
      `${f(x.httpMed)} ${f(x.httpP95)}`,
      `${f(x.rawMed)} ${f(x.rawP95)}`,
      `${f(x.rawMed - x.baseMed)} ${f(x.rawP95 - x.baseP95)}`,
      `${f(x.rawMed - x.httpMed)} ${f(x.rawP95 - x.httpP95)}`,
      `${f(x.resMed)} ${f(x.resP95)}`,
      `${f(x.resMed - x.httpMed)} ${f(x.resP95 - x.httpP95)}`,
    ].join(' | '),
  );
}
const charges = sandbox.charges().length;
console.log(`sandbox books: ${charges} charges = ${rows.length * 2 * (N + WARMUP)} approved adapter charges + ${rows.length * 2 * (N + WARMUP)} baseline POSTs`);
for (const c of closers) await c.close();
agent.destroy();
await sandbox.close();
