import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type GatewayHandle } from '../src/psp/index.js';
import { RestGateway, type RestPspConfig } from '../src/psp/rest.js';
import { FaultQueue, type Fault, type FaultRule } from '../src/psp/sandbox/faults.js';
import { configSchema, type PspConfig, type RetryConfig } from '../src/config/schema.js';
import { isPayIvrError } from '../src/errors.js';
import { ADAPTER_TIMEOUT_MS, FAST_RETRY, captureLogs, card, chargeRequest, findCardData } from './support/psp-fixtures.js';
import { describeFaultSuite, type FaultTally, type PspHarness } from './support/psp-suite.js';

/**
 * A merchant's own payment gateway, as small as it gets: JSON in, JSON out, an auth header, an
 * idempotency key with replay, and the same fault switches as the sandbox. It keeps last 4 only.
 */
interface Seen {
  auth: string | undefined;
  key: string | undefined;
  amountType: string;
  currency: unknown;
  display: unknown;
  orderRef: unknown;
  meta: unknown;
  expiryFormatOk: boolean;
  hasCvv: boolean;
  cvvLength: number;
  last4: string;
}

const TOKEN = 'Bearer gw-secret-token-123';
const DECLINES: Record<string, { http: number; code: string }> = {
  '4000000000000002': { http: 200, code: 'DNH' },
  '4000000000009995': { http: 402, code: 'NSF' },
  '4000000000000127': { http: 200, code: 'CVV' },
  '4000000000000069': { http: 200, code: 'EXP' },
  '4100000000000019': { http: 402, code: 'FRAUD' },
  '4000000000000119': { http: 200, code: 'ZZ-UNMAPPED' },
};

class TestGatewayServer {
  readonly faults = new FaultQueue();
  readonly seen: Seen[] = [];
  readonly books: { key: string | undefined; status: 'ok' | 'declined'; last4: string }[] = [];
  readonly posts: { key: string | undefined; digest: string; handling: string }[] = [];
  down = false;
  #stored = new Map<string, { state: 'in-flight' } | { state: 'done'; status: number; body: string }>();
  #server = http.createServer((req, res) => this.#handle(req, res));
  #held = new Set<http.ServerResponse>();
  #timers = new Set<NodeJS.Timeout>();
  #n = 0;
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const r of this.#held) r.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', this.url);
      if (req.headers['x-gateway-token'] !== TOKEN) return this.#send(res, 401, { error: 'unauthorised' });
      if (req.method === 'GET' && url.pathname === '/payments') {
        const fault = this.down ? ({ kind: 'status', status: 503 } as Fault) : this.faults.take('stripe', 'GET');
        if (fault?.kind === 'status') return this.#send(res, fault.status, { error: 'fault' });
        if (fault?.kind === 'reply-lost' || fault?.kind === 'hang') return void req.socket.destroy();
        const st = this.#stored.get(url.searchParams.get('key') ?? '');
        if (!st || st.state !== 'done') return this.#send(res, 404, { error: 'no such payment' });
        res.writeHead(st.status, { 'content-type': 'application/json' });
        return void res.end(st.body);
      }
      if (req.method !== 'POST' || url.pathname !== '/payments') return this.#send(res, 404, { error: 'not found' });
      const key = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : undefined;
      const digest = createHash('sha256').update(raw).digest('hex').slice(0, 16);
      const record = (handling: string): void => void this.posts.push({ key, digest, handling });
      const fault = this.down ? ({ kind: 'status', status: 503 } as Fault) : this.faults.take('stripe', 'POST');
      if (fault?.kind === 'status') {
        record('fault');
        return this.#send(res, fault.status, { error: 'fault' }, fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {});
      }
      if (fault?.kind === 'hang' && !fault.execute) {
        record('fault');
        return void this.#held.add(res);
      }
      const deliver = (status: number, body: string, handling: string): void => {
        record(handling);
        if (fault?.kind === 'reply-lost') return void req.socket.destroy();
        if (fault?.kind === 'hang') return void this.#held.add(res);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body);
      };
      const prev = key ? this.#stored.get(key) : undefined;
      if (prev?.state === 'in-flight') {
        record('in-flight');
        return this.#send(res, 409, { error: 'in flight' });
      }
      if (prev?.state === 'done') return deliver(prev.status, prev.body, 'replayed');
      if (key) this.#stored.set(key, { state: 'in-flight' });
      const run = (): void => {
        const { status, body } = this.#execute(req, raw, key);
        if (key) this.#stored.set(key, { state: 'done', status, body });
        deliver(status, body, 'executed');
      };
      if (fault?.kind === 'latency') {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          run();
        }, fault.ms);
        this.#timers.add(t);
      } else run();
    });
  }

  #execute(req: http.IncomingMessage, raw: Buffer, key: string | undefined): { status: number; body: string } {
    const b = JSON.parse(raw.toString('utf8')) as { amount: unknown; currency: unknown; display: unknown; orderRef: unknown; meta: unknown; card: { number: string; expiry: string; cvv?: string } };
    const pan = b.card.number;
    this.seen.push({
      auth: req.headers['x-gateway-token'] as string | undefined,
      key,
      amountType: typeof b.amount,
      currency: b.currency,
      display: b.display,
      orderRef: b.orderRef,
      meta: b.meta,
      expiryFormatOk: /^\d{2}\/\d{2}$/.test(b.card.expiry),
      hasCvv: 'cvv' in b.card,
      cvvLength: b.card.cvv?.length ?? 0,
      last4: pan.slice(-4),
    });
    const id = `tx_${++this.#n}`;
    const d = DECLINES[pan];
    if (d) {
      this.books.push({ key, status: 'declined', last4: pan.slice(-4) });
      return { status: d.http, body: JSON.stringify({ result: { status: 'DECLINED', id, reason: d.code } }) };
    }
    this.books.push({ key, status: 'ok', last4: pan.slice(-4) });
    return { status: 200, body: JSON.stringify({ result: { status: 'APPROVED', id, auth: 'A1B2C3' } }) };
  }

  #send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }
}

const logs = captureLogs();
const server = new TestGatewayServer();
const usedPans = new Set<string>(['4242424242424242']);
const tally: FaultTally = { charges: 0, approved: 0 };
const env = { TEST_GATEWAY_TOKEN: TOKEN };
let handle: GatewayHandle;

function restConfig(over: Partial<RestPspConfig> = {}): RestPspConfig {
  const parsed = configSchema.parse({
    profiles: {
      default: {
        psp: {
          type: 'rest',
          url: `${server.url}/payments`,
          lookupUrl: `${server.url}/payments?key={{idempotencyKey}}`,
          authHeader: 'X-Gateway-Token',
          authEnv: 'TEST_GATEWAY_TOKEN',
          bodyTemplate: {
            amount: '{{amount}}',
            currency: '{{currency}}',
            display: '{{amountMajor}} {{currency}}',
            orderRef: '{{reference}}',
            meta: { conv: '{{metadata.conversationId}}', channel: 'ivr' },
            card: { number: '{{pan}}', expiry: '{{expMonth}}/{{expYear2}}', cvv: '{{cvc}}' },
          },
          response: {
            statusPath: 'result.status',
            approvedValues: ['APPROVED'],
            declinedValues: ['DECLINED'],
            transactionIdPath: 'result.id',
            authCodePath: 'result.auth',
            declineCodePath: 'result.reason',
            declineMap: { NSF: 'insufficient-funds', DNH: 'do-not-honor', CVV: 'incorrect-cvc', EXP: 'expired-card', FRAUD: 'fraud' },
          },
          timeoutMs: ADAPTER_TIMEOUT_MS,
        },
      },
    },
  });
  const psp = parsed.profiles.default?.psp;
  if (psp?.type !== 'rest') throw new Error('expected a rest profile');
  return { ...psp, ...over };
}
const retry: RetryConfig = { ...FAST_RETRY };
const req = (pan: string, over: Parameters<typeof chargeRequest>[1] = {}): ReturnType<typeof chargeRequest> => {
  usedPans.add(pan);
  return chargeRequest(pan, over);
};

beforeAll(async () => {
  await server.start();
  handle = await createGateway(restConfig(), retry, logs.logger, { env, configPath: 'profiles.default.psp' });
});

afterAll(async () => {
  await handle.close();
  await server.close();
});

describe('generic REST adapter against a gateway server in the test', () => {
  it('fills the body template (typed amount, major amount, metadata, card fields) and sends auth and key headers', async () => {
    const r = req('4242424242424242');
    const out = await handle.gateway.charge(r);
    expect(out).toEqual({ status: 'approved', transactionId: expect.stringMatching(/^tx_/) as unknown as string, authCode: 'A1B2C3' });
    const seen = server.seen[server.seen.length - 1];
    expect(seen).toEqual({
      auth: TOKEN,
      key: r.idempotencyKey,
      amountType: 'number',
      currency: 'EUR',
      display: '49.90 EUR',
      orderRef: 'INV-77',
      meta: { conv: 'conv-1', channel: 'ivr' },
      expiryFormatOk: true,
      hasCvv: true,
      cvvLength: 3,
      last4: '4242',
    });
  });

  it('drops the security-code key when the card has none', async () => {
    const out = await handle.gateway.charge(req('5555555555554444', { card: card('5555555555554444', null) }));
    expect(out.status).toBe('approved');
    expect(server.seen[server.seen.length - 1]).toMatchObject({ hasCvv: false, last4: '4444' });
  });

  it.each([
    ['4000000000000002', 'do-not-honor', 'DNH'],
    ['4000000000009995', 'insufficient-funds', 'NSF'],
    ['4000000000000127', 'incorrect-cvc', 'CVV'],
    ['4000000000000069', 'expired-card', 'EXP'],
    ['4100000000000019', 'fraud', 'FRAUD'],
    ['4000000000000119', 'do-not-honor', 'ZZ-UNMAPPED'],
  ])('maps the decline of %s to %s (%s), on HTTP 200 or 402', async (pan, cls, code) => {
    const out = await handle.gateway.charge(req(pan));
    expect(out).toMatchObject({ status: 'declined', declineClass: cls, pspCode: code });
  });

  it('looks an attempt up by idempotency key through lookupUrl; undefined when the gateway has none', async () => {
    const r = req('4242424242424242');
    const out = await handle.gateway.charge(r);
    expect(await handle.gateway.lookup({ idempotencyKey: r.idempotencyKey })).toEqual(out);
    expect(await handle.gateway.lookup({ idempotencyKey: 'payivr-none' })).toBeUndefined();
  });

  it('refuses bad profiles at start: unknown placeholder, unknown decline class, missing auth secret', async () => {
    const fail = async (cfg: PspConfig, e: NodeJS.ProcessEnv, re: RegExp): Promise<void> => {
      const err = await createGateway(cfg, retry, logs.logger, { env: e, configPath: 'profiles.x.psp' }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isPayIvrError(err, 'ERR_PSP_CONFIG'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(re);
    };
    await fail(restConfig({ bodyTemplate: { n: '{{panNumber}}' } }), env, /profiles\.x\.psp\.bodyTemplate: unknown placeholder\(s\) \{\{panNumber\}\}/);
    const c = restConfig();
    await fail({ ...c, response: { ...c.response, declineMap: { NSF: 'broke' } } }, env, /declineMap\.NSF: "broke" is not a decline class/);
    await fail(restConfig(), {}, /TEST_GATEWAY_TOKEN or profiles\.x\.psp\.apiKeyFile/);
  });

  it('a gateway without idempotency is sent once, never resent: a lost reply is found by lookup only', async () => {
    const g = await createGateway(restConfig({ idempotent: false }), retry, logs.logger, { env });
    server.faults.add({ fault: { kind: 'reply-lost' }, method: 'POST' });
    const r = req('4242424242424242');
    const out = await g.gateway.charge(r);
    expect(out.status).toBe('approved');
    expect(server.posts.filter((p) => p.key === r.idempotencyKey)).toHaveLength(1);
    expect(server.books.filter((b) => b.key === r.idempotencyKey && b.status === 'ok')).toHaveLength(1);
    // Without a lookup URL the same loss ends as psp-error after the single send.
    const blind = await createGateway(restConfig({ idempotent: false, lookupUrl: undefined }), retry, logs.logger, { env });
    server.faults.add({ fault: { kind: 'hang', execute: true }, method: 'POST' });
    const r2 = req('4242424242424242');
    expect(await blind.gateway.charge(r2)).toEqual({ status: 'unknown', reason: 'timeout' });
    expect(server.posts.filter((p) => p.key === r2.idempotencyKey)).toHaveLength(1);
    server.faults.clear();
    await g.close();
    await blind.close();
  });

  it('RestGateway exposes its capabilities from the profile', () => {
    const g = new RestGateway({ config: restConfig({ lookupUrl: `${server.url}/tx/{{transactionId}}` }), authValue: TOKEN, logger: logs.logger });
    expect(g.capabilities).toEqual({ idempotentReplay: true, lookupByKey: false, lookupById: true });
    void g.close();
  });

  const harness = (): PspHarness => ({
    label: 'rest',
    logger: logs.logger,
    newAdapter: (t) => new RestGateway({ config: restConfig({ timeoutMs: t }), authValue: TOKEN, logger: logs.logger }),
    inject: (rule: FaultRule) => server.faults.add(rule),
    setDown: (d) => {
      server.down = d;
    },
    clearFaults: () => server.faults.clear(),
    chargesFor: (key) => server.books.filter((b) => b.key === key && b.status === 'ok').length,
    postsFor: (key) => server.posts.filter((p) => p.key === key).map((p) => ({ digest: p.digest, handling: p.handling })),
  });
  describeFaultSuite(harness, tally);

  it('fault tests: charges on the gateway books equal approved outcomes', () => {
    console.log(`[psp-rest] fault tests: gateway charges=${tally.charges} approved outcomes=${tally.approved}`);
    expect(tally.approved).toBeGreaterThanOrEqual(8);
    expect(tally.charges).toBe(tally.approved);
  });

  it('leaks no card data in any log line, nor the auth token', () => {
    const lines = logs.lines();
    expect(lines.length).toBeGreaterThan(30);
    expect(findCardData(lines, [...usedPans])).toEqual([]);
    expect(lines.filter((l) => l.includes('gw-secret-token'))).toEqual([]);
  });
});
