import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { silentLogger } from '../src/log.js';
import { parseVia } from '../src/telephony/embedded/sip/message.js';
import { parseMessage, SipParseError } from '../src/telephony/embedded/sip/parser.js';
import { UserAgent } from '../src/telephony/embedded/sip/user-agent.js';
import { loadRfc4475, rfc4475FixtureNames, RFC4475_CASES, type TortureCase } from './support/rfc4475.js';

/**
 * RFC 4475 section 3 over a real UDP socket: each torture message is sent to the UAS and the
 * final responses it provokes are compared with what the RFC says. Responses go where RFC 3261
 * 18.2.2 says (source address, Via port or the source port with rport), so the test listens on
 * 127.0.0.1:5060 and on every other sent-by port the fixtures name. After each message a plain
 * OPTIONS is sent: UDP from one socket is handled in order, so every response to the message
 * under test comes before the OPTIONS' 200, and silence can be asserted without a timer.
 */

const UAS_PORT = 16160;
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

interface Got {
  status: number;
  callId: string | undefined;
  raw: string;
}

describe('RFC 4475 torture messages', () => {
  let ua: UserAgent;
  const sockets: dgram.Socket[] = [];
  let main: dgram.Socket;
  const got: Got[] = [];
  let waiter: { callId: string; resolve: () => void } | undefined;
  let seq = 0;

  beforeAll(async () => {
    ua = new UserAgent({
      listen: [{ transport: 'udp', host: '127.0.0.1', port: UAS_PORT }],
      limits: { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 },
      logger: silentLogger,
      userAgent: 'pay-ivr-test',
      sessionExpires: 1800,
      // Long T1: no 2xx retransmission lands in a later case's window.
      timers: { t1: 10_000, t2: 40_000, t4: 50_000 },
    });
    ua.on('invite', (s) => void s.accept(SDP, { lateOffer: false }));
    await ua.start();
    const ports = new Set<number>([5060]);
    for (const n of rfc4475FixtureNames()) {
      const text = loadRfc4475(n).toString('latin1');
      const m = /^(?:via|v)[ \t]*:[ \t]*(SIP[^\r]*)/im.exec(text);
      const via = m === null ? undefined : parseVia((m[1] as string).split(',')[0] as string);
      if (via?.port !== undefined) ports.add(via.port);
    }
    for (const port of ports) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(port, '127.0.0.1', () => r()));
      s.on('message', (b) => {
        // Read leniently: an answer to a malformed request echoes malformed headers.
        const text = b.toString('latin1');
        const st = /^SIP\/2\.0 (\d{3}) /.exec(text);
        if (st === null) return;
        const status = Number(st[1]);
        const callId = /\r\n(?:call-id|i)[ \t]*:[ \t]*(\S+)/i.exec(text)?.[1];
        if (waiter !== undefined && callId === waiter.callId && status >= 200) {
          // Let the other sockets' queued datagrams be read first.
          const w = waiter;
          waiter = undefined;
          setImmediate(() => setImmediate(w.resolve));
          return;
        }
        got.push({ status, callId, raw: text });
      });
      sockets.push(s);
      if (port === 5060) main = s;
    }
  });

  afterAll(async () => {
    await ua.stop(0);
    await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  });

  /** Sends `bytes`, then a sentinel OPTIONS; the final responses received before the sentinel's 200. */
  async function exchange(bytes: Buffer): Promise<Got[]> {
    const from = got.length;
    const callId = `sentinel-${++seq}`;
    const sentinel = [
      `OPTIONS sip:pay-ivr@127.0.0.1:${UAS_PORT} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsentinel${seq};rport`,
      'Max-Forwards: 70',
      'From: <sip:test@127.0.0.1>;tag=s',
      'To: <sip:pay-ivr@127.0.0.1>',
      `Call-ID: ${callId}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const done = new Promise<void>((resolve) => (waiter = { callId, resolve }));
    main.send(bytes, UAS_PORT, '127.0.0.1');
    main.send(Buffer.from(sentinel), UAS_PORT, '127.0.0.1');
    await done;
    return got.slice(from).filter((g) => g.status >= 200);
  }

  function handled(c: TortureCase, finals: Got[]): boolean {
    if ('silent' in c.expect) return finals.length === 0;
    return finals.length === 1 && c.expect.status.includes((finals[0] as Got).status);
  }

  it('has a fixture and an expectation for each of the 49 messages', () => {
    expect(rfc4475FixtureNames()).toEqual(RFC4475_CASES.map((c) => c.name).sort());
    expect(RFC4475_CASES).toHaveLength(49);
  });

  it('parses the well-formed ones and refuses the malformed ones with the RFC status', () => {
    const wrong: string[] = [];
    for (const c of RFC4475_CASES) {
      let status: number | undefined;
      try {
        parseMessage(loadRfc4475(c.name));
      } catch (e) {
        if (!(e instanceof SipParseError)) throw e;
        status = e.status;
      }
      if (c.parses ? status !== undefined : status === undefined || ('status' in c.expect && !c.expect.status.includes(status))) wrong.push(c.name);
    }
    expect(wrong).toEqual([]);
  });

  it('answers each as RFC 4475 says', async () => {
    const rows: string[] = [];
    let score = 0;
    for (const c of RFC4475_CASES) {
      const finals = await exchange(loadRfc4475(c.name));
      const good = handled(c, finals);
      if (good) score++;
      const want = 'silent' in c.expect ? 'silence' : c.expect.status.join('/');
      const saw = finals.length === 0 ? 'silence' : finals.map((f) => f.status).join(',');
      rows.push(`${good ? 'ok  ' : 'FAIL'} ${c.section.padEnd(9)} ${c.name.padEnd(11)} want ${want.padEnd(8)} got ${saw}`);
    }
    console.log(`RFC 4475 score: ${score}/${RFC4475_CASES.length}\n${rows.join('\n')}`);
    expect(rows.filter((r) => r.startsWith('FAIL'))).toEqual([]);
  });
});

describe('RFC 3581 and OPTIONS answers', () => {
  let ua: UserAgent;
  beforeAll(async () => {
    ua = new UserAgent({
      listen: [{ transport: 'udp', host: '127.0.0.1', port: UAS_PORT + 1 }],
      limits: { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 },
      logger: silentLogger,
      userAgent: 'pay-ivr-test',
      sessionExpires: 1800,
    });
    await ua.start();
  });
  afterAll(async () => {
    await ua.stop(0);
  });

  async function ask(via: string, bind: number): Promise<{ text: string; port: number }> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(bind, '127.0.0.1', () => r()));
    const port = s.address().port;
    const answer = new Promise<string>((r) => s.once('message', (b) => r(b.toString('latin1'))));
    s.send(
      Buffer.from(
        [
          `OPTIONS sip:pay-ivr@127.0.0.1:${UAS_PORT + 1} SIP/2.0`,
          via.replace('PORT', String(port)),
          'Max-Forwards: 70',
          'From: <sip:probe@example.com>;tag=p1',
          'To: <sip:pay-ivr@example.com>',
          `Call-ID: rport-${port}`,
          'CSeq: 1 OPTIONS',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      ),
      UAS_PORT + 1,
      '127.0.0.1',
    );
    const text = await answer;
    await new Promise<void>((r) => s.close(() => r()));
    return { text, port };
  }

  it('answers to the source port with rport and received filled in, with a To tag', async () => {
    // The Via names another host and port: with rport the answer still comes back here.
    const { text, port } = await ask('Via: SIP/2.0/UDP 192.0.2.7:5099;branch=z9hG4bKrport1;rport', 0);
    expect(text).toMatch(/^SIP\/2\.0 200 /);
    expect(text).toContain(`Via: SIP/2.0/UDP 192.0.2.7:5099;branch=z9hG4bKrport1;rport=${port};received=127.0.0.1\r\n`);
    expect(text).toMatch(/\r\nTo: <sip:pay-ivr@example\.com>;tag=[0-9a-f]+\r\n/);
  });

  it('without rport answers to the Via port at the source address, with received', async () => {
    const { text } = await ask('Via: SIP/2.0/UDP 192.0.2.7:5098;branch=z9hG4bKrport2', 5098);
    expect(text).toContain('Via: SIP/2.0/UDP 192.0.2.7:5098;branch=z9hG4bKrport2;received=127.0.0.1\r\n');
  });
});
