import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema, type Config } from '../src/config/schema.js';
import { EmbeddedBackend } from '../src/telephony/embedded/backend.js';
import type { CallEndInfo, InboundCall } from '../src/telephony/types.js';
import { headerValue } from '../src/telephony/embedded/sip/message.js';
import { FakeMedia } from './support/fake-media.js';
import { SipPeer, offerSdp, type PeerCall } from './support/sip-peer.js';
import { selfSignedCert } from './support/certs.js';

/**
 * The SIP edge against a hostile network, with real sockets: a third party on 127.0.0.2 (the
 * test's own loopback) tries to steer a call, refused INVITEs are measured in bytes out per byte
 * in, and one source holding 2,000 TCP connections (some trickling a byte a second) must not
 * stop a TCP or TLS call from 127.0.0.1. Timers are shrunk (T1 = 20 ms, so Timer H is 1.28 s).
 */

const PORT = 16060;
const TIMERS = { t1: 20, t2: 160, t4: 200 };
const OTHER = '127.0.0.2';

function config(over: Record<string, unknown> = {}, sip: Record<string, unknown> = {}): Config {
  return configSchema.parse({
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: PORT }, { transport: 'tcp', host: '127.0.0.1', port: PORT }], ...sip },
    rtp: { host: '127.0.0.1', portMin: 32000, portMax: 32999 },
    ...over,
  });
}

interface Harness {
  backend: EmbeddedBackend;
  media: FakeMedia;
  calls: InboundCall[];
  ended: Map<string, CallEndInfo>;
  digits: string[];
  logs: string[];
}

async function start(cfg: Config, answer = true): Promise<Harness> {
  const media = new FakeMedia();
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
  const backend = new EmbeddedBackend(cfg, logger, { media, timers: TIMERS, ackGraceMs: 2000, offerTimeoutMs: 5000 });
  const h: Harness = { backend, media, calls: [], ended: new Map(), digits: [], logs };
  backend.on('call', (call) => {
    h.calls.push(call);
    call.on('ended', (info) => h.ended.set(call.callId, info));
    call.on('digit', (d) => h.digits.push(String(d)));
    if (answer) void call.answer().catch(() => undefined);
  });
  await backend.start();
  return h;
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function establish(peer: SipPeer): Promise<PeerCall> {
  const c = peer.newCall();
  peer.send(peer.invite(c));
  const ok = await peer.response(c.callId, 200, 'INVITE');
  c.to = headerValue(ok, 'to');
  peer.send(peer.inDialog(c, 'ACK', { cseq: 1 }));
  return c;
}

describe('dialogs answer only to their peer', () => {
  let h: Harness;
  const peers: SipPeer[] = [];
  beforeAll(async () => {
    h = await start(config());
  });
  afterAll(async () => {
    await h.backend.stop();
  });
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('an UPDATE or re-INVITE from another address gets 403 and moves no media', async () => {
    const caller = await SipPeer.open('udp', PORT);
    const intruder = await SipPeer.open('udp', PORT, 0, OTHER);
    peers.push(caller, intruder);
    const c = await establish(caller);
    const ms = h.media.created[h.media.created.length - 1];
    const offersBefore = ms?.offers.length ?? 0;
    // The intruder knows the Call-ID and both tags (they travel in clear).
    intruder.send(intruder.inDialog(c, 'UPDATE', { cseq: 2, body: offerSdp(45000) }));
    await intruder.response(c.callId, 403, 'UPDATE');
    intruder.send(intruder.inDialog(c, 'INVITE', { cseq: 3, body: offerSdp(45002) }));
    await intruder.response(c.callId, 403, 'INVITE');
    intruder.send(intruder.inDialog(c, 'ACK', { cseq: 3, body: offerSdp(45004) }));
    expect(ms?.offers.length).toBe(offersBefore);
    expect(ms?.answers).toEqual([]);
    // The caller itself still can.
    caller.send(caller.inDialog(c, 'UPDATE', { cseq: 4, body: offerSdp(40002) }));
    await caller.response(c.callId, 200, 'UPDATE');
    expect(ms?.offers.length).toBe(offersBefore + 1);
    expect(h.logs.some((l) => l.includes('in-dialog request from another address refused') && l.includes(OTHER))).toBe(true);
  });

  it('an INFO key press from another address gets 403 and reaches no one', async () => {
    const caller = await SipPeer.open('udp', PORT);
    const intruder = await SipPeer.open('udp', PORT, 0, OTHER);
    peers.push(caller, intruder);
    const c = await establish(caller);
    await until(() => h.calls.some((x) => x.callId === c.callId && x.state === 'answered'));
    const before = h.digits.length;
    intruder.send(intruder.inDialog(c, 'INFO', { cseq: 2, contentType: 'application/dtmf-relay', body: 'Signal=9\r\nDuration=160\r\n' }));
    await intruder.response(c.callId, 403, 'INFO');
    caller.send(caller.inDialog(c, 'INFO', { cseq: 3, contentType: 'application/dtmf-relay', body: 'Signal=5\r\nDuration=160\r\n' }));
    await caller.response(c.callId, 200, 'INFO');
    await until(() => h.digits.length > before);
    expect(h.digits.slice(before)).toEqual(['5']);
    caller.send(caller.inDialog(c, 'BYE', { cseq: 4 }));
    await caller.response(c.callId, 200, 'BYE');
  });

  it('a BYE from another address does not end the call; the caller\'s does', async () => {
    const caller = await SipPeer.open('udp', PORT);
    const intruder = await SipPeer.open('udp', PORT, 0, OTHER);
    peers.push(caller, intruder);
    const c = await establish(caller);
    intruder.send(intruder.inDialog(c, 'BYE', { cseq: 2 }));
    await intruder.response(c.callId, 403, 'BYE');
    const call = h.calls.find((x) => x.callId === c.callId);
    expect(call?.state).toBe('answered');
    expect(h.ended.has(c.callId)).toBe(false);
    caller.send(caller.inDialog(c, 'BYE', { cseq: 3 }));
    await caller.response(c.callId, 200, 'BYE');
    await until(() => h.ended.has(c.callId));
  });

  it('a request on another transport from the same address gets 403', async () => {
    const caller = await SipPeer.open('udp', PORT);
    const overTcp = await SipPeer.open('tcp', PORT);
    peers.push(caller, overTcp);
    const c = await establish(caller);
    overTcp.send(overTcp.inDialog(c, 'BYE', { cseq: 2 }));
    await overTcp.response(c.callId, 403, 'BYE');
    expect(h.ended.has(c.callId)).toBe(false);
    caller.send(caller.inDialog(c, 'BYE', { cseq: 3 }));
    await caller.response(c.callId, 200, 'BYE');
  });

  it('an allow-listed signalling address may send in the dialog', async () => {
    const h2 = await start(config({ security: { allowList: ['127.0.0.1/32', `${OTHER}/32`] } }, { listen: [{ transport: 'udp', host: '127.0.0.1', port: PORT + 10 }] }));
    try {
      const caller = await SipPeer.open('udp', PORT + 10);
      const edge = await SipPeer.open('udp', PORT + 10, 0, OTHER);
      peers.push(caller, edge);
      const c = await establish(caller);
      edge.send(edge.inDialog(c, 'BYE', { cseq: 2 }));
      await edge.response(c.callId, 200, 'BYE');
    } finally {
      await h2.backend.stop();
    }
  });
});

describe('refused INVITEs cost the sender more than us', () => {
  /** Sends one INVITE from a raw socket; bytes that came back once Timer H (64*T1) has passed. */
  async function refusedExchange(port: number): Promise<{ bytesIn: number; bytesOut: number; datagrams: string[] }> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const got: string[] = [];
    s.on('message', (b) => got.push(b.toString('latin1')));
    const peer = await SipPeer.open('udp', port);
    const c = peer.newCall();
    // An INVITE with an SDP naming another address: nothing may ever be sent there either.
    const invite = Buffer.from(peer.invite(c, { sdp: offerSdp(46000).replace(/127\.0\.0\.1/g, '192.0.2.99') }).replace(`127.0.0.1:${peer.port};branch`, `127.0.0.1:${s.address().port};branch`));
    await peer.close();
    s.send(invite, port, '127.0.0.1');
    await sleep(64 * TIMERS.t1 + 400);
    await new Promise<void>((r) => s.close(() => r()));
    return { bytesIn: invite.length, bytesOut: got.reduce((n, d) => n + Buffer.byteLength(d, 'latin1'), 0), datagrams: got };
  }

  it('not allowed: one 403, no 100, no retransmission, no media', async () => {
    const h = await start(config({ security: { allowList: ['10.0.0.0/8'] } }, { listen: [{ transport: 'udp', host: '127.0.0.1', port: PORT + 1 }] }));
    try {
      const r = await refusedExchange(PORT + 1);
      console.log(`refused INVITE (403): ${r.bytesIn} bytes in, ${r.bytesOut} bytes out in ${r.datagrams.length} datagram(s), ratio ${(r.bytesOut / r.bytesIn).toFixed(2)}`);
      expect(r.datagrams).toHaveLength(1);
      expect(r.datagrams[0]).toMatch(/^SIP\/2\.0 403 /);
      expect(r.bytesOut / r.bytesIn).toBeLessThan(1);
      expect(h.media.created).toHaveLength(0);
      expect(h.backend.userAgent?.transactionCount).toBe(0);
    } finally {
      await h.backend.stop();
    }
  });

  it('rate-limited: one 503 per refused INVITE, never retransmitted', async () => {
    const h = await start(config({ security: { ratePerSource: 1 } }, { listen: [{ transport: 'udp', host: '127.0.0.1', port: PORT + 2 }] }), false);
    try {
      const peer = await SipPeer.open('udp', PORT + 2);
      const a = peer.newCall();
      peer.send(peer.invite(a));
      await until(() => h.calls.length === 1);
      await peer.close();
      const r = await refusedExchange(PORT + 2);
      console.log(`rate-limited INVITE (503): ${r.bytesIn} bytes in, ${r.bytesOut} bytes out in ${r.datagrams.length} datagram(s), ratio ${(r.bytesOut / r.bytesIn).toFixed(2)}`);
      expect(r.datagrams).toHaveLength(1);
      expect(r.datagrams[0]).toMatch(/^SIP\/2\.0 503 /);
      expect(r.bytesOut / r.bytesIn).toBeLessThan(1);
      expect(h.media.created).toHaveLength(1);
    } finally {
      await h.backend.stop();
    }
  });

  it('security.refusal: silent sends nothing at all', async () => {
    const h = await start(config({ security: { allowList: ['10.0.0.0/8'], refusal: 'silent' } }, { listen: [{ transport: 'udp', host: '127.0.0.1', port: PORT + 3 }] }));
    try {
      const r = await refusedExchange(PORT + 3);
      console.log(`refused INVITE (silent): ${r.bytesIn} bytes in, ${r.bytesOut} bytes out`);
      expect(r.datagrams).toEqual([]);
      // Logged once for the source and rule, however many arrive.
      await refusedExchange(PORT + 3);
      expect(h.logs.filter((l) => l.includes('INVITE refused'))).toHaveLength(1);
    } finally {
      await h.backend.stop();
    }
  });
});

describe('TCP and TLS under a connection flood from one source', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pay-ivr-flood-'));
    selfSignedCert(dir);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens `n` connections from `from` in batches; resolves with the sockets (closed ones included). */
  async function flood(port: number, n: number, from: string): Promise<{ sockets: net.Socket[]; closed: Set<net.Socket> }> {
    const sockets: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    for (let i = 0; i < n; i += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, n - i) }, () => new Promise<void>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
          s.on('error', () => undefined);
          s.once('close', () => {
            closed.add(s);
            resolve();
          });
          s.once('connect', () => resolve());
          sockets.push(s);
        })),
      );
    }
    return { sockets, closed };
  }

  it('2,000 connections from 127.0.0.2 (some trickling 1 byte/s) do not stop a TCP and a TLS call from 127.0.0.1', async () => {
    // The process needs ~2 fds per connection: Node raises the soft RLIMIT_NOFILE to the hard limit
    // at start; CI must allow a few thousand (ulimit -n).
    const h = await start(
      config({}, {
        listen: [{ transport: 'tcp', host: '127.0.0.1', port: PORT + 5 }, { transport: 'tls', host: '127.0.0.1', port: PORT + 6 }],
        tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
        streams: { maxConnectionsPerSource: 32, maxConnections: 1024, messageTimeoutMs: 1500, idleTimeoutMs: 4000 },
      }),
    );
    const held: net.Socket[] = [];
    const timers: ReturnType<typeof setInterval>[] = [];
    try {
      const tcp = await flood(PORT + 5, 1800, OTHER);
      const tlsRaw = await flood(PORT + 6, 200, OTHER);
      held.push(...tcp.sockets, ...tlsRaw.sockets);
      const isOpen = (s: net.Socket): boolean => !tcp.closed.has(s) && !tlsRaw.closed.has(s);
      // Only the per-source cap's worth stays open; the rest are closed as they are accepted.
      await until(() => held.filter(isOpen).length <= 32, 10_000);
      const open = held.filter(isOpen);
      expect(open.length).toBeLessThanOrEqual(32);
      expect(h.backend.userAgent?.transport.inboundCount).toBeLessThanOrEqual(32);
      // Some of the held ones trickle an INVITE a byte a second.
      const tricklers = open.slice(0, 8);
      const text = 'INVITE sip:x@127.0.0.1 SIP/2.0\r\n';
      for (const s of tricklers) {
        let i = 0;
        s.write(text[i++] as string);
        timers.push(setInterval(() => s.writable && s.write(text[i++ % text.length] as string), 1000));
      }

      const tcpCaller = await SipPeer.open('tcp', PORT + 5);
      const tlsCaller = await SipPeer.open('tls', PORT + 6);
      try {
        for (const caller of [tcpCaller, tlsCaller]) {
          const c = await establish(caller);
          caller.send(caller.inDialog(c, 'BYE', { cseq: 2 }));
          await caller.response(c.callId, 200, 'BYE');
        }
      } finally {
        await tcpCaller.close();
        await tlsCaller.close();
      }
      expect(h.calls).toHaveLength(2);

      // Trickling does not keep a connection: the message deadline closes it while it still sends.
      const allClosed = new Set([...tcp.closed, ...tlsRaw.closed]);
      for (const s of held) s.once('close', () => allClosed.add(s));
      await until(() => tricklers.every((s) => s.destroyed || allClosed.has(s)), 10_000);
      // And the idle ones go after the idle deadline.
      await until(() => held.every((s) => allClosed.has(s)), 15_000);
      // One log line for ~1,970 refusals from that source (once per source per minute).
      const refusedLines = h.logs.filter((l) => l.includes('sip: connection refused') && l.includes(OTHER));
      console.log(`flood: ${held.length} connections from ${OTHER}, ${open.length} held at once, ${refusedLines.length} refusal log line(s); TCP and TLS calls from 127.0.0.1 answered`);
      expect(refusedLines).toHaveLength(1);
    } finally {
      for (const t of timers) clearInterval(t);
      for (const s of held) s.destroy();
      await h.backend.stop();
    }
  }, 60_000);

  it('the total cap holds whatever the sources', async () => {
    const h = await start(config({}, { listen: [{ transport: 'tcp', host: '127.0.0.1', port: PORT + 8 }], streams: { maxConnections: 4, maxConnectionsPerSource: 100 } }));
    try {
      const a = await flood(PORT + 8, 5, OTHER);
      const b = await flood(PORT + 8, 5, '127.0.0.3');
      const all = [...a.sockets, ...b.sockets];
      const isOpen = (s: net.Socket): boolean => !a.closed.has(s) && !b.closed.has(s);
      await until(() => all.filter(isOpen).length <= 4);
      expect(all.filter(isOpen)).toHaveLength(4);
      expect(h.logs.some((l) => l.includes('sip.streams.maxConnections reached'))).toBe(true);
      for (const s of all) s.destroy();
    } finally {
      await h.backend.stop();
    }
  });

  it('the allow-list is checked at accept: a connection from elsewhere is closed before a byte is read', async () => {
    const h = await start(config({ security: { allowList: ['127.0.0.1/32'] } }, { listen: [{ transport: 'tcp', host: '127.0.0.1', port: PORT + 7 }] }));
    try {
      const { sockets, closed } = await flood(PORT + 7, 3, OTHER);
      await until(() => sockets.every((s) => closed.has(s)));
      expect(h.logs.filter((l) => l.includes('sip: connection refused') && l.includes('source not in security.allowList'))).toHaveLength(1);
      // The allowed source still gets in.
      const caller = await SipPeer.open('tcp', PORT + 7);
      try {
        await establish(caller);
      } finally {
        await caller.close();
      }
    } finally {
      await h.backend.stop();
    }
  });
});
