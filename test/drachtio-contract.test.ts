import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../src/log.js';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { DrachtioBackend } from '../src/telephony/drachtio/backend.js';
import type { CallEndInfo, DtmfDigit, DtmfSource, InboundCall } from '../src/telephony/types.js';
import { isPayIvrError } from '../src/errors.js';
import { FakeDrachtio, type CallerLeg, type SipMsg } from './support/fake-drachtio.js';
import { FakeFreeswitch, type FakeChannel, type FakeFreeswitchOptions } from './support/fake-freeswitch.js';

/** Ports of one test file (19000-19999 belong to the drachtio contract tests). */
interface HarnessPorts {
  drachtio: number;
  esl: number;
  sip: number;
  listen: number;
}

const DRACHTIO_SECRET = 'cymru-contract';
const ESL_PASSWORD = 'ClueCon-contract';

/** Captures every log line the backend writes (PCI checks search them). */
class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer | string, _enc, cb) => {
      this.lines.push(chunk.toString());
      cb();
    },
  });
  get text(): string {
    return this.lines.join('');
  }
  has(fragment: string): boolean {
    return this.lines.some((l) => l.includes(fragment));
  }
  /** Resolves when a log line containing `fragment` was written. */
  async waitFor(fragment: string): Promise<void> {
    while (!this.has(fragment)) await new Promise((r) => setImmediate(r));
  }
}

function drachtioConfig(ports: HarnessPorts, extra: Record<string, unknown> = {}): Config {
  return parseConfig({
    telephony: {
      backend: 'drachtio',
      drachtio: { host: '127.0.0.1', port: ports.drachtio, secret: DRACHTIO_SECRET, maxReconnectDelayMs: 200 },
      freeswitch: {
        host: '127.0.0.1',
        port: ports.esl,
        secret: ESL_PASSWORD,
        listenAddress: '127.0.0.1',
        listenPort: ports.listen,
        connectTimeoutMs: 1500,
        promptsDir: '/srv/prompts',
      },
    },
    ...extra,
  });
}

interface Harness {
  drachtio: FakeDrachtio;
  fs: FakeFreeswitch;
  backend: DrachtioBackend;
  logs: LogCapture;
  config: Config;
  /** Resolves with the next call the backend emits. */
  nextCall(): Promise<InboundCall>;
  close(): Promise<void>;
}

async function startHarness(
  ports: HarnessPorts,
  opts: { fs?: Partial<FakeFreeswitchOptions>; config?: Record<string, unknown>; startServers?: boolean } = {},
): Promise<Harness> {
  const drachtio = new FakeDrachtio({ port: ports.drachtio, secret: DRACHTIO_SECRET });
  const fs = new FakeFreeswitch({ eslPort: ports.esl, password: ESL_PASSWORD, sipPort: ports.sip, ...opts.fs });
  fs.attach(drachtio);
  if (opts.startServers !== false) {
    await drachtio.start();
    await fs.start();
  }
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs.stream });
  const config = drachtioConfig(ports, opts.config);
  const backend = new DrachtioBackend(config, logger);
  const pending: InboundCall[] = [];
  const waiters: ((c: InboundCall) => void)[] = [];
  backend.on('call', (c) => {
    const w = waiters.shift();
    if (w) w(c);
    else pending.push(c);
  });
  return {
    drachtio,
    fs,
    backend,
    logs,
    config,
    nextCall: () => {
      const c = pending.shift();
      return c ? Promise.resolve(c) : new Promise((r) => waiters.push(r));
    },
    close: async () => {
      await backend.stop();
      await fs.crash();
      await drachtio.stop();
    },
  };
}

/** Resolves when `pred` holds, checking after every event-loop turn (no wall-clock assertions). */
async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setImmediate(r));
}

/**
 * Contract tests of the drachtio backend against test servers that speak drachtio's wire
 * protocol (test/support/fake-drachtio.ts) and FreeSWITCH's event socket
 * (test/support/fake-freeswitch.ts). Every wait is on an event, never on the clock.
 */

const PORTS: HarnessPorts = { drachtio: 19122, esl: 19121, sip: 19180, listen: 19185 };

interface Answered {
  leg: CallerLeg;
  call: InboundCall;
  ch: FakeChannel;
  ends: CallEndInfo[];
  digits: [DtmfDigit, DtmfSource][];
}

async function answeredCall(h: Harness, headers: [string, string][] = []): Promise<Answered> {
  const leg = h.drachtio.invite({ headers });
  const call = await h.nextCall();
  const ends: CallEndInfo[] = [];
  const digits: [DtmfDigit, DtmfSource][] = [];
  call.on('ended', (i) => ends.push(i));
  call.on('digit', (d, s) => digits.push([d, s]));
  const ready = h.fs.nextChannel();
  await call.answer();
  const ch = await ready;
  // The endpoint's subscription and filter are on the wire before FreeSWITCH reports anything.
  await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command === `filter Unique-ID ${ch.uuid}`);
  const final = await leg.final();
  expect(final.status).toBe(200);
  leg.ack();
  return { leg, call, ch, ends, digits };
}

/** Resolves with the next playback FreeSWITCH starts on the channel. */
function nextPlayback(h: Harness, ch: FakeChannel): Promise<{ app: string; arg: string }> {
  return new Promise((resolve) => {
    const on = (c: FakeChannel, e: { app: string; arg: string }): void => {
      if (c !== ch) return;
      h.fs.off('playback', on);
      resolve(e);
    };
    h.fs.on('playback', on);
  });
}

const REFER_TO = '<sip:+33140000000@10.0.0.5?User-to-User=00726573%3Dapproved%3Bencoding%3Dhex>';

describe('drachtio backend contract: one call', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness(PORTS);
    await h.backend.start();
    await h.drachtio.waitForRoute('invite');
  });
  afterEach(async () => {
    await h.close();
  });

  it('offers the INVITE with its headers, remote address and called number', async () => {
    const leg = h.drachtio.invite({
      requestUri: 'sip:+33140000001@127.0.0.1:5060;user=phone',
      headers: [
        ['User-to-User', '6163633d432d31303031;encoding=hex'],
        ['x-inin-cnv', 'conv-1'],
        ['X-Trunk', 'a'],
        ['X-Trunk', 'b'],
      ],
      source: { address: '127.0.0.2', port: 5099, protocol: 'tcp' },
    });
    const call = await h.nextCall();
    expect(call.state).toBe('offered');
    expect(call.header('user-to-user')).toBe('6163633d432d31303031;encoding=hex');
    expect(call.header('X-ININ-CNV')).toBe('conv-1');
    expect(call.headers('x-trunk')).toEqual(['a', 'b']);
    expect(call.header('i')).toBe(leg.invite.get('Call-ID'));
    expect(call.callId).toBe(leg.invite.get('Call-ID'));
    expect(call.calledUser).toBe('+33140000001');
    expect(call.fromUri).toBe('sip:+15551230000@127.0.0.1');
    expect(call.remote).toEqual({ address: '127.0.0.2', port: 5099, transport: 'tcp' });
    expect(h.backend.activeCalls).toBe(1);
    await call.reject(486, 'Busy Here');
    expect((await leg.final()).status).toBe(486);
    expect(call.state).toBe('ended');
    expect(h.backend.activeCalls).toBe(0);
  });

  it('answers with FreeSWITCH\'s SDP, built from the caller\'s offer, and keeps RTP flowing when idle', async () => {
    const { leg, call, ch } = await answeredCall(h);
    expect(call.state).toBe('answered');
    const ok = leg.responses.find((r) => r.status === 200) as SipMsg;
    expect(ok.body).toBe(ch.vars.get('variable_rtp_local_sdp_str'));
    expect(ok.get('Allow')).toContain('REFER');
    // FreeSWITCH got the caller's SDP on the INVITE fsmrf sent, with the outbound socket address.
    expect(ch.vars.get('variable_switch_r_sdp')).toBe(leg.invite.body);
    expect(ch.vars.get('variable_sip_h_X-esl-outbound')).toBe(`127.0.0.1:${PORTS.listen}`);
    expect(ch.vars.get('variable_sip_user_agent')).toMatch(/^drachtio-fsmrf:/);
    const silence = await h.fs.waitForExecute(ch, (e) => e.app === 'set' && e.arg.startsWith('send_silence_when_idle='));
    expect(silence.arg).toBe('send_silence_when_idle=-1');
    // The per-call event socket subscribed to DTMF and filtered on its channel.
    const sub = await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command.startsWith('event json'));
    expect(sub.command).toContain('DTMF');
    expect(sub.command).toContain('CHANNEL_EXECUTE_COMPLETE');
    await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command === `filter Unique-ID ${ch.uuid}`);
  });

  it('plays prompt fragments as FreeSWITCH playback of files under the prompts path', async () => {
    const { call, ch } = await answeredCall(h);
    let started = nextPlayback(h, ch);
    const one = call.play(['welcome'], { language: 'en-US', bargeIn: false });
    expect(await started).toEqual(expect.objectContaining({ app: 'playback', arg: '/srv/prompts/en-US/welcome.wav' }));
    h.fs.finishPlayback(ch);
    expect(await one).toBe('done');

    started = nextPlayback(h, ch);
    const many = call.play(['amount-is', 'digits/4', 'cur-EUR-n'], { language: 'fr-FR', bargeIn: false });
    expect((await started).arg).toBe('file_string:///srv/prompts/fr-FR/amount-is.wav!/srv/prompts/fr-FR/digits/4.wav!/srv/prompts/fr-FR/cur-EUR-n.wav');
    h.fs.finishPlayback(ch);
    expect(await many).toBe('done');
    expect(await call.play([], { language: 'en-US', bargeIn: false })).toBe('done');
  });

  it('delivers DTMF events as digits and never asks FreeSWITCH to collect them', async () => {
    const { ch, digits } = await answeredCall(h);
    h.fs.sendDtmf(ch, '4');
    h.fs.sendDtmf(ch, '#');
    h.fs.sendDtmf(ch, '7', 250, 'INBAND_AUDIO');
    h.fs.sendDtmf(ch, 'x');
    await until(() => digits.length === 3);
    expect(digits).toEqual([
      ['4', 'rfc4733'],
      ['#', 'rfc4733'],
      ['7', 'inband'],
    ]);
    expect(h.fs.commands.some((c) => /play_and_get_digits|read/.test(c.headers['execute-app-name'] ?? ''))).toBe(false);
  });

  it('takes SIP INFO digits (application/dtmf-relay) too', async () => {
    const { leg, digits } = await answeredCall(h);
    const res = await leg.request('INFO', [['Content-Type', 'application/dtmf-relay']], 'Signal=9\r\nDuration=160\r\n');
    expect(res?.status).toBe(200);
    await until(() => digits.length === 1);
    expect(digits[0]).toEqual(['9', 'sip-info']);
  });

  it('barge-in: the first digit breaks the playback (uuid_break) and play() resolves interrupted', async () => {
    const { call, ch, digits } = await answeredCall(h);
    const started = nextPlayback(h, ch);
    const p = call.play(['enter-card'], { language: 'en-US', bargeIn: true });
    await started;
    h.fs.sendDtmf(ch, '4');
    expect(await p).toBe('interrupted');
    expect(digits).toEqual([['4', 'rfc4733']]);
    const brk = h.fs.commands.filter((c) => c.command.startsWith('api uuid_break'));
    expect(brk.map((c) => c.command)).toEqual([`api uuid_break ${ch.uuid} all`]);
  });

  it('without barge-in a digit does not stop the prompt', async () => {
    const { call, ch, digits } = await answeredCall(h);
    const started = nextPlayback(h, ch);
    const p = call.play(['please-wait'], { language: 'en-US', bargeIn: false });
    await started;
    h.fs.sendDtmf(ch, '1');
    await until(() => digits.length === 1);
    expect(h.fs.commands.some((c) => c.command.startsWith('api uuid_break'))).toBe(false);
    h.fs.finishPlayback(ch);
    expect(await p).toBe('done');
  });

  it('loops wait music with endless_playback until stopPlay()', async () => {
    const { call, ch } = await answeredCall(h);
    const started = nextPlayback(h, ch);
    const p = call.play(['wait-music'], { language: 'en-US', bargeIn: false, loop: true });
    expect(await started).toEqual(expect.objectContaining({ app: 'endless_playback', arg: '/srv/prompts/en-US/wait-music.wav' }));
    call.stopPlay();
    expect(await p).toBe('stopped');
  });

  it('a missing prompt file rejects with ERR_PROMPT_MISSING that does not name the fragments', async () => {
    await h.close();
    h = await startHarness(PORTS, { fs: { fileExists: (f) => !f.endsWith('/4.wav') } });
    await h.backend.start();
    await h.drachtio.waitForRoute('invite');
    const { call } = await answeredCall(h);
    const err = await call.play(['card-ends-with', 'digits/4'], { language: 'en-US', bargeIn: false }).catch((e: unknown) => e);
    expect(isPayIvrError(err, 'ERR_PROMPT_MISSING')).toBe(true);
    expect(String((err as Error).message)).not.toMatch(/digits|card-ends/);
    const bad = await call.play(['../etc/passwd'], { language: 'en-US', bargeIn: false }).catch((e: unknown) => e);
    expect(isPayIvrError(bad, 'ERR_PROMPT_MISSING')).toBe(true);
  });

  it('REFER + NOTIFY: 202, NOTIFY 100 and 200 answered, the final sipfrag decides; then the caller\'s BYE ends the call once', async () => {
    const { leg, call, ch, ends } = await answeredCall(h);
    const result = call.refer(REFER_TO, { timeoutMs: 20_000 });
    const refer = await leg.nextRequest('REFER');
    expect(refer.get('Refer-To')).toBe(REFER_TO);
    expect(refer.get('Referred-By')).toMatch(/^<sip:/);
    expect(refer.get('Call-ID')).toBe(leg.invite.get('Call-ID'));
    const n1 = await leg.notify('SIP/2.0 100 Trying', 'active;expires=60');
    expect(n1?.status).toBe(200);
    const n2 = await leg.notify('SIP/2.0 200 OK', 'terminated;reason=noresource');
    expect(n2?.status).toBe(200);
    expect(await result).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer completed' });
    const bye = await leg.bye();
    expect(bye?.status).toBe(200);
    await until(() => ends.length === 1 && h.drachtio.dialogs.size === 0);
    expect(ends).toEqual([{ by: 'remote', reason: 'BYE' }]);
    expect(call.state).toBe('ended');
    // The FreeSWITCH endpoint was hung up through its event socket and its SIP leg closed.
    expect(ch.executes.some((e) => e.app === 'hangup')).toBe(true);
    await call.hangup({ protocol: 'SIP', cause: 200, text: 'Call transferred' });
    expect(ends).toHaveLength(1);
    expect(leg.requests.filter((r) => r.method === 'BYE')).toHaveLength(0);
    expect(h.backend.activeCalls).toBe(0);
  });

  it('REFER failures: a failing final NOTIFY, a refused REFER, and no answer (408)', async () => {
    const { leg, call } = await answeredCall(h);
    const r1 = call.refer(REFER_TO);
    await leg.nextRequest('REFER');
    await leg.notify('SIP/2.0 486 Busy Here', 'terminated');
    expect(await r1).toEqual(expect.objectContaining({ ok: false, referStatus: 202, finalStatus: 486 }));

    leg.respond = (req) => ({ status: req.method === 'REFER' ? 603 : 200 });
    expect(await call.refer(REFER_TO)).toEqual(expect.objectContaining({ ok: false, referStatus: 603 }));

    leg.respond = (req) => (req.method === 'REFER' ? new Promise(() => undefined) : { status: 200 });
    const r3 = await call.refer(REFER_TO, { timeoutMs: 300 });
    expect(r3).toEqual(expect.objectContaining({ ok: false, referStatus: 408 }));
    expect(call.state).toBe('answered');
  });

  it('hangup from us: BYE with the Reason header, endpoint and dialog destroyed once', async () => {
    const { leg, call, ch, ends } = await answeredCall(h);
    await Promise.all([
      call.hangup({ protocol: 'SIP', cause: 200, text: 'Call transferred' }),
      call.hangup({ protocol: 'SIP', cause: 500, text: 'second' }),
    ]);
    const byes = leg.requests.filter((r) => r.method === 'BYE');
    expect(byes).toHaveLength(1);
    expect(byes[0]?.get('Reason')).toBe('SIP;cause=200;text="Call transferred"');
    expect(ends).toEqual([{ by: 'local', reason: 'hangup' }]);
    expect(ch.executes.filter((e) => e.app === 'hangup')).toHaveLength(1);
    await until(() => h.drachtio.dialogs.size === 0);
    expect(await call.play(['x'], { language: 'en-US', bargeIn: false })).toBe('ended');
    expect(await call.refer(REFER_TO)).toEqual(expect.objectContaining({ ok: false }));
  });

  it('the caller hangs up during a prompt: play() resolves ended, ended fires once', async () => {
    const { leg, call, ch, ends } = await answeredCall(h);
    const started = nextPlayback(h, ch);
    const p = call.play(['enter-card'], { language: 'en-US', bargeIn: true });
    await started;
    await leg.bye();
    expect(await p).toBe('ended');
    await until(() => ends.length === 1 && h.drachtio.dialogs.size === 0);
    expect(ends).toEqual([{ by: 'remote', reason: 'BYE' }]);
  });

  it('FreeSWITCH ends the channel: the call ends and the caller gets a BYE with a Reason', async () => {
    const { leg, ch, ends } = await answeredCall(h);
    h.fs.hangupChannel(ch, 'MEDIA_TIMEOUT');
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=503;text="media server lost"');
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'media-lost' }]);
  });

  it('re-INVITE with a new SDP goes through the endpoint to FreeSWITCH; a refresh does not', async () => {
    const { leg, ch } = await answeredCall(h);
    const reinvites: SipMsg[] = [];
    h.fs.on('reinvite', (_c: FakeChannel, req: SipMsg) => reinvites.push(req));
    const newSdp = leg.invite.body.replace('o=caller 1000 1000', 'o=caller 1000 1001').replace('m=audio 40000', 'm=audio 40002');
    const r1 = await leg.request('INVITE', [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']], newSdp);
    expect(r1?.status).toBe(200);
    expect(reinvites).toHaveLength(1);
    expect(reinvites[0]?.body).toBe(newSdp);
    expect(r1?.body).toBe(ch.vars.get('variable_rtp_local_sdp_str'));
    leg.ack();
    const r2 = await leg.request('INVITE', [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']], newSdp);
    expect(r2?.status).toBe(200);
    expect(r2?.body).toBe(r1?.body);
    expect(reinvites).toHaveLength(1);
    leg.ack();
  });

  it('CANCEL before the answer ends the call; answer() then rejects ERR_CALL_ENDED', async () => {
    const leg = h.drachtio.invite();
    const call = await h.nextCall();
    const ends: CallEndInfo[] = [];
    call.on('ended', (i) => ends.push(i));
    leg.cancel();
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'remote', reason: 'CANCEL' }]);
    expect((await leg.final()).status).toBe(487);
    await expect(call.answer()).rejects.toSatisfy((e: unknown) => isPayIvrError(e, 'ERR_CALL_ENDED'));
    expect(h.backend.activeCalls).toBe(0);
  });

  it('answers OPTIONS 200 with an Allow header', async () => {
    const res = await h.drachtio.options();
    expect(res.status).toBe(200);
    expect(res.get('Allow')).toContain('INVITE');
  });
});
