import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { configSchema } from '../src/config/schema.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log.js';
import { EdgeBackend } from '../src/edge/edge-backend.js';
import type { RelayedCall } from '../src/edge/edge-call.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { FakeAnchor } from './support/fake-anchor.js';
import { SipPeer } from './support/sip-peer.js';
import { headerValue } from '../src/telephony/embedded/sip/message.js';
import { killAllSipp, runSipp, sippMessages, type SippRun } from './support/sipp.js';

/**
 * The edge B2BUA with real peers: SIPp as the carrier (UAC, sipp-scenarios/edge/carrier-*.xml)
 * and SIPp as Genesys BYOC (UAS, sipp-scenarios/edge/genesys-*.xml), the EdgeBackend between
 * them on the embedded SIP stack, and a fake MediaAnchor (rtpengine stand-in) relaying media
 * between local sockets. Ports 51100-51899 (T1 = 50 ms, so 64*T1 = 3.2 s).
 */

const EDGE_PORT = 51100;
const GENESYS_PORT = 51110;
const EDGE = `127.0.0.1:${EDGE_PORT}`;
const SERVICE = '+33140000001';
let nextLocal = 51120;
let nextMedia = 51200;

const anchor = new FakeAnchor(51500, 51899);
const config = configSchema.parse({
  sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: EDGE_PORT }] },
  security: { allowList: ['127.0.0.1/32'] },
  // rtpengine's settings are required by the schema; the fake anchor above stands in for it.
  edge: { enabled: true, genesys: { host: '127.0.0.1', port: GENESYS_PORT, transport: 'udp' }, rtpengine: { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 51998 } },
});
const logDir = mkdtempSync(join(tmpdir(), 'payivr-edge-'));
const logFile = join(logDir, 'edge.log');
const logger = createLogger({ level: 'trace', destination: logFile });
// Session-timer seconds last 10 ms here (a 90 s interval ends after 0.6 s without refresh).
const edge = new EdgeBackend(config, logger, { anchor, timers: { t1: 50, t2: 400, t4: 500 }, sessionTimerUnitMs: 10 });
// A second edge whose Genesys trunk is TCP (SIPp as Genesys on TCP 51111).
const tcpConfig = configSchema.parse({
  sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: 51101 }, { transport: 'tcp', host: '127.0.0.1', port: 51101 }] },
  security: { allowList: ['127.0.0.1/32'] },
  edge: { enabled: true, genesys: { host: '127.0.0.1', port: 51111, transport: 'tcp' }, rtpengine: { host: '127.0.0.1', dtmfLogAddress: '127.0.0.1', dtmfLogPort: 51997 } },
});
const tcpEdge = new EdgeBackend(tcpConfig, logger, { anchor, timers: { t1: 50, t2: 400, t4: 500 } });

/** A test card number keyed by the caller while the call is relayed: it must appear nowhere. */
const TEST_PAN = '4111111111111111';
const runs: SippRun[] = [];

function ok(run: SippRun, who: string): void {
  runs.push(run);
  if (run.code !== 0) throw new Error(`${who} sipp exited ${run.code}:\n${run.output}\n${run.messages.slice(-4000)}`);
}

async function until(cond: () => boolean, timeoutMs = 8000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** True once something (SIPp) holds the UDP port. */
async function bound(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  const free = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.bind(port, '127.0.0.1', () => r(true));
  });
  if (free) await new Promise<void>((r) => s.close(() => r()));
  return !free;
}

function genesys(scenario: string): Promise<SippRun> {
  return runSipp({ scenario: `../edge/${scenario}`, target: EDGE, localPort: GENESYS_PORT, mediaPort: 51190, timeoutS: 20 });
}

function carrier(scenario: string): Promise<SippRun> {
  const run = runSipp({ scenario: `../edge/${scenario}`, target: EDGE, localPort: nextLocal, mediaPort: nextMedia, service: SERVICE, timeoutS: 20 });
  nextLocal += 1;
  nextMedia += 4;
  return run;
}

/** True once something (SIPp) listens on the TCP port. */
async function tcpBound(port: number): Promise<boolean> {
  const srv = net.createServer();
  const free = await new Promise<boolean>((r) => {
    srv.once('error', () => r(false));
    srv.listen(port, '127.0.0.1', () => r(true));
  });
  if (free) await new Promise<void>((r) => srv.close(() => r()));
  return !free;
}

/** SIPp as Genesys, once it listens. */
async function genesysUp(scenario: string): Promise<{ run: Promise<SippRun> }> {
  const g = genesys(scenario);
  const t0 = Date.now();
  while (!(await bound(GENESYS_PORT))) {
    if (Date.now() - t0 > 5000) throw new Error('SIPp (Genesys side) did not start');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { run: g };
}

/** Genesys side first (up and listening), then the carrier side; the call the edge made for it. */
async function relay(carrierScenario: string, genesysScenario: string): Promise<{ carrier: Promise<SippRun>; genesys: Promise<SippRun>; call: Promise<RelayedCall> }> {
  const g = (await genesysUp(genesysScenario)).run;
  const b2bua = edge.b2bua;
  if (b2bua === undefined) throw new Error('edge not started');
  const call = new Promise<RelayedCall>((resolve) => {
    const seen = (x: RelayedCall): void => {
      b2bua.off('call', seen);
      resolve(watch(x));
    };
    b2bua.on('call', seen);
  });
  const c = carrier(carrierScenario);
  return { carrier: c, genesys: g, call };
}

function received(run: SippRun, pred: (text: string) => boolean): string[] {
  return sippMessages(run).filter((m) => m.dir === 'received' && pred(m.text)).map((m) => m.text);
}

function headerOf(text: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(text);
  return m?.[1]?.trim();
}

const ended = new Map<RelayedCall, { by: string; reason: string }>();
function watch(call: RelayedCall): RelayedCall {
  call.on('ended', (info) => ended.set(call, info));
  return call;
}

describe('edge B2BUA (SIPp carrier -> edge -> SIPp Genesys)', () => {
  beforeAll(async () => {
    await edge.start();
    await tcpEdge.start();
  });
  afterEach(() => {
    anchor.failOffers = false;
  });
  afterAll(async () => {
    killAllSipp();
    await edge.stop();
    await tcpEdge.stop();
    await anchor.close();
    logger.flush();
    rmSync(logDir, { recursive: true, force: true });
  });

  let firstSession = '';

  it('sets the call up: INVITE to Genesys with the passed headers and a fresh session id, 180 and 200 relayed, rtpengine ids, caller BYE relayed', async () => {
    const r = await relay('carrier-call.xml', 'genesys-answer.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    firstSession = call.sessionId;

    const invite = received(g, (t) => t.startsWith('INVITE '))[0] as string;
    expect(invite.split('\n')[0]?.trim()).toBe(`INVITE sip:${SERVICE}@127.0.0.1:${GENESYS_PORT} SIP/2.0`);
    expect(headerOf(invite, 'User-to-User')).toBe('00c0ffee;encoding=hex');
    expect(headerOf(invite, 'X-Not-Passed')).toBeUndefined();
    // The caller's forged session header is dropped; the edge's own id is there, once.
    expect(invite.match(/^X-PayIvr-Edge-Session:/gim)).toHaveLength(1);
    expect(headerOf(invite, 'X-PayIvr-Edge-Session')).toBe(call.sessionId);
    expect(call.sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(headerOf(invite, 'Max-Forwards')).toBe('69');
    expect(headerOf(invite, 'From')).toMatch(/^"Carrier Caller" <sip:\+33140000009@127\.0\.0\.1>;tag=\w+$/);
    expect(headerOf(invite, 'To')).toBe(`"Pay Line" <sip:${SERVICE}@127.0.0.1>`);
    const carrierInvite = sippMessages(c).find((m) => m.dir === 'sent' && m.text.startsWith('INVITE '))?.text ?? '';
    expect(headerOf(invite, 'Call-ID')).not.toBe(headerOf(carrierInvite, 'Call-ID'));
    // Media goes through the anchor both ways.
    expect(invite).toMatch(/^m=audio 51[5-8]\d\d /m);
    const ok200 = received(c, (t) => t.startsWith('SIP/2.0 200') && /INVITE/.test(headerOf(t, 'CSeq') ?? ''))[0] as string;
    expect(ok200).toMatch(/^m=audio 51[5-8]\d\d /m);
    expect(received(c, (t) => t.startsWith('SIP/2.0 180'))).toHaveLength(1);
    // Genesys's UUI comes back, its internal header does not.
    expect(headerOf(ok200, 'User-to-User')).toBe('00beef;encoding=hex');
    expect(headerOf(ok200, 'X-Genesys-Internal')).toBeUndefined();
    expect(call.conversationId).toBe('5d7a6c1e-0b1f-4a39-9d0e-2f6a1c3b4d5e');

    // rtpengine: one call-id (the caller's), the caller's From tag, our To tag toward the caller.
    const callerTag = /tag=([^;\s]+)/.exec(headerOf(carrierInvite, 'From') ?? '')?.[1];
    const ourTag = /tag=([^;\s]+)/.exec(headerOf(ok200, 'To') ?? '')?.[1];
    expect(call.anchor).toEqual({ callId: headerOf(carrierInvite, 'Call-ID'), fromTag: callerTag, toTag: ourTag });
    const ops = anchor.ops.filter((o) => o.callId === call.anchor.callId);
    expect(ops.map((o) => o.op)).toEqual(['offer', 'answer', 'delete']);
    expect(ops[0]).toMatchObject({ fromTag: callerTag, toTag: undefined });
    expect(ops[1]).toMatchObject({ fromTag: callerTag, toTag: ourTag });

    // Genesys got the BYE.
    expect(received(g, (t) => t.startsWith('BYE '))).toHaveLength(1);
    await until(() => ended.has(call));
    expect(ended.get(call)).toEqual({ by: 'caller', reason: 'BYE' });
    expect(edge.captureHost?.find(call.sessionId)).toBe('ended');
    expect(edge.captureHost?.find('no-such-session')).toBeUndefined();
  });

  it('BYE from Genesys is relayed to the caller; each call has its own session id', async () => {
    const r = await relay('carrier-wait-bye.xml', 'genesys-bye.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    await until(() => ended.has(call));
    expect(ended.get(call)).toEqual({ by: 'genesys', reason: 'BYE' });
    expect(call.sessionId).not.toBe(firstSession);
    expect(anchor.ops.filter((o) => o.callId === call.anchor.callId).at(-1)?.op).toBe('delete');
  });

  it('CANCEL from the caller before the answer cancels the Genesys leg (487 both sides)', async () => {
    const r = await relay('carrier-cancel.xml', 'genesys-ring.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    await until(() => ended.has(call));
    expect(ended.get(call)).toEqual({ by: 'caller', reason: 'CANCEL' });
    expect(received(g, (t) => t.startsWith('CANCEL '))).toHaveLength(1);
    expect(anchor.ops.filter((o) => o.callId === call.anchor.callId).at(-1)?.op).toBe('delete');
  });

  it('a Genesys 486 reaches the caller as 486 (without Genesys-only headers), the rtpengine call deleted', async () => {
    const r = await relay('carrier-refused-486.xml', 'genesys-busy.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    const busy = received(c, (t) => t.startsWith('SIP/2.0 486'))[0] as string;
    expect(headerOf(busy, 'X-Genesys-Internal')).toBeUndefined();
    await until(() => ended.has(call));
    expect(ended.get(call)).toEqual({ by: 'genesys', reason: 'rejected-486' });
    expect(anchor.ops.filter((o) => o.callId === call.anchor.callId).map((o) => o.op)).toEqual(['offer', 'delete']);
  });

  it("the caller's re-INVITE goes through rtpengine (offer/answer) to Genesys and back", async () => {
    const r = await relay('carrier-reinvite.xml', 'genesys-reinvite.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    const invites = received(g, (t) => t.startsWith('INVITE '));
    expect(invites).toHaveLength(2);
    expect(invites[1]).toMatch(/^a=sendonly/m);
    expect(invites[1]).toMatch(/^m=audio 51[5-8]\d\d /m);
    const reply = received(c, (t) => t.startsWith('SIP/2.0 200') && (headerOf(t, 'CSeq') ?? '') === '2 INVITE')[0] as string;
    expect(reply).toMatch(/^a=recvonly/m);
    const ops = anchor.ops.filter((o) => o.callId === call.anchor.callId);
    expect(ops.map((o) => o.op)).toEqual(['offer', 'answer', 'offer', 'answer', 'delete']);
    expect(ops[2]).toMatchObject({ fromTag: call.anchor.fromTag, toTag: call.anchor.toTag });
    // Genesys ACKed twice (INVITE and re-INVITE), both ACKs from the edge.
    expect(received(g, (t) => t.startsWith('ACK '))).toHaveLength(2);
  });

  it('early media: a 183 with SDP reaches the caller with the anchor\'s SDP (rtpengine answer at the 183 and again at the 200)', async () => {
    const r = await relay('carrier-call.xml', 'genesys-early.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    const early = received(c, (t) => t.startsWith('SIP/2.0 183'));
    expect(early).toHaveLength(1);
    expect(early[0]).toMatch(/^m=audio 51[5-8]\d\d /m);
    expect(headerOf(early[0] as string, 'Contact')).toMatch(/^<sip:pay-ivr@127\.0\.0\.1:51100>$/);
    expect(anchor.ops.filter((o) => o.callId === call.anchor.callId).map((o) => o.op)).toEqual(['offer', 'answer', 'answer', 'delete']);
  });

  it("the caller's UPDATE with SDP is relayed as an UPDATE through rtpengine", async () => {
    const r = await relay('carrier-update.xml', 'genesys-update.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    const update = received(g, (t) => t.startsWith('UPDATE '));
    expect(update).toHaveLength(1);
    expect(update[0]).toMatch(/^a=inactive/m);
    const reply = received(c, (t) => t.startsWith('SIP/2.0 200') && (headerOf(t, 'CSeq') ?? '') === '2 UPDATE')[0] as string;
    expect(reply).toMatch(/^m=audio 51[5-8]\d\d /m);
    expect(anchor.ops.filter((o) => o.callId === call.anchor.callId).map((o) => o.op)).toEqual(['offer', 'answer', 'offer', 'answer', 'delete']);
  });

  it("Genesys's re-INVITE goes through rtpengine the other way (offer from our tag) to the caller and back", async () => {
    const r = await relay('carrier-answer-reinvite.xml', 'genesys-reinvite-out.xml');
    const call = await r.call;
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    const toCaller = received(c, (t) => t.startsWith('INVITE '));
    expect(toCaller).toHaveLength(1);
    expect(toCaller[0]).toMatch(/^a=sendonly/m);
    expect(toCaller[0]).toMatch(/^m=audio 51[5-8]\d\d /m);
    const reply = received(g, (t) => t.startsWith('SIP/2.0 200') && (headerOf(t, 'CSeq') ?? '') === '1 INVITE')[0] as string;
    expect(reply).toMatch(/^a=recvonly/m);
    expect(reply).toMatch(/^m=audio 51[5-8]\d\d /m);
    const ops = anchor.ops.filter((o) => o.callId === call.anchor.callId);
    expect(ops.map((o) => o.op)).toEqual(['offer', 'answer', 'offer', 'answer', 'delete']);
    expect(ops[2]).toMatchObject({ fromTag: call.anchor.toTag, toTag: call.anchor.fromTag });
    expect(ops[3]).toMatchObject({ fromTag: call.anchor.toTag, toTag: call.anchor.fromTag });
    await until(() => ended.has(call));
    expect(ended.get(call)).toEqual({ by: 'genesys', reason: 'BYE' });
  });

  it('toward a TCP Genesys trunk: INVITE, ACK and BYE on one connection, no retransmissions', async () => {
    const g = runSipp({ scenario: '../edge/genesys-answer.xml', target: '127.0.0.1:51101', localPort: 51111, mediaPort: 51194, transport: 'tcp', timeoutS: 20 });
    // Until SIPp listens (it can take a few seconds on a loaded machine), or says why it exited.
    let exited: SippRun | undefined;
    void g.then((r) => (exited = r));
    const t0 = Date.now();
    while (!(await tcpBound(51111))) {
      if (exited !== undefined) throw new Error(`SIPp (Genesys side, TCP) exited before listening: ${exited.output}`);
      if (Date.now() - t0 > 15_000) throw new Error('SIPp (Genesys side, TCP) did not listen on 51111 within 15 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const c = await runSipp({ scenario: '../edge/carrier-call.xml', target: '127.0.0.1:51101', localPort: 51134, mediaPort: 51260, service: SERVICE, timeoutS: 20 });
    ok(c, 'carrier');
    const run = await g;
    ok(run, 'genesys');
    const invites = received(run, (t) => t.startsWith('INVITE '));
    expect(invites).toHaveLength(1);
    expect(invites[0]?.split('\n')[0]?.trim()).toBe(`INVITE sip:${SERVICE}@127.0.0.1:51111;transport=tcp SIP/2.0`);
    expect(headerOf(invites[0] as string, 'Via')).toMatch(/^SIP\/2\.0\/TCP 127\.0\.0\.1:51101;/);
    expect(received(run, (t) => t.startsWith('ACK '))).toHaveLength(1);
    expect(received(run, (t) => t.startsWith('BYE '))).toHaveLength(1);
  });

  it('rtpengine unreachable: new calls get 503 (media relay unavailable) and no INVITE reaches Genesys; the call in progress keeps its media', async () => {
    const r = await relay('carrier-wait-bye.xml', 'genesys-answer.xml');
    const up = await r.call;
    await until(() => up.state === 'connected');
    anchor.failOffers = true;
    const refused = await carrier('carrier-refused-503.xml');
    ok(refused, 'carrier (refused)');
    const res = received(refused, (t) => t.startsWith('SIP/2.0 503'))[0] as string;
    expect(headerOf(res, 'Warning')).toMatch(/media relay unavailable/);
    expect(headerOf(res, 'Reason')).toMatch(/cause=503/);
    // Only the first call's INVITE reached Genesys; the first call is untouched.
    await up.hangup('test over');
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    expect(received(g, (t) => t.startsWith('INVITE '))).toHaveLength(1);
    expect(anchor.ops.filter((o) => o.callId === up.anchor.callId).map((o) => o.op)).toEqual(['offer', 'answer', 'delete']);
  });

  it('Timer B: Genesys never answers, the caller gets 408', async () => {
    // Something holds the Genesys port and stays silent.
    const silent = dgram.createSocket('udp4');
    let invites = 0;
    silent.on('message', (m) => (invites += m.toString().startsWith('INVITE ') ? 1 : 0));
    await new Promise<void>((r) => silent.bind(GENESYS_PORT, '127.0.0.1', () => r()));
    try {
      const run = await carrier('carrier-refused-408.xml');
      ok(run, 'carrier');
      expect(invites).toBeGreaterThan(1); // Timer A retransmissions over UDP
    } finally {
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it("the caller's session timer expiring (no refresh from the caller) ends the Genesys leg too", async () => {
    const g = (await genesysUp('genesys-answer.xml')).run;
    const b2bua = edge.b2bua;
    if (b2bua === undefined) throw new Error('edge not started');
    const seen = new Promise<RelayedCall>((r) => b2bua.once('call', (x) => r(watch(x))));
    const peer = await SipPeer.open('udp', EDGE_PORT, 51135);
    try {
      const c = peer.newCall();
      peer.send(peer.invite(c, { extra: ['Supported: timer', 'Session-Expires: 90;refresher=uac'] }));
      const ok200 = await peer.response(c.callId, 200, 'INVITE');
      expect(headerValue(ok200, 'session-expires')).toBe('90;refresher=uac');
      c.to = headerValue(ok200, 'to') ?? '';
      peer.send(peer.inDialog(c, 'ACK'));
      const call = await seen;
      await peer.request('BYE', c.callId);
      await until(() => ended.has(call));
      expect(ended.get(call)).toEqual({ by: 'caller', reason: 'session-expired' });
      await until(() => anchor.ops.some((o) => o.op === 'delete' && o.callId === call.anchor.callId));
    } finally {
      await peer.close();
    }
    ok(await g, 'genesys');
  });

  it("an offerless re-INVITE from the caller is answered on the caller's leg with the SDP it has (not relayed)", async () => {
    const g = (await genesysUp('genesys-answer.xml')).run;
    const peer = await SipPeer.open('udp', EDGE_PORT, 51132);
    try {
      const c = peer.newCall();
      peer.send(peer.invite(c));
      const ok200 = await peer.response(c.callId, 200, 'INVITE');
      c.to = headerValue(ok200, 'to') ?? '';
      peer.send(peer.inDialog(c, 'ACK'));
      peer.send(peer.inDialog(c, 'INVITE', { cseq: 2 }));
      const refresh = await peer.response(c.callId, 200, '2 INVITE');
      expect(refresh.body.toString()).toBe(ok200.body.toString());
      peer.send(peer.inDialog(c, 'ACK', { cseq: 2, body: refresh.body.toString() }));
      peer.send(peer.inDialog(c, 'BYE', { cseq: 3 }));
      await peer.response(c.callId, 200, '3 BYE');
    } finally {
      await peer.close();
    }
    const run = await g;
    ok(run, 'genesys');
    expect(received(run, (t) => t.startsWith('INVITE '))).toHaveLength(1);
  });

  it('hangup while rtpengine is still making the call: 480 to the caller, no INVITE to Genesys, and the rtpengine call deleted once made', async () => {
    let release!: () => void;
    anchor.offerGate = new Promise<void>((r) => (release = r));
    const silent = dgram.createSocket('udp4');
    let invites = 0;
    silent.on('message', () => (invites += 1));
    await new Promise<void>((r) => silent.bind(GENESYS_PORT, '127.0.0.1', () => r()));
    const peer = await SipPeer.open('udp', EDGE_PORT, 51133);
    try {
      const b2bua = edge.b2bua;
      if (b2bua === undefined) throw new Error('edge not started');
      const seen = new Promise<RelayedCall>((r) => b2bua.once('call', (x) => r(watch(x))));
      const c = peer.newCall();
      peer.send(peer.invite(c));
      const call = await seen;
      await until(() => anchor.ops.some((o) => o.op === 'offer' && o.callId === call.anchor.callId));
      await call.hangup('agent gave up');
      await peer.response(c.callId, 480);
      release();
      await until(() => anchor.ops.some((o) => o.op === 'delete' && o.callId === call.anchor.callId));
      expect(ended.get(call)).toEqual({ by: 'local', reason: 'agent gave up' });
      expect(invites).toBe(0);
    } finally {
      anchor.offerGate = undefined;
      release();
      await peer.close();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('an INVITE without an SDP offer gets 488, one with Max-Forwards 0 gets 483; neither reaches Genesys or rtpengine', async () => {
    const peer = await SipPeer.open('udp', EDGE_PORT, 51131);
    const opsBefore = anchor.ops.length;
    try {
      const late = peer.newCall();
      peer.send(peer.invite(late, { sdp: '' }));
      const r488 = await peer.response(late.callId, 488);
      expect(headerOf(`Warning: ${r488.headers.find((h) => h.name === 'warning')?.value ?? ''}`, 'Warning')).toMatch(/SDP offer/);
      const looped = peer.newCall();
      peer.send(peer.invite(looped).replace('Max-Forwards: 70', 'Max-Forwards: 0'));
      await peer.response(looped.callId, 483);
    } finally {
      await peer.close();
    }
    expect(anchor.ops.length).toBe(opsBefore);
  });

  it('the EdgeCall: a third address cannot send in the dialog (403), keys and prompts use the caller tag, hangup ends both legs', async () => {
    const r = await relay('carrier-wait-bye.xml', 'genesys-answer.xml');
    const call = await r.call;
    await until(() => call.state === 'connected');
    expect(edge.captureHost?.find(call.sessionId)).toBe(call);

    const third = await SipPeer.open('udp', EDGE_PORT, 51130, '127.0.0.2');
    try {
      third.send(
        [
          `BYE sip:pay-ivr@${EDGE} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.2:${third.port};branch=z9hG4bKthirdparty1;rport`,
          'Max-Forwards: 70',
          `From: <sip:x@127.0.0.1>;tag=${call.anchor.fromTag}`,
          `To: <sip:y@127.0.0.1>;tag=${call.anchor.toTag ?? ''}`,
          `Call-ID: ${call.anchor.callId}`,
          'CSeq: 99 BYE',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      );
      const res = await third.waitFor((m) => m.kind === 'response');
      expect(res.kind === 'response' && res.status).toBe(403);
    } finally {
      await third.close();
    }
    expect(call.state).toBe('connected');

    await call.blockCallerKeys('silence');
    await call.unblockCallerKeys();
    await call.playToCaller('prompts/en-US/enter-card-number.wav');
    const digits: DtmfDigit[] = [];
    call.on('digit', (d) => digits.push(d));
    anchor.report({ callId: call.anchor.callId, sourceTag: call.anchor.fromTag, digit: '5' });
    anchor.report({ callId: call.anchor.callId, sourceTag: call.anchor.toTag ?? '', digit: '7' }); // Genesys's side: not the caller's key
    anchor.report({ callId: 'another-call', sourceTag: call.anchor.fromTag, digit: '9' });
    expect(digits).toEqual(['5']);
    for (const d of TEST_PAN) anchor.report({ callId: call.anchor.callId, sourceTag: call.anchor.fromTag, digit: d as DtmfDigit });
    expect(digits.join('')).toBe(`5${TEST_PAN}`);
    const ops = anchor.ops.filter((o) => o.callId === call.anchor.callId && ['block', 'unblock', 'play'].includes(o.op));
    expect(ops).toEqual([
      { op: 'block', callId: call.anchor.callId, fromTag: call.anchor.fromTag, detail: 'silence' },
      { op: 'unblock', callId: call.anchor.callId, fromTag: call.anchor.fromTag },
      { op: 'play', callId: call.anchor.callId, toTag: call.anchor.fromTag, detail: 'prompts/en-US/enter-card-number.wav' },
    ]);

    await call.hangup('agent finished');
    await call.hangup('again'); // idempotent
    const [c, g] = await Promise.all([r.carrier, r.genesys]);
    ok(c, 'carrier');
    ok(g, 'genesys');
    expect(ended.get(call)).toEqual({ by: 'local', reason: 'agent finished' });
    expect(edge.captureHost?.find(call.sessionId)).toBe('ended');
    expect(anchor.liveCalls).toBe(0);
  });

  it('PCI: the card number keyed during a relayed call is in no log line and no SIP message of the run', async () => {
    await new Promise<void>((r) => logger.flush(() => r()));
    const log = readFileSync(logFile, 'utf8');
    expect(log).toMatch(/edge: call from the carrier side/); // the log was written (trace level)
    expect(log).not.toContain(TEST_PAN);
    expect(log.replace(/[^0-9]/g, '')).not.toContain(TEST_PAN);
    expect(runs.length).toBeGreaterThan(5);
    for (const run of runs) expect(`${run.messages}${run.logs}${run.output}`).not.toContain(TEST_PAN);
  });
});
