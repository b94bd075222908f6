import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import type { CaptureSnapshot } from '../src/assist/service.js';
import { FakeCaptureHost, FakeEdgeCall } from './support/fake-edge.js';
import { SseReader } from './support/assist-harness.js';

/**
 * The whole process with `edge.assist` and a capture host: startApp mounts the assist API on the
 * admin server, the capture charges through the profile's gateway, and the result is found with
 * the result API like any payment. Ports (own): SIP 52121, admin 52122, sandbox PSP 52123, RTP 52200-52299.
 */

const API_KEY = 'app-assist-key-0123456789abcdef';
const ADMIN_TOKEN = 'app-admin-token-0123456789abcdef';
const BASE = 'http://127.0.0.1:52122';
let app: App | undefined;
const host = new FakeCaptureHost();

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-assist-app-'));
  const config = parseConfig({
    journal: { dataDir: join(dir, 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 52121 }] },
    rtp: { host: '127.0.0.1', portMin: 52200, portMax: 52299, workers: 0 },
    admin: { host: '127.0.0.1', port: 52122, apiToken: ADMIN_TOKEN },
    edge: { assist: { apiKeys: [API_KEY], dtmfSecurity: 'silence' } },
    profiles: { default: { currency: 'USD', psp: { type: 'sandbox', face: 'adyen', listenPort: 52123 } } },
  });
  app = await startApp(config, silentLogger, { captureHost: host });
});

afterAll(async () => {
  await app?.stop();
});

describe('Agent Assist in the app', () => {
  it('starts a capture on a relayed call, charges it, and the result API has it', async () => {
    const call = host.add(new FakeEdgeCall('edge-session-app-00001', { conversationId: 'cnv-app' }));
    const r = await fetch(`${BASE}/v1/assist/captures`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sessionId: call.sessionId, amount: 2500, reference: 'INV-APP-1' }),
    });
    expect(r.status).toBe(201);
    const s = (await r.json()) as { captureId: string; panelToken: string };
    expect(call.ops[0]).toBe('block:silence');
    const events = new SseReader(`${BASE}/v1/assist/captures/${s.captureId}/events`, `Bearer ${s.panelToken}`);
    call.press('5555555555554444' + '0130' + '123');
    await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready');
    // The admin token is not an assist credential.
    expect((await fetch(`${BASE}/v1/assist/captures/${s.captureId}/charge`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(401);
    expect((await fetch(`${BASE}/v1/assist/captures/${s.captureId}/charge`, { method: 'POST', headers: { authorization: `Bearer ${s.panelToken}` } })).status).toBe(202);
    const end = await events.waitFor((e) => e.type === 'ended');
    expect((end.data as CaptureSnapshot).result).toMatchObject({ outcome: 'approved', brand: 'mastercard', last4: '4444' });
    await expect.poll(() => call.ops.at(-1)).toBe('unblock');
    await expect.poll(async () => ((await (await fetch(`${BASE}/v1/results/${s.captureId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { stage?: string }).stage).toBe('ended');
    const res = await fetch(`${BASE}/v1/results?conversationId=cnv-app`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const body = (await res.json()) as { results: { id: string; outcome: string; last4: string }[] };
    expect(body.results.map((x) => ({ id: x.id, outcome: x.outcome, last4: x.last4 }))).toEqual([{ id: s.captureId, outcome: 'approved', last4: '4444' }]);
    // The agent panel is served beside the API.
    expect((await fetch(`${BASE}/assist/panel`)).status).toBe(200);
  });
});
