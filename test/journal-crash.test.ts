import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisStore, type StoredResult } from '../src/store/index.js';
import { parseUui, runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import type { DtmfStep } from './support/dtmf-pcap.js';
import { paymentSteps } from './support/payment-steps.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { cliArgs, distEntry } from './support/dist.js';
import { cardDigitHits, filesUnder, redisTexts } from './support/run-texts.js';
import { NodeChildren, kill9 } from './support/children.js';
import { pollUntil } from './support/poll.js';

/**
 * Money integrity across crashes (payment journal, docs/payment-journal.md). The server runs as a
 * child process (`src/cli.ts serve`), the PSP sandbox in another one (its books survive the
 * server), Redis persists with appendfsync always. N concurrent SIPp payments, then kill -9 of
 * the server at a chosen point, restart, reconciliation: per call, the charges on the sandbox's
 * books equal the approved results recorded, and every orphaned caller got a BYE. Then Redis is
 * killed and restarted during payments: every result is in Redis afterwards.
 */

// Ports no other test file uses.
const SIP_PORT = 24070;
const ADMIN_PORT = 19411;
const PSP_PORT = 19412;
const REDIS_PORT = 19397;
const PREFIX = 'jc:';
const N = 4;
const TOKEN = 'journal-crash-token-0123456789';

const VISA = '4242424242424242';
const VISA_DECLINED = '4000000000000002';
const SECRETS = [VISA, VISA_DECLINED, VISA.slice(0, 12), VISA_DECLINED.slice(0, 12)];

const payment = (pan: string): DtmfStep[] => paymentSteps(pan);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const until = pollUntil;

let dir: string;
let redis: RedisServer | undefined;
let psp: ChildProcess | undefined;
let server: ChildProcess | undefined;
let runs = 0;
let reader: RedisStore;
let raw: Redis;
const children = new NodeChildren(() => dir);

const spawnNode = (args: string[], logFile: string): ChildProcess => children.spawn(args, logFile);

function serverConfig(storeType: 'redis' | 'memory'): string {
  runs += 1;
  const cfg = {
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: 34500, portMax: 34999, noRtpTimeoutMs: 120_000 },
    store: { type: storeType, redisUrl: `redis://127.0.0.1:${REDIS_PORT}`, keyPrefix: PREFIX },
    admin: { host: '127.0.0.1', port: ADMIN_PORT, apiToken: TOKEN },
    log: { level: 'debug', file: join(dir, `server-${runs}.log`) },
    journal: { dataDir: join(dir, storeType === 'redis' ? 'data' : 'data-memory'), nodeId: 'node-a', replayIntervalMs: 500 },
    reconcile: { intervalSeconds: 1, noRecordAfterSeconds: 8 },
    promptsDir: 'prompts',
    profiles: {
      default: {
        language: 'en-US',
        currency: 'USD',
        amountSource: 'context',
        maxDeclines: 2,
        timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
        psp: { type: 'sandbox', url: `http://127.0.0.1:${PSP_PORT}`, timeoutMs: 6_000 },
        retry: { budgetMs: 7_000, maxSends: 2, backoffMs: 200, maxBackoffMs: 1_000 },
        handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: '127.0.0.1' },
      },
    },
  };
  const f = join(dir, `config-${runs}.json`);
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

async function ready(): Promise<{ ready: boolean; store?: string; spool?: { pending: number; bytes: number } }> {
  const r = await fetch(`http://127.0.0.1:${ADMIN_PORT}/ready`);
  return (await r.json()) as { ready: boolean; store?: string; spool?: { pending: number; bytes: number } };
}

async function startServer(storeType: 'redis' | 'memory' = 'redis'): Promise<void> {
  const cfg = serverConfig(storeType);
  server = spawnNode(cliArgs('serve', '--config', cfg), `server-${runs}.out`);
  await until('server ready', async () => (await ready()).ready, 60_000);
}

const killServer = (): Promise<void> => kill9(server);

async function sandbox(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${PSP_PORT}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return r.json();
}

async function books(): Promise<{ reference: string; status: string }[]> {
  return (await sandbox('GET', '/_sandbox/charges')) as { reference: string; status: string }[];
}

let port = 0;
function placeCalls(point: string, cards: string[]): { refs: string[]; done: Promise<GenesysCallResult[]> } {
  const refs = cards.map((_, i) => `INV-${point}-${i}`);
  const done = Promise.all(
    cards.map(async (pan, i) => {
      await sleep(i * 150);
      // SIPp's media uses the port and the next ones: keep the calls well apart.
      port += 10;
      return runGenesysCall({
        scenario: 'payment-or-bye',
        target: `127.0.0.1:${SIP_PORT}`,
        uui: `acct=C-${i}|amt=12.34|cur=USD|ref=${refs[i]}`,
        conversationId: `cnv-${point}-${i}`,
        steps: payment(pan),
        localPort: 24100 + port,
        mediaPort: 37600 + port,
        timeoutS: 150,
      });
    }),
  );
  return { refs, done };
}

/** Waits until the live-call list shows these calls (by conversation id prefix) in the given states. */
async function liveStates(point: string, want: string[], timeoutMs = 10_000): Promise<void> {
  await until(`live calls ${want.join(',')}`, async () => {
    const r = await fetch(`http://127.0.0.1:${ADMIN_PORT}/v1/calls`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { calls } = (await r.json()) as { calls: { conversationId?: string; state: string; charge?: string }[] };
    const got = calls.filter((c) => c.conversationId?.startsWith(`cnv-${point}-`)).map((c) => (c.charge !== undefined ? `${c.state}:${c.charge}` : c.state));
    return got.sort().join(',') === [...want].sort().join(',');
  }, timeoutMs);
}

/** Waits until the live-call list shows `n` calls of this point, whatever their state. */
async function liveCount(point: string, n: number, timeoutMs = 10_000): Promise<void> {
  await until(`${n} live calls`, async () => {
    const r = await fetch(`http://127.0.0.1:${ADMIN_PORT}/v1/calls`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { calls } = (await r.json()) as { calls: { conversationId?: string }[] };
    return calls.filter((c) => c.conversationId?.startsWith(`cnv-${point}-`)).length >= n;
  }, timeoutMs);
}

async function resultsOf(ref: string): Promise<StoredResult[]> {
  return reader.getByReference(ref);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-crash-'));
  mkdirSync(join(dir, 'redis'));
  redis = await startRedisServer(REDIS_PORT, { persistDir: join(dir, 'redis') });
  psp = spawnNode([distEntry('psp/sandbox/main'), '--port', String(PSP_PORT), '--log-level', 'warn'], 'psp.out');
  await until('sandbox', async () => (await fetch(`http://127.0.0.1:${PSP_PORT}/_sandbox/health`)).ok, 30_000);
  reader = new RedisStore({ url: redis.url, keyPrefix: PREFIX, resultTtlSeconds: 3600, maxResults: 10_000 });
  raw = new Redis({ port: REDIS_PORT, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
  raw.on('error', () => undefined);
  await startServer();
}, 120_000);

afterAll(async () => {
  for (const c of children.running) {
    if (c === psp) continue;
    c.kill('SIGKILL');
  }
  psp?.kill('SIGTERM');
  await reader?.close();
  raw?.disconnect();
  await redis?.stop();
});

interface KillPoint {
  name: string;
  cards: string[];
  /** Sandbox faults for the calls' charges (cleared after the kill). */
  faults?: unknown[];
  /** Resolves when it is time for kill -9. */
  trigger: (refs: string[]) => Promise<void>;
}

const openAttempts = async (): Promise<number> => raw.scard(`${PREFIX}journal-open`);
const chargedResults = async (refs: string[]): Promise<number> => (await Promise.all(refs.map((r) => resultsOf(r)))).filter((l) => l.some((x) => x.stage === 'charged')).length;

const POINTS: KillPoint[] = [
  {
    // The PSP holds the request without executing it: the attempt is journaled, nothing charged.
    name: 'before-send',
    cards: [VISA, VISA, VISA, VISA],
    faults: [{ fault: { kind: 'hang' }, count: -1, method: 'POST' }],
    trigger: async () => {
      await until('attempts journaled', async () => (await openAttempts()) >= N, 90_000);
      await sleep(300);
    },
  },
  {
    // The PSP answers after 4 s; the node dies 1 s into it. The charges happen anyway.
    name: 'during-psp',
    cards: [VISA, VISA, VISA, VISA],
    faults: [{ fault: { kind: 'latency', ms: 4_000 }, count: -1, method: 'POST' }],
    trigger: async () => {
      await until('attempts journaled', async () => (await openAttempts()) >= N, 90_000);
      await liveStates('during-psp', ['charging', 'charging', 'charging', 'charging']);
      await sleep(1_000);
    },
  },
  {
    // Right after the outcomes are known (result written), before the announcement ends and the REFER.
    name: 'after-approval',
    cards: [VISA, VISA, VISA, VISA_DECLINED],
    trigger: async (refs) => {
      await until('outcomes recorded', async () => (await chargedResults(refs)) >= N, 90_000);
      await liveStates('after-approval', ['charged:approved', 'charged:approved', 'charged:approved', 'charged:declined']);
    },
  },
  {
    name: 'during-announcement',
    cards: [VISA, VISA, VISA, VISA],
    trigger: async (refs) => {
      await until('outcomes recorded', async () => (await chargedResults(refs)) >= N, 90_000);
      await liveStates('during-announcement', ['charged:approved', 'charged:approved', 'charged:approved', 'charged:approved']);
      await sleep(1_500);
    },
  },
];

const figures: Record<string, { books: number; approvedRecorded: number; byes: number; refers: number; calls: number }> = {};

describe('kill -9 of the server during concurrent payments', () => {
  for (const point of POINTS) {
    it(`${point.name}: after restart and reconciliation, charges on the books == approved results, per call; every caller got a BYE`, async () => {
      await sandbox('DELETE', '/_sandbox/faults');
      for (const f of point.faults ?? []) await sandbox('POST', '/_sandbox/faults', f);
      const { refs, done } = placeCalls(point.name, point.cards);
      await point.trigger(refs);
      await killServer();
      await sandbox('DELETE', '/_sandbox/faults');
      await startServer();
      const calls = await done;
      await until('every attempt settled', async () => (await openAttempts()) === 0, 60_000);
      const ledger = await books();
      let bookTotal = 0;
      let approvedTotal = 0;
      for (const [i, ref] of refs.entries()) {
        const call = calls[i] as GenesysCallResult;
        expect(call.exitCode, call.output).toBe(0);
        expect(call.referTo, `${ref} was handed back`).toBeUndefined();
        expect(call.byeReceived, `${ref}: no BYE`).toMatch(/cause=503/);
        const charged = ledger.filter((c) => c.reference === ref && c.status === 'succeeded').length;
        const results = await resultsOf(ref);
        expect(results, ref).toHaveLength(1);
        const approved = results.filter((r) => r.outcome === 'approved').length;
        expect({ ref, charged: approved }).toEqual({ ref, charged });
        expect(charged).toBeLessThanOrEqual(1);
        expect(results[0]?.stage).toBe('ended');
        bookTotal += charged;
        approvedTotal += approved;
      }
      figures[point.name] = { books: bookTotal, approvedRecorded: approvedTotal, byes: calls.filter((c) => c.byeReceived !== undefined).length, refers: calls.filter((c) => c.referTo !== undefined).length, calls: calls.length };
      if (point.name === 'before-send') expect(bookTotal).toBe(0);
      if (point.name === 'during-psp') expect(bookTotal).toBe(N);
      if (point.name === 'after-approval') expect(bookTotal).toBe(N - 1);
      if (point.name === 'during-announcement') expect(bookTotal).toBe(N);
      // Reconciled records say so.
      if (point.name === 'during-psp') for (const ref of refs) expect((await resultsOf(ref))[0]).toMatchObject({ outcome: 'approved', origin: 'reconciled', last4: '4242' });
    }, 240_000);
  }

  it('Redis killed and restarted during payments: every result is in Redis afterwards; readiness and metrics showed the outage', async () => {
    const { refs, done } = placeCalls('redis-outage', [VISA, VISA, VISA, VISA]);
    // Redis goes once every call is answered and before any card key: the attempts, results and
    // hand-backs all happen during the outage.
    await liveCount('redis-outage', N);
    await redis!.kill();
    const calls = await done;
    const during = await ready();
    const metrics = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text();
    redis = await startRedisServer(REDIS_PORT, { persistDir: join(dir, 'redis') });
    await until('spool replayed', async () => {
      const r = await ready();
      return r.store === 'ok' && r.spool?.pending === 0;
    }, 60_000);
    expect(during.store).toBe('degraded');
    expect(during.ready).toBe(true);
    expect(during.spool?.pending ?? 0).toBeGreaterThan(0);
    expect(metrics).toMatch(/^pay_ivr_store_degraded 1$/m);
    const ledger = await books();
    for (const [i, ref] of refs.entries()) {
      const call = calls[i] as GenesysCallResult;
      expect(call.exitCode, call.output).toBe(0);
      expect(parseUui(call.resultUui ?? '')).toMatchObject({ res: 'approved', ref });
      expect(ledger.filter((c) => c.reference === ref && c.status === 'succeeded')).toHaveLength(1);
      const results = await resultsOf(ref);
      expect(results, ref).toHaveLength(1);
      expect(results[0]).toMatchObject({ outcome: 'approved', stage: 'ended', handBack: { status: 'accepted' } });
    }
    expect(await openAttempts()).toBe(0);
    const log = readFileSync(join(dir, `server-${runs}.log`), 'utf8');
    expect(log.split('\n').filter((l) => l.includes('store unreachable: journal entries and results are spooled')).length).toBe(1);
    figures['redis-outage'] = { books: N, approvedRecorded: N, byes: 0, refers: calls.filter((c) => c.referTo !== undefined).length, calls: calls.length };
  }, 240_000);

  it('memory store (no Redis): the spool file is the journal; kill -9 during the PSP call, restart: charges == approved results, BYE to every caller', async () => {
    await killServer();
    await startServer('memory');
    await sandbox('DELETE', '/_sandbox/faults');
    await sandbox('POST', '/_sandbox/faults', { fault: { kind: 'latency', ms: 4_000 }, count: -1, method: 'POST' });
    const { refs, done } = placeCalls('memory', [VISA, VISA]);
    await liveStates('memory', ['charging', 'charging'], 90_000);
    await sleep(1_000);
    await killServer();
    await sandbox('DELETE', '/_sandbox/faults');
    await startServer('memory');
    const calls = await done;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const byRef = async (ref: string): Promise<StoredResult[]> => ((await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/v1/results?reference=${ref}`, { headers: auth })).json()) as { results: StoredResult[] }).results;
    await until('reconciled', async () => (await Promise.all(refs.map(byRef))).every((l) => l[0]?.outcome === 'approved'), 60_000);
    const ledger = await books();
    for (const [i, ref] of refs.entries()) {
      expect(calls[i]?.byeReceived, `${ref}: no BYE`).toMatch(/cause=503/);
      expect(ledger.filter((c) => c.reference === ref && c.status === 'succeeded')).toHaveLength(1);
      expect(await byRef(ref)).toMatchObject([{ outcome: 'approved', origin: 'reconciled', stage: 'ended' }]);
    }
    const spool = readFileSync(join(dir, 'data-memory', 'journal-spool.jsonl'), 'utf8');
    expect(spool).toContain('"outcome":"approved","origin":"reconciled"');
    figures.memory = { books: 2, approvedRecorded: 2, byes: calls.filter((c) => c.byeReceived !== undefined).length, refers: 0, calls: calls.length };
  }, 240_000);

  it('no card digits in the spool, the logs, the SIPp traces or Redis', async () => {
    if (process.env.JOURNAL_FIGURES) console.log(JSON.stringify(figures));
    const texts = filesUnder([dir]);
    const spool = join(dir, 'data', 'journal-spool.jsonl');
    expect(existsSync(spool)).toBe(true);
    const keys = await raw.keys('*');
    expect(keys.some((k) => k.startsWith(`${PREFIX}journal:`))).toBe(true);
    texts.push(...(await redisTexts(raw)));
    expect(texts.some((t) => t.where.includes('server-1.log') && t.text.length > 1000)).toBe(true);
    expect(cardDigitHits(texts, SECRETS)).toEqual([]);
  });
});
