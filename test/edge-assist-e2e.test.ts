/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { parseConfig } from '../src/config/load.js';
import { createLogger, type Logger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { openRtpengineAnchor, type RtpengineAnchor } from '../src/edge/rtpengine-anchor.js';
import type { CaptureSnapshot } from '../src/assist/service.js';
import type { JournalAttempt } from '../src/journal/types.js';
import { decode, encode } from '../src/telephony/embedded/media/g711.js';
import { InbandDtmfDetector } from '../src/telephony/embedded/media/goertzel-dtmf.js';
import { promptFromWav } from '../src/telephony/embedded/media/prompt-library.js';
import { RtpengineDaemon } from './support/rtpengine.js';
import { killAllSipp, sippMessages, startSipp, type SippProcess, type SippRun } from './support/sipp.js';
import { writeDtmfPcap, type DtmfStep } from './support/dtmf-pcap.js';
import { Capture, eventKeys, rtpPackets, type RtpPacket } from './support/capture.js';
import { SseReader } from './support/assist-harness.js';
import { cardDigitHits, filesUnder, type RunText } from './support/run-texts.js';
import { openPanelBrowser } from './support/browser.js';

/**
 * Agent Assist end to end, with real peers only: SIPp as the carrier's caller (UAC) talking and
 * keying from a pcap (PCMU voice and RFC 4733 events, sipp-scenarios/edge/carrier-keys.xml), the
 * edge (startApp, edge role, the real RtpengineAnchor) with media on a real rtpengine, SIPp as
 * Genesys (UAS, sipp-scenarios/edge/genesys-talk.xml) answering and talking back, the sandbox
 * PSP, and the agent panel in chromium. SIPp does not keep the RTP it receives: what reaches the
 * Genesys leg is read from a tshark capture of loopback filtered on the two SIPp media ports.
 *
 * The call: the test reads the edge session id from the INVITE Genesys received (SIPp's message
 * trace), starts a capture over /v1/assist, the caller keys card number # expiry # security code,
 * the test charges once the card is complete, and a key pressed after the capture ended must
 * reach Genesys as RFC 4733 again. Ports 53000-53399: SIP/admin/PSP 53000-53002, rtpengine
 * ng/DTMF/control 53010-53015, SIPp SIP and control 53020-53031, rtpengine media 53100-53199,
 * rtp (unused by the edge) 53200-53299, SIPp media 53300 and 53320.
 */

const HOST = '127.0.0.1';
const EDGE_PORT = 53000;
const ADMIN_PORT = 53001;
const PSP_PORT = 53002;
const NG_PORT = 53010;
const DTMF_PORT = 53011;
const GENESYS_SIP_PORT = 53020;
const CARRIER_SIP_PORT = 53021;
const GENESYS_CONTROL_PORT = 53030;
const CARRIER_CONTROL_PORT = 53031;
const CARRIER_MEDIA_PORT = 53300;
const GENESYS_MEDIA_PORT = 53320;
const BASE = `http://${HOST}:${ADMIN_PORT}`;

const API_KEY = 'e2e-assist-data-action-key-0123456789';
const ADMIN_TOKEN = 'e2e-assist-admin-token-0123456789abcdef';
const SESSION_HEADER = 'X-PayIvr-Edge-Session';
const CONVERSATION_ID = '0b3e6f52-8d7c-4a11-9e2f-5c4d3b2a1f09';

const VISA = '4242424242424242';
/** August 2029 and a leading-zero code: as tokens they cannot be a port, a duration or a count. */
const EXPIRY = '0829';
const CVC = '042';
/** Keyed after the capture ended; not a digit of the card, so any sighting of it is this key. */
const LATER_KEY = '9';
const CARD_KEYS = `${VISA}#${EXPIRY}#${CVC}`;
/** Leaves the test time to read the session id and start the capture before the first key. */
const START_PAUSE_MS = 4_000;
/** Leaves the test time to charge and the capture to end before the later key. */
const CHARGE_PAUSE_MS = 6_000;
const CALLER_STEPS: DtmfStep[] = [
  { pauseMs: START_PAUSE_MS },
  { keys: CARD_KEYS, toneMs: 100, gapMs: 150 },
  { pauseMs: CHARGE_PAUSE_MS },
  { keys: LATER_KEY, toneMs: 100, gapMs: 150 },
];

let dir: string;
let daemon: RtpengineDaemon;
let anchor: RtpengineAnchor | undefined;
let app: App | undefined;
let logger: Logger;
let logFile: string;
let capture: Capture | undefined;
let context: BrowserContext | undefined;
let page: Page;
const sipps: SippProcess[] = [];
const produced: RunText[] = [];
const pending: { url: string; done: Promise<boolean> }[] = [];
let streamed = new Map<string, { url: string; text: string }>();
const panelRequests: { url: string; authorization: string | undefined }[] = [];

/** What the one call left for the later checks. */
interface CallRecord {
  sessionId: string;
  captureId: string;
  panelToken: string;
  startedAtMs: number;
  endedAtMs: number;
  final: CaptureSnapshot;
  carrier: SippRun;
  genesys: SippRun;
  panel: PanelSeen;
}
let rec: CallRecord | undefined;

interface PanelSeen {
  amount: string | null;
  reference: string | null;
  looks: PanelLook[];
  result: { outcome: string | null; text: string | null; brand: string | null; last4: string | null; psp: string | null };
}

function pcmuOf(prompt: string): Buffer {
  return promptFromWav(readFileSync(resolve('prompts/en-US', `${prompt}.wav`)), prompt).PCMU;
}

/** A copy of an edge scenario with the pcap's path, and the pause when given. */
function scenarioWith(name: string, pcap: string, pauseMs?: number): string {
  let xml = readFileSync(resolve('sipp-scenarios/edge', name), 'utf8').replace(/play_pcap_audio="[^"]*"/, `play_pcap_audio="${pcap}"`);
  if (pauseMs !== undefined) xml = xml.replace(/<pause milliseconds="\d+" \/>/, `<pause milliseconds="${pauseMs}" />`);
  const f = join(dir, name);
  writeFileSync(f, xml);
  return f;
}

async function udpBound(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  const free = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.bind(port, HOST, () => r(true));
  });
  if (free) await new Promise<void>((r) => s.close(() => r()));
  return !free;
}

async function until<T>(get: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function api(method: string, path: string, auth: string, body?: unknown): Promise<{ status: number; text: string; json: unknown }> {
  const r = await fetch(`${BASE}${path}`, {
    method,
    headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  produced.push({ where: `api ${method} ${path} ${r.status}`, text });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, text, json };
}

function headerOf(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(text)?.[1]?.trim();
}

/** One key press per RFC 4733 event (its RTP timestamp), with the time its first packet was seen. */
function keysWithTimes(pkts: readonly RtpPacket[]): { key: string; timeMs: number }[] {
  const KEYS = '0123456789*#ABCD';
  const seen = new Map<number, { key: string; timeMs: number }>();
  for (const p of pkts) {
    if (p.pt !== 101 || p.payload.length < 4) continue;
    const code = p.payload[0] as number;
    if (code > 15 || seen.has(p.timestamp)) continue;
    seen.set(p.timestamp, { key: KEYS[code] as string, timeMs: p.timeMs });
  }
  return [...seen.values()].sort((a, b) => a.timeMs - b.timeMs);
}

/** The DTMF digits a Goertzel detector hears in the PCMU packets, in capture order. */
function toneDigits(pkts: readonly RtpPacket[]): string {
  const det = new InbandDtmfDetector();
  let out = '';
  for (const p of pkts) {
    if (p.pt !== 0) continue;
    const pcm = decode('PCMU', p.payload);
    det.process(pcm, pcm.length, (d) => (out += d));
  }
  return out;
}

/** A key as a phone would play it in band (PCMU packets): the detector's own check. */
function inbandKeyPackets(key: '4' | '2'): RtpPacket[] {
  const [lo, hi] = key === '4' ? [770, 1209] : [697, 1336];
  const pcm = new Int16Array(1600).map((_, i) => (i < 800 ? Math.round(6000 * (Math.sin((2 * Math.PI * lo * i) / 8000) + Math.sin((2 * Math.PI * hi * i) / 8000))) : 0));
  const out: RtpPacket[] = [];
  for (let i = 0; i < pcm.length; i += 160) out.push({ src: 0, dst: 0, pt: 0, timestamp: i, payload: encode('PCMU', pcm.subarray(i, i + 160)), timeMs: i / 8 });
  return out;
}

/** Whether a payload carries sound (not digital silence): mean absolute sample above a floor. */
function voiced(p: RtpPacket): boolean {
  if (p.pt !== 0) return false;
  const pcm = decode('PCMU', p.payload);
  let sum = 0;
  for (const v of pcm) sum += Math.abs(v);
  return sum / pcm.length > 200;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-edge-assist-'));
  logFile = join(dir, 'pay-ivr.log');
  logger = createLogger({ level: 'debug', destination: logFile });
  daemon = await RtpengineDaemon.start({ ngPort: NG_PORT, dtmfLogPort: DTMF_PORT, portMin: 53100, portMax: 53199 });
  const config = parseConfig({
    journal: { dataDir: join(dir, 'data') },
    sip: { listen: [{ transport: 'udp', host: HOST, port: EDGE_PORT }] },
    rtp: { host: HOST, portMin: 53200, portMax: 53299, workers: 0 },
    security: { allowList: ['127.0.0.1/32'] },
    admin: { host: HOST, port: ADMIN_PORT, apiToken: ADMIN_TOKEN },
    edge: {
      enabled: true,
      genesys: { host: HOST, port: GENESYS_SIP_PORT, transport: 'udp' },
      sessionHeader: SESSION_HEADER,
      rtpengine: { host: HOST, port: NG_PORT, dtmfLogAddress: HOST, dtmfLogPort: DTMF_PORT, timeoutMs: 1_000, pingIntervalMs: 1_000 },
      // Prompts played by rtpengine to the caller alone, from the repository's packs.
      assist: { apiKeys: [API_KEY], dtmfSecurity: 'tone', prompts: { dir: resolve('prompts'), language: 'en-US' } },
    },
    profiles: { default: { currency: 'EUR', minAmount: 100, maxAmount: 500_000, allowedBrands: ['visa', 'mastercard'], psp: { type: 'sandbox', listenPort: PSP_PORT } } },
  });
  app = await startApp(config, logger, {
    mediaAnchor: async (c, log) => {
      anchor = await openRtpengineAnchor(c, log);
      return anchor;
    },
  });

  ({ context, page, streamed } = await openPanelBrowser(mkdtempSync(join(dir, 'chromium-'))));
  page.on('request', (r) => {
    panelRequests.push({ url: r.url(), authorization: r.headers().authorization });
    const body = r.postData();
    if (body !== null) produced.push({ where: `panel request body ${r.url()}`, text: body });
  });
  page.on('response', (r) => {
    if (r.url().includes('/events')) return;
    pending.push({
      url: r.url(),
      done: r
        .body()
        .then((b) => {
          produced.push({ where: `panel response ${r.status()} ${r.url()}`, text: b.toString('latin1') });
          return true;
        })
        .catch(() => false),
    });
  });
}, 60_000);

afterAll(async () => {
  killAllSipp();
  await capture?.stop().catch(() => undefined);
  await context?.close().catch(() => undefined);
  await app?.stop();
  await daemon?.dispose();
  if (process.env.KEEP_E2E_DIR === undefined) {
    for (const s of sipps) rmSync(s.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

async function dom(where: string): Promise<void> {
  produced.push({ where: `panel dom ${where}`, text: await page.content() });
}

/** One look at the panel's card rows, as the page showed them. */
interface PanelLook {
  panCount: string | undefined;
  dots: string;
  brand: string;
  last4: string;
  panStatus: string | undefined;
  expiryEntered: string | undefined;
  securityCodeEntered: string | undefined;
}

/**
 * The agent's panel through the capture: every state its card rows went through (recorded in the
 * page as they change, so no intermediate state is missed between two looks), then the result.
 */
async function watchPanel(panelPath: string): Promise<PanelSeen> {
  await page.goto(`${BASE}${panelPath}`);
  await page.locator('#stream-state:text-is("live")').waitFor({ timeout: 10_000 });
  await page.evaluate(() => {
    const w = window as unknown as { panelLooks: unknown[] };
    w.panelLooks = [];
    const text = (id: string): string => document.getElementById(id)?.textContent ?? '';
    const look = (): void => {
      const l = {
        panCount: document.getElementById('pan-dots')?.dataset.count,
        dots: text('pan-dots'),
        brand: text('pan-brand'),
        last4: text('pan-last4'),
        panStatus: document.getElementById('field-pan')?.dataset.status,
        expiryEntered: document.getElementById('expiry-entered')?.dataset.entered,
        securityCodeEntered: document.getElementById('securityCode-entered')?.dataset.entered,
      };
      if (JSON.stringify(w.panelLooks.at(-1)) !== JSON.stringify(l)) w.panelLooks.push(l);
    };
    look();
    new MutationObserver(look).observe(document.getElementById('panel') as HTMLElement, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const amount = await page.textContent('#amount');
  const reference = await page.textContent('#reference');
  await page.locator('#result-outcome[data-outcome]').waitFor({ timeout: 60_000 });
  const result = {
    outcome: await page.getAttribute('#result-outcome', 'data-outcome'),
    text: await page.textContent('#result-outcome'),
    brand: await page.textContent('#result-brand'),
    last4: await page.textContent('#result-last4'),
    psp: await page.textContent('#result-psp'),
  };
  await page.locator('#stream-state:text-is("closed")').waitFor({ timeout: 10_000 });
  await dom('result');
  const looks = await page.evaluate(() => (window as unknown as { panelLooks: PanelLook[] }).panelLooks);
  produced.push({ where: 'panel looks', text: JSON.stringify(looks) });
  return { amount, reference, looks, result };
}

describe('Agent Assist on a real call (SIPp carrier -> edge + rtpengine -> SIPp Genesys)', () => {
  it('an agent-assisted Visa payment is approved through the sandbox PSP; journal, result and assist segment hold it', { timeout: 120_000 }, async () => {
    const callerPcap = join(dir, 'caller-keys.pcap');
    // The caller talks between the keys (a prompt's voice stands in), the agent talks back.
    const { durationMs } = writeDtmfPcap(callerPcap, CALLER_STEPS, { audio: pcmuOf('welcome'), ssrc: 0x0ca11e12 });
    const agentPcap = join(dir, 'agent-voice.pcap');
    writeDtmfPcap(agentPcap, [{ pauseMs: durationMs + 10_000 }], { audio: pcmuOf('thank-you'), ssrc: 0x06e4e515 });

    capture = await Capture.start(join(dir, 'media.pcap'), `udp port ${GENESYS_MEDIA_PORT} or udp port ${CARRIER_MEDIA_PORT}`);
    const genesys = startSipp({ scenario: scenarioWith('genesys-talk.xml', agentPcap), target: `${HOST}:${EDGE_PORT}`, localPort: GENESYS_SIP_PORT, mediaPort: GENESYS_MEDIA_PORT, controlPort: GENESYS_CONTROL_PORT, timeoutS: 90 });
    sipps.push(genesys);
    await until(async () => ((await udpBound(GENESYS_SIP_PORT)) ? true : undefined), 'SIPp (Genesys side) to listen', 5_000);
    const carrier = startSipp({
      scenario: scenarioWith('carrier-keys.xml', callerPcap, durationMs + 500),
      target: `${HOST}:${EDGE_PORT}`,
      localPort: CARRIER_SIP_PORT,
      mediaPort: CARRIER_MEDIA_PORT,
      controlPort: CARRIER_CONTROL_PORT,
      service: '+33140000001',
      timeoutS: 90,
    });
    sipps.push(carrier);

    // The edge session id, as Genesys got it (an Architect flow would read the same header).
    const invite = await until(() => {
      const m = genesys.read('messages.log');
      const at = m.indexOf('INVITE sip:');
      return at >= 0 && /\r?\n\r?\n/.test(m.slice(at)) && headerOf(m.slice(at), SESSION_HEADER) !== undefined ? m.slice(at) : undefined;
    }, 'the INVITE at Genesys in its SIPp message trace', 10_000);
    const sessionId = headerOf(invite, SESSION_HEADER) as string;
    expect(sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // The call is up (Genesys answered, the caller ACKed) before the capture is asked for.
    await until(() => {
      const call = app?.captureHost?.find(sessionId);
      return typeof call === 'object' && call.state === 'connected' ? true : undefined;
    }, 'the relayed call to be connected');

    const started = await api('POST', '/v1/assist/captures', `Bearer ${API_KEY}`, { sessionId, amount: 4990, currency: 'EUR', reference: 'INV-E2E-18' });
    expect(started.status, started.text).toBe(201);
    const startedAtMs = Date.now();
    const s = started.json as { captureId: string; panelToken: string; panelPath: string };
    const events = new SseReader(`${BASE}/v1/assist/captures/${s.captureId}/events`, `Bearer ${s.panelToken}`);
    const panel = watchPanel(s.panelPath);

    await events.waitFor((e) => (e.data as CaptureSnapshot).view.pan.digits >= 6);
    await dom('typing');
    const ready = await events.waitFor((e) => (e.data as CaptureSnapshot).view.phase === 'ready').catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; last view: ${JSON.stringify((events.events.at(-2)?.data as CaptureSnapshot | undefined)?.view)}`);
    });
    expect((ready.data as CaptureSnapshot).view).toMatchObject({ pan: { status: 'valid', brand: 'visa', last4: '4242', digits: 16 }, expiry: { entered: true }, securityCode: { entered: true, required: true } });
    await dom('ready');
    const state = await api('GET', `/v1/assist/captures/${s.captureId}`, `Bearer ${API_KEY}`);
    expect(state.json).toMatchObject({ status: 'running', amount: 4990, currency: 'EUR', reference: 'INV-E2E-18', conversationId: CONVERSATION_ID, view: { phase: 'ready' } });

    const charged = await api('POST', `/v1/assist/captures/${s.captureId}/charge`, `Bearer ${API_KEY}`);
    expect(charged.status, charged.text).toBe(202);
    const end = await events.waitFor((e) => e.type === 'ended');
    const endedAtMs = Date.now();
    const final = end.data as CaptureSnapshot;
    expect(final.status).toBe('ended');
    expect(final.result).toMatchObject({ outcome: 'approved', reason: 'charged', brand: 'visa', last4: '4242' });
    expect(final.result?.pspReference).toMatch(/^pi_/);
    await events.done;
    produced.push({ where: 'sse (test reader)', text: events.raw });

    const [c, g] = await Promise.all([carrier.done, genesys.done]);
    expect(c.code, `carrier sipp:\n${c.output}`).toBe(0);
    expect(g.code, `genesys sipp:\n${g.output}`).toBe(0);
    const panelSeen = await panel;
    await capture.stop();

    // The journal settled the one attempt, with its outcome, before the call ended.
    const attempts = (app?.journal.journal.spool.entries('j:') ?? []).map(([, v]) => v as JournalAttempt).filter((a) => a.callRef === s.captureId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ state: 'settled', outcome: 'approved', origin: 'call', amount: 4990, currency: 'EUR', reference: 'INV-E2E-18', brand: 'visa', last4: '4242', attempt: 1 });
    // The result, through the store and the result API.
    const stored = await app?.store.getById(s.captureId);
    expect(stored).toMatchObject({ outcome: 'approved', mode: 'agent', stage: 'ended', brand: 'visa', last4: '4242', conversationId: CONVERSATION_ID, amount: 4990, currency: 'EUR', reference: 'INV-E2E-18' });
    const byApi = await api('GET', `/v1/results/${s.captureId}`, `Bearer ${ADMIN_TOKEN}`);
    expect(byApi.json).toMatchObject({ outcome: 'approved', mode: 'agent', brand: 'visa', last4: '4242' });
    // The reports segment, mode assist.
    const from = new Date(startedAtMs - 60_000).toISOString();
    const segs = await until(async () => {
      const r = await api('GET', `/v1/reports/export.ndjson?from=${encodeURIComponent(from)}`, `Bearer ${ADMIN_TOKEN}`);
      const found = r.text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { id: string; mode: string; outcome: string; last4?: string });
      return found.some((x) => x.id === s.captureId) ? found : undefined;
    }, 'the reports segment');
    expect(segs.find((x) => x.id === s.captureId)).toMatchObject({ mode: 'assist', outcome: 'approved', last4: '4242' });

    rec = { sessionId, captureId: s.captureId, panelToken: s.panelToken, startedAtMs, endedAtMs, final, carrier: c, genesys: g, panel: panelSeen };
  });

  it("the Genesys leg got no card key during the capture (no RFC 4733 event, no digit tone), and the key pressed after it reached Genesys as RFC 4733", () => {
    if (rec === undefined || capture === undefined) throw new Error('the call did not run');
    const all = rtpPackets(capture.file, [GENESYS_MEDIA_PORT, CARRIER_MEDIA_PORT]).sort((a, b) => a.timeMs - b.timeMs);
    const fromCaller = all.filter((p) => p.src === CARRIER_MEDIA_PORT);
    const toGenesys = all.filter((p) => p.dst === GENESYS_MEDIA_PORT);
    // What the caller sent, read back from the capture: the capture sees the keys.
    const sent = keysWithTimes(fromCaller);
    expect(sent.map((k) => k.key).join('')).toBe(CARD_KEYS + LATER_KEY);
    const firstCardKey = sent[0] as { timeMs: number };
    const laterKey = sent.at(-1) as { timeMs: number };
    // Preconditions of the pcap's timing (not of speed): every card key after the block, the later key after the end.
    expect(firstCardKey.timeMs, 'the first card key left before the capture had started: lengthen START_PAUSE_MS').toBeGreaterThan(rec.startedAtMs);
    expect(laterKey.timeMs, 'the later key left before the capture ended: lengthen CHARGE_PAUSE_MS').toBeGreaterThan(rec.endedAtMs);

    const during = toGenesys.filter((p) => p.timeMs >= rec!.startedAtMs && p.timeMs < laterKey.timeMs);
    const after = toGenesys.filter((p) => p.timeMs >= laterKey.timeMs);
    const eventsDuring = during.filter((p) => p.pt === 101).length;
    const tonesDuring = toneDigits(during);
    // The detector hears a key played in band (this check can fail).
    expect(toneDigits(inbandKeyPackets('4'))).toBe('4');
    const voicedDuring = during.filter(voiced).length;
    const afterKeys = eventKeys(after, 101);
    console.log(
      `edge assist e2e: genesys leg during the capture: rfc4733 events=${eventsDuring} digit tones=${tonesDuring.length} (audio packets ${during.filter((p) => p.pt === 0).length}, voiced ${voicedDuring}); ` +
        `after: keys as rfc4733='${afterKeys}'; outcome=${rec.final.result?.outcome} brand=${rec.final.result?.brand} last4=${rec.final.result?.last4}`,
    );
    expect(eventsDuring).toBe(0);
    expect(tonesDuring).toBe('');
    // The caller's voice went on reaching Genesys while the keys were blocked.
    expect(during.filter((p) => p.pt === 0).length).toBeGreaterThan(((laterKey.timeMs - rec.startedAtMs) / 20) * 0.8);
    expect(voicedDuring).toBeGreaterThan(50);
    // Normal keys pass again.
    expect(afterKeys).toBe(LATER_KEY);
    expect(toneDigits(after)).toBe('');
    // And Genesys talked to the caller all along.
    expect(all.filter((p) => p.src === GENESYS_MEDIA_PORT && p.pt === 0).length).toBeGreaterThan(100);
  });

  it('the agent panel in chromium showed the masked progress (dots, brand) and the result, on the real call', async () => {
    if (rec === undefined) throw new Error('the call did not run');
    const p = rec.panel;
    expect(p.amount).toBe('49.90 EUR');
    expect(p.reference).toBe('INV-E2E-18');
    // While typing: dots and the brand, no last 4; then the complete number: 16 dots and the last 4.
    const typing = p.looks.filter((l) => Number(l.panCount) >= 6 && Number(l.panCount) < 16);
    expect(typing.length, JSON.stringify(p.looks)).toBeGreaterThan(5);
    for (const l of typing) expect(l).toMatchObject({ dots: '\u2022'.repeat(Number(l.panCount)), brand: 'visa', last4: '' });
    expect(p.looks).toContainEqual(expect.objectContaining({ panCount: '16', dots: '\u2022'.repeat(16), brand: 'visa', last4: '\u2022\u2022\u2022\u2022 4242', panStatus: 'valid' }));
    expect(p.looks).toContainEqual(expect.objectContaining({ expiryEntered: 'true', securityCodeEntered: 'true' }));
    expect(p.result).toEqual({ outcome: 'approved', text: 'Payment approved', brand: 'visa', last4: '\u2022\u2022\u2022\u2022 4242', psp: rec.final.result?.pspReference });
    // The token went in Authorization headers only, to this server only.
    expect(panelRequests.filter((q) => q.url.includes(rec!.panelToken))).toEqual([]);
    const apiCalls = panelRequests.filter((q) => q.url.includes('/v1/assist/'));
    expect(apiCalls.length).toBeGreaterThanOrEqual(1);
    expect(apiCalls.every((q) => q.authorization === `Bearer ${rec!.panelToken}`)).toBe(true);
    expect(panelRequests.filter((q) => !q.url.startsWith(BASE))).toEqual([]);
  });

  it("no card digit in rtpengine's log, pay-ivr's log, the results, the segments, the journal spool, the SIPp traces, the panel's traffic and DOM", async () => {
    if (rec === undefined) throw new Error('the call did not run');
    await Promise.all(pending.map((p) => Promise.race([p.done, new Promise((r) => setTimeout(r, 5_000))])));
    for (const s of streamed.values()) produced.push({ where: `panel event stream ${s.url}`, text: s.text });
    logger.flush();
    await new Promise((r) => setTimeout(r, 200));
    const texts: RunText[] = [
      ...produced,
      { where: 'rtpengine log', text: daemon.log() },
      { where: 'pay-ivr log', text: readFileSync(logFile, 'latin1') },
      { where: 'results', text: JSON.stringify(await app?.store.recent(500)) },
      { where: 'metrics', text: (await app?.metrics.text()) ?? '' },
      ...filesUnder([join(dir, 'data')]).map((t) => ({ ...t, where: `journal ${t.where}` })),
      ...sipps.flatMap((s) => filesUnder([s.dir]).map((t) => ({ ...t, where: `sipp ${t.where}` }))),
    ];
    // Everything expected is there to be searched.
    const where = texts.map((t) => t.where).join('\n');
    for (const w of ['rtpengine log', 'pay-ivr log', 'panel dom result', 'panel event stream', 'journal ', 'messages.log', 'export.ndjson']) expect(where).toContain(w);
    expect(texts.find((t) => t.where.startsWith('panel event stream'))?.text).toContain('"last4":"4242"');
    expect(texts.find((t) => t.where === 'rtpengine log')?.text).toMatch(/Blocking directional DTMF/);
    expect(readFileSync(logFile, 'latin1')).toContain('capture started');

    const hits = cardDigitHits(texts, [VISA, VISA.slice(0, 12), `${EXPIRY}${CVC}`]);
    // The expiry and the security code as tokens (not inside longer numbers or ids).
    const token = (x: string): RegExp => new RegExp(`(?<![\\w.])${x}(?!\\w)`);
    for (const t of texts) for (const x of [EXPIRY, CVC]) if (token(x).test(t.text)) hits.push(`${x.length}-digit card token in ${t.where}`);
    expect(token(CVC).test(`"x":${CVC},`)).toBe(true);
    // rtpengine wrote no key of any kind (at log level 6 it must not).
    if (/DTMF event packet|DTMF DSP|"event"\s*:/.test(daemon.log())) hits.push('a DTMF key line in the rtpengine log');
    expect(hits).toEqual([]);
    expect(sippMessages(rec.genesys).length).toBeGreaterThan(3);
  });
});
