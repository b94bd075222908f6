import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import platformClient from 'purecloud-platform-client-v2';
import { genesysPlatformSchema, type GenesysPlatformConfig } from '../src/config/genesys-platform-schema.js';
import { OUTCOMES, type PaymentResult } from '../src/domain/outcome.js';
import { isPayIvrError } from '../src/errors.js';
import { participantAttributes } from '../src/genesys/platform/attributes.js';
import { createParticipantDataWriter, retryAfterMs } from '../src/genesys/platform/client.js';
import type { ParticipantDataWriter } from '../src/genesys/platform/types.js';
import { FakeGenesysApi, type FakeGenesysStart } from './support/fake-genesys-api.js';
import { capturedLogger, sampleResult } from './support/result-fixtures.js';
import { cardDigitHits } from './support/run-texts.js';

const CARDS = ['4111111111111111', '5555555555554444', '4000000000000002'];

let fake: FakeGenesysApi;
let at: FakeGenesysStart;
let writers: ParticipantDataWriter[];
let logLines: string[];

function config(over: Record<string, unknown> = {}): GenesysPlatformConfig {
  return genesysPlatformSchema.parse({ enabled: true, gateway: { host: at.host, port: at.port }, caFile: at.caFile, timeoutMs: 2_000, ...over });
}

function writer(o: { cfg?: GenesysPlatformConfig; secret?: string; now?: () => number } = {}): ParticipantDataWriter {
  const { logger, lines } = capturedLogger();
  logLines = lines;
  const env = { GENESYS_CLIENT_ID: fake.clientId, GENESYS_CLIENT_SECRET: o.secret ?? fake.clientSecret };
  const w = createParticipantDataWriter(o.cfg ?? config(), logger, env, o.now === undefined ? {} : { now: o.now });
  writers.push(w);
  return w;
}

/** A conversation as Genesys has it for an inbound call through an IVR to a queue and an agent. */
function conversation(): { id: string; customer: string; others: string[] } {
  const id = randomUUID();
  const [customer, ...others] = fake.addConversation(id, [{ purpose: 'customer' }, { purpose: 'ivr' }, { purpose: 'acd' }, { purpose: 'agent' }]).map((p) => p.id);
  return { id, customer: customer ?? '', others };
}

function apiRequests(): number {
  return fake.requests.filter((r) => r.path.startsWith('/api/')).length;
}

beforeEach(async () => {
  fake = new FakeGenesysApi();
  at = await fake.start();
  writers = [];
});

afterEach(async () => {
  for (const w of writers) await w.close();
  await fake.stop();
  // Every request the writer sent had the shape the SDK typings and the API reference give.
  expect(fake.violations).toEqual([]);
});

describe('participant-data writer on the Platform API SDK', () => {
  it('writes every outcome onto the customer participant only, with one login for all writes', async () => {
    const w = writer();
    for (const outcome of OUTCOMES) {
      const c = conversation();
      const result: PaymentResult = sampleResult(`r-${outcome}`, { outcome, conversationId: c.id });
      const attributes = participantAttributes(result, config(), 'node-1');
      expect(await w.write(c.id, attributes)).toEqual({ kind: 'written' });
      const stored = fake.attributesOf(c.id);
      expect(stored[c.customer]).toEqual(attributes);
      for (const other of c.others) expect(stored[other]).toEqual({});
    }
    expect(fake.writes.map((x) => x.attributes['payivr.outcome'])).toEqual([...OUTCOMES]);
    expect(fake.logins).toBe(1);
    // The SDK's shared client was left alone: the token lives on our own instance.
    expect(platformClient.ApiClient.config.gateway).toBeUndefined();
  });

  it('looks the participant up once per conversation and merges later writes as Genesys does', async () => {
    const w = writer();
    const c = conversation();
    fake.addConversation(c.id, [{ id: c.customer, purpose: 'customer', attributes: { 'flow.lang': 'fr-FR' } }, { purpose: 'agent' }]);
    expect(await w.write(c.id, { 'payivr.outcome': 'unconfirmed', 'payivr.origin': 'call' })).toEqual({ kind: 'written' });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved', 'payivr.origin': 'reconciled' })).toEqual({ kind: 'written' });
    expect(fake.attributesOf(c.id)[c.customer]).toEqual({ 'flow.lang': 'fr-FR', 'payivr.outcome': 'approved', 'payivr.origin': 'reconciled' });
    expect(fake.requests.filter((r) => r.path === `/api/v2/conversations/${c.id}`)).toHaveLength(1);
  });

  it('falls back to the external participant, prefers a connected one, and refuses a conversation without either', async () => {
    const w = writer();
    const id = randomUUID();
    const [ended, live] = fake.addConversation(id, [{ purpose: 'external', ended: true }, { purpose: 'external' }, { purpose: 'agent' }]);
    expect(await w.write(id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    expect(fake.writes[0]?.participantId).toBe(live?.id);
    expect(fake.writes[0]?.participantId).not.toBe(ended?.id);

    const agentsOnly = randomUUID();
    fake.addConversation(agentsOnly, [{ purpose: 'agent' }, { purpose: 'acd' }]);
    expect(await w.write(agentsOnly, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'rejected' });
  });

  it('logs in again on a 401 and repeats the call once', async () => {
    const w = writer();
    const c = conversation();
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    fake.setFault({ kind: 'expire-tokens' });
    expect(await w.write(c.id, { 'payivr.outcome': 'declined' })).toEqual({ kind: 'written' });
    expect(fake.logins).toBe(2);
    expect(fake.attributesOf(c.id)[c.customer]?.['payivr.outcome']).toBe('declined');
  });

  it('renews the token before it expires, without a refused call', async () => {
    let clock = 1_000_000;
    fake.tokenLifetimeSec = 3_600;
    const w = writer({ now: () => clock });
    const c = conversation();
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    clock += 3_599_000 - 60_000;
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    expect(fake.logins).toBe(1);
    clock += 30_000;
    expect(await w.write(c.id, { 'payivr.outcome': 'declined' })).toEqual({ kind: 'written' });
    expect(fake.logins).toBe(2);
    // One GET and three PATCHes: no call was made with the old token and refused.
    expect(apiRequests()).toBe(4);
  });

  it('shares one login between concurrent writes', async () => {
    const w = writer();
    const cs = [conversation(), conversation(), conversation(), conversation()];
    const verdicts = await Promise.all(cs.map((c) => w.write(c.id, { 'payivr.outcome': 'approved' })));
    expect(verdicts.every((v) => v.kind === 'written')).toBe(true);
    expect(fake.logins).toBe(1);
    // Several calls refused with the same old token: one new login between them.
    fake.setFault({ kind: 'expire-tokens' });
    const again = await Promise.all(cs.map((c) => w.write(c.id, { 'payivr.outcome': 'declined' })));
    expect(again.every((v) => v.kind === 'written')).toBe(true);
    expect(fake.logins).toBe(2);
  });

  it('ends an open request on close with a retry verdict', async () => {
    // A deadline far beyond the test's: only close() can end the hanging request.
    const w = writer({ cfg: config({ timeoutMs: 600_000 }) });
    const c = conversation();
    fake.setFault({ kind: 'hang', count: 1 });
    const pending = w.write(c.id, { 'payivr.outcome': 'approved' });
    while (!fake.requests.some((r) => r.path.startsWith('/api/'))) await new Promise((r) => setTimeout(r, 10));
    await w.close();
    expect(await pending).toMatchObject({ kind: 'retry' });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'retry', why: 'writer closed' });
  });

  it('turns a 429 into a retry after the Retry-After delay, in seconds or as a date', async () => {
    const w = writer();
    const c = conversation();
    fake.setFault({ kind: 'rate-limit', count: 1, retryAfter: '7' });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'retry', why: 'get conversation: 429', afterMs: 7_000 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    fake.setFault({ kind: 'rate-limit', count: 1, retryAfter: new Date(Date.now() + 120_000).toUTCString() });
    const v = await w.write(c.id, { 'payivr.outcome': 'approved' });
    expect(v).toMatchObject({ kind: 'retry', why: 'patch attributes: 429' });
    const after = v.kind === 'retry' ? v.afterMs ?? 0 : 0;
    expect(after).toBeGreaterThan(60_000);
    expect(after).toBeLessThanOrEqual(120_000);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(retryAfterMs('0', 0)).toBe(0);
    expect(retryAfterMs(' 12 ', 0)).toBe(12_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT'))).toBe(60_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT'))).toBe(0);
    expect(retryAfterMs('soon', 0)).toBeUndefined();
    expect(retryAfterMs(undefined, 0)).toBeUndefined();
  });

  it('turns 5xx, a timeout and an outage into retries, and writes once the API is back', async () => {
    const w = writer({ cfg: config({ timeoutMs: 300 }) });
    const c = conversation();
    fake.setFault({ kind: 'server-error', count: 1, status: 503 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'retry', why: 'get conversation: 503' });
    fake.setFault({ kind: 'server-error', count: 1, status: 500 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'retry', why: 'get conversation: 500' });
    fake.setFault({ kind: 'hang', count: 1 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'retry', why: 'get conversation: ECONNABORTED' });
    fake.outage(true);
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'retry' });
    fake.outage(false);
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    expect(fake.writes).toHaveLength(1);
  });

  it('turns a failing login into a retry and logs the refusal without the secret', async () => {
    const w = writer({ secret: 'wrong-secret-value' });
    const c = conversation();
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'retry', why: 'get conversation: login HTTP 401' });
    expect(logLines.join('')).toContain('Genesys login refused');
    expect(logLines.join('')).not.toContain('wrong-secret-value');
    fake.setFault({ kind: 'server-error', count: 1, target: 'login' });
    const ok = writer();
    expect(await ok.write(c.id, { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'retry', why: 'get conversation: login HTTP 503' });
    expect(await ok.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
  });

  it('rejects with the status an unknown conversation (404), a refused permission (403) and a malformed request (400)', async () => {
    const w = writer();
    expect(await w.write(randomUUID(), { 'payivr.outcome': 'approved' })).toEqual({ kind: 'rejected', why: 'get conversation: 404', status: 404 });
    const c = conversation();
    fake.setFault({ kind: 'status', count: 1, status: 403 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'rejected', why: 'get conversation: 403', status: 403 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    fake.setFault({ kind: 'status', count: 1, status: 400 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'rejected', why: 'patch attributes: 400', status: 400 });
    // A 404 on the participant: the cached id is dropped and looked up again next time.
    fake.setFault({ kind: 'status', count: 1, status: 404 });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'rejected', why: 'patch attributes: 404', status: 404 });
    const gets = fake.requests.filter((r) => r.path === `/api/v2/conversations/${c.id}`).length;
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    expect(fake.requests.filter((r) => r.path === `/api/v2/conversations/${c.id}`).length).toBe(gets + 1);
  });

  it('refuses a conversation id that is not a Genesys id without sending anything', async () => {
    const w = writer();
    expect(await w.write('../users/me', { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'rejected' });
    expect(await w.write('4111111111111111', { 'payivr.outcome': 'approved' })).toMatchObject({ kind: 'rejected' });
    expect(fake.requests).toHaveLength(0);
    expect(cardDigitHits(logLines.map((text, i) => ({ where: `log ${i}`, text })), CARDS)).toEqual([]);
  });

  it('fails at start with a coded error naming a missing variable', () => {
    const { logger } = capturedLogger();
    const cfg = config({ clientSecretEnv: 'PAYIVR_TEST_GENESYS_SECRET' });
    let err: unknown;
    try {
      createParticipantDataWriter(cfg, logger, { GENESYS_CLIENT_ID: 'x' });
    } catch (e) {
      err = e;
    }
    expect(isPayIvrError(err, 'ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain('PAYIVR_TEST_GENESYS_SECRET');
    expect(() => createParticipantDataWriter(config({ caFile: '/nonexistent/ca.pem' }), logger, { GENESYS_CLIENT_ID: 'x', GENESYS_CLIENT_SECRET: 'y' })).toThrow(/caFile/);
  });

  it('puts no card digit and no token in any request body or log line, and a card-like result is never sent', async () => {
    const w = writer();
    const c = conversation();
    for (const outcome of OUTCOMES) {
      const attributes = participantAttributes(sampleResult(`s-${outcome}`, { outcome, last4: '1111' }), config(), 'node-1');
      expect(await w.write(c.id, attributes)).toEqual({ kind: 'written' });
    }
    // A result a bug filled with a card number: refused before anything reaches the writer.
    let refused: unknown;
    try {
      participantAttributes(sampleResult('bad', { brand: CARDS[0] }), config(), 'node-1');
    } catch (e) {
      refused = e;
    }
    expect(isPayIvrError(refused, 'ERR_PARTICIPANT_DATA')).toBe(true);
    fake.setFault({ kind: 'expire-tokens' });
    expect(await w.write(c.id, { 'payivr.outcome': 'approved' })).toEqual({ kind: 'written' });
    const texts = [...fake.texts(), ...logLines.map((text, i) => ({ where: `log ${i}`, text })), { where: 'refusal', text: String((refused as Error).message) }];
    expect(cardDigitHits(texts, CARDS)).toEqual([]);
    // Logs name attributes, never their values, and never the secret.
    const log = logLines.join('');
    expect(log).toContain('payivr.outcome');
    expect(log).not.toContain('"approved"');
    expect(log).not.toContain(fake.clientSecret);
    expect(log).not.toMatch(/Bearer|access_token/);
  });
});
