import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { headerValue, type SipRequest } from '../src/telephony/embedded/sip/message.js';
import { Baresip } from './support/baresip.js';
import { SipPeer } from './support/sip-peer.js';
import dgram from 'node:dgram';
import { parseMessage } from '../src/telephony/embedded/sip/parser.js';
import { Capture, eventKeys, isKnownG711, promptAudioIndex, rtpPackets, sipReadable, tlsAppDataRecords, tlsVersions, tsharkEventCodes, udpPortsIn, type RtpPacket } from './support/capture.js';
import { selfSignedCert } from './support/certs.js';

/**
 * A real softphone pays over SIP/TLS with mandatory SDES-SRTP through the whole product
 * (baresip-core's TLS transport and srtp module; pay-ivr with `rtp.srtp: required`), and the
 * call is handed back (REFER) to an agent. A capture of loopback during the call is read the way
 * a sniffer on the path would read it: no SIP in clear on the TLS port, TLS 1.2, no RFC 2833 key
 * and no G.711 audio in the RTP. A plain call (UDP, RTP/AVP) to a second pay-ivr is captured too
 * and the same checks must find its SIP, its keys and its audio: they can fail.
 *
 * Certificate: self-signed, made here with openssl, with subjectAltName IP:127.0.0.1, and given to
 * baresip as its CA (sip_cafile). baresip 1.0 (libre 1.1) does not verify a SIP/TLS server's
 * certificate at all (tried: the call is established without sip_cafile too), so this test proves
 * encryption, not authentication; pay-ivr's TLS versions and its own certificate checks as a
 * client are in sip-tls.test.ts.
 */

const TLS_PORT = 27090;
const PLAIN_PORT = 27092;
const AGENT_PORT = 27800;
const RTP_TLS = { min: 37400, max: 37499 };
const RTP_PLAIN = { min: 37500, max: 37599 };
const PAN = '4242424242424242';
const EVENT_PT = 101; // baresip's telephone-event payload type

let dir: string;
let capture: Capture;
let appTls: App;
let appPlain: App;
let phoneTls: Baresip;
let phonePlain: Baresip;
let agent: TransferTarget;
const logTls = (): string => join(dir, 'tls.log');
const logPlain = (): string => join(dir, 'plain.log');

function appConfig(over: Record<string, unknown>): ReturnType<typeof parseConfig> {
  return parseConfig({
    admin: { enabled: false },
    profiles: {
      default: {
        language: 'en-US',
        currency: 'EUR',
        amountSource: 'entered',
        psp: { type: 'sandbox' },
        handBack: { automated: `sip:agent@127.0.0.1:${AGENT_PORT}` },
        timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 8000 },
      },
    },
    ...over,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-tls-srtp-'));
  selfSignedCert(dir, { ipSan: true });
  capture = await Capture.start(join(dir, 'call.pcapng'), `udp or tcp port ${TLS_PORT}`);
  appTls = await startApp(
    appConfig({
      sip: { listen: [{ transport: 'tls', host: '127.0.0.1', port: TLS_PORT }], tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } },
      rtp: { host: '127.0.0.1', portMin: RTP_TLS.min, portMax: RTP_TLS.max, srtp: 'required' },
      // baresip 1.0 formats a transfer target into a 256-byte event buffer: a longer Refer-To
      // (a full result UUI is ~100 characters, 200 in hex) makes it transfer to '' and answer the
      // REFER's NOTIFY with 500 (seen). Genesys has no such limit; a short UUI here.
      genesys: { uuiBudget: 32 },
      // Each app of this process has its own journal spool (one owner per spool file).
      journal: { dataDir: join(dir, 'data-tls') },
    }),
    createLogger({ level: 'debug', destination: logTls() }),
  );
  appPlain = await startApp(
    appConfig({ sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: PLAIN_PORT }] }, rtp: { host: '127.0.0.1', portMin: RTP_PLAIN.min, portMax: RTP_PLAIN.max, srtp: 'optional' }, journal: { dataDir: join(dir, 'data-plain') } }),
    createLogger({ level: 'debug', destination: logPlain() }),
  );
  phoneTls = await Baresip.start({ sipPort: 27600, ctrlPort: 27605, rtpMin: 27610, rtpMax: 27649, accountParams: ';regint=0;audio_codecs=PCMU,PCMA;mediaenc=srtp-mand', tlsCaFile: join(dir, 'cert.pem'), audioSeconds: 120 });
  phonePlain = await Baresip.start({ sipPort: 27700, ctrlPort: 27705, rtpMin: 27710, rtpMax: 27749 });
  // The hand-back target: answers baresip's transfer INVITE with an SDES answer of its own.
  agent = await TransferTarget.open(AGENT_PORT);
}, 30_000);

afterAll(async () => {
  await capture?.stop();
  await phoneTls?.stop();
  await phonePlain?.stop();
  await agent?.close();
  await appTls?.stop();
  await appPlain?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * The agent baresip transfers the call to, on UDP. baresip 1.0 copies the Refer-To's `?headers`
 * (the result UUI) into the INVITE's Request-URI, which RFC 3261 §19.1.5 forbids and pay-ivr's
 * parser refuses: they are cut from the request line before parsing. Answers 200 to everything.
 */
class TransferTarget {
  readonly #sock: dgram.Socket;
  readonly #waiters: ((r: SipRequest) => void)[] = [];
  readonly #invites: SipRequest[] = [];

  private constructor(sock: dgram.Socket) {
    this.#sock = sock;
    sock.on('message', (b, rinfo) => this.#onMessage(b, rinfo));
  }

  static async open(port: number): Promise<TransferTarget> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(port, '127.0.0.1', () => r()));
    return new TransferTarget(sock);
  }

  #onMessage(b: Buffer, rinfo: dgram.RemoteInfo): void {
    const text = b.toString('latin1').replace(/^([A-Z]+ [^ ?\r\n]+)\?[^ \r\n]* SIP\/2\.0/, '$1 SIP/2.0');
    let m;
    try {
      m = parseMessage(Buffer.from(text, 'latin1'));
    } catch {
      return;
    }
    if (m.kind !== 'request' || m.method === 'ACK') return;
    let body = '';
    const extra = [`Contact: <sip:agent@127.0.0.1:${AGENT_PORT}>`];
    if (m.method === 'INVITE') {
      body = sdesAnswer(m);
      extra.push('Content-Type: application/sdp');
      if (this.#invites.push(m) === 1) for (const w of this.#waiters.splice(0)) w(m);
    }
    const lines = ['SIP/2.0 200 OK'];
    for (const h of m.headers) {
      if (!['via', 'from', 'to', 'call-id', 'cseq'].includes(h.name)) continue;
      lines.push(`${h.name}: ${h.value}${h.name === 'to' && !/tag=/.test(h.value) ? ';tag=agent1' : ''}`);
    }
    lines.push(...extra, `Content-Length: ${Buffer.byteLength(body)}`, '', body);
    this.#sock.send(Buffer.from(lines.join('\r\n'), 'latin1'), rinfo.port, rinfo.address);
  }

  /** The first INVITE (already received or to come). */
  invite(): Promise<SipRequest> {
    const first = this.#invites[0];
    return first !== undefined ? Promise.resolve(first) : new Promise((r) => this.#waiters.push(r));
  }

  close(): Promise<void> {
    return new Promise((r) => this.#sock.close(() => r()));
  }
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function press(phone: Baresip, keys: string, gapMs = 350): Promise<void> {
  for (const k of keys) {
    expect((await phone.command('sndcode', k)).ok).toBe(true);
    await pause(gapMs);
  }
}

function sdesAnswer(invite: SipRequest): string {
  const offer = invite.body.toString('utf8');
  const crypto = /^a=crypto:(\d+) (AES_CM_128_HMAC_SHA1_(?:80|32))/m.exec(offer);
  return [
    'v=0',
    'o=agent 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    'm=audio 27850 RTP/SAVP 0 101',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    `a=crypto:${crypto?.[1] ?? '1'} ${crypto?.[2] ?? 'AES_CM_128_HMAC_SHA1_80'} inline:${randomBytes(30).toString('base64')}`,
    'a=sendrecv',
    '',
  ].join('\r\n');
}

describe('baresip pays over TLS with mandatory SRTP', () => {
  it('a plain RTP/AVP offer over TLS is refused: 488, Warning 302 says SRTP is required', async () => {
    const peer = await SipPeer.open('tls', TLS_PORT);
    try {
      const c = peer.newCall();
      peer.send(peer.invite(c));
      const r = await peer.response(c.callId, 488, 'INVITE');
      expect(headerValue(r, 'warning')).toBe('302 pay-ivr "SRTP required: offer RTP/SAVP with an SDES a=crypto line"');
      peer.send(peer.inDialog({ ...c, to: headerValue(r, 'to') }, 'ACK'));
    } finally {
      await peer.close();
    }
  });

  it('amount 25.50 EUR entered, Visa keyed over SRTP, approved and handed back to the agent', async () => {
    const from = phoneTls.events.length;
    expect((await phoneTls.command('dial', `sip:+18005550123@127.0.0.1:${TLS_PORT};transport=tls`)).ok).toBe(true);
    await phoneTls.waitEvent('CALL_ESTABLISHED', 10_000, from);
    const transfer = agent.invite();
    await pause(1500);
    await press(phoneTls, '25*5#');
    await pause(1000);
    await press(phoneTls, '1');
    await pause(800);
    await press(phoneTls, `${PAN}#`);
    await pause(800);
    await press(phoneTls, '1');
    await pause(800);
    await press(phoneTls, '1234');
    await pause(800);
    await press(phoneTls, '1');
    await pause(800);
    await press(phoneTls, '737');
    const inv = await transfer;
    expect(inv.body.toString('utf8')).toMatch(/^m=audio \d+ RTP\/SAVP /m); // baresip keeps SRTP on the agent leg too
    await appTls.idle();
    const [result] = await appTls.store.recent(1);
    expect(result).toMatchObject({ outcome: 'approved', amount: 2550, currency: 'EUR', brand: 'visa', last4: '4242' });
    expect(result?.handBack?.status).toBe('accepted');
    const log = readFileSync(logTls(), 'utf8');
    expect(log).toMatch(/"transport":"tls"[^\n]*"call offered"/);
    expect(log).toMatch(/"srtp":true[^\n]*"media negotiated"/);
    await phoneTls.command('hangup');
  }, 120_000);

  it('control: a plain call (UDP, RTP/AVP) to the second pay-ivr, keys 5860 pressed', async () => {
    const from = phonePlain.events.length;
    expect((await phonePlain.command('dial', `sip:+18005550123@127.0.0.1:${PLAIN_PORT}`)).ok).toBe(true);
    await phonePlain.waitEvent('CALL_ESTABLISHED', 10_000, from);
    await pause(2000);
    await press(phonePlain, '5860');
    await pause(500);
    const closed = phonePlain.events.length;
    await phonePlain.command('hangup');
    await phonePlain.waitEvent('CALL_CLOSED', 5000, closed);
    await appPlain.idle();
  }, 60_000);

  describe('what a sniffer on the path gets', () => {
    let tlsRtp: RtpPacket[];
    let plainRtp: RtpPacket[];
    const prompts = promptAudioIndex(resolve(__dirname, '..', 'prompts'));

    beforeAll(async () => {
      await capture.stop();
      tlsRtp = rtpPackets(capture.file, udpPortsIn(capture.file, RTP_TLS.min, RTP_TLS.max));
      plainRtp = rtpPackets(capture.file, udpPortsIn(capture.file, RTP_PLAIN.min, RTP_PLAIN.max));
    }, 60_000);

    it('SIP: nothing readable on the TLS port, which carried TLS 1.2 records; the plain call SIP is readable', () => {
      expect(tlsAppDataRecords(capture.file, TLS_PORT)).toBeGreaterThan(10);
      expect(sipReadable(capture.file, TLS_PORT)).toBe(false);
      const versions = tlsVersions(capture.file, TLS_PORT);
      expect(versions.length).toBeGreaterThanOrEqual(2); // the refused plain offer and baresip's call
      expect(new Set(versions)).toEqual(new Set(['1.2']));
      expect(sipReadable(capture.file, PLAIN_PORT)).toBe(true);
    });

    it('RFC 2833: the SRTP call sent events but a sniffer reads no key from them; the plain call gives its keys away', () => {
      const tlsEvents = tlsRtp.filter((p) => p.pt === EVENT_PT);
      expect(tlsEvents.length).toBeGreaterThan(3 * 30); // ~30 key presses, several packets each
      // Ciphertext still reads as some key 1 time in 16 (first byte 0-15): a sniffer gets a random
      // string, never the card number (5 keys of it in a row happen by chance ~1 time in 65,000).
      const read = eventKeys(tlsRtp, EVENT_PT);
      expect(read).not.toContain('42424');
      expect(read.length).toBeLessThan(tlsEvents.length / 8);
      expect(eventKeys(plainRtp, EVENT_PT)).toBe('5860');
    });

    it("tshark's rtpevent dissector: on the plain call every event is a key (5, 8, 6, 0); on the SRTP call the codes are noise", () => {
      const plain = tsharkEventCodes(capture.file, udpPortsIn(capture.file, RTP_PLAIN.min, RTP_PLAIN.max));
      expect(plain.length).toBeGreaterThan(4 * 3);
      expect(new Set(plain)).toEqual(new Set([5, 8, 6, 0]));
      const srtp = tsharkEventCodes(capture.file, udpPortsIn(capture.file, RTP_TLS.min, RTP_TLS.max));
      expect(srtp.length).toBeGreaterThan(3 * 30);
      // Uniform bytes fall in 0-15 one time in 16; real key events always would.
      expect(srtp.filter((c) => c <= 15).length).toBeLessThan(srtp.length / 4);
      expect(new Set(srtp).size).toBeGreaterThan(32);
    });

    it('G.711: no SRTP payload decodes to silence or prompt audio; most plain payloads do', () => {
      const tlsAudio = tlsRtp.filter((p) => p.pt === 0 || p.pt === 8);
      expect(tlsAudio.length).toBeGreaterThan(1000); // both directions of a ~30 s call
      expect(tlsAudio.filter((p) => isKnownG711(p.payload, prompts)).length).toBe(0);
      const plainAudio = plainRtp.filter((p) => p.pt === 0 || p.pt === 8);
      expect(plainAudio.length).toBeGreaterThan(100);
      expect(plainAudio.filter((p) => isKnownG711(p.payload, prompts)).length).toBeGreaterThan(plainAudio.length * 0.8);
    });

    it('no card digits and no SDES key material in the capture or the logs', () => {
      const pcap = readFileSync(capture.file).toString('latin1');
      expect(pcap.includes(PAN)).toBe(false);
      for (const f of [logTls(), logPlain()]) {
        const log = readFileSync(f, 'utf8');
        for (const s of [PAN, '424242424242', '"1234"', '"737"']) expect(log.includes(s), s.slice(0, 4)).toBe(false);
        expect(log).not.toMatch(/inline:|a=crypto:|AES_CM_128_HMAC_SHA1_\d+ [A-Za-z0-9+/]{20}/);
      }
    });
  });
});
