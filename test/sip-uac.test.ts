import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { silentLogger } from '../src/log.js';
import { UserAgent } from '../src/telephony/embedded/sip/user-agent.js';
import type { ClientSession } from '../src/telephony/embedded/sip/client-session.js';
import { headerValue, headerValues, parseVia, rawHeaders, type SipMessage, type SipRequest } from '../src/telephony/embedded/sip/message.js';
import { SipPeer, offerSdp } from './support/sip-peer.js';

/**
 * The UAC half of the embedded SIP stack (RFC 3261 13.2, 17.1.1, 9.1): a UserAgent sends
 * INVITEs to a scripted peer over real loopback sockets, with T1 shrunk to 20 ms (64*T1 = 1.28 s).
 * Ports 51000-51019.
 */

const UA_PORT = 51000;
const TIMERS = { t1: 20, t2: 160, t4: 200 };

const ua = new UserAgent({
  listen: [
    { transport: 'udp', host: '127.0.0.1', port: UA_PORT },
    { transport: 'tcp', host: '127.0.0.1', port: UA_PORT },
  ],
  limits: { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 },
  logger: silentLogger,
  userAgent: 'uac-test',
  sessionExpires: 1800,
  timers: TIMERS,
});

let nextPeerPort = 51001;
const peers: SipPeer[] = [];
async function peer(address = '127.0.0.1'): Promise<SipPeer> {
  const p = await SipPeer.open('udp', UA_PORT, nextPeerPort++, address);
  peers.push(p);
  return p;
}

/** A response to `req` written by hand, so retransmissions carry the same To tag. */
function response(req: SipRequest, status: number, toTag: string | undefined, extra: string[] = [], body = ''): string {
  const lines = [`SIP/2.0 ${status} Status`];
  for (const v of rawHeaders(req, 'via')) lines.push(`Via: ${v}`);
  lines.push(`From: ${headerValue(req, 'from') ?? ''}`);
  const to = headerValue(req, 'to') ?? '';
  lines.push(`To: ${toTag !== undefined && !/tag=/.test(to) ? `${to};tag=${toTag}` : to}`);
  lines.push(`Call-ID: ${headerValue(req, 'call-id') ?? ''}`, `CSeq: ${headerValue(req, 'cseq') ?? ''}`);
  lines.push(...extra);
  if (body !== '') lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return lines.join('\r\n');
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function isReq(method: string, callId: string): (m: SipMessage) => boolean {
  return (m) => m.kind === 'request' && m.method === method && headerValue(m, 'call-id') === callId;
}

function branchOf(m: SipMessage): string | undefined {
  return parseVia(rawHeaders(m, 'via')[0] ?? '')?.branch;
}

function call(p: SipPeer, transport: 'udp' | 'tcp' = 'udp', port = p.port): ClientSession {
  return ua.invite({
    uri: `sip:+441234@127.0.0.1:${port}`,
    target: { transport, address: '127.0.0.1', port },
    from: '"Edge" <sip:+33140000001@127.0.0.1>',
    to: '<sip:+441234@127.0.0.1>',
    sdp: offerSdp(51900),
    headers: [{ name: 'x-test', value: 'yes' }],
  });
}

beforeAll(async () => {
  await ua.start();
});

afterAll(async () => {
  for (const p of peers) await p.close();
  await ua.stop(100);
});

describe('UAC INVITE (client transaction, dialog)', () => {
  it('retransmits the INVITE until a provisional (Timer A), relays 180, and the 2xx makes the dialog: route set reversed, Contact as target, ACK there', async () => {
    const p = await peer();
    p.autoAnswer.clear();
    const s = call(p);
    const provisional: number[] = [];
    s.on('provisional', (r) => provisional.push(r.status));
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    await p.waitFor((m) => p.count(isReq('INVITE', s.callId)) >= 3 && m.kind === 'request');
    expect(headerValue(inv, 'x-test')).toBe('yes');
    expect(headerValue(inv, 'max-forwards')).toBe('70');
    // Supported: timer is not offered on the UAC side (we never refresh there).
    expect(headerValues(inv, 'supported')).not.toContain('timer');
    p.send(response(inv, 180, 'uas1'));
    await until(() => provisional.length === 1);
    const rr = [`Record-Route: <sip:far.invalid;lr>, <sip:127.0.0.1:${p.port};lr>`];
    p.send(response(inv, 200, 'uas1', [...rr, `Contact: <sip:uas@127.0.0.1:${p.port};ob>`], offerSdp(51902)));
    const outcome = await s.outcome;
    expect(outcome.kind).toBe('answered');
    expect(provisional).toEqual([180]);
    const sentBefore = p.count(isReq('INVITE', s.callId));
    const ack = (await p.request('ACK', s.callId)) as SipRequest;
    // 12.1.2: the route set is the Record-Route reversed; loose routing keeps the target as the Request-URI.
    expect(rawHeaders(ack, 'route')).toEqual([`<sip:127.0.0.1:${p.port};lr>`, '<sip:far.invalid;lr>']);
    expect(ack.uri).toBe(`sip:uas@127.0.0.1:${p.port};ob`);
    expect(headerValue(ack, 'cseq')).toBe(`${(headerValue(inv, 'cseq') ?? '').split(' ')[0]} ACK`);
    expect(branchOf(ack)).not.toBe(branchOf(inv)); // the 2xx's ACK is a transaction of its own
    expect(s.state).toBe('confirmed');
    expect(s.dialog?.remoteTag).toBe('uas1');
    // No INVITE retransmission after the provisional.
    expect(p.count(isReq('INVITE', s.callId))).toBe(sentBefore);

    // A retransmitted 2xx is ACKed again, with the same ACK.
    p.send(response(inv, 200, 'uas1', [...rr, `Contact: <sip:uas@127.0.0.1:${p.port};ob>`], offerSdp(51902)));
    const acks = await p.waitFor((m) => p.count(isReq('ACK', s.callId)) === 2 && m.kind === 'request' && m.method === 'ACK');
    expect(branchOf(acks)).toBe(branchOf(ack));

    // BYE from us goes along the route set.
    await s.bye();
    const bye = (await p.request('BYE', s.callId)) as SipRequest;
    expect(rawHeaders(bye, 'route')).toHaveLength(2);
    expect(headerValue(bye, 'to')).toContain('tag=uas1');
  });

  it('Timer B: no answer at all ends the INVITE as a timeout after 64*T1, with retransmissions over UDP', async () => {
    const p = await peer();
    const s = call(p);
    const outcome = await s.outcome;
    expect(outcome.kind).toBe('timeout');
    // T1 doubling over 64*T1: 7 retransmissions after the first send (RFC 3261 17.1.1.2).
    expect(p.count(isReq('INVITE', s.callId))).toBeGreaterThanOrEqual(6);
    expect(s.state).toBe('terminated');
  });

  it('over TCP the INVITE is sent once (no Timer A), and Timer B still ends it', async () => {
    let data = '';
    const socks: net.Socket[] = [];
    const server = net.createServer((sock) => {
      socks.push(sock);
      sock.on('data', (d: Buffer) => (data += d.toString()));
    });
    await new Promise<void>((r) => server.listen(51015, '127.0.0.1', () => r()));
    try {
      const s = ua.invite({
        uri: 'sip:+441234@127.0.0.1:51015;transport=tcp',
        target: { transport: 'tcp', address: '127.0.0.1', port: 51015 },
        from: '<sip:edge@127.0.0.1>',
        to: '<sip:+441234@127.0.0.1>',
        sdp: offerSdp(51910),
      });
      expect((await s.outcome).kind).toBe('timeout');
      expect(data.match(/^INVITE sip:/gm)).toHaveLength(1);
      expect(data).toMatch(/^Via: SIP\/2\.0\/TCP /m);
      expect(data).toMatch(/^Contact: <sip:pay-ivr@127\.0\.0\.1:51000;transport=tcp>/m);
    } finally {
      for (const k of socks) k.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a provisional stops Timer B: a ringing INVITE is not timed out by the transaction', async () => {
    const p = await peer();
    const s = call(p);
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    p.send(response(inv, 180, 'ring'));
    // Wait past 64*T1, then answer: the INVITE is still alive.
    await new Promise((r) => setTimeout(r, 64 * TIMERS.t1 + 200));
    p.send(response(inv, 200, 'ring', [`Contact: <sip:uas@127.0.0.1:${p.port}>`], offerSdp(51904)));
    expect((await s.outcome).kind).toBe('answered');
    await s.bye();
  });

  it('a non-2xx final is ACKed by the transaction (same branch, To tag of the response), again for each retransmission', async () => {
    const p = await peer();
    const s = call(p);
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    p.send(response(inv, 486, 'busy'));
    const outcome = await s.outcome;
    expect(outcome.kind === 'rejected' && outcome.response.status).toBe(486);
    const ack = (await p.request('ACK', s.callId)) as SipRequest;
    expect(branchOf(ack)).toBe(branchOf(inv));
    expect(headerValue(ack, 'to')).toContain('tag=busy');
    expect(ack.uri).toBe(inv.uri);
    p.send(response(inv, 486, 'busy'));
    await p.waitFor((m) => m.kind === 'request' && p.count(isReq('ACK', s.callId)) === 2);
  });

  it('CANCEL waits for a provisional (9.1), uses the INVITE branch, and the 487 ends the INVITE as cancelled', async () => {
    const p = await peer();
    p.autoAnswer.clear();
    const s = call(p);
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    s.cancel('SIP;cause=487;text="caller cancelled"');
    p.send(response(inv, 100, undefined));
    const cancel = (await p.request('CANCEL', s.callId)) as SipRequest;
    expect(branchOf(cancel)).toBe(branchOf(inv));
    expect(cancel.uri).toBe(inv.uri);
    expect(headerValue(cancel, 'cseq')).toBe(`${(headerValue(inv, 'cseq') ?? '').split(' ')[0]} CANCEL`);
    expect(headerValue(cancel, 'reason')).toContain('cause=487');
    p.send(response(cancel, 200, 'c1'));
    p.send(response(inv, 487, 'c1'));
    expect((await s.outcome).kind).toBe('cancelled');
    await p.request('ACK', s.callId);
    expect(s.state).toBe('terminated');
  });

  it('a 2xx that crosses the CANCEL is ACKed, then ended with BYE', async () => {
    const p = await peer();
    p.autoAnswer.clear();
    const s = call(p);
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    p.send(response(inv, 180, 'x1'));
    await until(() => s.state === 'early');
    s.cancel();
    await p.request('CANCEL', s.callId);
    p.send(response(inv, 200, 'x1', [`Contact: <sip:uas@127.0.0.1:${p.port}>`], offerSdp(51906)));
    expect((await s.outcome).kind).toBe('cancelled');
    await p.request('ACK', s.callId);
    const bye = (await p.request('BYE', s.callId)) as SipRequest;
    expect(headerValue(bye, 'to')).toContain('tag=x1');
  });

  it('in the UAC dialog: BYE from the peer ends it; a request from another address gets 403 (the peer rule)', async () => {
    const p = await peer();
    const s = call(p);
    const inv = (await p.request('INVITE', s.callId)) as SipRequest;
    p.send(response(inv, 200, 'd1', [`Contact: <sip:uas@127.0.0.1:${p.port}>`], offerSdp(51908)));
    await s.outcome;
    const to = headerValue(inv, 'from') ?? ''; // our From is their To
    const from = `${headerValue(inv, 'to') ?? ''};tag=d1`;
    const bye = (branch: string, via: string): string =>
      [
        `BYE sip:pay-ivr@127.0.0.1:${UA_PORT} SIP/2.0`,
        `Via: SIP/2.0/UDP ${via};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: ${from}`,
        `To: ${to}`,
        `Call-ID: ${s.callId}`,
        'CSeq: 10 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    const third = await peer('127.0.0.2');
    third.send(bye('z9hG4bKthird1', `127.0.0.2:${third.port}`));
    const refused = await third.waitFor((m) => m.kind === 'response');
    expect(refused.kind === 'response' && refused.status).toBe(403);
    expect(s.state).toBe('confirmed');
    const ended = new Promise((r) => s.on('terminated', r));
    p.send(bye('z9hG4bKpeer1', `127.0.0.1:${p.port}`));
    const ok = await p.waitFor((m) => m.kind === 'response' && headerValue(m, 'cseq') === '10 BYE');
    expect(ok.kind === 'response' && ok.status).toBe(200);
    expect(await ended).toEqual({ by: 'remote', reason: 'BYE' });
  });
});
