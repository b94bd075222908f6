import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { createGateway, newIdempotencyKey, startSandbox, type GatewayHandle, type Sandbox } from '../src/psp/index.js';
import { SensitiveDigits } from '../src/domain/sensitive.js';
import { MemoryStore, RedisStore } from '../src/store/index.js';
import { openJournal, Reconciler, Spool, type JournalAttempt, type JournalRuntime, type NewAttempt } from '../src/journal/index.js';
import { LocalJournalBackend } from '../src/journal/local-backend.js';
import { RedisJournalBackend } from '../src/journal/redis-backend.js';
import { PaymentJournal } from '../src/journal/journal.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { cliArgs } from './support/dist.js';

/**
 * Reconciliation against the sandbox PSP (real HTTP, Stripe face): open attempts are settled by
 * a lookup by idempotency key and the call's result records the real outcome, with origin
 * `reconciled`; what the PSP cannot tell stays open. Then the Redis journal's versioned writes
 * and the spool fallback while Redis is down, and `pay-ivr reconcile` on the command line.
 */

const VISA = '4242424242424242';
const DECLINED = '4000000000000002';
let sandbox: Sandbox;
let gw: GatewayHandle;
let dir: string;

function card(pan: string): { pan: SensitiveDigits; expiry: SensitiveDigits; securityCode: SensitiveDigits } {
  return { pan: SensitiveDigits.from(pan), expiry: SensitiveDigits.from('1234'), securityCode: SensitiveDigits.from('737') };
}

function attempt(over: Partial<NewAttempt> = {}): NewAttempt {
  return { id: randomUUID(), idempotencyKey: newIdempotencyKey(), callRef: `call-${randomUUID().slice(0, 8)}`, callId: 'c1@x', psp: 'sandbox-stripe', profile: 'default', amount: 1234, currency: 'EUR', reference: `INV-${randomUUID().slice(0, 6)}`, brand: 'visa', last4: '4242', attempt: 1, ...over };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-reconcile-'));
  sandbox = await startSandbox({ host: '127.0.0.1', port: 0 });
  gw = await createGateway({ type: 'sandbox', url: sandbox.url, face: 'stripe', timeoutMs: 3000 }, { budgetMs: 4000, maxSends: 2, backoffMs: 100, maxBackoffMs: 500, breakerFailures: 50, breakerResetMs: 1000 }, silentLogger);
});

afterAll(async () => {
  await gw?.close();
  await sandbox?.close();
});

/** The CLI as a child process; asynchronously, since the sandbox answers from this process. */
function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, cliArgs(...args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function localJournal(name: string, now: () => Date = () => new Date()): { journal: PaymentJournal; spool: Spool } {
  const spool = Spool.open({ path: join(dir, `${name}.jsonl`), maxBytes: 1 << 20 });
  return { journal: new PaymentJournal({ backend: new LocalJournalBackend(spool), spool, node: 'n1', logger: silentLogger, now }), spool };
}

describe('reconciliation', () => {
  it('settles open attempts by lookup: charged -> approved, declined -> declined, never sent -> not charged once old enough', async () => {
    let clock = Date.now();
    const now = (): Date => new Date(clock);
    const { journal, spool } = localJournal('r1', now);
    const results = new MemoryStore();
    // Charged at the PSP, but the call died before it knew (no result at all).
    const a1 = await journal.begin(attempt());
    expect((await gw.gateway.charge({ amount: 1234, currency: 'EUR', card: card(VISA), reference: a1.reference, idempotencyKey: a1.idempotencyKey, metadata: {} })).status).toBe('approved');
    // Declined at the PSP; the call had recorded psp-error (outcome unknown during the call).
    const a2 = await journal.begin(attempt({ last4: '0002' }));
    expect((await gw.gateway.charge({ amount: 1234, currency: 'EUR', card: card(DECLINED), reference: a2.reference, idempotencyKey: a2.idempotencyKey, metadata: {} })).status).toBe('declined');
    await results.saveResult({ id: a2.callRef, outcome: 'psp-error', mode: 'automated', currency: 'EUR', reference: a2.reference, attempts: { charges: 1, declines: 0, invalidEntries: 0 }, stage: 'ended' });
    // Never reached the PSP; the call recorded "unconfirmed" (psp helper's outcome).
    const a3 = await journal.begin(attempt());
    await results.saveResult({ id: a3.callRef, outcome: 'unconfirmed' as 'psp-error', mode: 'agent', currency: 'EUR', reference: a3.reference, attempts: { charges: 1, declines: 0, invalidEntries: 0 }, stage: 'ended' });
    for (const a of [a1, a2, a3]) journal.release(a.id);

    const settledCounts: string[] = [];
    const rec = new Reconciler({ journal, results, gatewayFor: (p) => (p === 'default' ? gw.gateway : undefined), noRecordAfterMs: 60_000, logger: silentLogger, now, onSettled: (o) => settledCounts.push(o) });
    const first = await rec.runOnce();
    expect(first.map((e) => [e.attemptId, e.outcome])).toEqual([
      [a1.id, 'approved'],
      [a2.id, 'declined'],
      [a3.id, 'open'],
    ]);
    expect(await results.getById(a1.callRef)).toMatchObject({ outcome: 'approved', origin: 'reconciled', last4: '4242', amount: 1234, reference: a1.reference });
    expect((await results.getById(a1.callRef))?.transactionId).toMatch(/^pi_/);
    expect(await results.getById(a2.callRef)).toMatchObject({ outcome: 'declined', origin: 'reconciled', declineClass: expect.any(String) });
    expect((await journal.openAttempts()).map((a) => a.id)).toEqual([a3.id]);
    expect((await journal.openAttempts())[0]?.checks).toBe(1);

    // Old enough: "no record" now means not charged, and "unconfirmed" becomes "psp-error".
    clock += 61_000;
    const second = await rec.runOnce();
    expect(second.map((e) => [e.attemptId, e.outcome, e.detail])).toEqual([[a3.id, 'not-charged', 'psp-error']]);
    expect(await results.getById(a3.callRef)).toMatchObject({ outcome: 'psp-error', origin: 'reconciled', mode: 'agent' });
    expect(await journal.openAttempts()).toEqual([]);
    expect(settledCounts).toEqual(['approved', 'declined', 'not-charged']);
    expect(await rec.runOnce()).toEqual([]);
    // The journal is in the spool file: a restarted node sees the same settled records.
    await spool.close();
    const again = localJournal('r1');
    expect(await again.journal.openAttempts()).toEqual([]);
    expect(((await again.journal.backend.get(a1.id)) as JournalAttempt).outcome).toBe('approved');
    expect(((await again.journal.backend.get(a1.id)) as JournalAttempt).origin).toBe('reconciled');
    await again.spool.close();
    expect(sandbox.charges().filter((c) => [a1.reference, a2.reference, a3.reference].includes(c.reference ?? ''))).toHaveLength(1);
  });

  it('an attempt the PSP cannot tell about stays open and is settled by a later round', async () => {
    const { journal, spool } = localJournal('r2');
    const results = new MemoryStore();
    const a = await journal.begin(attempt());
    await gw.gateway.charge({ amount: 1234, currency: 'EUR', card: card(VISA), reference: a.reference, idempotencyKey: a.idempotencyKey, metadata: {} });
    journal.release(a.id);
    // In flight attempts (the call is still sending) are left to the call.
    const b = await journal.begin(attempt());
    sandbox.setDown(true, 503);
    const rec = new Reconciler({ journal, results, gatewayFor: () => gw.gateway, noRecordAfterMs: 0, logger: silentLogger });
    const r1 = await rec.runOnce();
    expect(r1.map((e) => e.outcome)).toEqual(['open']);
    expect(r1[0]?.detail).toMatch(/lookup failed|unknown/);
    sandbox.setDown(false);
    expect((await rec.runOnce()).map((e) => e.outcome)).toEqual(['approved']);
    expect((await journal.openAttempts()).map((x) => x.id)).toEqual([b.id]);
    await spool.close();
  });
});

describe('Redis journal and the spool while Redis is down', () => {
  let redis: RedisServer | undefined;
  const PORT = 16398;
  afterAll(async () => {
    await redis?.stop();
  });

  it('versioned writes: a replayed older record never reopens a settled attempt', async () => {
    redis = await startRedisServer(PORT);
    const b = new RedisJournalBackend({ url: redis.url, keyPrefix: 'vt:', ttlSeconds: 600 });
    const open: JournalAttempt = { ...attempt(), node: 'n', createdAt: new Date().toISOString(), state: 'open', version: 1 };
    await b.put(open);
    expect((await b.open()).map((a) => a.id)).toEqual([open.id]);
    await b.put({ ...open, state: 'settled', outcome: 'approved', version: 2 });
    await b.put(open);
    expect(await b.open()).toEqual([]);
    expect((await b.get(open.id))?.outcome).toBe('approved');
    await b.close();
  });

  it('Redis down: journal records and results go to the spool (one log line), and are replayed when it returns', async () => {
    const config = parseConfig({ store: { type: 'redis', redisUrl: `redis://127.0.0.1:${PORT}`, keyPrefix: 'sp:' }, journal: { dataDir: join(dir, 'sp') } });
    const lines: string[] = [];
    const logger = silentLogger.child({});
    const capture = new Proxy(logger, {
      get(t, p) {
        if (p === 'warn' || p === 'info' || p === 'error') return (_o: unknown, msg?: string) => lines.push(String(msg));
        if (p === 'child') return () => capture;
        return Reflect.get(t, p) as unknown;
      },
    });
    const store = new RedisStore({ url: config.store.redisUrl, keyPrefix: 'sp:', resultTtlSeconds: 600, maxResults: 100 });
    const rt: JournalRuntime = openJournal(config, store, capture);
    const a = await rt.journal.begin(attempt());
    await rt.journal.settle(a, { outcome: 'approved', origin: 'call', transactionId: 'pi_1' });
    await redis!.kill();
    const b = await rt.journal.begin(attempt());
    const c = await rt.journal.begin(attempt());
    await rt.store.saveResult({ id: b.callRef, outcome: 'approved', mode: 'automated', currency: 'EUR', reference: b.reference, attempts: { charges: 1, declines: 0, invalidEntries: 0 }, stage: 'charged' });
    await rt.journal.settle(b, { outcome: 'approved', origin: 'call', transactionId: 'pi_2' });
    await rt.store.saveResult({ id: b.callRef, outcome: 'approved', mode: 'automated', currency: 'EUR', reference: b.reference, attempts: { charges: 1, declines: 0, invalidEntries: 0 }, stage: 'ended' });
    expect(rt.status()).toMatchObject({ degraded: true, pending: 3 });
    expect((await rt.store.getById(b.callRef))?.stage).toBe('ended');
    expect(lines.filter((l) => l.startsWith('store unreachable')).length).toBe(1);
    const spoolText = readFileSync(join(dir, 'sp', 'journal-spool.jsonl'), 'utf8');
    expect(spoolText).toContain(b.idempotencyKey);
    await rt.replay();
    expect(rt.status().degraded).toBe(true);
    redis = await startRedisServer(PORT);
    for (let i = 0; i < 40 && rt.status().pending > 0; i++) {
      await rt.replay();
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(rt.status()).toMatchObject({ degraded: false, pending: 0 });
    expect(lines.filter((l) => l.startsWith('store reachable again')).length).toBe(1);
    // Redis restarted empty (no persistence here): what was spooled is all there, newest version.
    expect((await store.getById(b.callRef))?.stage).toBe('ended');
    expect((await rt.journal.openAttempts()).map((x) => x.id)).toEqual([c.id]);
    expect((await rt.journal.backend.get(b.id))?.outcome).toBe('approved');
    // A replay repeated is harmless.
    await rt.replay();
    expect((await rt.journal.backend.get(b.id))?.version).toBe(2);
    await rt.close();
    await store.close();
  }, 60_000);
});

describe('pay-ivr reconcile', () => {
  it('prints what it settled and what stays open (exit 3 while something is open)', async () => {
    const cdir = join(dir, 'cli');
    const config = { journal: { dataDir: cdir }, reconcile: { noRecordAfterSeconds: 3600 }, log: { level: 'error' }, profiles: { default: { currency: 'EUR', psp: { type: 'sandbox', url: sandbox.url } } } };
    const file = join(dir, 'cli.json');
    writeFileSync(file, JSON.stringify(config));
    const rt = openJournal(parseConfig(config), new MemoryStore(), silentLogger);
    const charged = await rt.journal.begin(attempt({ reference: 'INV-CLI-1' }));
    await gw.gateway.charge({ amount: 1234, currency: 'EUR', card: card(VISA), reference: 'INV-CLI-1', idempotencyKey: charged.idempotencyKey, metadata: {} });
    await rt.journal.begin(attempt({ reference: 'INV-CLI-2' }));
    await rt.close();
    const r = await runCli(['reconcile', '--config', file]);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^settled +approved +attempt=\S+ call=\S+ ref=INV-CLI-1 amount=1234 EUR result=approved$/m);
    expect(r.stdout).toMatch(/^open +open +attempt=\S+ .*ref=INV-CLI-2 .*\(no record at the PSP yet\)$/m);
    expect(r.stdout).toMatch(/^1 settled, 1 still open$/m);
    const again = await runCli(['reconcile', '--config', file]);
    expect(again.stdout).toMatch(/^0 settled, 1 still open$/m);
  }, 60_000);
});
