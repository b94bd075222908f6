import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtpengine from 'rtpengine-client';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { headerValue, type SipRequest, type SipResponse } from '../src/telephony/embedded/sip/message.js';
import { decode } from '../src/telephony/embedded/media/g711.js';
import { InbandDtmfDetector } from '../src/telephony/embedded/media/goertzel-dtmf.js';
import { cliArgs, distEntry } from './support/dist.js';
import { RtpPeer, type ReceivedRtp } from './support/rtp-peer.js';
import { RtpengineDaemon } from './support/rtpengine.js';
import { cardDigitHits, filesUnder } from './support/run-texts.js';
import { SipPeer, offerSdp, type PeerCall } from './support/sip-peer.js';
import { requireTool } from './support/tools.js';
import { NodeChildren, kill9 } from './support/children.js';

/**
 * The edge role's fault behaviour with real peers: `pay-ivr serve` (dist/) as a child process in
 * the edge role, a real rtpengine (userspace) as its media anchor, the sandbox PSP in its own
 * process (its books survive pay-ivr), a Node SIP UAC as the carrier and a Node SIP UAS as
 * Genesys, each with an RTP endpoint, so the test decides when each key is pressed and sees every
 * packet that reaches Genesys.
 *
 * 1. kill -9 of pay-ivr while the PSP holds an assisted capture's charge: the caller's keys still
 *    do not reach Genesys (rtpengine keeps the block), and after restart the attempt is settled by
 *    PSP lookup (one charge on the books, one approved result).
 * 2. rtpengine's control socket stops answering (a UDP relay between pay-ivr and rtpengine's ng
 *    port drops every packet; the media plane is untouched): new calls get 503 "media relay
 *    unavailable", /ready says the relay is down, the call in progress keeps its media both ways
 *    and ends normally with BYE once control answers again.
 * 3. No card digit in anything the run wrote.
 *
 * Ports (own band 53400-53799): rtpengine ng 53400, DTMF events 53401, CLI 53405; the ng relay
 * 53410 (toward pay-ivr) and 53411 (toward rtpengine); sandbox PSP 53420; pay-ivr SIP 53430,
 * admin 53431; Genesys SIP 53440, carrier SIP 53441; RTP peers 53450-53479; rtpengine media
 * 53500-53599.
 */

const HOST = '127.0.0.1';
const NG_PORT = 53400;
const DTMF_PORT = 53401;
const RELAY_PORT = 53410;
const RELAY_OUT_PORT = 53411;
const PSP_PORT = 53420;
const SIP_PORT = 53430;
const ADMIN_PORT = 53431;
const GENESYS_PORT = 53440;
const CARRIER_PORT = 53441;
let nextRtpPort = 53450;

const ADMIN_TOKEN = 'edge-faults-admin-token-0123456789';
const API_KEY = 'edge-faults-assist-key-0123456789abcdef';
const SESSION_HEADER = 'x-payivr-edge-session';
/** Mastercard test number (16 digits ends the field by itself), expiry 01/30, security code. */
const PAN = '5555555555554444';
const EXPIRY = '0130';
const CVC = '739';
const SECRETS = [PAN, PAN.slice(0, 12), PAN.slice(4)];
const REFERENCE = 'EDGE-CRASH-1';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A UDP relay between pay-ivr's ng client and rtpengine's ng port. `cut` drops every packet both
 * ways: rtpengine's control stops answering while its media plane keeps relaying.
 */
class NgRelay {
  cut = false;
  dropped = 0;
  readonly #front: Socket;
  readonly #back: Socket;
  #client: RemoteInfo | undefined;

  private constructor(front: Socket, back: Socket) {
    this.#front = front;
    this.#back = back;
    front.on('message', (m, r) => {
      if (this.cut) return void this.dropped++;
      this.#client = r;
      back.send(m, NG_PORT, HOST);
    });
    back.on('message', (m) => {
      const c = this.#client;
      if (this.cut || c === undefined) return void this.dropped++;
      front.send(m, c.port, c.address);
    });
  }

  static async open(): Promise<NgRelay> {
    const bind = async (port: number): Promise<Socket> => {
      const s = createSocket('udp4');
      await new Promise<void>((r) => s.bind(port, HOST, () => r()));
      return s;
    };
    return new NgRelay(await bind(RELAY_PORT), await bind(RELAY_OUT_PORT));
  }

  close(): void {
    this.#front.close();
    this.#back.close();
  }
}

let dir: string;
let SPOOL = '';
let daemon: RtpengineDaemon | undefined;
let relay: NgRelay | undefined;

let server: ChildProcess | undefined;
let runs = 0;
let carrierSip: SipPeer;
let genesysSip: SipPeer;
const peers: RtpPeer[] = [];
const children = new NodeChildren(() => dir);

const spawnNode = (args: string[], logFile: string): ChildProcess => children.spawn(args, logFile);

function serverConfig(): string {
  runs += 1;
  const cfg = {
    sip: { listen: [{ transport: 'udp', host: HOST, port: SIP_PORT }] },
    security: { allowList: ['127.0.0.1/32'] },
    store: { type: 'memory' },
    admin: { host: HOST, port: ADMIN_PORT, apiToken: ADMIN_TOKEN },
    log: { level: 'debug', file: join(dir, `server-${runs}.log`) },
    journal: { dataDir: join(dir, 'data'), nodeId: 'edge-a' },
    reconcile: { intervalSeconds: 1, noRecordAfterSeconds: 30 },
    edge: {
      enabled: true,
      genesys: { host: HOST, port: GENESYS_PORT, transport: 'udp' },
      // Through the relay the test can cut; DTMF events come straight from rtpengine.
      rtpengine: { host: HOST, port: RELAY_PORT, dtmfLogAddress: HOST, dtmfLogPort: DTMF_PORT, timeoutMs: 500, pingIntervalMs: 300 },
      assist: { apiKeys: [API_KEY], dtmfSecurity: 'silence' },
    },
    profiles: {
      default: {
        currency: 'USD',
        psp: { type: 'sandbox', url: `http://${HOST}:${PSP_PORT}`, timeoutMs: 8_000 },
        retry: { budgetMs: 9_000, maxSends: 2, backoffMs: 200, maxBackoffMs: 1_000 },
      },
    },
  };
  const f = join(dir, `config-${runs}.json`);
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

interface Ready {
  ready: boolean;
  mediaRelay?: string;
}

async function ready(): Promise<{ status: number; body: Ready }> {
  const r = await fetch(`http://${HOST}:${ADMIN_PORT}/ready`);
  return { status: r.status, body: (await r.json()) as Ready };
}

async function startServer(): Promise<void> {
  const cfg = serverConfig();
  server = spawnNode(cliArgs('serve', '--config', cfg), `server-${runs}.out`);
  await until('pay-ivr ready', async () => (await ready()).body.ready, 60_000);
}

const killServer = (): Promise<void> => kill9(server);

async function sandbox(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`http://${HOST}:${PSP_PORT}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return r.json();
}

async function assistApi(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://${HOST}:${ADMIN_PORT}/v1/assist${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

function mediaPort(sdp: string): number {
  const m = /^m=audio (\d+) /m.exec(sdp);
  if (m === null) throw new Error('no m=audio line');
  return Number(m[1]);
}

function answerSdp(port: number): string {
  return ['v=0', `o=genesys ${port} 1 IN IP4 ${HOST}`, 's=-', `c=IN IP4 ${HOST}`, 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', 'a=ptime:20', 'a=sendrecv', ''].join('\r\n');
}

interface RelayedTestCall {
  carrier: PeerCall;
  /** The INVITE pay-ivr sent Genesys. */
  genesysInvite: SipRequest;
  sessionId: string;
  callerRtp: RtpPeer;
  genesysRtp: RtpPeer;
}

/**
 * One relayed call: the carrier's INVITE, Genesys's 200 (from the Node UAS), the carrier's ACK,
 * RTP both ways through rtpengine. Resolves once each side has received packets from the other.
 */
async function placeCall(): Promise<RelayedTestCall> {
  const callerRtp = await RtpPeer.open({ port: nextRtpPort, ssrc: 0x0c0c0000 + nextRtpPort });
  const genesysRtp = await RtpPeer.open({ port: nextRtpPort + 2, ssrc: 0x06060000 + nextRtpPort });
  nextRtpPort += 4;
  peers.push(callerRtp, genesysRtp);
  const c = carrierSip.newCall();
  const invitesBefore = genesysSip.count((m) => m.kind === 'request' && m.method === 'INVITE');
  carrierSip.send(carrierSip.invite(c, { sdp: offerSdp(callerRtp.port, '0 101') }));
  const inv = (await genesysSip.waitFor((m) => m.kind === 'request' && m.method === 'INVITE' && genesysSip.received.filter((x) => x.kind === 'request' && x.method === 'INVITE').indexOf(m) >= invitesBefore, 8_000)) as SipRequest;
  const sessionId = headerValue(inv, SESSION_HEADER);
  if (sessionId === undefined) throw new Error('no edge session header in the INVITE to Genesys');
  genesysRtp.setTarget(HOST, mediaPort(inv.body.toString('utf8')));
  genesysSip.respond(inv, 200, [`Contact: <sip:genesys@${HOST}:${GENESYS_PORT}>`, 'Content-Type: application/sdp'], answerSdp(genesysRtp.port));
  const ok = await carrierSip.response(c.callId, 200, 'INVITE', 8_000);
  c.to = headerValue(ok, 'to');
  carrierSip.send(carrierSip.inDialog(c, 'ACK', { cseq: 1 }));
  callerRtp.setTarget(HOST, mediaPort(ok.body.toString('utf8')));
  callerRtp.start();
  genesysRtp.start();
  await genesysRtp.waitForPackets(5);
  await callerRtp.waitForPackets(5);
  return { carrier: c, genesysInvite: inv, sessionId, callerRtp, genesysRtp };
}

/**
 * A key press as a phone sends it: 80 ms of RFC 4733 events, then 300 ms of audio. The pause
 * keeps a repeated key (5555...) well outside the anchor's echo window (150 ms, see
 * src/edge/rtpengine-key-filter.ts) even when a loaded machine delays the event datagrams.
 */
async function pressRfc(peer: RtpPeer, digit: DtmfDigit): Promise<void> {
  await peer.sendDigit(digit, { durationMs: 80 });
  await peer.sendAudio(new Int16Array(2400));
}

/** What reached an RTP endpoint from packet `from` on: key events, in-band keys, packets. */
function keysIn(pkts: ReceivedRtp[]): { events: number; inband: string; packets: number } {
  const det = new InbandDtmfDetector();
  let inband = '';
  for (const p of pkts) {
    if (p.payloadType !== 0) continue;
    const pcm = decode('PCMU', p.payload);
    det.process(pcm, pcm.length, (d) => (inband += d));
  }
  return { events: pkts.filter((p) => p.payloadType === 101).length, inband, packets: pkts.length };
}

const figures: Record<string, unknown> = {};

beforeAll(async () => {
  requireTool('rtpengine');
  dir = mkdtempSync(join(tmpdir(), 'payivr-edge-faults-'));
  SPOOL = join(dir, 'data', 'journal-spool.jsonl');
  daemon = await RtpengineDaemon.start({ ngPort: NG_PORT, dtmfLogPort: DTMF_PORT, portMin: 53500, portMax: 53599 });
  relay = await NgRelay.open();
  spawnNode([distEntry('psp/sandbox/main'), '--host', HOST, '--port', String(PSP_PORT), '--log-level', 'warn'], 'psp.out');
  await until('sandbox', async () => (await fetch(`http://${HOST}:${PSP_PORT}/_sandbox/health`)).ok, 30_000);
  genesysSip = await SipPeer.open('udp', SIP_PORT, GENESYS_PORT);
  carrierSip = await SipPeer.open('udp', SIP_PORT, CARRIER_PORT);
  await startServer();
}, 120_000);

afterAll(async () => {
  for (const p of peers) p.close();
  for (const c of children.running) c.kill('SIGKILL');
  await carrierSip?.close();
  await genesysSip?.close();
  relay?.close();
  // What the SIP peers received goes with the run's texts (the card-digit scan reads them first).
  await daemon?.dispose();
});

describe('edge faults with real peers (pay-ivr child, rtpengine, sandbox PSP)', () => {
  let crashCall: RelayedTestCall;

  it('kill -9 of pay-ivr while the PSP holds a capture charge: keys after the kill still do not reach Genesys; after restart the attempt is settled by lookup (1 charge, 1 approved result)', async () => {
    const call = await placeCall();
    crashCall = call;
    // Without a capture the caller's keys do reach Genesys (the check below can fail).
    let mark = call.genesysRtp.received.length;
    await pressRfc(call.callerRtp, '7');
    await until('the unblocked key at Genesys', () => keysIn(call.genesysRtp.received.slice(mark)).events > 0, 5_000);

    const started = await assistApi('POST', '/captures', { sessionId: call.sessionId, amount: 2500, currency: 'USD', reference: REFERENCE });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const captureId = started.body.captureId as string;
    mark = call.genesysRtp.received.length;
    for (const d of PAN + EXPIRY + CVC) await pressRfc(call.callerRtp, d as DtmfDigit);
    await until('the card complete', async () => ((await assistApi('GET', `/captures/${captureId}`)).body.view as { phase?: string } | undefined)?.phase === 'ready', 20_000);
    const whileCapturing = keysIn(call.genesysRtp.received.slice(mark));
    expect(whileCapturing.packets).toBeGreaterThan(50);
    expect(whileCapturing).toMatchObject({ events: 0, inband: '' });

    // The PSP holds the charge 5 s (then executes it); pay-ivr dies while it waits.
    await sandbox('DELETE', '/_sandbox/faults');
    await sandbox('POST', '/_sandbox/faults', { fault: { kind: 'latency', ms: 5_000 }, count: -1, method: 'POST' });
    const charge = await assistApi('POST', `/captures/${captureId}/charge`);
    expect(charge.status).toBe(202);
    // The attempt is journaled (fsync'd) before the first send; the PSP then holds the request.
    await until('the attempt journaled', () => existsSync(SPOOL) && readFileSync(SPOOL, 'utf8').includes(`"reference":"${REFERENCE}"`), 10_000);
    await sleep(1_000);
    await killServer();
    expect(readFileSync(join(dir, 'server-1.log'), 'utf8')).not.toContain('capture charge finished');

    // pay-ivr is gone; rtpengine still relays and still blocks the caller's keys toward Genesys.
    mark = call.genesysRtp.received.length;
    const callerMark = call.callerRtp.received.length;
    for (const d of '4242') await pressRfc(call.callerRtp, d as DtmfDigit);
    for (const d of '99') await call.callerRtp.sendTone(d as DtmfDigit, 120);
    await call.callerRtp.sendAudio(new Int16Array(1600));
    const afterKill = keysIn(call.genesysRtp.received.slice(mark));
    figures.keysLeakedAfterKill = afterKill.events + afterKill.inband.length;
    expect(afterKill.packets, 'media toward Genesys goes on after the kill').toBeGreaterThan(30);
    expect(call.callerRtp.received.length - callerMark, 'media toward the caller goes on after the kill').toBeGreaterThan(30);
    expect(afterKill).toMatchObject({ events: 0, inband: '' });

    // The charge completes at the PSP while pay-ivr is down; restart, reconciliation by lookup.
    await until('the charge on the books', async () => ((await sandbox('GET', '/_sandbox/charges')) as { reference: string }[]).some((c) => c.reference === REFERENCE), 15_000);
    await sandbox('DELETE', '/_sandbox/faults');
    await startServer();
    const byRef = async (): Promise<{ outcome: string; origin?: string; mode?: string; last4?: string }[]> =>
      ((await (await fetch(`http://${HOST}:${ADMIN_PORT}/v1/results?reference=${REFERENCE}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { results: { outcome: string; origin?: string; mode?: string; last4?: string }[] }).results;
    await until('reconciled', async () => (await byRef())[0]?.outcome === 'approved', 30_000);
    const books = ((await sandbox('GET', '/_sandbox/charges')) as { reference: string; status: string }[]).filter((c) => c.reference === REFERENCE && c.status === 'succeeded');
    const results = await byRef();
    figures.crash = { chargesOnBooks: books.length, approvedResults: results.filter((r) => r.outcome === 'approved').length };
    expect(books).toHaveLength(1);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ outcome: 'approved', origin: 'reconciled', mode: 'agent', last4: '4444' });
    const metrics = await (await fetch(`http://${HOST}:${ADMIN_PORT}/metrics`)).text();
    expect(metrics).toMatch(/^pay_ivr_journal_open_attempts 0$/m);
    const spool = readFileSync(SPOOL, 'utf8');
    expect(spool).toContain('"origin":"reconciled"');

    // Still after the restart: the block holds.
    mark = call.genesysRtp.received.length;
    for (const d of '55') await pressRfc(call.callerRtp, d as DtmfDigit);
    await call.callerRtp.sendAudio(new Int16Array(1600));
    const afterRestart = keysIn(call.genesysRtp.received.slice(mark));
    expect(afterRestart.packets).toBeGreaterThan(10);
    expect(afterRestart).toMatchObject({ events: 0, inband: '' });
  }, 180_000);

  it('the orphaned relayed call after the restart: the node does not know its dialogs (481 to in-dialog requests); the operator ends the rtpengine call (docs/edge.md)', async () => {
    const call = crashCall;
    const c = call.carrier;
    const from = carrierSip.received.length;
    carrierSip.send(carrierSip.inDialog(c, 'BYE', { cseq: 2 }));
    const res = (await carrierSip.waitFor((m) => m.kind === 'response' && headerValue(m, 'call-id') === c.callId && (headerValue(m, 'cseq') ?? '').endsWith('BYE'), 5_000, from)) as SipResponse;
    expect(res.status).toBe(481);
    // rtpengine still holds the call (media relayed, keys blocked) until it is deleted.
    const ng = new rtpengine.Client({ localAddress: HOST, timeout: 1_000 });
    ng.on('error', () => undefined);
    try {
      const q = await ng.query({ host: HOST, port: NG_PORT }, { 'call-id': c.callId });
      expect(q.result).toBe('ok');
      const del = await ng.delete({ host: HOST, port: NG_PORT }, { 'call-id': c.callId, 'delete-delay': 0 });
      expect(del.result).toBe('ok');
    } finally {
      ng.close();
    }
    call.callerRtp.close();
    call.genesysRtp.close();
  }, 30_000);

  it("rtpengine's control stops answering: new calls get 503 \"media relay unavailable\", /ready says the relay is down, the call in progress keeps its media both ways and ends with BYE once control is back", async () => {
    const call = await placeCall();
    expect((await ready()).body).toMatchObject({ ready: true, mediaRelay: 'up' });
    const r = relay as NgRelay;
    r.cut = true;
    const down = await until('the relay reported down', async () => {
      const x = await ready();
      return x.body.mediaRelay === 'down' ? x : undefined;
    }, 10_000);
    expect(down.status).toBe(503);
    expect(down.body.ready).toBe(false);

    // A new call is refused.
    const refusedRtp = await RtpPeer.open({ port: nextRtpPort });
    nextRtpPort += 2;
    peers.push(refusedRtp);
    const c2 = carrierSip.newCall();
    const genesysInvites = genesysSip.count((m) => m.kind === 'request' && m.method === 'INVITE');
    carrierSip.send(carrierSip.invite(c2, { sdp: offerSdp(refusedRtp.port, '0 101') }));
    const refused = await carrierSip.response(c2.callId, 503, 'INVITE', 8_000);
    expect(headerValue(refused, 'warning')).toMatch(/media relay unavailable/);
    expect(headerValue(refused, 'reason')).toMatch(/cause=503.*media relay unavailable/);
    c2.to = headerValue(refused, 'to');
    carrierSip.send(carrierSip.inDialog(c2, 'ACK', { cseq: 1, branch: c2.branch }));
    expect(genesysSip.count((m) => m.kind === 'request' && m.method === 'INVITE')).toBe(genesysInvites);

    // The call in progress keeps its media both ways while control is down.
    const g0 = call.genesysRtp.received.length;
    const c0 = call.callerRtp.received.length;
    await call.callerRtp.sendAudio(new Int16Array(8000));
    await until('media both ways during the outage', () => call.genesysRtp.received.length - g0 > 40 && call.callerRtp.received.length - c0 > 40, 10_000);
    figures.outage = { toGenesys: call.genesysRtp.received.length - g0, toCaller: call.callerRtp.received.length - c0, ngPacketsDropped: r.dropped };
    expect((await ready()).body.mediaRelay).toBe('down');

    // Control back: ready again; the call ends normally with BYE from the carrier.
    r.cut = false;
    await until('the relay reported up', async () => (await ready()).body.ready, 10_000);
    expect((await ready()).body).toMatchObject({ ready: true, mediaRelay: 'up' });
    const gFrom = genesysSip.received.length;
    carrierSip.send(carrierSip.inDialog(call.carrier, 'BYE', { cseq: 2 }));
    expect((await carrierSip.response(call.carrier.callId, 200, 'BYE', 5_000)).status).toBe(200);
    const bye = (await genesysSip.waitFor((m) => m.kind === 'request' && m.method === 'BYE', 5_000, gFrom)) as SipRequest;
    expect(headerValue(bye, 'call-id')).toBe(headerValue(call.genesysInvite, 'call-id'));
    // rtpengine's call is deleted: media stops reaching Genesys.
    await until('media stopped', async () => {
      const n = call.genesysRtp.received.length;
      await sleep(300);
      return call.genesysRtp.received.length === n;
    }, 10_000);
  }, 120_000);

  it('no card digits in what the run wrote: pay-ivr logs, the spool, the PSP log, rtpengine log, the SIP messages', async () => {
    if (process.env.EDGE_FAULT_FIGURES) console.log(JSON.stringify(figures));
    const sipText = (p: SipPeer): string => p.raw.map((b) => b.toString('latin1')).join('\n');
    writeFileSync(join(dir, 'sip-carrier.txt'), sipText(carrierSip));
    writeFileSync(join(dir, 'sip-genesys.txt'), sipText(genesysSip));
    await killServer();
    const texts = [...filesUnder([dir]), { where: 'rtpengine log', text: daemon?.log() ?? '' }];
    expect(texts.some((t) => t.where.includes('server-1.log') && t.text.length > 1000)).toBe(true);
    expect(texts.some((t) => t.where.includes('journal-spool') && t.text.length > 100)).toBe(true);
    expect((daemon?.log() ?? '').length).toBeGreaterThan(100);
    expect(cardDigitHits(texts, SECRETS)).toEqual([]);
  }, 30_000);
});
