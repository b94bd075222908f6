import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { calledUserOf } from '../src/telephony/embedded/embedded-call.js';
import { configSchema, type Config } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import { EmbeddedBackend } from '../src/telephony/embedded/backend.js';
import type { CallEndInfo, InboundCall } from '../src/telephony/types.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { headerValue, headerValues, tagOf, type SipRequest } from '../src/telephony/embedded/sip/message.js';
import { FakeMedia } from './support/fake-media.js';
import { SipPeer, offerSdp, type PeerCall } from './support/sip-peer.js';
import { selfSignedCert } from './support/certs.js';

/**
 * The embedded backend's SIP behaviour against a scripted peer (raw SIP over UDP/TCP), with a
 * stand-in media engine. Timers are shrunk (T1 = 20 ms) so timeouts take well under a second.
 */

const PORT = 15060;
const TIMERS = { t1: 20, t2: 160, t4: 200 };

function config(over: Record<string, unknown> = {}, port = PORT): Config {
  return configSchema.parse({
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port }, { transport: 'tcp', host: '127.0.0.1', port }] },
    rtp: { host: '127.0.0.1', portMin: 31000, portMax: 31999 },
    ...over,
  });
}

interface Harness {
  backend: EmbeddedBackend;
  media: FakeMedia;
  calls: InboundCall[];
  ended: Map<string, CallEndInfo>;
  digits: DtmfDigit[];
  /** What the app does with each call. */
  onCall: (call: InboundCall) => void;
}

async function startBackend(cfg: Config, onCall: (c: InboundCall) => void = (c) => void c.answer().catch(() => undefined), extra: { sessionTimerUnitMs?: number } = {}): Promise<Harness> {
  const media = new FakeMedia();
  const backend = new EmbeddedBackend(cfg, silentLogger, { media, timers: TIMERS, ackGraceMs: 2000, offerTimeoutMs: 1500, ...extra });
  const h: Harness = { backend, media, calls: [], ended: new Map(), digits: [], onCall };
  backend.on('call', (call) => {
    h.calls.push(call);
    call.on('digit', (d) => h.digits.push(d));
    call.on('ended', (info) => h.ended.set(call.callId, info));
    h.onCall(call);
  });
  await backend.start();
  return h;
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** INVITE -> 200 -> ACK; returns the call with `to` filled. */
async function establish(peer: SipPeer, opts: Parameters<SipPeer['invite']>[1] = {}): Promise<PeerCall> {
  const c = peer.newCall();
  peer.send(peer.invite(c, opts));
  const ok = await peer.response(c.callId, 200, 'INVITE');
  c.to = headerValue(ok, 'to');
  peer.send(peer.inDialog(c, 'ACK', { cseq: 1 }));
  return c;
}

describe('embedded backend over UDP', () => {
  let h: Harness;
  let peer: SipPeer;
  beforeAll(async () => {
    // Session-timer seconds are 5 ms here (timers only run when an INVITE asks for them).
    h = await startBackend(config(), undefined, { sessionTimerUnitMs: 5 });
  });
  afterAll(async () => {
    await h.backend.stop();
  });
  afterEach(async () => {
    await peer?.close();
  });

  it('answers OPTIONS with Allow, Accept and Supported', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(
      [`OPTIONS sip:127.0.0.1:${PORT} SIP/2.0`, peer.via(c.branch), 'Max-Forwards: 70', `From: <sip:ping@127.0.0.1>;tag=${c.fromTag}`, `To: <sip:127.0.0.1>`, `Call-ID: ${c.callId}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'),
    );
    const r = await peer.response(c.callId, 200);
    expect(headerValues(r, 'allow')).toEqual(['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'INFO', 'REFER', 'NOTIFY', 'UPDATE', 'PRACK']);
    expect(headerValues(r, 'accept')).toContain('application/sdp');
    expect(headerValues(r, 'supported')).toContain('timer');
    expect(headerValues(r, 'require')).toEqual([]);
  });

  it('takes a call: 100, 200 with SDP and Contact, ACK, INFO digits, caller BYE', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c, { extra: ['User-to-User: 00616263;encoding=hex', 'x-inin-cnv: conv-1'] }));
    await peer.response(c.callId, 100);
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(headerValue(ok, 'content-type')).toBe('application/sdp');
    expect(ok.body.toString()).toMatch(/m=audio 31\d{3} RTP\/AVP 0 101/);
    expect(headerValue(ok, 'contact')).toBe(`<sip:pay-ivr@127.0.0.1:${PORT}>`);
    expect(tagOf(headerValue(ok, 'to'))).toBeDefined();
    const call = h.calls.find((x) => x.callId === c.callId) as InboundCall;
    expect(call.calledUser).toBe('+33140000001');
    expect(call.header('user-to-user')).toBe('00616263;encoding=hex');
    expect(call.header('X-Inin-Cnv')).toBe('conv-1');
    expect(call.header('i')).toBe(c.callId);
    expect(call.remote).toEqual({ address: '127.0.0.1', port: peer.port, transport: 'udp' });
    c.to = headerValue(ok, 'to');
    const media = h.media.created.at(-1);
    expect(media?.confirmed).toBe(false); // no RTP before the ACK
    peer.send(peer.inDialog(c, 'ACK'));
    await until(() => call.state === 'answered');
    await until(() => media?.confirmed === true);

    const before = h.digits.length;
    peer.send(peer.inDialog(c, 'INFO', { cseq: 2, contentType: 'application/dtmf-relay', body: 'Signal=5\r\nDuration=160\r\n' }));
    await peer.response(c.callId, 200, 'INFO');
    peer.send(peer.inDialog(c, 'INFO', { cseq: 3, contentType: 'application/dtmf', body: '11' }));
    await peer.response(c.callId, 200, 'INFO');
    await until(() => h.digits.length === before + 2);
    expect(h.digits.slice(before)).toEqual(['5', '#']);

    // A retransmitted BYE gets the same 200 and one 'ended'.
    const bye = peer.inDialog(c, 'BYE', { cseq: 4, branch: 'z9hG4bKbye1' });
    peer.send(bye);
    await peer.response(c.callId, 200, 'BYE');
    peer.send(bye);
    await until(() => peer.count((m) => m.kind === 'response' && (headerValue(m, 'cseq') ?? '').endsWith('BYE')) === 2);
    expect(h.ended.get(c.callId)).toEqual({ by: 'remote', reason: 'BYE' });
    expect(h.backend.activeCalls).toBe(0);
  });

  it('absorbs a retransmitted INVITE (one call)', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    const inv = peer.invite(c);
    const n = h.calls.length;
    peer.send(inv);
    peer.send(inv);
    const ok = await peer.response(c.callId, 200, 'INVITE');
    peer.send(inv);
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK'));
    await new Promise((r) => setTimeout(r, 100));
    expect(h.calls.length).toBe(n + 1);
    peer.send(peer.inDialog(c, 'BYE', { cseq: 2 }));
    await peer.response(c.callId, 200, 'BYE');
  });

  it('CANCEL before the answer: 200 to CANCEL, 487 to INVITE, ACK absorbed', async () => {
    h.onCall = () => undefined; // the app does not answer
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c));
    await peer.response(c.callId, 100);
    await until(() => h.calls.some((x) => x.callId === c.callId));
    peer.send(
      [`CANCEL sip:+33140000001@127.0.0.1:${PORT} SIP/2.0`, peer.via(c.branch), 'Max-Forwards: 70', `From: "Caller" <sip:caller@127.0.0.1>;tag=${c.fromTag}`, 'To: <sip:+33140000001@127.0.0.1>', `Call-ID: ${c.callId}`, 'CSeq: 1 CANCEL', 'Content-Length: 0', '', ''].join('\r\n'),
    );
    await peer.response(c.callId, 200, 'CANCEL');
    const r487 = await peer.response(c.callId, 487, 'INVITE');
    c.to = headerValue(r487, 'to');
    peer.send(peer.inDialog(c, 'ACK', { branch: c.branch }));
    await until(() => h.ended.has(c.callId));
    expect(h.ended.get(c.callId)).toEqual({ by: 'remote', reason: 'CANCEL' });
    h.onCall = (call) => void call.answer().catch(() => undefined);
  });

  it('retransmits a non-2xx final until ACK (Timer G)', async () => {
    h.onCall = (call) => void call.reject(486);
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c));
    await until(() => peer.count((m) => m.kind === 'response' && m.status === 486) >= 3, 2000);
    const r = await peer.response(c.callId, 486);
    c.to = headerValue(r, 'to');
    peer.send(peer.inDialog(c, 'ACK', { branch: c.branch }));
    await new Promise((res) => setTimeout(res, 100));
    const n = peer.count((m) => m.kind === 'response' && m.status === 486);
    await new Promise((res) => setTimeout(res, 300));
    expect(peer.count((m) => m.kind === 'response' && m.status === 486)).toBe(n);
    h.onCall = (call) => void call.answer().catch(() => undefined);
  });

  it('no ACK after 200: retransmits the 200 until 64*T1, then ends no-ack without a BYE and sends nothing more', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c));
    await peer.response(c.callId, 200, 'INVITE');
    const media = h.media.created.at(-1);
    await until(() => h.ended.has(c.callId), 5000);
    expect(h.ended.get(c.callId)).toEqual({ by: 'error', reason: 'no-ack' });
    const oks = peer.count((m) => m.kind === 'response' && m.status === 200 && headerValue(m, 'call-id') === c.callId);
    expect(oks).toBeGreaterThanOrEqual(4);
    expect(media?.closed).toBe(true);
    expect(media?.confirmed).toBe(false); // never allowed to send RTP
    // Timer H (64*T1 = 1.28 s here) is over: wait as long again, nothing more may arrive.
    const n = peer.received.length;
    await new Promise((res) => setTimeout(res, 64 * TIMERS.t1));
    expect(peer.received.length).toBe(n);
    expect(peer.count((m) => m.kind === 'request' && m.method === 'BYE')).toBe(0);
  });

  it('late offer: our offer in the 200, the answer in the ACK', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c, { sdp: '' }));
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(ok.body.toString()).toMatch(/^v=0/);
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK', { body: offerSdp(40002, '0') }));
    const call = h.calls.find((x) => x.callId === c.callId) as InboundCall;
    await until(() => call.state === 'answered');
    const ms = h.media.created[h.media.created.length - 1];
    await until(() => ms?.answers.length === 1);
    peer.send(peer.inDialog(c, 'BYE', { cseq: 2 }));
    await peer.response(c.callId, 200, 'BYE');
  });

  it('re-INVITE for hold and unhold, UPDATE, OPTIONS in dialog, glare-free', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = await establish(peer);
    const ms = h.media.created[h.media.created.length - 1];
    peer.send(peer.inDialog(c, 'INVITE', { cseq: 2, body: offerSdp(40000, '0 101', 'sendonly') }));
    const hold = await peer.response(c.callId, 200, 'INVITE');
    expect(hold.body.length).toBeGreaterThan(0);
    peer.send(peer.inDialog(c, 'ACK', { cseq: 2 }));
    peer.send(peer.inDialog(c, 'INVITE', { cseq: 3, body: offerSdp(40000, '0 101', 'sendrecv') }));
    await until(() => peer.count((m) => m.kind === 'response' && m.status === 200 && headerValue(m, 'cseq') === '3 INVITE') > 0);
    peer.send(peer.inDialog(c, 'ACK', { cseq: 3 }));
    expect(ms?.offers.slice(-2).map((o) => /a=(send\w+)/.exec(o)?.[1])).toEqual(['sendonly', 'sendrecv']);
    peer.send(peer.inDialog(c, 'INVITE', { cseq: 4, body: offerSdp(40000, '18') }));
    await peer.response(c.callId, 488, 'INVITE');
    peer.send(peer.inDialog(c, 'UPDATE', { cseq: 5 }));
    await peer.response(c.callId, 200, 'UPDATE');
    peer.send(peer.inDialog(c, 'OPTIONS', { cseq: 6 }));
    const opt = await peer.response(c.callId, 200, 'OPTIONS');
    expect(headerValue(opt, 'allow')).toBe('INVITE');
    peer.send(peer.inDialog(c, 'INVITE', { cseq: 2, body: offerSdp(40000) }));
    await peer.response(c.callId, 500, 'INVITE');
    peer.send(peer.inDialog(c, 'BYE', { cseq: 7 }));
    await peer.response(c.callId, 200, 'BYE');
  });

  it('REFER accepted: exact Refer-To, Referred-By, NOTIFYs answered 200, final sipfrag decides', async () => {
    let call: InboundCall | undefined;
    h.onCall = (x) => {
      call = x;
      void x.answer().catch(() => undefined);
    };
    // Use a Contact with unknown params and a Record-Route to check in-dialog request building.
    peer = await SipPeer.open('udp', PORT);
    const c2 = await establish(peer, {
      contact: `<sip:caller@127.0.0.1:${peer.port};x-genesys-trunk=abc;ob>`,
      extra: [`Record-Route: <sip:127.0.0.1:${peer.port};lr;r=1>`],
    });
    await until(() => call?.callId === c2.callId && call.state === 'answered');
    const referTo = 'sip:+33140000000@127.0.0.1?User-to-User=00726573%3Dapproved%3Bencoding%3Dhex';
    peer.autoAnswer.delete('REFER');
    const pending = (call as InboundCall).refer(referTo, { timeoutMs: 3000 });
    const refer = await peer.request('REFER', c2.callId);
    expect(headerValue(refer, 'refer-to')).toBe(`<${referTo}>`);
    expect(headerValue(refer, 'referred-by')).toMatch(/^<sip:\+33140000001@127\.0\.0\.1>$/);
    expect(refer.uri).toBe(`sip:caller@127.0.0.1:${peer.port};x-genesys-trunk=abc;ob`);
    expect(headerValues(refer, 'route')).toEqual([`<sip:127.0.0.1:${peer.port};lr;r=1>`]);
    expect(tagOf(headerValue(refer, 'to'))).toBe(c2.fromTag);
    peer.respond(refer, 202);
    const notify = (n: number, frag: string, state: string): string =>
      [
        `NOTIFY sip:pay-ivr@127.0.0.1:${PORT} SIP/2.0`,
        peer.via(`z9hG4bKn${n}${c2.fromTag}`),
        'Max-Forwards: 70',
        `From: "Caller" <sip:caller@127.0.0.1>;tag=${c2.fromTag}`,
        `To: ${c2.to}`,
        `Call-ID: ${c2.callId}`,
        `CSeq: ${10 + n} NOTIFY`,
        'Event: refer',
        `Subscription-State: ${state}`,
        'Content-Type: message/sipfrag;version=2.0',
        `Content-Length: ${frag.length}`,
        '',
        frag,
      ].join('\r\n');
    peer.send(notify(1, 'SIP/2.0 100 Trying', 'active;expires=60'));
    await until(() => peer.count((m) => m.kind === 'response' && headerValue(m, 'cseq') === '11 NOTIFY' && m.status === 200) === 1);
    peer.send(notify(2, 'SIP/2.0 200 OK', 'terminated;reason=noresource'));
    const result = await pending;
    expect(result).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' });
    await until(() => peer.count((m) => m.kind === 'response' && headerValue(m, 'cseq') === '12 NOTIFY' && m.status === 200) === 1);
    await call?.hangup({ protocol: 'SIP', cause: 200, text: 'Call "transferred"' });
    const bye = await peer.request('BYE', c2.callId);
    expect(headerValue(bye, 'reason')).toBe('SIP;cause=200;text="Call  transferred "');
    expect(bye.uri).toBe(refer.uri);
    expect(h.ended.get(c2.callId)).toEqual({ by: 'local', reason: 'hangup' });
    h.onCall = (x) => void x.answer().catch(() => undefined);
  });

  it('REFER refused (403), failed sipfrag (486) and timeout (408)', async () => {
    let call: InboundCall | undefined;
    h.onCall = (x) => {
      call = x;
      void x.answer().catch(() => undefined);
    };
    peer = await SipPeer.open('udp', PORT);
    const c = await establish(peer);
    await until(() => call?.callId === c.callId && call.state === 'answered');
    const x = call as InboundCall;
    let p = x.refer('sip:+1@127.0.0.1', { timeoutMs: 3000 });
    let refer = await peer.request('REFER', c.callId);
    peer.respond(refer, 403);
    expect(await p).toMatchObject({ ok: false, referStatus: 403 });

    const from = peer.received.length;
    p = x.refer('sip:+2@127.0.0.1', { timeoutMs: 3000 });
    refer = await peer.request('REFER', c.callId, 5000, from);
    // NOTIFY before the 202 (a race real peers have).
    const frag = 'SIP/2.0 486 Busy Here';
    peer.send(
      [`NOTIFY sip:pay-ivr@127.0.0.1 SIP/2.0`, peer.via('z9hG4bKnx1'), 'Max-Forwards: 70', `From: <sip:caller@127.0.0.1>;tag=${c.fromTag}`, `To: ${c.to}`, `Call-ID: ${c.callId}`, 'CSeq: 20 NOTIFY', 'Event: refer', 'Subscription-State: terminated', 'Content-Type: message/sipfrag', `Content-Length: ${frag.length}`, '', frag].join('\r\n'),
    );
    await until(() => peer.count((m) => m.kind === 'response' && headerValue(m, 'cseq') === '20 NOTIFY') === 1);
    peer.respond(refer, 202);
    expect(await p).toMatchObject({ ok: false, referStatus: 202, finalStatus: 486 });

    const from2 = peer.received.length;
    p = x.refer('sip:+3@127.0.0.1', { timeoutMs: 400 });
    refer = await peer.request('REFER', c.callId, 5000, from2);
    expect(await p).toMatchObject({ ok: false, referStatus: 408 });
    // The unanswered REFER was retransmitted over UDP (Timer E).
    expect(peer.count((m) => m.kind === 'request' && m.method === 'REFER' && headerValue(m, 'cseq') === headerValue(refer, 'cseq'))).toBeGreaterThan(1);
    peer.send(peer.inDialog(c, 'BYE', { cseq: 30 }));
    await peer.response(c.callId, 200, 'BYE');
    h.onCall = (y) => void y.answer().catch(() => undefined);
  });

  it('applies the request rules: 481, 501, 405, 420, 415, 488, 400, serves Max-Forwards 0, and drops garbage', async () => {
    peer = await SipPeer.open('udp', PORT);
    const base = (method: string, c: PeerCall, extra: string[] = [], to = '<sip:x@127.0.0.1>'): string =>
      [`${method} sip:x@127.0.0.1:${PORT} SIP/2.0`, peer.via(c.branch), 'Max-Forwards: 70', `From: <sip:a@127.0.0.1>;tag=${c.fromTag}`, `To: ${to}`, `Call-ID: ${c.callId}`, `CSeq: 1 ${method}`, ...extra, 'Content-Length: 0', '', ''].join('\r\n');
    const expectStatus = async (text: string, c: PeerCall, status: number): Promise<SipRequest | undefined> => {
      peer.send(text);
      await peer.response(c.callId, status);
      return undefined;
    };
    let c = peer.newCall();
    await expectStatus(base('BYE', c, [], '<sip:x@127.0.0.1>;tag=nope'), c, 481);
    c = peer.newCall();
    await expectStatus(base('INFO', c), c, 481);
    c = peer.newCall();
    await expectStatus(base('FOO', c), c, 501);
    c = peer.newCall();
    await expectStatus(base('SUBSCRIBE', c, ['Event: dialog']), c, 405);
    c = peer.newCall();
    await expectStatus(base('OPTIONS', c, ['Require: foo, timer']), c, 420);
    expect(headerValue(await peer.response(c.callId, 420), 'unsupported')).toBe('foo');
    c = peer.newCall();
    // A UAS is the destination: Max-Forwards 0 is served (RFC 4475 3.3.11), not answered 483.
    await expectStatus(base('OPTIONS', c).replace('Max-Forwards: 70', 'Max-Forwards: 0'), c, 200);
    c = peer.newCall();
    peer.send(peer.invite(c, { sdp: 'hello' }).replace('Content-Type: application/sdp', 'Content-Type: text/plain'));
    await peer.response(c.callId, 415);
    c = peer.newCall();
    peer.send(peer.invite(c, { sdp: offerSdp(40000, '18 101') }));
    await peer.response(c.callId, 488);
    c = peer.newCall();
    peer.send(base('INVITE', c).replace(`Call-ID: ${c.callId}\r\n`, `Call-ID: ${c.callId}\r\nCSeq: 2 INVITE\r\n`));
    await peer.response(c.callId, 400);
    c = peer.newCall();
    peer.send(peer.invite(c, { extra: ['Session-Expires: 30'] }));
    expect(headerValue(await peer.response(c.callId, 422), 'min-se')).toBe('90');
    const n = peer.received.length;
    peer.send(Buffer.from([0x00, 0xff, 0x13, 0x37]));
    peer.send('GARBAGE\r\n\r\n');
    // The service still answers after garbage.
    c = peer.newCall();
    await expectStatus(base('OPTIONS', c), c, 200);
    expect(peer.received.length).toBe(n + 1);
  });

  it('session timers: Session-Expires + Require: timer, BYE when the UAC does not refresh', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c, { extra: ['Supported: timer, 100rel', 'Session-Expires: 120', 'Min-SE: 90'] }));
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(headerValue(ok, 'session-expires')).toBe('120;refresher=uac');
    expect(headerValues(ok, 'require')).toEqual(['timer']);
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK'));
    // One refresh (UPDATE) keeps the call; then nothing: BYE at 120 - 32 "seconds" (5 ms each).
    await new Promise((r) => setTimeout(r, 300));
    peer.send(peer.inDialog(c, 'UPDATE', { cseq: 2, extra: ['Supported: timer', 'Session-Expires: 120;refresher=uac'] }));
    const upd = await peer.response(c.callId, 200, 'UPDATE');
    expect(headerValue(upd, 'session-expires')).toBe('120;refresher=uac');
    const bye = await peer.request('BYE', c.callId, 3000);
    expect(headerValue(bye, 'reason')).toMatch(/session expired/);
    await until(() => h.ended.has(c.callId));
    expect(h.ended.get(c.callId)).toEqual({ by: 'local', reason: 'session-expired' });
  });

  it('session timers: we refresh with UPDATE when refresher=uas', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c, { extra: ['Supported: timer', 'Allow: INVITE, ACK, BYE, UPDATE', 'Session-Expires: 100;refresher=uas'] }));
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(headerValue(ok, 'session-expires')).toBe('100;refresher=uas');
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK'));
    const upd = await peer.request('UPDATE', c.callId, 3000);
    expect(headerValue(upd, 'session-expires')).toBe('100;refresher=uas');
    const upd2 = await peer.request('UPDATE', c.callId, 3000, peer.received.indexOf(upd) + 1);
    expect(upd2).toBeDefined();
    expect(h.ended.has(c.callId)).toBe(false);
    peer.send(peer.inDialog(c, 'BYE', { cseq: 2 }));
    await peer.response(c.callId, 200, 'BYE');
  });

  it('session timers: we refresh with re-INVITE (and ACK its 200) when the peer has no UPDATE', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c, { extra: ['Supported: timer', 'Allow: INVITE, ACK, BYE', 'Session-Expires: 100;refresher=uas'] }));
    const ok = await peer.response(c.callId, 200, 'INVITE');
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK'));
    peer.autoAnswer.delete('INVITE');
    const reinvite = await peer.request('INVITE', c.callId, 3000, peer.received.length);
    expect(headerValue(reinvite, 'content-type')).toBe('application/sdp');
    expect(headerValue(reinvite, 'session-expires')).toBe('100;refresher=uas');
    peer.respond(reinvite, 200, ['Content-Type: application/sdp'], offerSdp(40000, '0'));
    const ack = await peer.request('ACK', c.callId, 3000);
    expect(headerValue(ack, 'cseq')).toBe(`${/^\d+/.exec(headerValue(reinvite, 'cseq') ?? '')?.[0]} ACK`);
    expect(h.ended.has(c.callId)).toBe(false);
    peer.send(peer.inDialog(c, 'BYE', { cseq: 2 }));
    await peer.response(c.callId, 200, 'BYE');
  });

  it('no RTP: BYE with a Reason, ended "rtp-timeout" once, media closed', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = await establish(peer);
    const ms = h.media.created[h.media.created.length - 1];
    const call = h.calls.find((x) => x.callId === c.callId) as InboundCall;
    await until(() => call.state === 'answered');
    let endedCount = 0;
    call.on('ended', () => (endedCount += 1));
    ms?.timeout();
    ms?.timeout();
    const bye = await peer.request('BYE', c.callId);
    expect(headerValue(bye, 'reason')).toBe('SIP;cause=408;text="no RTP received"');
    expect(h.ended.get(c.callId)).toEqual({ by: 'error', reason: 'rtp-timeout' });
    expect(endedCount).toBe(1);
    expect(ms?.closed).toBe(true);
    expect(await call.play(['x'], { language: 'en-US', bargeIn: false })).toBe('ended');
    expect(await call.refer('sip:+1@127.0.0.1')).toMatchObject({ ok: false, referStatus: 481 });
  });

  it('an offer the app never handles gets 480', async () => {
    h.onCall = () => undefined;
    peer = await SipPeer.open('udp', PORT);
    const c = peer.newCall();
    peer.send(peer.invite(c));
    await peer.response(c.callId, 480, 'INVITE', 4000);
    await until(() => h.ended.has(c.callId));
    h.onCall = (x) => void x.answer().catch(() => undefined);
  });

  it('stop() sends BYE to every call and ends them once', async () => {
    peer = await SipPeer.open('udp', PORT);
    const c = await establish(peer);
    await until(() => h.backend.activeCalls === 1);
    await h.backend.stop();
    const bye = await peer.request('BYE', c.callId);
    expect(headerValue(bye, 'reason')).toMatch(/cause=503/);
    expect(h.ended.get(c.callId)).toEqual({ by: 'local', reason: 'shutdown' });
    expect(h.backend.activeCalls).toBe(0);
    expect(h.backend.ready).toBe(false);
    h = await startBackend(config(), undefined, { sessionTimerUnitMs: 5 });
  });
});

describe('embedded backend over TCP', () => {
  let h: Harness;
  let peer: SipPeer;
  const port = PORT + 2;
  beforeAll(async () => {
    h = await startBackend(config({}, port));
  });
  afterAll(async () => {
    await peer?.close();
    await h.backend.stop();
  });

  it('frames split messages, answers on the same connection and sends BYE over it', async () => {
    peer = await SipPeer.open('tcp', port);
    const c = peer.newCall();
    const inv = peer.invite(c);
    peer.sendSplit(inv, 100);
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(headerValue(ok, 'contact')).toBe(`<sip:pay-ivr@127.0.0.1:${port};transport=tcp>`);
    c.to = headerValue(ok, 'to');
    // Two messages in one segment.
    peer.send(peer.inDialog(c, 'ACK') + peer.inDialog(c, 'INFO', { cseq: 2, contentType: 'application/dtmf-relay', body: 'Signal=7\r\nDuration=100\r\n' }));
    await peer.response(c.callId, 200, 'INFO');
    await until(() => h.digits.includes('7'));
    // Only one 200 for the INVITE over a reliable transport.
    await new Promise((r) => setTimeout(r, 150));
    expect(peer.count((m) => m.kind === 'response' && m.status === 200 && headerValue(m, 'cseq') === '1 INVITE')).toBe(1);
    const call = h.calls.find((x) => x.callId === c.callId) as InboundCall;
    await call.hangup();
    const bye = await peer.request('BYE', c.callId);
    expect(bye.uri).toBe(`sip:caller@127.0.0.1:${peer.port};transport=tcp`);
  });

  it('closes a connection that announces an absurd Content-Length or never ends its headers', async () => {
    const a = await SipPeer.open('tcp', port);
    a.send('INVITE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 99999999\r\n\r\n');
    await until(() => a.closedByPeer);
    const b = await SipPeer.open('tcp', port);
    b.send(`INVITE sip:x@127.0.0.1 SIP/2.0\r\nX-Pad: ${'a'.repeat(20000)}`);
    await until(() => b.closedByPeer);
    await a.close();
    await b.close();
    // The listener still serves new connections.
    const c2 = await SipPeer.open('tcp', port);
    const call = c2.newCall();
    c2.send([`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, c2.via(call.branch), 'Max-Forwards: 70', `From: <sip:a@127.0.0.1>;tag=${call.fromTag}`, 'To: <sip:127.0.0.1>', `Call-ID: ${call.callId}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'));
    await c2.response(call.callId, 200);
    await c2.close();
  });
});

describe('embedded backend over TLS', () => {
  let dir: string;
  let h: Harness;
  let peer: SipPeer | undefined;
  const port = PORT + 6;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'payivr-tls-'));
    selfSignedCert(dir);
    h = await startBackend(
      configSchema.parse({
        sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port }, { transport: 'tls', host: '127.0.0.1', port: port + 1 }], tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } },
        rtp: { host: '127.0.0.1', portMin: 31000, portMax: 31999 },
      }),
    );
  });
  afterAll(async () => {
    await peer?.close();
    await h.backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes a call over TLS with a transport=tls Contact and sends BYE on the same connection', async () => {
    peer = await SipPeer.open('tls', port + 1);
    const c = peer.newCall();
    peer.send(peer.invite(c));
    const ok = await peer.response(c.callId, 200, 'INVITE');
    expect(headerValue(ok, 'contact')).toBe(`<sip:pay-ivr@127.0.0.1:${port + 1};transport=tls>`);
    c.to = headerValue(ok, 'to');
    peer.send(peer.inDialog(c, 'ACK'));
    const call = h.calls.find((x) => x.callId === c.callId) as InboundCall;
    await until(() => call.state === 'answered');
    expect(call.remote.transport).toBe('tls');
    await call.hangup({ protocol: 'Q.850', cause: 16, text: 'Normal call clearing' });
    const bye = await peer.request('BYE', c.callId);
    expect(headerValue(bye, 'reason')).toBe('Q.850;cause=16;text="Normal call clearing"');
  });
});

describe('embedded backend logging', () => {
  it('logs no UUI, no SIP bodies and no INFO digits, even at debug level', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    const media = new FakeMedia();
    const port = PORT + 8;
    const backend = new EmbeddedBackend(config({}, port), logger, { media, timers: TIMERS });
    backend.on('call', (call) => void call.answer().catch(() => undefined));
    await backend.start();
    const peer = await SipPeer.open('udp', port);
    try {
      const uui = '00414243444546474849;encoding=hex';
      const c = peer.newCall();
      peer.send(peer.invite(c, { extra: [`User-to-User: ${uui}`] }));
      const ok = await peer.response(c.callId, 200, 'INVITE');
      c.to = headerValue(ok, 'to');
      peer.send(peer.inDialog(c, 'ACK'));
      peer.send(peer.inDialog(c, 'INFO', { cseq: 2, contentType: 'application/dtmf-relay', body: 'Signal=8\r\nDuration=160\r\n' }));
      await peer.response(c.callId, 200, 'INFO');
      peer.send(peer.inDialog(c, 'BYE', { cseq: 3 }));
      await peer.response(c.callId, 200, 'BYE');
    } finally {
      await peer.close();
      await backend.stop();
    }
    const all = lines.join('');
    expect(all).toContain('"method":"INVITE"');
    expect(all).not.toContain('00414243');
    expect(all).not.toContain('User-to-User');
    expect(all).not.toMatch(/Signal=|m=audio|v=0/);
  });
});

describe('called user', () => {
  it('is the URL-decoded user part of the Request-URI', () => {
    expect(calledUserOf('sip:%2B33140000001@10.0.0.1;user=phone')).toBe('+33140000001');
    expect(calledUserOf('tel:+33140000002;phone-context=example.com')).toBe('+33140000002');
    expect(calledUserOf('sip:10.0.0.1')).toBe('');
  });
});

describe('embedded backend access control', () => {
  let peer: SipPeer;
  afterEach(async () => {
    await peer?.close();
  });

  it('allow-list refuses other sources with 403', async () => {
    const h = await startBackend(config({ security: { allowList: ['10.0.0.0/8', '2001:db8::/32'] } }, PORT + 4));
    try {
      peer = await SipPeer.open('udp', PORT + 4);
      const c = peer.newCall();
      peer.send(peer.invite(c));
      await peer.response(c.callId, 403);
      expect(h.calls).toHaveLength(0);
    } finally {
      await h.backend.stop();
    }
  });

  it('rate per source and max concurrent calls answer 503 with Retry-After', async () => {
    const h = await startBackend(config({ security: { ratePerSource: 2, maxConcurrentCalls: 1 } }, PORT + 4), () => undefined);
    try {
      peer = await SipPeer.open('udp', PORT + 4);
      const a = peer.newCall();
      peer.send(peer.invite(a));
      await peer.response(a.callId, 100);
      const b = peer.newCall();
      peer.send(peer.invite(b));
      const busy = await peer.response(b.callId, 503);
      expect(headerValue(busy, 'retry-after')).toBe('5');
      const d = peer.newCall();
      peer.send(peer.invite(d));
      const limited = await peer.response(d.callId, 503);
      expect(headerValue(limited, 'retry-after')).toBe('1');
      expect(h.calls).toHaveLength(1);
    } finally {
      await h.backend.stop();
    }
  });

  it('shared-secret header: missing or wrong -> 403, right -> call', async () => {
    const h = await startBackend(config({ security: { sharedSecretHeader: { name: 'X-Trunk-Token', value: 's3cret-token' } } }, PORT + 4));
    try {
      peer = await SipPeer.open('udp', PORT + 4);
      let c = peer.newCall();
      peer.send(peer.invite(c));
      await peer.response(c.callId, 403);
      c = peer.newCall();
      peer.send(peer.invite(c, { extra: ['X-Trunk-Token: s3cret-tokeX'] }));
      await peer.response(c.callId, 403);
      c = peer.newCall();
      peer.send(peer.invite(c, { extra: ['X-Trunk-Token: s3cret-token'] }));
      await peer.response(c.callId, 200, 'INVITE');
      expect(h.calls).toHaveLength(1);
    } finally {
      await h.backend.stop();
    }
  });

  it('digest: 401 with a challenge, then the call with the right credentials', async () => {
    const digest = { realm: 'pay-ivr', username: 'genesys', password: 'pw-123' };
    const h = await startBackend(config({ security: { digest } }, PORT + 4));
    try {
      peer = await SipPeer.open('udp', PORT + 4);
      const c = peer.newCall();
      peer.send(peer.invite(c));
      const ch = await peer.response(c.callId, 401);
      const www = headerValue(ch, 'www-authenticate') ?? '';
      expect(www).toMatch(/^Digest realm="pay-ivr", nonce="[^"]+", algorithm=MD5, qop="auth"$/);
      const nonce = /nonce="([^"]+)"/.exec(www)?.[1] ?? '';
      const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
      const uri = `sip:+33140000001@127.0.0.1:${PORT + 4}`;
      const auth = (password: string): string => {
        const resp = md5(`${md5(`genesys:pay-ivr:${password}`)}:${nonce}:00000001:abc:auth:${md5(`INVITE:${uri}`)}`);
        return `Authorization: Digest username="genesys", realm="pay-ivr", nonce="${nonce}", uri="${uri}", response="${resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"`;
      };
      const bad = peer.newCall();
      peer.send(peer.invite(bad, { extra: [auth('wrong')] }));
      await peer.response(bad.callId, 401);
      const good = peer.newCall();
      peer.send(peer.invite(good, { extra: [auth('pw-123')] }));
      await peer.response(good.callId, 200, 'INVITE');
      expect(h.calls.map((x) => x.callId)).toEqual([good.callId]);
    } finally {
      await h.backend.stop();
    }
  });
});

describe('embedded backend drain', () => {
  it('draining: OPTIONS and new INVITEs get 503 with Retry-After, the call in progress goes on', async () => {
    const port = PORT + 7;
    const h = await startBackend(config({}, port));
    const peer = await SipPeer.open('udp', port);
    const options = (): string => {
      const o = peer.newCall();
      return [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, peer.via(o.branch), 'Max-Forwards: 70', `From: <sip:ping@127.0.0.1>;tag=${o.fromTag}`, 'To: <sip:127.0.0.1>', `Call-ID: ${o.callId}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
    };
    try {
      const inProgress = await establish(peer);
      expect(h.backend.ready).toBe(true);
      h.backend.drain(17);
      expect(h.backend.draining).toBe(true);
      expect(h.backend.ready).toBe(false);

      const probe = options();
      peer.send(probe);
      const unavailable = await peer.response(/Call-ID: (.*)/.exec(probe)?.[1]?.trim() ?? '', 503);
      expect(headerValue(unavailable, 'retry-after')).toBe('17');

      const fresh = peer.newCall();
      peer.send(peer.invite(fresh));
      const refused = await peer.response(fresh.callId, 503, 'INVITE');
      expect(headerValue(refused, 'retry-after')).toBe('17');
      expect(h.calls.map((c) => c.callId)).not.toContain(fresh.callId);

      // The call taken before the drain is still served: an in-dialog OPTIONS gets 200, BYE ends it.
      peer.send(peer.inDialog(inProgress, 'OPTIONS', { cseq: 2 }));
      await peer.response(inProgress.callId, 200, 'OPTIONS');
      expect(h.calls.find((c) => c.callId === inProgress.callId)?.state).toBe('answered');
      peer.send(peer.inDialog(inProgress, 'BYE', { cseq: 3 }));
      await peer.response(inProgress.callId, 200, 'BYE');
      await until(() => h.backend.activeCalls === 0);
    } finally {
      await peer.close();
      await h.backend.stop();
    }
  });
});
