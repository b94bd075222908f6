import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PayIvrError } from '../src/errors.js';
import { Metrics } from '../src/http/metrics.js';
import { bearerMatches, startAdminServer, type AdminServer, type BackendStatus } from '../src/http/server.js';
import { MemoryStore } from '../src/store/memory.js';
import type { ResultStore } from '../src/store/types.js';
import { capturedLogger, sampleResult } from './support/result-fixtures.js';

const TOKEN = 'test-token-0123456789abcdef';
const TEST_PAN = '4242424242424242';

describe('Metrics', () => {
  it('exposes the pay_ivr_* series with closed label vocabularies', async () => {
    const m = new Metrics();
    m.callStarted();
    m.callStarted();
    m.callFinished();
    m.callFinished();
    m.callFinished(); // never below zero
    m.callStarted();
    m.callEnded('approved');
    m.callEnded('approved');
    m.callEnded('declined');
    m.pspRequest('stripe', 'approved', 0.42);
    m.pspRequest('stripe', TEST_PAN, 0.1); // not a label word: counted as "other"
    m.refer('accepted');
    m.decline('insufficient-funds');
    const text = await m.text();
    expect(text).toContain('pay_ivr_calls_total{outcome="approved"} 2');
    expect(text).toContain('pay_ivr_calls_total{outcome="declined"} 1');
    expect(text).toContain('pay_ivr_calls_total{outcome="psp-error"} 0');
    expect(text).toContain('pay_ivr_calls_total{outcome="unconfirmed"} 0');
    expect(text).toContain('pay_ivr_calls_active 1');
    expect(text).toContain('pay_ivr_psp_request_seconds_count{psp="stripe",result="approved"} 1');
    expect(text).toContain('pay_ivr_psp_request_seconds_count{psp="stripe",result="other"} 1');
    expect(text).toContain('pay_ivr_refer_total{result="accepted"} 1');
    expect(text).toContain('pay_ivr_declines_total{class="insufficient-funds"} 1');
    expect(text).toContain('pay_ivr_declines_total{class="fraud"} 0');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).not.toContain(TEST_PAN);
  });
});

describe('bearerMatches', () => {
  it('accepts only the exact token', () => {
    expect(bearerMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerMatches(`bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerMatches(`Bearer ${TOKEN}x`, TOKEN)).toBe(false);
    expect(bearerMatches(`Bearer ${TOKEN.slice(1)}`, TOKEN)).toBe(false);
    expect(bearerMatches(`Basic ${TOKEN}`, TOKEN)).toBe(false);
    expect(bearerMatches('Bearer ', TOKEN)).toBe(false);
    expect(bearerMatches(undefined, TOKEN)).toBe(false);
  });
});

describe('admin HTTP API', () => {
  let server: AdminServer;
  let base: string;
  let ready = false;
  let journal: BackendStatus['journal'];
  const store = new MemoryStore();
  const metrics = new Metrics();
  const { logger, lines } = capturedLogger();

  beforeAll(async () => {
    await store.saveResult(sampleResult('r1', { reference: 'INV-77', conversationId: 'conv-1' }));
    await store.saveResult(sampleResult('r2', { reference: 'INV-77', conversationId: 'conv-2', outcome: 'declined', declineClass: 'do-not-honor' }));
    await store.saveResult(sampleResult('r3', { reference: 'INV-99', conversationId: 'conv-2' }));
    await store.liveCallStarted({ id: 'call-1', callId: 'abc@host', startedAt: '2025-01-01T10:00:00.000Z', profile: 'default', state: 'card' });
    metrics.callEnded('approved');
    server = await startAdminServer({
      config: { admin: { enabled: true, host: '127.0.0.1', port: 0, apiToken: TOKEN } },
      store,
      metrics,
      backendStatus: () => ({ ready, activeCalls: 3, journal }),
      logger,
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.close();
    await server.close();
    await store.close();
  });

  /** null = no Authorization header. */
  const get = (path: string, token: string | null = TOKEN): Promise<Response> =>
    fetch(`${base}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });

  it('binds an ephemeral port', () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it('GET /health is 200', async () => {
    const res = await get('/health', null);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('GET /ready follows the backend: 503 then 200', async () => {
    ready = false;
    let res = await get('/ready', null);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, activeCalls: 3, draining: false });
    ready = true;
    res = await get('/ready', null);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ready: true, activeCalls: 3, draining: false });
  });

  it('GET /ready shows the journal: degraded (spooling) is still ready, a spool above 90 % full is not', async () => {
    ready = true;
    journal = { degraded: true, spoolBytes: 800, spoolMaxBytes: 1000, pending: 5 };
    let res = await get('/ready', null);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ready: true, activeCalls: 3, draining: false, store: 'degraded', spool: { bytes: 800, maxBytes: 1000, pending: 5, full: false } });
    journal = { degraded: true, spoolBytes: 950, spoolMaxBytes: 1000, pending: 9 };
    res = await get('/ready', null);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ready: false, store: 'degraded', spool: { full: true } });
    journal = undefined;
  });

  it('GET /metrics is Prometheus text with the counters', async () => {
    const res = await get('/metrics', null);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('pay_ivr_calls_total{outcome="approved"} 1');
    expect(text).toContain('# TYPE pay_ivr_psp_request_seconds histogram');
    expect(text).toContain('# TYPE pay_ivr_refer_total counter');
    expect(text).toContain('# TYPE pay_ivr_declines_total counter');
    expect(text).toContain('# TYPE pay_ivr_calls_active gauge');
  });

  it('the /v1 routes need the token', async () => {
    for (const path of ['/v1/results?reference=INV-77', '/v1/results/r1', '/v1/calls', '/v1/results']) {
      const none = await get(path, null);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toContain('Bearer');
      expect((await get(path, 'wrong-token-0123456789abcdef')).status).toBe(401);
      expect((await get(path, TOKEN.slice(0, -1))).status).toBe(401);
    }
  });

  it('looks results up by reference, conversation id and id', async () => {
    let res = await get('/v1/results?reference=INV-77');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    let body = (await res.json()) as { results: { id: string }[] };
    expect(body.results.map((r) => r.id)).toEqual(['r2', 'r1']);

    res = await get('/v1/results?conversationId=conv-2');
    body = (await res.json()) as { results: { id: string }[] };
    expect(body.results.map((r) => r.id)).toEqual(['r3', 'r2']);

    res = await get('/v1/results?reference=NOPE');
    expect(await res.json()).toEqual({ results: [] });

    res = await get('/v1/results/r2');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 'r2', outcome: 'declined', declineClass: 'do-not-honor', last4: '4242' });

    expect((await get('/v1/results/missing')).status).toBe(404);
  });

  it('recent results and query validation', async () => {
    let res = await get('/v1/results?limit=2');
    expect(((await res.json()) as { results: { id: string }[] }).results.map((r) => r.id)).toEqual(['r3', 'r2']);
    res = await get('/v1/results');
    expect(((await res.json()) as { results: unknown[] }).results.length).toBe(3);
    expect((await get('/v1/results?limit=abc')).status).toBe(400);
    expect((await get('/v1/results?reference=A&conversationId=B')).status).toBe(400);
    expect((await get('/v1/results?reference=')).status).toBe(400);
    expect((await get(`/v1/results?reference=${'x'.repeat(300)}`)).status).toBe(400);
  });

  it('lists live calls', async () => {
    const res = await get('/v1/calls');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ calls: [{ id: 'call-1', callId: 'abc@host', startedAt: '2025-01-01T10:00:00.000Z', profile: 'default', state: 'card', node: 'local' }] });
  });

  it('unknown routes are 404', async () => {
    expect((await get('/nope')).status).toBe(404);
  });

  it('request logs hold neither query strings, path ids nor the token', async () => {
    await get(`/v1/results?reference=SECRET-REF-${TEST_PAN}`);
    await get('/v1/results/SECRET-ID-1');
    await get('/nope?q=SECRET-Q');
    const all = lines.join('\n');
    expect(all).toContain('admin request');
    expect(all).toContain('/v1/results/:id');
    expect(all).not.toContain('SECRET');
    expect(all).not.toContain(TEST_PAN);
    expect(all).not.toContain(TOKEN);
  });
});

describe('admin HTTP API without a token, and with a failing store', () => {
  let server: AdminServer;
  let base: string;
  const failing: ResultStore = Object.assign(new MemoryStore(), {
    getByReference: async (): Promise<never> => {
      throw new PayIvrError('ERR_STORE', 'redis lookup failed: connection refused');
    },
  });

  beforeAll(async () => {
    server = await startAdminServer({
      config: { admin: { enabled: true, host: '127.0.0.1', port: 0 } },
      store: failing,
      metrics: new Metrics(),
      backendStatus: () => {
        throw new Error('backend gone');
      },
      logger: capturedLogger().logger,
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.close();
    await failing.close();
  });

  it('answers 503 with a clear message on /v1 when no token is configured', async () => {
    const res = await fetch(`${base}/v1/results?reference=X`, { headers: { authorization: 'Bearer anything-at-all-0000' } });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toContain('admin.apiToken');
  });

  it('health stays 200 and ready is 503 when the backend status throws', async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/ready`)).status).toBe(503);
  });
});

describe('admin HTTP API, store failure', () => {
  it('maps ERR_STORE to 503', async () => {
    const failing = new MemoryStore();
    failing.getByReference = async (): Promise<never> => {
      throw new PayIvrError('ERR_STORE', 'redis lookup failed');
    };
    const server = await startAdminServer({
      config: { admin: { enabled: true, host: '127.0.0.1', port: 0, apiToken: TOKEN } },
      store: failing,
      metrics: new Metrics(),
      backendStatus: () => ({ ready: true, activeCalls: 0 }),
      logger: capturedLogger().logger,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/v1/results?reference=X`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: 'result store unavailable' });
    } finally {
      await server.close();
      await failing.close();
    }
  });
});
