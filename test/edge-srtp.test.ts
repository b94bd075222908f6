/**
 * The edge B2BUA's media profile per leg, with the real rtpengine (Debian rtpengine-daemon 10.5)
 * and the edge on the embedded SIP stack (EdgeBackend + the real anchor, openRtpengineAnchor).
 * Toward Genesys: `edge.genesys.srtp` (RTP/SAVP with SDES made by rtpengine, allowed suites only;
 * a plain answer is refused). Toward the caller: the caller's own profile under `rtp.srtp`.
 * Genesys over TLS. SipPeer plays both SIP ends; RtpPeer (the project's SRTP) both media ends.
 * Ports 53800-53999: ng 53800, DTMF events 53801, CLI 53805, edges 53810-53819, Genesys
 * 53820-53829, callers 53830-53859, media peers 53860-53899, rtpengine media 53900-53999.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rtpengine from 'rtpengine-client';
import { SRTP_SUITES, type SrtpSuite } from '../src/config/media-options.js';
import { configSchema, type Config } from '../src/config/schema.js';
import { EdgeBackend } from '../src/edge/edge-backend.js';
import type { RelayedCall } from '../src/edge/edge-call.js';
import { openRtpengineAnchor, type RtpengineAnchor } from '../src/edge/rtpengine-anchor.js';
import { createLogger } from '../src/log.js';
import { encode } from '../src/telephony/embedded/media/g711.js';
import { headerValue, type SipMessage, type SipRequest, type SipResponse } from '../src/telephony/embedded/sip/message.js';
import { selfSignedCert } from './support/certs.js';
import { RtpPeer } from './support/rtp-peer.js';
import { RtpengineDaemon } from './support/rtpengine.js';
import { SipPeer, offerSdp, type PeerCall } from './support/sip-peer.js';

const HOST = '127.0.0.1';
const NG_PORT = 53800;
const DTMF_PORT = 53801;
let nextCallerPort = 53830;
let nextMediaPort = 53860;

let daemon: RtpengineDaemon;
let anchor: RtpengineAnchor;
const dir = mkdtempSync(join(tmpdir(), 'payivr-edge-srtp-'));
const logger = createLogger({ level: 'debug', destination: join(dir, 'edge.log') });
const edges: EdgeBackend[] = [];
const peers: SipPeer[] = [];
const media: RtpPeer[] = [];
let tlsServer: tls.Server | undefined;

function edgeConfig(o: { port: number; genesysPort: number; genesysSrtp: 'off' | 'required'; rtpSrtp: 'off' | 'optional' | 'required'; tls?: { certFile: string; keyFile: string } }): Config {
  return configSchema.parse({
    sip: {
      listen: [{ transport: 'udp', host: HOST, port: o.port }, ...(o.tls === undefined ? [] : [{ transport: 'tls', host: HOST, port: o.port + 1 }])],
      ...(o.tls === undefined ? {} : { tls: { ...o.tls, caFile: o.tls.certFile } }),
    },
    security: { allowList: ['127.0.0.1/32'] },
    rtp: { srtp: o.rtpSrtp },
    edge: {
      enabled: true,
      genesys: { host: HOST, port: o.genesysPort, transport: o.tls === undefined ? 'udp' : 'tls', srtp: o.genesysSrtp },
      rtpengine: { host: HOST, port: NG_PORT, dtmfLogAddress: HOST, dtmfLogPort: DTMF_PORT, timeoutMs: 1000 },
    },
  });
}

async function startEdge(config: Config): Promise<EdgeBackend> {
  const e = new EdgeBackend(config, logger, { anchor, timers: { t1: 50, t2: 400, t4: 500 } });
  edges.push(e);
  await e.start();
  return e;
}

function mediaPort(sdp: string): number {
  const m = /^m=audio (\d+) /m.exec(sdp);
  if (m === null) throw new Error('no m=audio line');
  return Number(m[1]);
}

interface Crypto {
  tag: string;
  suite: SrtpSuite;
  key: Buffer;
}

/** Every a=crypto line of an SDP. */
function cryptos(sdp: string): Crypto[] {
  return [...sdp.matchAll(/^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)/gm)].map((m) => ({ tag: m[1] ?? '', suite: (m[2] ?? '') as SrtpSuite, key: Buffer.from(m[3] ?? '', 'base64') }));
}

function srtpSdp(port: number, c: { tag: string; suite: SrtpSuite; key: Buffer }): string {
  return offerSdp(port, '0 101').replace('RTP/AVP', 'RTP/SAVP').replace('a=sendrecv', `a=crypto:${c.tag} ${c.suite} inline:${c.key.toString('base64')}\r\na=sendrecv`);
}

async function rtpPeer(ssrc: number): Promise<RtpPeer> {
  const p = await RtpPeer.open({ port: nextMediaPort, ssrc });
  nextMediaPort += 2;
  media.push(p);
  return p;
}

async function callerPeer(edgePort: number): Promise<SipPeer> {
  const p = await SipPeer.open('udp', edgePort, nextCallerPort++);
  peers.push(p);
  return p;
}

/** Genesys answers an INVITE the edge sent it: 200 with this SDP. */
function answer(g: SipPeer, inv: SipRequest, sdp: string): void {
  g.respond(inv, 200, [`Contact: <sip:genesys@${HOST}:${g.port}${g.transport === 'udp' ? '' : `;transport=${g.transport}`}>`, 'Content-Type: application/sdp'], sdp);
}

/** The caller's ACK for a 2xx. */
function ack(caller: SipPeer, c: PeerCall, ok: SipResponse): void {
  c.to = headerValue(ok, 'to');
  caller.send(caller.inDialog(c, 'ACK', { cseq: c.cseq }));
}

/** A re-INVITE from Genesys in the dialog of the edge's INVITE `inv` (our tag is in `to`, the edge's To of its ACK). */
function genesysReinvite(g: SipPeer, inv: SipRequest, to: string, sdp: string): string {
  const contact = (headerValue(inv, 'contact') ?? '').replace(/^.*<([^>]+)>.*$/, '$1');
  return [
    `INVITE ${contact} SIP/2.0`,
    g.via(`z9hG4bK${randomBytes(6).toString('hex')}`),
    'Max-Forwards: 70',
    `From: ${to}`,
    `To: ${headerValue(inv, 'from') ?? ''}`,
    `Call-ID: ${headerValue(inv, 'call-id') ?? ''}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:genesys@${HOST}:${g.port}>`,
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ].join('\r\n');
}

/** The ACK for a non-2xx final response to Genesys's re-INVITE (same branch, the response's To). */
function genesysAck(inv: SipRequest, res: SipMessage): string {
  return [
    `ACK ${(headerValue(inv, 'contact') ?? '').replace(/^.*<([^>]+)>.*$/, '$1')} SIP/2.0`,
    `Via: ${headerValue(res, 'via') ?? ''}`,
    'Max-Forwards: 70',
    `From: ${headerValue(res, 'from') ?? ''}`,
    `To: ${headerValue(res, 'to') ?? ''}`,
    `Call-ID: ${headerValue(res, 'call-id') ?? ''}`,
    'CSeq: 1 ACK',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** The rtpengine call, as rtpengine itself answers `query` (undefined once it is gone). */
async function rtpengineCall(callId: string): Promise<unknown> {
  const client = new rtpengine.Client({ localAddress: HOST, timeout: 500 });
  client.on('error', () => undefined);
  try {
    const r = await client.query({ host: HOST, port: NG_PORT }, { 'call-id': callId });
    return r.result === 'ok' ? r : undefined;
  } finally {
    client.close();
  }
}

async function until(cond: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const TONE = new Int16Array(800).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 8000)));

/** Audio both ways: each side finds the other's payload bytes in what it got (SRTP ends decrypt, and drop what fails authentication). */
async function audioBothWays(a: RtpPeer, b: RtpPeer): Promise<void> {
  const bytes = encode('PCMU', TONE);
  const [fromA, fromB] = [a.received.length, b.received.length];
  a.start();
  b.start();
  await Promise.all([a.sendAudio(TONE), b.sendAudio(TONE)]);
  await until(() => a.audio(fromA).indexOf(bytes) >= 0 && b.audio(fromB).indexOf(bytes) >= 0, () => `the tone on both sides (got ${a.received.length - fromA} and ${b.received.length - fromB} packets, tone found ${a.audio(fromA).indexOf(bytes) >= 0}/${b.audio(fromB).indexOf(bytes) >= 0})`);
  // Silence stops too: sent on after the call, it would reach whichever later call gets the
  // same rtpengine ports (rtpengine 10.5 relays it despite strict source, edge-rtpengine.test.ts).
  a.stop();
  b.stop();
}

function firstCall(edge: EdgeBackend): Promise<RelayedCall> {
  const b = edge.b2bua;
  if (b === undefined) throw new Error('edge not started');
  return new Promise((resolve) => b.once('call', resolve));
}

beforeAll(async () => {
  daemon = await RtpengineDaemon.start({ ngPort: NG_PORT, dtmfLogPort: DTMF_PORT, portMin: 53900, portMax: 53999 });
  anchor = await openRtpengineAnchor(edgeConfig({ port: 53810, genesysPort: 53820, genesysSrtp: 'off', rtpSrtp: 'optional' }), logger);
});

afterAll(async () => {
  for (const e of edges) await e.stop();
  for (const p of peers) await p.close();
  for (const m of media) m.close();
  await new Promise<void>((r) => (tlsServer === undefined ? r() : tlsServer.close(() => r())));
  await anchor?.close();
  await daemon?.dispose();
  logger.flush();
  if (process.env.KEEP_EDGE_SRTP === undefined) rmSync(dir, { recursive: true, force: true });
});

describe('edge media profiles with rtpengine', () => {
  it('(a) plain RTP caller, SRTP required toward Genesys: RTP/SAVP + SDES in the INVITE, audio both ways decrypted, a re-INVITE keeps each profile', async () => {
    const edge = await startEdge(edgeConfig({ port: 53810, genesysPort: 53820, genesysSrtp: 'required', rtpSrtp: 'optional' }));
    const genesys = await SipPeer.open('udp', 53810, 53820);
    peers.push(genesys);
    const caller = await callerPeer(53810);
    const callerMedia = await rtpPeer(0x1111);
    const genesysMedia = await rtpPeer(0x2222);
    const c = caller.newCall();
    const callP = firstCall(edge);
    caller.send(caller.invite(c, { sdp: offerSdp(callerMedia.port, '0 101') }));

    const inv = await genesys.request('INVITE');
    const sdp = inv.body.toString('utf8');
    expect(sdp).toMatch(/^m=audio \d+ RTP\/SAVP /m);
    const offered = cryptos(sdp);
    expect(offered.length).toBeGreaterThan(0);
    // Only the suites the product allows (rtpengine offers twelve by default).
    expect(offered.map((x) => x.suite)).toEqual([...SRTP_SUITES]);
    const theirs = offered[0] as Crypto;
    const ourKey = randomBytes(30);
    answer(genesys, inv, srtpSdp(genesysMedia.port, { tag: theirs.tag, suite: theirs.suite, key: ourKey }));

    const ok = await caller.response(c.callId, 200, 'INVITE');
    ack(caller, c, ok);
    const toCaller = ok.body.toString('utf8');
    expect(toCaller).toMatch(/^m=audio \d+ RTP\/AVP /m);
    expect(toCaller).not.toMatch(/a=crypto/);
    const call = await callP;
    await until(() => call.state === 'connected', 'the call connected');

    genesysMedia.setSrtp({ suite: theirs.suite, txKey: ourKey, rxKey: theirs.key });
    callerMedia.setTarget(HOST, mediaPort(toCaller));
    genesysMedia.setTarget(HOST, mediaPort(sdp));
    await audioBothWays(callerMedia, genesysMedia);

    // A caller re-INVITE (plain) reaches Genesys as RTP/SAVP with SDES; the caller's answer stays plain.
    const from = genesys.received.length;
    c.cseq += 1;
    caller.send(caller.inDialog(c, 'INVITE', { body: offerSdp(callerMedia.port, '0 101') }));
    const reinv = await genesys.request('INVITE', undefined, 5000, from);
    const reSdp = reinv.body.toString('utf8');
    expect(reSdp).toMatch(/^m=audio \d+ RTP\/SAVP /m);
    const reCrypto = cryptos(reSdp)[0] as Crypto;
    expect(reCrypto).toBeDefined();
    genesys.respond(reinv, 200, ['Content-Type: application/sdp'], srtpSdp(genesysMedia.port, { tag: reCrypto.tag, suite: reCrypto.suite, key: ourKey }));
    const reOk = await caller.waitFor((m) => m.kind === 'response' && m.status === 200 && (headerValue(m, 'cseq') ?? '') === `${c.cseq} INVITE`);
    caller.send(caller.inDialog(c, 'ACK', { cseq: c.cseq }));
    expect(reOk.body.toString('utf8')).toMatch(/^m=audio \d+ RTP\/AVP /m);
    expect(reOk.body.toString('utf8')).not.toMatch(/a=crypto/);
    genesysMedia.setSrtp({ suite: reCrypto.suite, txKey: ourKey, rxKey: reCrypto.key });
    await audioBothWays(callerMedia, genesysMedia);

    // Genesys re-offers plain RTP: 488 with the reason, nothing reaches the caller, the call stays.
    const edgeAck = await genesys.request('ACK', headerValue(inv, 'call-id'));
    const callerFrom = caller.received.length;
    genesys.send(genesysReinvite(genesys, inv, headerValue(edgeAck, 'to') ?? '', offerSdp(genesysMedia.port, '0 101')));
    const refused = await genesys.waitFor((m) => m.kind === 'response' && m.status >= 200 && (headerValue(m, 'cseq') ?? '') === '1 INVITE');
    expect(refused.kind === 'response' ? refused.status : 0).toBe(488);
    expect(headerValue(refused, 'warning')).toMatch(/^302 pay-ivr-edge ".*not SRTP/);
    genesys.send(genesysAck(inv, refused));
    expect(caller.received.slice(callerFrom).filter((m) => m.kind === 'request' && m.method === 'INVITE')).toHaveLength(0);
    expect(call.state).toBe('connected');
    await audioBothWays(callerMedia, genesysMedia);
    // Our ACK stopped the 488 retransmissions (T1 is 50 ms here: without the ACK, two or more came during the audio).
    expect(genesys.count((m) => m.kind === 'response' && m.status === 488)).toBe(1);

    await call.hangup('test done');
    await until(async () => (await rtpengineCall(c.callId)) === undefined, 'the rtpengine call deleted');
  });

  it('(c) SRTP required toward Genesys and Genesys answers plain RTP: 502 to the caller with the reason, Genesys gets a BYE, the rtpengine call is gone', async () => {
    const genesys = peers[0] as SipPeer;
    const caller = await callerPeer(53810);
    const c = caller.newCall();
    const from = genesys.received.length;
    caller.send(caller.invite(c, { sdp: offerSdp(40000, '0 101') }));
    const inv = await genesys.request('INVITE', undefined, 5000, from);
    expect(await rtpengineCall(c.callId)).toBeDefined();
    answer(genesys, inv, offerSdp(40002, '0 101'));
    const res = await caller.response(c.callId, 502, 'INVITE');
    expect(headerValue(res, 'warning')).toMatch(/^302 pay-ivr-edge ".*not SRTP.*edge\.genesys\.srtp is required"$/);
    caller.send(caller.inDialog({ ...c, to: headerValue(res, 'to') }, 'ACK', { branch: c.branch }));
    await genesys.request('BYE', headerValue(inv, 'call-id'), 5000, from);
    await until(async () => (await rtpengineCall(c.callId)) === undefined, 'the rtpengine call deleted');
  });

  it('(c) SRTP required toward Genesys and Genesys answers a re-offer in plain RTP: 488 to the caller, both legs ended, the rtpengine call is gone', async () => {
    const genesys = peers[0] as SipPeer;
    const caller = await callerPeer(53810);
    const c = caller.newCall();
    const from = genesys.received.length;
    caller.send(caller.invite(c, { sdp: offerSdp(40040, '0 101') }));
    const inv = await genesys.request('INVITE', undefined, 5000, from);
    const theirs = cryptos(inv.body.toString('utf8'))[0] as Crypto;
    answer(genesys, inv, srtpSdp(40042, { tag: theirs.tag, suite: theirs.suite, key: randomBytes(30) }));
    ack(caller, c, await caller.response(c.callId, 200, 'INVITE'));
    await genesys.request('ACK', headerValue(inv, 'call-id'), 5000, from);

    const reFrom = genesys.received.length;
    c.cseq += 1;
    caller.send(caller.inDialog(c, 'INVITE', { body: offerSdp(40040, '0 101') }));
    const reinv = await genesys.request('INVITE', undefined, 5000, reFrom);
    expect(reinv.body.toString('utf8')).toMatch(/^m=audio \d+ RTP\/SAVP /m);
    genesys.respond(reinv, 200, ['Content-Type: application/sdp'], offerSdp(40042, '0 101'));
    const refused = await caller.waitFor((m) => m.kind === 'response' && m.status >= 200 && (headerValue(m, 'cseq') ?? '') === `${c.cseq} INVITE`);
    expect(refused.kind === 'response' ? refused.status : 0).toBe(488);
    expect(headerValue(refused, 'warning')).toMatch(/^302 pay-ivr-edge ".*not SRTP/);
    caller.send(caller.inDialog(c, 'ACK', { cseq: c.cseq, branch: (headerValue(refused, 'via') ?? '').replace(/^.*branch=([^;]+).*$/, '$1') }));
    await genesys.request('BYE', headerValue(inv, 'call-id'), 5000, reFrom);
    await caller.request('BYE', c.callId);
    await until(async () => (await rtpengineCall(c.callId)) === undefined, 'the rtpengine call deleted');
  });

  it('(b) SRTP (SDES) caller, plain toward Genesys: Genesys gets RTP/AVP, the caller RTP/SAVP + a=crypto, audio both ways', async () => {
    const edge = await startEdge(edgeConfig({ port: 53812, genesysPort: 53822, genesysSrtp: 'off', rtpSrtp: 'optional' }));
    const genesys = await SipPeer.open('udp', 53812, 53822);
    peers.push(genesys);
    const caller = await callerPeer(53812);
    const callerMedia = await rtpPeer(0x3333);
    const genesysMedia = await rtpPeer(0x4444);
    const callerKey = randomBytes(30);
    const c = caller.newCall();
    const callP = firstCall(edge);
    caller.send(caller.invite(c, { sdp: srtpSdp(callerMedia.port, { tag: '1', suite: 'AES_CM_128_HMAC_SHA1_80', key: callerKey }) }));

    const inv = await genesys.request('INVITE');
    const sdp = inv.body.toString('utf8');
    expect(sdp).toMatch(/^m=audio \d+ RTP\/AVP /m);
    expect(sdp).not.toMatch(/a=crypto/);
    answer(genesys, inv, offerSdp(genesysMedia.port, '0 101'));
    const ok = await caller.response(c.callId, 200, 'INVITE');
    ack(caller, c, ok);
    const toCaller = ok.body.toString('utf8');
    expect(toCaller).toMatch(/^m=audio \d+ RTP\/SAVP /m);
    const answered = cryptos(toCaller);
    expect(answered).toHaveLength(1);
    expect(answered[0]?.tag).toBe('1');
    expect(answered[0]?.suite).toBe('AES_CM_128_HMAC_SHA1_80');
    const call = await callP;
    await until(() => call.state === 'connected', 'the call connected');

    callerMedia.setSrtp({ suite: 'AES_CM_128_HMAC_SHA1_80', txKey: callerKey, rxKey: answered[0]?.key ?? Buffer.alloc(0) });
    callerMedia.setTarget(HOST, mediaPort(toCaller));
    genesysMedia.setTarget(HOST, mediaPort(sdp));
    await audioBothWays(callerMedia, genesysMedia);
    await call.hangup('test done');
    await until(async () => (await rtpengineCall(c.callId)) === undefined, 'the rtpengine call deleted');

    // An SDES offer keyed only with a suite the product does not allow (rtpengine would take it): 488.
    const c2 = caller.newCall();
    caller.send(caller.invite(c2, { sdp: srtpSdp(40030, { tag: '1', suite: 'AES_256_CM_HMAC_SHA1_80' as SrtpSuite, key: randomBytes(46) }) }));
    const refused = await caller.response(c2.callId, 488, 'INVITE');
    expect(headerValue(refused, 'warning')).toBe('304 pay-ivr-edge "no common media: no a=crypto line with an allowed suite"');
    expect(await rtpengineCall(c2.callId)).toBeUndefined();
  });

  it("(c) an SRTP offer from the caller while rtp.srtp is 'off': 488 with the product's Warning, nothing sent to Genesys or rtpengine", async () => {
    await startEdge(edgeConfig({ port: 53814, genesysPort: 53824, genesysSrtp: 'off', rtpSrtp: 'off' }));
    const genesys = await SipPeer.open('udp', 53814, 53824);
    peers.push(genesys);
    const caller = await callerPeer(53814);
    const c = caller.newCall();
    caller.send(caller.invite(c, { sdp: srtpSdp(40010, { tag: '1', suite: 'AES_CM_128_HMAC_SHA1_80', key: randomBytes(30) }) }));
    const res = await caller.response(c.callId, 488, 'INVITE');
    expect(headerValue(res, 'warning')).toBe('302 pay-ivr-edge "SRTP disabled here: offer RTP/AVP"');
    expect(await rtpengineCall(c.callId)).toBeUndefined();
    expect(genesys.count((m) => m.kind === 'request' && m.method === 'INVITE')).toBe(0);
  });

  it('(d) Genesys over TLS with SRTP required: the INVITE arrives on TLS with RTP/SAVP + SDES, the call connects and ends', async () => {
    const cert = selfSignedCert(mkdtempSync(join(dir, 'tls-')), { ipSan: true });
    const accepted: SipPeer[] = [];
    tlsServer = tls.createServer({ key: readFileSync(cert.keyFile), cert: readFileSync(cert.certFile), minVersion: 'TLSv1.2' }, (s) => {
      const p = SipPeer.accepted('tls', s);
      accepted.push(p);
      peers.push(p);
    });
    await new Promise<void>((r) => tlsServer?.listen(53826, HOST, () => r()));
    const edge = await startEdge(edgeConfig({ port: 53816, genesysPort: 53826, genesysSrtp: 'required', rtpSrtp: 'optional', tls: cert }));
    const caller = await callerPeer(53816);
    const c = caller.newCall();
    const callP = firstCall(edge);
    caller.send(caller.invite(c, { sdp: offerSdp(40020, '0 101') }));
    await until(() => accepted.length > 0, 'the edge connecting over TLS');
    const genesys = accepted[0] as SipPeer;
    const inv = await genesys.request('INVITE');
    expect(headerValue(inv, 'via')).toMatch(/^SIP\/2\.0\/TLS /);
    const sdp = inv.body.toString('utf8');
    expect(sdp).toMatch(/^m=audio \d+ RTP\/SAVP /m);
    const theirs = cryptos(sdp)[0] as Crypto;
    expect(theirs).toBeDefined();
    answer(genesys, inv, srtpSdp(40022, { tag: theirs.tag, suite: theirs.suite, key: randomBytes(30) }));
    const ok = await caller.response(c.callId, 200, 'INVITE');
    ack(caller, c, ok);
    const call = await callP;
    await until(() => call.state === 'connected', 'the call connected');
    // The caller hangs up; the BYE goes to Genesys over the same TLS connection.
    c.cseq += 1;
    caller.send(caller.inDialog(c, 'BYE', { cseq: c.cseq }));
    await genesys.request('BYE', headerValue(inv, 'call-id'));
    await caller.response(c.callId, 200, 'BYE');
    await until(async () => (await rtpengineCall(c.callId)) === undefined, 'the rtpengine call deleted');
  });
});
