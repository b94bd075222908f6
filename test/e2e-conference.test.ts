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

/**
 * The conference entry mode end to end (docs/genesys.md): SIPp plays Genesys with an agent who
 * conferenced pay-ivr in. The caller's keys reach pay-ivr as tones inside the conference mix,
 * under the agent's speech and comfort noise (PCMU; the offer lists telephone-event but no event
 * packet is sent). pay-ivr takes amount, card, expiry and security code in-band, the sandbox PSP
 * approves, the result is announced, and pay-ivr leaves with a BYE (the scenario fails on a
 * REFER). One call on a conference profile, one on a transfer profile whose UUI says entry=conf.
 */

const SIP_PORT = 45060;
const RTP_MIN = 45100;
const RTP_MAX = 45199;
const CALLS = [
  { name: 'profile', localPort: 45010, mediaPort: 45400, service: '+18005550123', uui: 'acct=C-2001|amt=12.00|cur=USD|ref=INV-CONF-1|mode=agent', cnv: 'cnv-conf-profile' },
  { name: 'uui', localPort: 45020, mediaPort: 45410, service: '+18005550177', uui: 'acct=C-2002|amt=7.50|cur=USD|ref=INV-CONF-2|mode=agent|entry=conf', cnv: 'cnv-conf-uui' },
] as const;

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

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-e2e-conf-'));
  const config = parseConfig(
    e2eNodeConfig({
      dir,
      sip: [{ transport: 'udp', port: SIP_PORT }],
      rtp: [RTP_MIN, RTP_MAX],
      rest: { admin: { enabled: false }, promptsDir: shortPromptsDir() },
      profiles: {
        default: e2eProfile({ entry: 'conference', psp: { type: 'sandbox' } }),
        plain: { calledNumbers: ['+18005550177'], ...e2eProfile({ psp: { type: 'sandbox' } }) },
      },
    }),
  );
  // debug level on purpose: the card-digit scan must hold at the most verbose shipped level.
  app = await startApp(config, createLogger({ level: 'debug', destination: join(dir, 'pay-ivr.log') }));
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

  it('no card digits in anything the run wrote: logs, spool, SIPp traces, results, metrics', async () => {
    const texts = filesUnder([dir, ...[...results.values()].map((r) => r.dir)]);
    const stored = await app!.store.recent(10);
    expect(stored.length).toBe(CALLS.length);
    texts.push({ where: 'results', text: JSON.stringify(stored) }, { where: 'metrics', text: await app!.metrics.text() });
    expect(texts.find((t) => t.where.endsWith('pay-ivr.log'))?.text.length ?? 0).toBeGreaterThan(1000);
    expect(texts.some((t) => t.where.includes(join(dir, 'data')))).toBe(true);
    expect(cardDigitHits(texts, CARD_SECRETS)).toEqual([]);
  });
});
