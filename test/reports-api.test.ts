import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../src/http/metrics.js';
import { startAdminServer, type AdminServer } from '../src/http/server.js';
import { MemoryStore } from '../src/store/memory.js';
import { MemorySegmentStore, Reports } from '../src/reports/index.js';
import { rangeOf } from '../src/http/reports-api.js';
import { sessionCookie } from '../src/http/session.js';
import type { SegmentRecord } from '../src/reports/segment.js';
import { silentLogger } from '../src/log.js';

/** The report routes over HTTP: auth (token or page session), parameters, formats, the event stream, the page. */

const TOKEN = 'api-test-token-0123456789';
let server: AdminServer | undefined;
let base = '';
const reports = new Reports(new MemorySegmentStore({ maxSegments: 100, retentionSeconds: 86_400 * 400 }), { logger: silentLogger, node: 'n1' });
const auth = { authorization: `Bearer ${TOKEN}` };

function seg(id: string, startedAt: string, outcome: SegmentRecord['outcome'], amount?: number): SegmentRecord {
  return {
    id,
    node: 'n1',
    profile: 'default',
    mode: 'automated',
    language: 'en-US',
    startedAt,
    endedAt: new Date(Date.parse(startedAt) + 20_000).toISOString(),
    durationMs: 20_000,
    steps: [{ step: 'answer', at: startedAt, invalidEntries: 0, timeouts: 0 }],
    attempts: { charges: outcome === 'approved' ? 1 : 0, declines: 0, invalidEntries: 0, timeouts: 0 },
    declineClasses: [],
    pspMs: outcome === 'approved' ? [300] : [],
    outcome,
    ...(amount !== undefined ? { amount } : {}),
    currency: 'EUR',
    handBack: { target: 'sip:+18005550100@127.0.0.1', status: 'accepted' },
  };
}

beforeAll(async () => {
  await reports.store.save(seg('a', '2026-11-30T22:30:00.000Z', 'approved', 1000)); // Nov 30 in UTC, Dec 1 in Paris
  await reports.store.save(seg('b', '2026-12-01T10:00:00.000Z', 'approved', 2500));
  await reports.store.save(seg('c', '2026-12-01T11:00:00.000Z', 'hangup'));
  server = await startAdminServer({
    config: { admin: { enabled: true, host: '127.0.0.1', port: 0, apiToken: TOKEN } },
    store: new MemoryStore(),
    metrics: new Metrics(),
    reports,
    backendStatus: () => ({ ready: true, activeCalls: 0 }),
    logger: silentLogger,
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.close();
});

describe('report API', () => {
  it('needs the token (or a page session)', async () => {
    for (const path of ['/v1/reports/summary', '/v1/reports/funnel', '/v1/reports/export.csv', '/v1/reports/export.ndjson', '/v1/calls/stream']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
    }
    expect((await fetch(`${base}/v1/reports/summary?from=2026-12-01&to=2026-12-02`, { headers: { authorization: 'Bearer wrong-token-0000000000' } })).status).toBe(401);
  });

  it('reads the range in the time zone asked for', async () => {
    const get = async (q: string): Promise<{ range: { from: string; to: string }; total: { count: number; amount: Record<string, number> } }> =>
      (await (await fetch(`${base}/v1/reports/summary?${q}`, { headers: auth })).json()) as never;
    const utc = await get('from=2026-12-01&to=2026-12-02');
    expect(utc.range).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2026-12-02T00:00:00.000Z', tz: 'UTC' });
    expect(utc.total).toMatchObject({ count: 2, amount: { EUR: 2500 } });
    const paris = await get('from=2026-12-01&to=2026-12-02&tz=Europe/Paris');
    expect(paris.range.from).toBe('2026-11-30T23:00:00.000Z');
    expect(paris.total).toMatchObject({ count: 2, amount: { EUR: 2500 } });
    const wide = await get('from=2026-11-30T22:00:00Z&to=2026-12-01T12:00:00%2B00:30');
    expect(wide.total).toMatchObject({ count: 3, amount: { EUR: 3500 } });
  });

  it('refuses bad parameters with a clear message', async () => {
    const bad: [string, RegExp][] = [
      ['tz=Mars/Olympus', /IANA/],
      ['from=yesterday', /ISO instants or YYYY-MM-DD/],
      ['from=2026-12-02&to=2026-12-01', /after from/],
      ['from=2024-01-01&to=2026-01-01', /400 days/],
      ['groupBy=minute', /groupBy must be one of hour, day, profile, outcome, brand, declineClass/],
    ];
    for (const [q, msg] of bad) {
      const r = await fetch(`${base}/v1/reports/summary?${q}`, { headers: auth });
      expect(r.status, q).toBe(400);
      expect(((await r.json()) as { error: string }).error).toMatch(msg);
    }
  });

  it('defaults to today in the time zone, until now', () => {
    const now = Date.parse('2026-12-01T15:30:00Z');
    expect(rangeOf({}, now)).toEqual({ fromMs: Date.parse('2026-12-01T00:00:00Z'), toMs: now + 1, tz: 'UTC' });
    expect(rangeOf({ tz: 'America/New_York' }, now)).toMatchObject({ fromMs: Date.parse('2026-12-01T05:00:00Z') });
  });

  it('exports CSV and NDJSON with download headers', async () => {
    const csv = await fetch(`${base}/v1/reports/export.csv?from=2026-11-01&to=2026-12-31`, { headers: auth });
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(csv.headers.get('content-disposition')).toMatch(/attachment/);
    expect((await csv.text()).trimEnd().split('\r\n')).toHaveLength(4);
    const nd = await fetch(`${base}/v1/reports/export.ndjson?from=2026-11-01&to=2026-12-31`, { headers: auth });
    expect(nd.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect((await nd.text()).trimEnd().split('\n').map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(['a', 'b', 'c']);
  });

  it('streams call events as server-sent events and adds the current step to /v1/calls', async () => {
    const ac = new AbortController();
    const r = await fetch(`${base}/v1/calls/stream`, { headers: auth, signal: ac.signal });
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const until = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += new TextDecoder().decode(value);
      }
    };
    await until(': connected');
    expect(reports.events.listeners).toBe(1);
    reports.events.emit({ type: 'step', id: 'emb-9', at: '2026-12-01T10:00:00.000Z', step: 'expiry' });
    await until('event: step\ndata: {"type":"step","id":"emb-9","at":"2026-12-01T10:00:00.000Z","step":"expiry"}\n\n');
    ac.abort();
    await reader.cancel().catch(() => undefined);
    await expect.poll(() => reports.events.listeners).toBe(0);
  });

  it('page session: wrong token refused, cookie HttpOnly + SameSite=Strict opens /v1, logout closes it', async () => {
    expect(await (await fetch(`${base}/session`)).json()).toEqual({ signedIn: false, enabled: true });
    const wrong = await fetch(`${base}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'nope-nope-nope-nope' }) });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const ok = await fetch(`${base}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) });
    expect(ok.status).toBe(204);
    const setCookie = ok.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^payivr_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(';')[0] as string;
    expect((await fetch(`${base}/v1/reports/funnel`, { headers: { cookie } })).status).toBe(200);
    expect(await (await fetch(`${base}/session`, { headers: { cookie } })).json()).toEqual({ signedIn: true, enabled: true });
    await fetch(`${base}/session/logout`, { method: 'POST', headers: { cookie } });
    expect((await fetch(`${base}/v1/reports/funnel`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(`${base}/v1/reports/funnel`, { headers: { cookie: 'payivr_session=forged-forged-forged-forged' } })).status).toBe(401);
  });

  it('marks the cookie Secure when reports.secureCookie says the page is behind TLS', () => {
    expect(sessionCookie('abc', 60, true)).toBe('payivr_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure');
    expect(sessionCookie('abc', 60, false)).not.toContain('Secure');
  });

  it('serves the page and its assets from pay-ivr itself, with a CSP that loads nothing from elsewhere', async () => {
    const page = await fetch(`${base}/`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/assets/app.js">');
    for (const f of ['app.js', 'charts.js', 'style.css']) {
      const r = await fetch(`${base}/assets/${f}`);
      expect(r.status, f).toBe(200);
      // The SVG namespace is a name, not a download.
      expect((await r.text()).replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\//);
    }
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${base}/assets/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}/assets/server.ts`)).status).toBe(404);
  });
});
