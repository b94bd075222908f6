import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { randomUUID } from 'node:crypto';
import { FakeGenesysApi, type FakeGenesysStart } from './support/fake-genesys-api.js';

/**
 * The fake's own checks: the writer's tests rely on `violations` staying empty, which proves
 * something only if a request of the wrong shape does land there.
 */

let fake: FakeGenesysApi;
let at: FakeGenesysStart;

beforeEach(async () => {
  fake = new FakeGenesysApi();
  at = await fake.start();
});

afterEach(async () => {
  await fake.stop();
});

function send(method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: at.host, port: at.port, method, path, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, ca: at.caPem }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const basic = (): string => `Basic ${Buffer.from(`${fake.clientId}:${fake.clientSecret}`).toString('base64')}`;
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

async function token(): Promise<string> {
  const r = await send('POST', '/oauth/token', { Authorization: basic(), ...FORM }, 'grant_type=client_credentials');
  expect(r.status).toBe(200);
  expect(r.json).toMatchObject({ token_type: 'bearer', expires_in: fake.tokenLifetimeSec });
  return String(r.json['access_token']);
}

describe('fake Genesys API', () => {
  it('serves a well-formed login, lookup and patch without a violation', async () => {
    const id = randomUUID();
    const [customer] = fake.addConversation(id, [{ purpose: 'customer' }, { purpose: 'agent' }]);
    const t = await token();
    const auth = { Authorization: `Bearer ${t}` };
    const conv = await send('GET', `/api/v2/conversations/${id}`, auth);
    expect(conv.status).toBe(200);
    expect((await send('GET', `/api/v2/conversations/calls/${id}`, auth)).status).toBe(200);
    const patch = await send('PATCH', `/api/v2/conversations/calls/${id}/participants/${customer?.id ?? ''}/attributes`, { ...auth, 'Content-Type': 'application/json' }, JSON.stringify({ attributes: { a: '1' } }));
    expect(patch.status).toBe(200);
    expect(fake.violations).toEqual([]);
    expect(fake.writes).toHaveLength(1);
    // A wrong secret is Genesys's own answer, not a deviation.
    const wrong = await send('POST', '/oauth/token', { Authorization: `Basic ${Buffer.from('x:y').toString('base64')}`, ...FORM }, 'grant_type=client_credentials');
    expect(wrong.status).toBe(401);
    expect(fake.violations).toEqual([]);
  });

  it('answers 400 and records a violation for each deviation from the documented shapes', async () => {
    const id = randomUUID();
    const [customer] = fake.addConversation(id, [{ purpose: 'customer' }]);
    const t = await token();
    const json = { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' };
    const patchPath = `/api/v2/conversations/calls/${id}/participants/${customer?.id ?? ''}/attributes`;
    const bad: [string, string, Record<string, string>, string][] = [
      ['POST', '/oauth/token', { Authorization: basic(), 'Content-Type': 'application/json' }, '{"grant_type":"client_credentials"}'],
      ['POST', '/oauth/token', { Authorization: basic(), ...FORM }, 'grant_type=password'],
      ['POST', '/oauth/token', { ...FORM }, 'grant_type=client_credentials'],
      ['GET', `/api/v2/conversations/${id}`, { Authorization: t }, ''],
      ['PATCH', patchPath, { ...json, 'Content-Type': 'text/plain' }, JSON.stringify({ attributes: { a: '1' } })],
      ['PATCH', patchPath, json, JSON.stringify({ attributes: { a: 1 } })],
      ['PATCH', patchPath, json, JSON.stringify({ attributes: { a: '1' }, participantId: 'x' })],
      ['PATCH', patchPath, json, JSON.stringify({ a: '1' })],
      ['PATCH', patchPath, json, 'not json'],
      ['PUT', patchPath, json, JSON.stringify({ attributes: { a: '1' } })],
      ['PATCH', `/api/v2/conversations/${id}/participants/${customer?.id ?? ''}`, json, JSON.stringify({ attributes: { a: '1' } })],
    ];
    for (const [method, path, headers, body] of bad) {
      const before = fake.violations.length;
      expect((await send(method, path, headers, body)).status, `${method} ${path} ${body}`).toBe(400);
      expect(fake.violations.length, `${method} ${path} ${body}`).toBe(before + 1);
    }
    expect(fake.writes).toEqual([]);
  });
});
