import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { CONFERENCE_LEG_DETAIL } from '../src/domain/entry.js';
import { runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import { writeRtpPcap, FIRST_KEY_PAUSE_MS, type DtmfStep } from './support/dtmf-pcap.js';
import { TEST_EXPIRY } from './support/payment-steps.js';
import { buildInbandRtp, removeAgentSpeech } from './support/inband-mix.js';
import { e2eNodeConfig, e2eProfile } from './support/app-config.js';
import { shortPromptsDir } from './support/short-prompts.js';
import { cardDigitHits, filesUnder, logOnceItHas } from './support/run-texts.js';
import { participantDataDeps } from '../src/genesys/platform/participant-data.js';
import { FakeGenesysApi, type FakeParticipant } from './support/fake-genesys-api.js';

/**
 * The conference entry mode end to end (docs/genesys.md): SIPp plays Genesys with an agent who
 * conferenced pay-ivr in. The caller's keys reach pay-ivr as tones inside the conference mix,
 * under the agent's speech and comfort noise (PCMU; the offer lists telephone-event but no event
 * packet is sent). pay-ivr takes amount, card, expiry and security code in-band, the sandbox PSP
 * approves, the result is announced, and pay-ivr leaves with a BYE (the scenario fails on a
 * REFER). One call on a conference profile, one on a transfer profile whose UUI says entry=conf.
 * genesys.platform is on, pointed at the HTTPS fake of the Genesys login and Platform API (port
 * 0) through `gateway` and `caFile`, with the production writer: each result must land on the
 * customer participant of its conversation (x-inin-cnv), the agent participant left alone.
 */

const SIP_PORT = 45060;
const RTP_MIN = 45100;
const RTP_MAX = 45199;
const CALLS = [
  // Conversation ids are UUIDs, as Genesys sends them: the writer refuses anything else.
  { name: 'profile', localPort: 45010, mediaPort: 45400, service: '+18005550123', uui: 'acct=C-2001|amt=12.00|cur=USD|ref=INV-CONF-1|mode=agent', cnv: 'c0f0e2e1-0000-4000-8000-00000000c0f1', amount: '12.00' },
  { name: 'uui', localPort: 45020, mediaPort: 45410, service: '+18005550177', uui: 'acct=C-2002|amt=7.50|cur=USD|ref=INV-CONF-2|mode=agent|entry=conf', cnv: 'c0f0e2e1-0000-4000-8000-00000000c0f2', amount: '7.50' },
] as const;
const NODE_ID = 'pay-ivr-conf-1';
/** What the flow and the agent's script had set before pay-ivr joined: must survive the write-back. */
const CUSTOMER_BEFORE = { 'flow.queue': 'payments' };
const AGENT_BEFORE = { 'script.note': 'card payment offered' };

const VISA = '4242424242424242';
const CARD_SECRETS = [VISA, VISA.slice(0, 12), VISA.slice(4)];

/**
 * The caller's keys: amount confirmed (1), card, its masked readback confirmed (1), expiry, CVV.
 * A conference reads back masked digits only: no expiry readback to confirm (domain/entry.ts).
 */
const STEPS: DtmfStep[] = [
  { pauseMs: FIRST_KEY_PAUSE_MS },
  { keys: '1' },
  { pauseMs: 1_000 },
  { keys: `${VISA}#` },
  { pauseMs: 600 },
  { keys: '1' },
  { pauseMs: 600 },
  { keys: TEST_EXPIRY },
  { pauseMs: 600 },
  { keys: '737' },
];
/** Keys 2 dB above the agent's speech, high group 2 dB up, over comfort noise (test/support/inband-mix.ts). */
const MIX = { toneMs: 100, gapMs: 120, lowDbm0: -12, highDbm0: -10, speechDbm0: -15, noiseDbm0: -55 };

let app: App | undefined;
let dir: string;
const results = new Map<string, GenesysCallResult>();
const fake = new FakeGenesysApi();
/** Participant ids of each conversation on the fake, by call name. */
const participants = new Map<string, { customer: string; agent: string }>();
const ENV_NAMES = ['GENESYS_CLIENT_ID', 'GENESYS_CLIENT_SECRET'] as const;
const envBefore = ENV_NAMES.map((n) => [n, process.env[n]] as const);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-e2e-conf-'));
  const api = await fake.start();
  for (const c of CALLS) {
    const ps: FakeParticipant[] = [
      { purpose: 'customer', attributes: CUSTOMER_BEFORE },
      { purpose: 'ivr', ended: true },
      { purpose: 'agent', attributes: AGENT_BEFORE },
    ];
    const [customer, , agent] = fake.addConversation(c.cnv, ps).map((p) => p.id);
    participants.set(c.name, { customer: customer ?? '', agent: agent ?? '' });
  }
  // The production writer reads its OAuth client from the environment, as `pay-ivr serve` does.
  process.env.GENESYS_CLIENT_ID = fake.clientId;
  process.env.GENESYS_CLIENT_SECRET = fake.clientSecret;
  const config = parseConfig(
    e2eNodeConfig({
      dir,
      sip: [{ transport: 'udp', port: SIP_PORT }],
      rtp: [RTP_MIN, RTP_MAX],
      rest: {
        admin: { enabled: false },
        promptsDir: shortPromptsDir(),
        journal: { dataDir: join(dir, 'data'), nodeId: NODE_ID },
        genesys: { platform: { enabled: true, gateway: { host: api.host, port: api.port }, caFile: api.caFile, timeoutMs: 5_000, delivery: { retryBaseMs: 200, maxRetryMs: 1_000 } } },
      },
      profiles: {
        default: e2eProfile({ entry: 'conference', psp: { type: 'sandbox' } }),
        plain: { calledNumbers: ['+18005550177'], ...e2eProfile({ psp: { type: 'sandbox' } }) },
      },
    }),
  );
  // debug level on purpose: the card-digit scan must hold at the most verbose shipped level.
  app = await startApp(config, createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }), { participantData: participantDataDeps });
  const runs = CALLS.map(async (c) => {
    const r = await runGenesysCall({
      scenario: 'conference',
      target: `127.0.0.1:${SIP_PORT}`,
      uui: c.uui,
      conversationId: c.cnv,
      steps: STEPS,
      service: c.service,
      localPort: c.localPort,
      mediaPort: c.mediaPort,
      timeoutS: 90,
      pcap: (path) => writeRtpPcap(path, buildInbandRtp(STEPS, MIX)).durationMs,
    });
    results.set(c.name, r);
  });
  await Promise.all(runs);
  await app.idle();
}, 150_000);

afterAll(async () => {
  await app?.stop();
  await fake.stop();
  for (const [n, v] of envBefore) {
    if (v === undefined) delete process.env[n];
    else process.env[n] = v;
  }
  removeAgentSpeech();
});

describe('conference leg: in-band keys under speech, BYE and never a REFER (SIPp as Genesys)', () => {
  it.each(CALLS.map((c) => [c.name, c] as const))('%s: approved, no REFER, a BYE from pay-ivr with its Reason (answered 200)', async (name, c) => {
    const r = results.get(name);
    expect(r?.exitCode, r?.output).toBe(0);
    expect(r?.referTo).toBeUndefined();
    expect(r?.byeReceived).toMatch(/^SIP ?;\s*cause=200;\s*text="Conference leg ended; outcome approved"/);
    const stored = await app!.store.getByConversationId(c.cnv);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      outcome: 'approved',
      entry: 'conference',
      mode: 'agent',
      conversationId: c.cnv,
      brand: 'visa',
      last4: '4242',
      stage: 'ended',
      handBack: { target: '', status: 'skipped', detail: CONFERENCE_LEG_DETAIL },
    });
  });

  it('the keys came in-band (the offer had telephone-event, no event packet was sent)', async () => {
    const log = await logOnceItHas(join(dir, 'pay-ivr.log'), 'conference leg ended with BYE (no REFER)', CALLS.length);
    const lines = log.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; source?: string; entry?: string });
    expect(lines.filter((l) => l.msg === 'call answered').map((l) => l.entry)).toEqual(['conference', 'conference']);
    expect(lines.filter((l) => l.msg === 'hand-back REFER done')).toEqual([]);
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
  });

  it.each(CALLS.map((c) => [c.name, c] as const))('%s: the result is on the customer participant of the conversation (participant data), the agent left alone', async (name, c) => {
    await expect.poll(() => app!.writeBack!.queue.status(), { timeout: 20_000 }).toMatchObject({ queued: 0, deadLetters: 0 });
    const stored = (await app!.store.getByConversationId(c.cnv))[0];
    const ids = participants.get(name)!;
    const onConversation = fake.attributesOf(c.cnv);
    expect(typeof stored?.transactionId).toBe('string');
    expect(onConversation[ids.customer]).toEqual({
      ...CUSTOMER_BEFORE,
      'payivr.outcome': 'approved',
      'payivr.amount': c.amount,
      'payivr.currency': 'USD',
      'payivr.amountSource': 'context',
      'payivr.brand': 'visa',
      // The last 4 of the test card and no other card digit.
      'payivr.last4': VISA.slice(-4),
      'payivr.mode': 'agent',
      'payivr.entry': 'conference',
      'payivr.pspReference': stored!.transactionId,
      'payivr.attempts': '1',
      'payivr.node': NODE_ID,
      'payivr.origin': 'call',
      'payivr.updatedAt': stored!.timings!.endedAt,
    });
    expect(onConversation[ids.agent]).toEqual(AGENT_BEFORE);
    const writes = fake.writes.filter((w) => w.conversationId === c.cnv);
    expect(writes.length).toBeGreaterThanOrEqual(1);
    expect(writes.every((w) => w.participantId === ids.customer)).toBe(true);
    // Every request had the shape of the SDK's typings and the API reference.
    expect(fake.violations).toEqual([]);
  });

  it('in-band key accuracy: every key sent was taken, each field accepted at the first try (printed for the record)', async () => {
    const sent = STEPS.reduce((n, s) => n + ('keys' in s ? s.keys.length : 0), 0);
    const metrics = await app!.metrics.text();
    const total = (name: string): number => {
      const lines = [...metrics.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'gm'))];
      // The counters are exported per step from the start: no line would mean a renamed metric.
      expect(lines.length, name).toBeGreaterThan(0);
      return lines.reduce((n, m) => n + Number(m[1]), 0);
    };
    const timeouts = total('pay_ivr_step_timeouts_total');
    const invalid = total('pay_ivr_step_invalid_entries_total');
    for (const c of CALLS) {
      const r = (await app!.store.getByConversationId(c.cnv))[0]!;
      // A lost, doubled or split key leaves a field short, long or Luhn-invalid: an invalid entry
      // or a no-input timeout, and a re-prompt. None: the dialogue took the keys as sent.
      const taken = r.outcome === 'approved' && r.last4 === VISA.slice(-4) && r.attempts.invalidEntries === 0 && r.attempts.charges === 1 ? sent : 0;
      console.log(
        `in-band keys under speech (${c.name}): sent ${sent} (amount confirm 1, card 16 + #, readback confirm 1, expiry 4, security code 3), ` +
          `taken by the dialogue ${taken}/${sent} = ${((100 * taken) / sent).toFixed(1)} %; invalid entries ${r.attempts.invalidEntries}, charges ${r.attempts.charges}, last4 ${r.last4 ?? '-'}, outcome ${r.outcome}`,
      );
      expect(taken).toBe(sent);
    }
    console.log(`in-band keys, both calls: ${CALLS.length * sent} keys sent, step no-input timeouts ${timeouts}, step invalid entries ${invalid} (metrics)`);
    expect({ timeouts, invalid }).toEqual({ timeouts: 0, invalid: 0 });
  });

  it('no card digits in anything the run wrote: logs, spool, SIPp traces, results, metrics, the requests Genesys got', async () => {
    const texts = filesUnder([dir, ...[...results.values()].map((r) => r.dir)]);
    const stored = await app!.store.recent(10);
    expect(stored.length).toBe(CALLS.length);
    texts.push({ where: 'results', text: JSON.stringify(stored) }, { where: 'metrics', text: await app!.metrics.text() });
    const toGenesys = fake.texts();
    expect(toGenesys.filter((t) => t.where.includes('PATCH')).length).toBeGreaterThanOrEqual(CALLS.length);
    texts.push(...toGenesys, { where: 'fake-genesys conversations', text: JSON.stringify(CALLS.map((c) => fake.attributesOf(c.cnv))) });
    expect(texts.find((t) => t.where.endsWith('pay-ivr.log'))?.text.length ?? 0).toBeGreaterThan(1000);
    expect(texts.some((t) => t.where.includes(join(dir, 'data')))).toBe(true);
    expect(cardDigitHits(texts, CARD_SECRETS)).toEqual([]);
  });
});
