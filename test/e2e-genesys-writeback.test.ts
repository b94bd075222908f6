import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeGenesysApi, type FakeGenesysStart, type FakeParticipant } from './support/fake-genesys-api.js';
import { parseUui, runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import { keysEndMs, type DtmfStep } from './support/dtmf-pcap.js';
import { CONFIRM_AMOUNT, paymentSteps } from './support/payment-steps.js';
import { e2eProfile } from './support/app-config.js';
import { shortPromptsDir } from './support/short-prompts.js';
import { cardDigitHits, filesUnder } from './support/run-texts.js';
import { NodeChildren, kill9 } from './support/children.js';
import { cliArgs, distEntry } from './support/dist.js';
import { pollUntil } from './support/poll.js';

/**
 * The Genesys participant-data write-back end to end: pay-ivr runs as a child process (`serve`
 * from dist/, genesys.platform.enabled, the official SDK writer) against the local HTTPS fake of
 * the Genesys login and Platform API (test/support/fake-genesys-api.ts, through
 * genesys.platform.gateway and caFile); SIPp plays Genesys, each call with its own conversation
 * id (x-inin-cnv); the sandbox PSP runs in its own process so its books survive a kill -9.
 *
 * - A 2-minute Genesys outage while 20 payments run: the node stays ready, /ready shows the
 *   queue backing off and growing; afterwards every conversation gets its attributes, in order,
 *   none twice. The same calls cover the outcomes (approved on three brands, declined, a caller
 *   who hangs up before the charge), checked attribute by attribute against the result UUI.
 * - kill -9 between the charge and the write (Genesys refusing the writes meanwhile), and one
 *   kill during the PSP request whose result reconciliation settles after the restart: every
 *   result reaches its conversation once per version; a write Genesys answers 429 goes out
 *   after it; a conversation Genesys does not know ends as a dead letter.
 * - No card digit in any request Genesys got, any log, the spool or the dead letters.
 *
 * Ports (lane A, 23500-23999): SIP 23500, admin 23501, sandbox PSP 23502, pay-ivr RTP
 * 23600-23799, SIPp SIP 23510-23534 and media 23800-23999 (8 apart per call).
 */

const SIP_PORT = 23500;
const ADMIN_PORT = 23501;
const PSP_PORT = 23502;
const RTP_PORT_MIN = 23600;
const RTP_PORT_MAX = 23799;
const SIPP_SIP_PORT_BASE = 23510;
const SIPP_MEDIA_PORT_BASE = 23800;
/** SIPp ports are handed out once per call: this many fit in the bands above. */
const MAX_CALLS = 25;

const TOKEN = 'wb-e2e-admin-token-0123456789abcdef';
const NODE = 'node-wb';
const OUTAGE_MS = 120_000;
const OUTAGE_CALLS = 20;
/** SIPp calls at once during the outage. */
const CALL_CONCURRENCY = 5;
/** The write-back sends this many writes at once (src/genesys/platform/write-back.ts). */
const WRITE_CONCURRENCY = 4;

const VISA = '4242424242424242';
const MASTERCARD = '5555555555554444';
const AMEX = '378282246310005';
/** A fraud decline in the sandbox: declined at once, no second card offered. */
const VISA_FRAUD = '4100000000000019';
const SECRETS = [VISA, MASTERCARD, AMEX, VISA_FRAUD, VISA.slice(0, 12), MASTERCARD.slice(0, 12), AMEX.slice(0, 11), VISA_FRAUD.slice(0, 12)];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

type Kind = 'visa' | 'mastercard' | 'amex' | 'fraud' | 'hangup';
const PAN: Record<Exclude<Kind, 'hangup'>, string> = { visa: VISA, mastercard: MASTERCARD, amex: AMEX, fraud: VISA_FRAUD };
/** The caller hangs up 1.8 s after typing half a card number: before any charge. */
const HANGUP_STEPS: DtmfStep[] = [...CONFIRM_AMOUNT, { keys: '42424242' }];
const HANGUP_MS = keysEndMs(HANGUP_STEPS) + 1_800;
/** The outage's calls, by kind: every outcome the issue names, several times. */
const OUTAGE_PLAN: Kind[] = Array.from({ length: OUTAGE_CALLS }, (_, i) => (['visa', 'mastercard', 'fraud', 'hangup', 'amex'] as const)[i % 5] as Kind);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const until = pollUntil;

let dir: string;
let fake: FakeGenesysApi;
let api: FakeGenesysStart;
let psp: ChildProcess | undefined;
let server: ChildProcess | undefined;
let runs = 0;
const children = new NodeChildren(() => dir);

function serverConfig(): string {
  runs += 1;
  const cfg = {
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: RTP_PORT_MIN, portMax: RTP_PORT_MAX, noRtpTimeoutMs: 120_000 },
    store: { type: 'memory' },
    admin: { host: '127.0.0.1', port: ADMIN_PORT, apiToken: TOKEN },
    // debug on purpose: the card-digit scan must hold at the most verbose shipped level.
    log: { level: 'debug', file: join(dir, `server-${runs}.log`) },
    journal: { dataDir: join(dir, 'data'), nodeId: NODE, replayIntervalMs: 500 },
    reconcile: { intervalSeconds: 1, noRecordAfterSeconds: 8 },
    promptsDir: shortPromptsDir(),
    genesys: {
      platform: {
        enabled: true,
        gateway: { host: api.host, port: api.port },
        caFile: api.caFile,
        timeoutMs: 3_000,
        delivery: { retryBaseMs: 200, maxRetryMs: 2_000 },
      },
    },
    profiles: {
      default: e2eProfile({
        psp: { type: 'sandbox', url: `http://127.0.0.1:${PSP_PORT}`, timeoutMs: 6_000 },
        retry: { budgetMs: 7_000, maxSends: 2, backoffMs: 200, maxBackoffMs: 1_000 },
        handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: '127.0.0.1' },
      }),
    },
  };
  const f = join(dir, `config-${runs}.json`);
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

interface Ready {
  status: number;
  ready: boolean;
  genesysWriteBack?: { state: string; queued: number; oldestAgeSeconds: number; deadLetters: number };
}

async function ready(): Promise<Ready> {
  const r = await fetch(`http://127.0.0.1:${ADMIN_PORT}/ready`);
  return { status: r.status, ...((await r.json()) as Omit<Ready, 'status'>) };
}

async function startServer(): Promise<void> {
  const cfg = serverConfig();
  server = children.spawn(cliArgs('serve', '--config', cfg), `server-${runs}.out`, { GENESYS_CLIENT_ID: fake.clientId, GENESYS_CLIENT_SECRET: fake.clientSecret });
  await until('server ready', async () => (await ready()).ready, 60_000);
}

async function sandbox(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${PSP_PORT}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return r.json();
}

const adminGet = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${ADMIN_PORT}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();

/** A Genesys conversation as a transfer to pay-ivr leaves it: the caller, an ended ACD leg, the IVR. */
const participants = (): FakeParticipant[] => [{ purpose: 'acd', ended: true }, { purpose: 'customer', attributes: { 'flow.language': 'en-US' } }, { purpose: 'ivr' }];

interface Placed {
  kind: Kind;
  conversationId: string;
  ref: string;
  /** The context amount in major units, as the UUI sends it. */
  amt: string;
  result: GenesysCallResult;
}

let callNo = 0;
/** One SIPp call of this kind; its conversation is known to the fake unless `known` is false. */
function startCall(kind: Kind, known = true): { conversationId: string; done: Promise<Placed> } {
  const n = callNo++;
  if (n >= MAX_CALLS) throw new Error(`more than ${MAX_CALLS} calls: no SIPp ports left`);
  const conversationId = randomUUID();
  if (known) fake.addConversation(conversationId, participants());
  const ref = `INV-WB-${n}`;
  const amt = (10 + n * 0.37).toFixed(2);
  const hangup = kind === 'hangup';
  const steps = kind === 'hangup' ? HANGUP_STEPS : paymentSteps(PAN[kind], kind === 'amex' ? { cvc: '7373', endWithHash: false } : {});
  const done = runGenesysCall({
    scenario: hangup ? 'caller-hangup' : 'payment-or-bye',
    target: `127.0.0.1:${SIP_PORT}`,
    uui: `acct=C-${n}|amt=${amt}|cur=USD|ref=${ref}`,
    conversationId,
    steps,
    localPort: SIPP_SIP_PORT_BASE + n,
    mediaPort: SIPP_MEDIA_PORT_BASE + n * 8,
    timeoutS: 150,
    ...(hangup ? { hangupMs: HANGUP_MS } : {}),
  }).then((result) => ({ kind, conversationId, ref, amt, result }));
  return { conversationId, done };
}

/** Runs `kinds` as calls, `n` at a time. */
async function callsInPool(kinds: Kind[], n: number): Promise<Placed[]> {
  const out: Placed[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, worker) => {
      await sleep(worker * 300);
      for (;;) {
        const i = next++;
        const kind = kinds[i];
        if (kind === undefined) return;
        out[i] = await startCall(kind).done;
      }
    }),
  );
  return out;
}

/** The customer participant's attributes on the fake. */
function customerAttributes(conversationId: string): Record<string, string> {
  const all = fake.attributesOf(conversationId);
  const withFlow = Object.values(all).filter((a) => a['flow.language'] === 'en-US');
  expect(withFlow, `${conversationId}: one customer participant`).toHaveLength(1);
  // Nothing written on the other participants.
  for (const a of Object.values(all)) if (a['flow.language'] === undefined) expect(a).toEqual({});
  return withFlow[0] as Record<string, string>;
}

interface LogLine {
  msg?: string;
  conversationId?: string;
  key?: string;
  why?: string;
  queued?: number;
}

/** Every JSON log line of every server run so far. */
function serverLog(): LogLine[] {
  const out: LogLine[] = [];
  for (const f of readdirSync(dir).filter((x) => /^server-\d+\.log$/.test(x)).sort()) {
    for (const l of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (l.startsWith('{')) out.push(JSON.parse(l) as LogLine);
    }
  }
  return out;
}

const delivered = (): LogLine[] => serverLog().filter((l) => l.msg === 'genesys write-back delivered');

/** Per conversation, the accepted writes never go back in time (updatedAt) nor in version. */
function expectInOrder(conversationId: string): void {
  const times = fake.writes.filter((w) => w.conversationId === conversationId).map((w) => w.attributes['payivr.updatedAt'] ?? '');
  expect(times.every((t) => ISO.test(t)), `${conversationId}: ${times.join(',')}`).toBe(true);
  expect([...times].sort(), conversationId).toEqual(times);
  const versions = delivered()
    .filter((l) => l.conversationId === conversationId)
    .map((l) => Number((l.key ?? '').split('#')[1]));
  expect([...versions].sort((a, b) => a - b), conversationId).toEqual(versions);
}

/** The attributes a result must have produced, checked against the result UUI of its REFER. */
function expectAttributes(p: Placed): void {
  const a = customerAttributes(p.conversationId);
  const common = { 'payivr.amount': p.amt, 'payivr.currency': 'USD', 'payivr.amountSource': 'context', 'payivr.mode': 'automated', 'payivr.entry': 'transfer', 'payivr.node': NODE, 'payivr.origin': 'call', 'flow.language': 'en-US' };
  expect(a['payivr.updatedAt'], p.conversationId).toMatch(ISO);
  if (p.kind === 'hangup') {
    expect(p.result.exitCode, p.result.output).toBe(0);
    expect(p.result.referTo, p.result.output).toBeUndefined();
    expect(a, `${p.kind} ${p.conversationId}`).toEqual({ ...common, 'payivr.outcome': 'hangup', 'payivr.attempts': '0', 'payivr.updatedAt': a['payivr.updatedAt'] });
    return;
  }
  expect(p.result.exitCode, p.result.output).toBe(0);
  const u = parseUui(p.result.resultUui ?? '');
  const outcome = p.kind === 'fraud' ? 'declined' : 'approved';
  expect(u, p.result.output).toMatchObject({ res: outcome, ref: p.ref, att: '1' });
  const brand = p.kind === 'fraud' ? 'visa' : p.kind;
  const expected: Record<string, string> = {
    ...common,
    'payivr.outcome': outcome,
    'payivr.brand': brand,
    'payivr.last4': PAN[p.kind].slice(-4),
    'payivr.attempts': '1',
    'payivr.updatedAt': a['payivr.updatedAt'] ?? '',
  };
  if (u.txn !== undefined) expected['payivr.pspReference'] = u.txn;
  if (p.kind === 'fraud') expected['payivr.declineClass'] = 'fraud';
  // Every field of the UUI that has an attribute says the same.
  expect(u.brand).toBe(brand);
  expect(u.last4).toBe(expected['payivr.last4']);
  expect(Number(u.amt)).toBe(Math.round(Number(p.amt) * 100));
  expect(a, `${p.kind} ${p.conversationId}`).toEqual(expected);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-wb-e2e-'));
  fake = new FakeGenesysApi();
  api = await fake.start();
  psp = children.spawn([distEntry('psp/sandbox/main'), '--port', String(PSP_PORT), '--log-level', 'warn'], 'psp.out');
  await until('sandbox', async () => (await fetch(`http://127.0.0.1:${PSP_PORT}/_sandbox/health`)).ok, 30_000);
  await startServer();
}, 120_000);

afterAll(async () => {
  for (const c of children.running) if (c !== psp) c.kill('SIGKILL');
  psp?.kill('SIGTERM');
  await fake?.stop();
});

let outageCalls: Placed[] = [];

describe('Genesys participant-data write-back, pay-ivr as a child process against the fake Genesys API', () => {
  it('a 2-minute outage with 20 payments delivers all 20 in order afterwards and none twice; the node stays ready', async () => {
    fake.outage(true);
    const t0 = Date.now();
    const samples: Ready[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await ready());
        await sleep(500);
      }
    })();
    outageCalls = await callsInPool(OUTAGE_PLAN, CALL_CONCURRENCY);
    const callsDoneS = (Date.now() - t0) / 1000;
    // Every call's result is queued (one entry per call: its latest version).
    await until(`${OUTAGE_CALLS} writes queued`, async () => (await ready()).genesysWriteBack?.queued === OUTAGE_CALLS, 30_000);
    await sleep(Math.max(0, t0 + OUTAGE_MS - Date.now()));
    sampling = false;
    await sampler;
    const acceptedDuringOutage = fake.writes.length;
    const metricsDuring = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text();
    fake.outage(false);
    const recoveredAt = Date.now();
    const mine = new Set(outageCalls.map((c) => c.conversationId));
    await until('every conversation written', async () => {
      const r = await ready();
      return r.genesysWriteBack?.queued === 0 && [...mine].every((c) => fake.writes.some((w) => w.conversationId === c && w.attributes['payivr.outcome'] !== undefined));
    }, 90_000);
    const drainS = (Date.now() - recoveredAt) / 1000;

    // During the outage: ready throughout, backing off, the queue only growing, nothing written.
    expect(acceptedDuringOutage).toBe(0);
    expect(samples.length).toBeGreaterThan(100);
    expect(samples.filter((s) => s.status !== 200 || !s.ready)).toEqual([]);
    // From the first failed write on, backing-off in every sample (a probe in flight included).
    const firstBackingOff = samples.findIndex((s) => s.genesysWriteBack?.state === 'backing-off');
    expect(firstBackingOff).toBeGreaterThanOrEqual(0);
    expect(samples.slice(firstBackingOff).filter((s) => s.genesysWriteBack?.state !== 'backing-off')).toEqual([]);
    const queued = samples.map((s) => s.genesysWriteBack?.queued ?? -1);
    expect(queued.every((q, i) => i === 0 || q >= (queued[i - 1] ?? 0)), queued.join(',')).toBe(true);
    expect(Math.max(...queued)).toBe(OUTAGE_CALLS);
    expect(queued.some((q) => q > 0 && q < OUTAGE_CALLS)).toBe(true);
    expect(samples.at(-1)?.genesysWriteBack).toMatchObject({ state: 'backing-off', queued: OUTAGE_CALLS, deadLetters: 0 });
    expect(samples.at(-1)?.genesysWriteBack?.oldestAgeSeconds).toBeGreaterThan(0);
    expect(metricsDuring).toMatch(new RegExp(`^pay_ivr_genesys_writeback_queued ${OUTAGE_CALLS}$`, 'm'));
    const after = await ready();
    expect(after.genesysWriteBack).toMatchObject({ state: 'ok', queued: 0, deadLetters: 0 });

    // Afterwards: every conversation written, per conversation in order, no key twice.
    const log = serverLog();
    const keys = delivered().map((l) => l.key ?? '');
    expect(new Set(keys).size, keys.join(',')).toBe(keys.length);
    const writes = fake.writes.filter((w) => mine.has(w.conversationId));
    expect(keys.length).toBe(writes.length);
    for (const c of mine) expectInOrder(c);
    expect(log.filter((l) => l.msg === 'genesys write-back failing: writes stay queued and are retried')).toHaveLength(1);
    expect(log.some((l) => l.msg === 'genesys write-back: Genesys answers again, queued writes follow in order')).toBe(true);

    // Across conversations, queue order: after the one probe that found Genesys back, the writes
    // start in the order they were queued; at most the writes sent alongside overtake one.
    const queuedOrder: string[] = [];
    for (const l of log) {
      if (l.msg !== 'genesys write-back queued' || l.conversationId === undefined || !mine.has(l.conversationId)) continue;
      // A newer version of the call replaces the older entry, at the end of the queue.
      const at = queuedOrder.indexOf(l.conversationId);
      if (at >= 0) queuedOrder.splice(at, 1);
      queuedOrder.push(l.conversationId);
    }
    const writtenOrder = [...new Set(writes.map((w) => w.conversationId))];
    const probe = writtenOrder[0];
    const expectedOrder = queuedOrder.filter((c) => c !== probe);
    const displacement = writtenOrder.slice(1).map((c, i) => Math.abs(expectedOrder.indexOf(c) - i));
    expect(Math.max(...displacement), `${queuedOrder.join(',')}\n${writtenOrder.join(',')}`).toBeLessThanOrEqual(WRITE_CONCURRENCY);

    const perConversation = [...mine].map((c) => writes.filter((w) => w.conversationId === c).length);
    const retried = /^pay_ivr_genesys_writeback_retried_total (\d+)$/m.exec(metricsDuring)?.[1];
    console.log(
      'genesys write-back outage figures:',
      JSON.stringify({
        outageS: Math.round((recoveredAt - t0) / 1000),
        payments: OUTAGE_CALLS,
        callsDoneAfterS: Math.round(callsDoneS),
        queuedMax: Math.max(...queued),
        queuedSamples: samples.length,
        retriesDuringOutage: retried === undefined ? undefined : Number(retried),
        drainAfterRecoveryS: drainS,
        writesPerConversation: perConversation.join(','),
        writesTotal: writes.length,
        logins: fake.logins,
        maxDisplacementFromQueueOrder: Math.max(...displacement),
      }),
    );
  }, 300_000);

  it('every outcome of the outage calls is on its conversation with the right attributes (approved on three brands, declined, hang-up before the charge)', () => {
    expect(outageCalls).toHaveLength(OUTAGE_CALLS);
    for (const p of outageCalls) expectAttributes(p);
    expect(new Set(outageCalls.map((p) => p.kind))).toEqual(new Set(['visa', 'mastercard', 'amex', 'fraud', 'hangup']));
    expect(fake.violations).toEqual([]);
  });

  it('a node kill -9 between the charge and the write still delivers it after restart; a kill during the charge is reconciled and written; exactly once per version, in order', async () => {
    // Genesys refuses every API call: the writes stay queued.
    fake.setFault({ kind: 'server-error', count: 1_000_000, status: 503 });
    const approved = startCall('visa');
    const unknown = startCall('visa', false);
    const [a, u] = await Promise.all([approved.done, unknown.done]);
    for (const p of [a, u]) expect(parseUui(p.result.resultUui ?? ''), p.result.output).toMatchObject({ res: 'approved', ref: p.ref });
    await until('both writes queued', async () => (await ready()).genesysWriteBack?.queued === 2, 30_000);

    // The next charge takes 4 s at the PSP; the node dies 1 s into it.
    await sandbox('POST', '/_sandbox/faults', { fault: { kind: 'latency', ms: 4_000 }, count: -1, method: 'POST' });
    const charging = startCall('visa');
    await until('call charging', async () => {
      const { calls } = JSON.parse(await adminGet('/v1/calls')) as { calls: { conversationId?: string; state: string }[] };
      return calls.some((c) => c.conversationId === charging.conversationId && c.state === 'charging');
    }, 60_000);
    await sleep(1_000);
    const writtenBeforeKill = fake.writes.filter((w) => [a.conversationId, charging.conversationId].includes(w.conversationId)).length;
    await kill9(server);
    await sandbox('DELETE', '/_sandbox/faults');
    await startServer();
    // Genesys answers again, the first request with a 429 and Retry-After.
    fake.clearFaults();
    fake.setFault({ kind: 'rate-limit', count: 1, retryAfter: '1' });
    const b = await charging.done;
    expect(b.result.byeReceived, b.result.output).toMatch(/cause=503/);

    await until('written and reconciled', async () => {
      const r = await ready();
      const attrs = customerAttributes(b.conversationId);
      // The restarted node first records the cut-off call as `error` (origin reconciled, no
      // charge known); the PSP lookup then settles it approved.
      return r.genesysWriteBack?.queued === 0 && r.genesysWriteBack.deadLetters === 1 && attrs['payivr.outcome'] === 'approved' && customerAttributes(a.conversationId)['payivr.outcome'] === 'approved';
    }, 90_000);

    expect(writtenBeforeKill).toBe(0);
    const log = serverLog();
    // The restarted node found the writes the killed one had queued.
    expect(log.filter((l) => l.msg === 'genesys write-back: writes of an earlier run found').at(-1)?.queued).toBeGreaterThanOrEqual(2);
    expect(log.some((l) => /^(get conversation|patch attributes): 429$/.test(l.why ?? ''))).toBe(true);

    const uuiA = parseUui(a.result.resultUui ?? '');
    expect(customerAttributes(a.conversationId)).toMatchObject({ 'payivr.outcome': 'approved', 'payivr.origin': 'call', 'payivr.last4': '4242', 'payivr.pspReference': uuiA.txn, 'payivr.amount': a.amt });
    expect(customerAttributes(b.conversationId)).toMatchObject({ 'payivr.outcome': 'approved', 'payivr.origin': 'reconciled', 'payivr.last4': '4242', 'payivr.amount': b.amt, 'payivr.node': NODE });
    // Whether Genesys saw the interim `unconfirmed` (the charge was with the PSP: maybe charged)
    // depends on how fast it answered after the restart; the settled result is the last write.
    const bOutcomes = fake.writes.filter((w) => w.conversationId === b.conversationId).map((w) => w.attributes['payivr.outcome']);
    expect(bOutcomes.at(-1)).toBe('approved');
    expect(bOutcomes.slice(0, -1).every((o) => o === 'unconfirmed')).toBe(true);
    // The sandbox's books: the killed call's charge happened, once.
    const books = (await sandbox('GET', '/_sandbox/charges')) as { reference: string; status: string }[];
    expect(books.filter((c) => c.reference === b.ref && c.status === 'succeeded')).toHaveLength(1);

    // Exactly once per version: no key delivered twice, and Genesys accepted exactly the delivered writes.
    const keys = delivered().map((l) => l.key ?? '');
    expect(new Set(keys).size, keys.join(',')).toBe(keys.length);
    for (const p of [a, b]) {
      const mine = delivered().filter((l) => l.conversationId === p.conversationId);
      expect(mine.length).toBeGreaterThanOrEqual(1);
      expect(fake.writes.filter((w) => w.conversationId === p.conversationId)).toHaveLength(mine.length);
      expectInOrder(p.conversationId);
    }

    // With Genesys answering, a call's charged record is written as soon as the charge is known
    // and its final record after it: two writes, in that order.
    const healthy = await startCall('mastercard').done;
    await until('healthy call written', async () => (await ready()).genesysWriteBack?.queued === 0 && delivered().filter((l) => l.conversationId === healthy.conversationId).length >= 2, 30_000);
    const healthyWrites = fake.writes.filter((w) => w.conversationId === healthy.conversationId);
    expect(healthyWrites.map((w) => w.attributes['payivr.outcome'])).toEqual(['approved', 'approved']);
    expect(healthyWrites[0]?.attributes['payivr.updatedAt']).not.toBe(healthyWrites[1]?.attributes['payivr.updatedAt']);
    expectInOrder(healthy.conversationId);
    expectAttributes(healthy);

    // The conversation Genesys does not know: a dead letter, never written.
    const dead = JSON.parse(await adminGet('/v1/genesys/dead-letters')) as { deadLetters: { conversationId: string; reason: string; lastError: string }[] };
    expect(dead.deadLetters).toHaveLength(1);
    expect(dead.deadLetters[0]).toMatchObject({ conversationId: u.conversationId, reason: 'rejected' });
    expect(dead.deadLetters[0]?.lastError).toContain('404');
    expect(fake.writes.some((w) => w.conversationId === u.conversationId)).toBe(false);
    expect(fake.violations).toEqual([]);
  }, 240_000);

  it('no card digit in any request Genesys got, any log, the spool or the dead letters; no OAuth secret in a log', async () => {
    const texts = filesUnder([dir]);
    const spool = texts.find((t) => t.where.endsWith('journal-spool.jsonl'));
    expect(spool?.text).toContain('"gw:a:');
    expect(spool?.text).toContain('"gw:d:');
    const requests = fake.texts();
    expect(requests.some((t) => t.text.includes('"payivr.last4":"4242"'))).toBe(true);
    texts.push(...requests);
    texts.push({ where: 'GET /v1/genesys/dead-letters', text: await adminGet('/v1/genesys/dead-letters') });
    texts.push({ where: 'GET /metrics', text: await adminGet('/metrics') });
    expect(texts.some((t) => t.where.endsWith('server-1.log') && t.text.includes('genesys write-back delivered'))).toBe(true);
    expect(cardDigitHits(texts, SECRETS)).toEqual([]);
    expect(filesUnder([dir]).filter((t) => t.text.includes(fake.clientSecret)).map((t) => t.where)).toEqual([]);
  });
});
