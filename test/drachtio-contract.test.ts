import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import type { Config } from '../src/config/schema.js';
import type { CallEndInfo, DtmfSource, InboundCall } from '../src/telephony/types.js';
import type { DtmfDigit } from '../src/domain/dtmf.js';
import { isPayIvrError } from '../src/errors.js';
import { CALLER_SDP, type CallerLeg, type InviteOptions, type SipMsg } from './support/fake-drachtio.js';
import { FakeFreeswitch, isIdleFiller, type FakeChannel } from './support/fake-freeswitch.js';
import { DRACHTIO_SECRET, ESL_PASSWORD, until, useHarness, type Harness, type HarnessPorts } from './support/drachtio-harness.js';
import { cardDigitHits } from './support/run-texts.js';

/**
 * Contract tests of the drachtio backend against test servers that speak drachtio's wire
 * protocol (test/support/fake-drachtio.ts) and FreeSWITCH's event socket
 * (test/support/fake-freeswitch.ts). Every wait is on an event, never on the clock.
 */

const PORTS: HarnessPorts = { drachtio: 17122, esl: 17121, sip: 17180, listen: 17185 };

interface Answered {
  leg: CallerLeg;
  call: InboundCall;
  ch: FakeChannel;
  ends: CallEndInfo[];
  digits: [DtmfDigit, DtmfSource][];
}

/** A call answered and acknowledged; `beforeAnswer` runs on the offered call (e.g. listenForInbandKeys). */
async function answeredCall(h: Harness, invite: InviteOptions = {}, beforeAnswer?: (call: InboundCall) => void): Promise<Answered> {
  const leg = h.drachtio.invite(invite);
  const call = await h.nextCall();
  const ends: CallEndInfo[] = [];
  const digits: [DtmfDigit, DtmfSource][] = [];
  call.on('ended', (i) => ends.push(i));
  call.on('digit', (d, s) => digits.push([d, s]));
  beforeAnswer?.(call);
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
      if (c !== ch || isIdleFiller(e)) return;
      h.fs.off('playback', on);
      resolve(e);
    };
    h.fs.on('playback', on);
  });
}

const REFER_TO = '<sip:+33140000000@10.0.0.5?User-to-User=00726573%3Dapproved%3Bencoding%3Dhex>';

describe('drachtio backend contract: one call', () => {
  const harness = useHarness(PORTS);
  let h: Harness;
  beforeEach(async () => {
    h = await harness.started();
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
    const silence = await h.fs.waitForExecute(ch, isIdleFiller);
    expect(silence.arg).toBe('silence_stream://-1');
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
    h = await harness.started({ fs: { fileExists: (f) => !f.endsWith('/4.wav') } });
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
    expect(await result).toEqual({ ok: true, referStatus: 202, finalStatus: 200, detail: 'transfer accepted' });
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
    // (MEDIA_TIMEOUT is rtp.noRtpTimeoutMs: the parity suite below.)
    h.fs.hangupChannel(ch, 'NORMAL_TEMPORARY_FAILURE');
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=503;text="media server lost"');
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'media-lost' }]);
  });

  it('nothing goes to the caller\'s media before its ACK: no idle silence, a prompt waits; both start at the ACK', async () => {
    const leg = h.drachtio.invite();
    const call = await h.nextCall();
    const ready = h.fs.nextChannel();
    await call.answer();
    const ch = await ready;
    await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command === `filter Unique-ID ${ch.uuid}`);
    expect((await leg.final()).status).toBe(200);
    const playing = call.play(['enter-card-number'], { language: 'en-US', bargeIn: false });
    await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command.startsWith('event json'));
    expect(ch.executes.filter((e) => e.app === 'playback')).toEqual([]);
    leg.ack();
    await h.fs.waitForExecute(ch, (e) => isIdleFiller(e) && e.arg === 'silence_stream://-1');
    await h.fs.waitForExecute(ch, (e) => e.app === 'playback');
    h.fs.finishPlayback(ch);
    expect(await playing).toBe('done');
    await call.hangup();
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

  it('hangup and the caller\'s BYE at the same moment: one teardown, one ended', async () => {
    const { leg, call, ch, ends } = await answeredCall(h);
    await Promise.all([call.hangup({ protocol: 'SIP', cause: 200, text: 'done' }), leg.bye()]);
    await until(() => h.drachtio.dialogs.size === 0);
    expect(ends).toHaveLength(1);
    expect(ch.executes.filter((e) => e.app === 'hangup')).toHaveLength(1);
    expect(h.backend.activeCalls).toBe(0);
  });

  it('speaks the documented protocols only: framed drachtio messages, known event-socket commands', async () => {
    const { leg, call, ch } = await answeredCall(h);
    const started = nextPlayback(h, ch);
    const p = call.play(['welcome'], { language: 'en-US', bargeIn: true });
    await started;
    h.fs.sendDtmf(ch, '1');
    await p;
    const r = call.refer(REFER_TO);
    await leg.nextRequest('REFER');
    await leg.notify('SIP/2.0 200 OK', 'terminated');
    await r;
    await call.hangup();
    await until(() => h.drachtio.dialogs.size === 0);
    // drachtio: <msgid>|<type>|... with the types drachtio-server knows.
    for (const m of h.drachtio.fromApp) expect(m).toMatch(/^[0-9a-f-]{36}\|(authenticate|route|remove_route|ping|sip)\|/);
    expect(h.drachtio.fromApp.find((m) => m.includes('|authenticate|'))).toMatch(/\|authenticate\|cymru-contract\|$/);
    // event socket: every command is one FreeSWITCH knows; every execute names its app and Event-UUID.
    const verbs = new Set(h.fs.commands.map((c) => c.command.split(' ')[0]));
    for (const v of verbs) expect(['auth', 'event', 'filter', 'api', 'sendmsg', 'connect', 'exit']).toContain(v);
    const execs = h.fs.commands.filter((c) => c.command.startsWith('sendmsg'));
    expect(execs.length).toBeGreaterThan(0);
    for (const e of execs) {
      expect(e.headers['call-command']).toBe('execute');
      expect(e.headers['execute-app-name']).toMatch(/^[a-z_]+$/);
      expect(e.headers['Event-UUID']).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(h.fs.commands.some((c) => c.command === 'api sofia status')).toBe(true);
  });

  it('answers OPTIONS 200 with an Allow header', async () => {
    const res = await h.drachtio.options();
    expect(res.status).toBe(200);
    expect(res.get('Allow')).toContain('INVITE');
  });
});

function withTelephony(c: Config, t: { drachtio?: Partial<Config['telephony']['drachtio']>; freeswitch?: Partial<Config['telephony']['freeswitch']> }): Config {
  return {
    ...c,
    telephony: {
      ...c.telephony,
      drachtio: { ...c.telephony.drachtio, ...t.drachtio },
      freeswitch: { ...c.telephony.freeswitch, ...t.freeswitch },
    },
  };
}

function countLines(h: Harness, fragment: string): number {
  return h.logs.lines.filter((l) => l.includes(fragment)).length;
}

describe('drachtio backend contract: servers coming and going', () => {
  const harness = useHarness(PORTS);

  it('unreachable servers at start: start() resolves, says what is missing, retries; drachtio first, then FreeSWITCH, then the INVITE route', async () => {
    const hh = await harness.created({ startServers: false });
    await hh.backend.start();
    expect(hh.backend.ready).toBe(false);
    await hh.logs.waitFor(`drachtio-server unreachable at 127.0.0.1:${PORTS.drachtio} (ECONNREFUSED)`);
    await until(() => countLines(hh, 'drachtio-server unreachable') >= 2);
    // FreeSWITCH is not tried before drachtio-server is connected.
    expect(hh.logs.has('FreeSWITCH not usable')).toBe(false);

    await hh.drachtio.start();
    await hh.logs.waitFor(`event socket at 127.0.0.1:${PORTS.esl} unreachable (ECONNREFUSED)`);
    const text = hh.logs.text;
    expect(text.indexOf('connected to drachtio-server')).toBeLessThan(text.indexOf('FreeSWITCH not usable'));
    // drachtio up, FreeSWITCH down: OPTIONS answered, no INVITE route so drachtio-server says 503.
    expect(hh.drachtio.hasRoute('options')).toBe(true);
    expect(hh.drachtio.hasRoute('invite')).toBe(false);
    expect((await hh.drachtio.options()).status).toBe(200);
    const early = hh.drachtio.invite();
    expect((await early.final()).status).toBe(503);
    expect(hh.drachtio.serverResponses).toHaveLength(1);
    expect(hh.backend.ready).toBe(false);

    await hh.fs.start();
    await hh.drachtio.waitForRoute('invite');
    await until(() => hh.backend.ready);
    const { call } = await answeredCall(hh);
    expect(call.state).toBe('answered');
  });

  it('a wrong drachtio secret is reported and retried, never crashes', async () => {
    const hh = await harness.created({ tweak: (c) => withTelephony(c, { drachtio: { secret: 'not-the-secret' } }) });
    let failures = 0;
    hh.drachtio.on('auth-failed', () => (failures += 1));
    await hh.backend.start();
    await until(() => failures >= 2);
    await hh.logs.waitFor('drachtio-server rejected the shared secret');
    expect(hh.backend.ready).toBe(false);
    expect(hh.drachtio.hasRoute('options')).toBe(false);
  });

  it('a wrong event-socket password is reported, retried, and leaves no connection behind', async () => {
    const hh = await harness.created({ fs: { password: 'other-password' } });
    await hh.backend.start();
    await until(() => countLines(hh, 'refused the password') >= 3);
    // One auth per attempt: no connection of an earlier attempt kept re-authenticating.
    expect(hh.fs.commands.filter((c) => c.command.startsWith('auth ')).length).toBe(countLines(hh, 'refused the password'));
    expect(hh.backend.ready).toBe(false);
    expect(hh.drachtio.hasRoute('invite')).toBe(false);
  });

  it('FreeSWITCH without a running drachtio_mrf profile: clear message, no crash, ready once the profile runs', async () => {
    const hh = await harness.created({ fs: { profileRunning: false } });
    await hh.backend.start();
    await hh.logs.waitFor('FreeSWITCH has no running sip profile named \\"drachtio_mrf\\"');
    expect(hh.backend.ready).toBe(false);
    hh.fs.profileRunning = true;
    await hh.drachtio.waitForRoute('invite');
    await until(() => hh.backend.ready);
  });

  it("the profile gone between our check and fsmrf's own sofia status: the attempt fails, no crash, ready once it runs again", async () => {
    const hh = await harness.created();
    // Our check is the first `sofia status`; the MediaServer's is the second and finds no profile
    // (its callback throws: the guarded connection turns that into a failed attempt).
    let seen = 0;
    hh.fs.on('command', (c: { command: string }) => {
      if (c.command === 'api sofia status' && ++seen === 2) hh.fs.profileRunning = false;
    });
    await hh.backend.start();
    await hh.logs.waitFor('media server setup failed: Error: No drachtio_mrf sip profile found');
    expect(hh.backend.ready).toBe(false);
    hh.fs.profileRunning = true;
    await hh.drachtio.waitForRoute('invite');
    await until(() => hh.backend.ready);
  });

  it('an event socket ACL that refuses us is reported', async () => {
    const hh = await harness.created({ fs: { acl: () => false } });
    await hh.backend.start();
    await hh.logs.waitFor('rejected this address (apply-inbound-acl');
    expect(hh.backend.ready).toBe(false);
  });

  it('the fsmrf listen port in use is reported instead of crashing the process', async () => {
    const { createServer } = await import('node:net');
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(PORTS.listen, '127.0.0.1', () => r()));
    let hh: Harness | undefined;
    try {
      hh = await harness.created();
      await hh.backend.start();
      await hh.logs.waitFor(`cannot listen on 127.0.0.1:${PORTS.listen}`);
      expect(hh.backend.ready).toBe(false);
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()));
    }
    await until(() => hh?.backend.ready === true);
  });

  it('FreeSWITCH lost during a call: the call ends with a BYE, the INVITE route goes, and comes back with FreeSWITCH', async () => {
    const hh = await harness.started();
    const { leg, ends } = await answeredCall(hh);
    await hh.fs.crash();
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=503;text="media server lost"');
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'media-lost' }]);
    await hh.drachtio.waitForRoute('invite', false);
    expect(hh.backend.ready).toBe(false);
    expect((await hh.drachtio.invite().final()).status).toBe(503);
    await until(() => hh.drachtio.dialogs.size === 0);

    await hh.fs.start();
    await hh.drachtio.waitForRoute('invite');
    await until(() => hh.backend.ready);
    const again = await answeredCall(hh);
    expect(again.call.state).toBe('answered');
  });

  it('drachtio-server lost during a call: the call ends, the media is released, the link comes back', async () => {
    const hh = await harness.started();
    const { ch, ends } = await answeredCall(hh);
    await hh.drachtio.stop();
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'transport-lost' }]);
    expect(hh.backend.ready).toBe(false);
    expect(hh.backend.activeCalls).toBe(0);
    // The endpoint is still hung up through FreeSWITCH's event socket.
    await hh.fs.waitForExecute(ch, (e) => e.app === 'hangup');
    await hh.logs.waitFor('lost the connection to drachtio-server');

    await hh.drachtio.start();
    await hh.drachtio.waitForRoute('invite');
    await until(() => hh.backend.ready);
    expect((await hh.drachtio.options()).status).toBe(200);
    const again = await answeredCall(hh);
    expect(again.call.state).toBe('answered');
  });

  it('stop(): removes the INVITE route, ends calls in progress, closes both connections', async () => {
    const hh = await harness.started();
    const { leg, ends } = await answeredCall(hh);
    let routeRemoved = false;
    hh.drachtio.on('routes', () => {
      if (!hh.drachtio.hasRoute('invite')) routeRemoved = true;
    });
    await hh.backend.stop();
    expect(routeRemoved).toBe(true);
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=503;text="service shutting down"');
    // Ours, as on the embedded backend (docs/parity-dialog.md).
    expect(ends).toEqual([{ by: 'local', reason: 'shutdown' }]);
    await until(() => hh.drachtio.clients.size === 0 && hh.fs.inboundConnections === 0);
    expect(hh.backend.ready).toBe(false);
    await hh.backend.stop();
  });
});

describe('drachtio backend contract: who may call', () => {
  const harness = useHarness(PORTS);
  const started = (tweak: (c: Config) => Config): Promise<Harness> => harness.started({ tweak });

  it('refuses sources outside security.allowList with 403', async () => {
    const hh = await started((c) => ({ ...c, security: { ...c.security, allowList: ['10.0.0.0/8', '2001:db8::/32'] } }));
    let offered = 0;
    hh.backend.on('call', () => (offered += 1));
    expect((await hh.drachtio.invite().final()).status).toBe(403);
    const inside = hh.drachtio.invite({ source: { address: '10.1.2.3', port: 5060, protocol: 'udp' } });
    const call = await hh.nextCall();
    expect(call.remote.address).toBe('10.1.2.3');
    await call.reject(603);
    expect((await inside.final()).status).toBe(603);
    expect(offered).toBe(1);
  });

  it('requires the shared-secret trunk header when configured', async () => {
    const hh = await started((c) => ({ ...c, security: { ...c.security, sharedSecretHeader: { name: 'X-PayIvr-Token', value: 'trunk-secret-1' } } }));
    expect((await hh.drachtio.invite().final()).status).toBe(403);
    expect((await hh.drachtio.invite({ headers: [['X-PayIvr-Token', 'wrong-secret-1']] }).final()).status).toBe(403);
    const ok = hh.drachtio.invite({ headers: [['X-PayIvr-Token', 'trunk-secret-1']] });
    const call = await hh.nextCall();
    await call.reject(486);
    expect((await ok.final()).status).toBe(486);
  });

  it('digest authentication: 401 challenge, then the right credentials get through', async () => {
    const { createHash } = await import('node:crypto');
    const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
    const hh = await started((c) => ({ ...c, security: { ...c.security, digest: { realm: 'pay-ivr', username: 'genesys', password: 'pw-123' } } }));
    const first = await hh.drachtio.invite().final();
    expect(first.status).toBe(401);
    const challenge = first.get('WWW-Authenticate') ?? '';
    const nonce = /nonce="([^"]+)"/.exec(challenge)?.[1] ?? '';
    expect(challenge).toMatch(/^Digest realm="pay-ivr"/);
    const uri = 'sip:+33140000001@127.0.0.1:5060';
    const ha1 = md5('genesys:pay-ivr:pw-123');
    const ha2 = md5(`INVITE:${uri}`);
    const response = md5(`${ha1}:${nonce}:00000001:abcdef:auth:${ha2}`);
    const auth = `Digest username="genesys", realm="pay-ivr", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abcdef"`;
    const wrong = auth.replace(response, md5('nope'));
    expect((await hh.drachtio.invite({ headers: [['Authorization', wrong]] }).final()).status).toBe(401);
    const leg = hh.drachtio.invite({ headers: [['Authorization', auth]] });
    const call = await hh.nextCall();
    await call.reject(486);
    expect((await leg.final()).status).toBe(486);
  });

  it('security.mediaRanges: an offer or re-INVITE whose media address is outside them gets 488, FreeSWITCH is never asked', async () => {
    const hh = await started((c) => ({ ...c, security: { ...c.security, mediaRanges: ['127.0.0.0/30'] } }));
    let offered = 0;
    hh.backend.on('call', () => (offered += 1));
    const outside = CALLER_SDP.replace('c=IN IP4 127.0.0.1', 'c=IN IP4 198.51.100.7');
    const refused = await hh.drachtio.invite({ sdp: outside }).final();
    expect(refused.status).toBe(488);
    expect(offered).toBe(0);
    expect(hh.fs.channels.size).toBe(0);
    expect((await hh.drachtio.invite({ sdp: CALLER_SDP.replace('c=IN IP4 127.0.0.1', 'c=IN IP4 media.example.com') }).final()).status).toBe(488);
    // Inside: answered; a re-INVITE that moves the media outside is refused, the call goes on.
    const leg = hh.drachtio.invite();
    const call = await hh.nextCall();
    const ready = hh.fs.nextChannel();
    await call.answer();
    await ready;
    expect((await leg.final()).status).toBe(200);
    leg.ack();
    const reinvites: SipMsg[] = [];
    hh.fs.on('reinvite', (_c: FakeChannel, req: SipMsg) => reinvites.push(req));
    const moved = outside.replace('o=caller 1000 1000', 'o=caller 1000 1001');
    const r = await leg.request('INVITE', [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']], moved);
    expect(r?.status).toBe(488);
    expect(reinvites).toHaveLength(0);
    expect(call.state).toBe('answered');
    await call.hangup();
  });

  it('no ACK from the caller: the call ends no-ack without a BYE and without any media', async () => {
    const hh = await harness.started({ ackTimeoutMs: 200 });
    const leg = hh.drachtio.invite();
    const call = await hh.nextCall();
    const ended = new Promise<CallEndInfo>((r) => call.on('ended', r));
    const ready = hh.fs.nextChannel();
    await call.answer();
    const ch = await ready;
    expect((await leg.final()).status).toBe(200);
    const playing = call.play(['enter-card-number'], { language: 'en-US', bargeIn: false });
    expect(await ended).toEqual({ by: 'error', reason: 'no-ack' });
    expect(await playing).toBe('ended');
    await until(() => ch.hungUp);
    expect(ch.executes.filter((e) => e.app === 'playback')).toEqual([]);
    expect(leg.requests.filter((r) => r.method === 'BYE')).toEqual([]);
  });

  it('caps concurrent calls with 503', async () => {
    const hh = await started((c) => ({ ...c, security: { ...c.security, maxConcurrentCalls: 1 } }));
    hh.drachtio.invite();
    const first = await hh.nextCall();
    const second = await hh.drachtio.invite().final();
    expect(second.status).toBe(503);
    expect(second.get('Retry-After')).toBeDefined();
    await first.reject(486);
  });
});

describe('drachtio backend contract: PCI', () => {
  const harness = useHarness(PORTS);

  it('card digits typed on the keypad appear in no log line and in nothing sent to drachtio or FreeSWITCH', async () => {
    const hh = await harness.started();
    const { call, ch, digits, leg } = await answeredCall(hh);
    const pan = '4000056655665556';
    const typed = `${pan}1230737`;
    const started = nextPlayback(hh, ch);
    const p = call.play(['enter-card'], { language: 'en-US', bargeIn: true });
    await started;
    for (const d of typed) hh.fs.sendDtmf(ch, d);
    await until(() => digits.length === typed.length);
    expect(await p).toBe('interrupted');
    expect(digits.map(([d]) => d).join('')).toBe(typed);
    await leg.bye();
    await until(() => call.state === 'ended' && hh.drachtio.dialogs.size === 0);
    const appToDrachtio = hh.drachtio.fromApp.join('\n');
    const appToFreeswitch = hh.fs.commands.map((c) => `${c.command} ${JSON.stringify(c.headers)}`).join('\n');
    for (const haystack of [hh.logs.text, appToDrachtio, appToFreeswitch]) {
      expect(haystack).not.toContain(pan);
      expect(haystack).not.toContain(typed.slice(-7));
      expect(haystack).not.toMatch(/"digit"|DTMF-Digit/);
    }
    expect(hh.logs.lines.length).toBeGreaterThan(5);
  });
});

describe('drachtio backend contract: several FreeSWITCH media servers', () => {
  const SECOND = { esl: 17131, sip: 17190, listen: 17195 };
  let fs2: FakeFreeswitch | undefined;
  afterEach(async () => {
    await fs2?.crash();
    fs2 = undefined;
  });
  // Registered after fs2's: the harness closes first (vitest runs afterEach hooks last-in, first-out).
  const harness = useHarness(PORTS);

  /** A call answered on whichever media server the backend picked. */
  async function placed(hh: Harness, servers: FakeFreeswitch[]): Promise<{ call: InboundCall; fs: FakeFreeswitch; ends: CallEndInfo[] }> {
    const leg = hh.drachtio.invite();
    const call = await hh.nextCall();
    const ends: CallEndInfo[] = [];
    call.on('ended', (i) => ends.push(i));
    const before = servers.map((s) => s.channels.size);
    await call.answer();
    expect((await leg.final()).status).toBe(200);
    leg.ack();
    const fs = servers.find((s, i) => s.channels.size > (before[i] ?? 0));
    if (fs === undefined) throw new Error('no media server got the channel');
    return { call, fs, ends };
  }

  it('spreads calls over the least-loaded server; a lost server ends only its own calls and is out until it is back', async () => {
    const hh = await harness.created({
      config: {
        telephony: {
          backend: 'drachtio',
          drachtio: { host: '127.0.0.1', port: PORTS.drachtio, secret: DRACHTIO_SECRET, maxReconnectDelayMs: 200 },
          freeswitch: { host: '127.0.0.1', port: PORTS.esl, secret: ESL_PASSWORD, listenAddress: '127.0.0.1', listenPort: PORTS.listen, connectTimeoutMs: 1500, promptsDir: '/srv/prompts' },
          freeswitchPool: [{ host: '127.0.0.1', port: SECOND.esl, secret: ESL_PASSWORD, listenAddress: '127.0.0.1', listenPort: SECOND.listen, connectTimeoutMs: 1500, promptsDir: '/srv/prompts' }],
        },
      },
    });
    const second = (fs2 = new FakeFreeswitch({ eslPort: SECOND.esl, password: ESL_PASSWORD, sipPort: SECOND.sip }));
    second.attach(hh.drachtio);
    await second.start();
    await hh.backend.start();
    await hh.drachtio.waitForRoute('invite');
    await hh.logs.waitFor(`"freeswitch":"127.0.0.1:${SECOND.esl}"`);
    await until(() => second.inboundConnections === 1 && hh.fs.inboundConnections === 1);
    await hh.logs.waitFor('connected to FreeSWITCH');

    const servers = [hh.fs, second];
    const calls: Awaited<ReturnType<typeof placed>>[] = [];
    for (let i = 0; i < 4; i++) calls.push(await placed(hh, servers));
    expect(calls.filter((c) => c.fs === hh.fs).length).toBe(2);
    expect(calls.filter((c) => c.fs === second).length).toBe(2);

    await second.crash();
    await until(() => calls.filter((c) => c.fs === second).every((c) => c.ends.length === 1));
    for (const c of calls.filter((x) => x.fs === second)) expect(c.ends).toEqual([{ by: 'error', reason: 'media-lost' }]);
    // The calls on the surviving server are untouched, and the node still takes calls.
    for (const c of calls.filter((x) => x.fs === hh.fs)) expect(c.call.state).toBe('answered');
    expect(hh.backend.ready).toBe(true);
    const during = await placed(hh, servers);
    expect(during.fs).toBe(hh.fs);

    // Back in the pool: the emptier server gets the next calls.
    await second.start();
    const connectedSecond = (): number => hh.logs.lines.filter((l) => l.includes('connected to FreeSWITCH') && l.includes(`"freeswitch":"127.0.0.1:${SECOND.esl}"`)).length;
    await until(() => connectedSecond() === 2);
    const after = await placed(hh, servers);
    expect(after.fs).toBe(second);
    for (const c of calls.filter((x) => x.fs === hh.fs)) expect(c.call.state).toBe('answered');
  });
});

describe('drachtio backend contract: drain', () => {
  const harness = useHarness(PORTS);

  it('drain(): the INVITE route goes (drachtio-server gives calls to other nodes), OPTIONS 503 with Retry-After, the call in progress goes on', async () => {
    const hh = await harness.started();
    const { call, leg, ends } = await answeredCall(hh);
    hh.backend.drain(11);
    expect(hh.backend.draining).toBe(true);
    expect(hh.backend.ready).toBe(false);
    await hh.drachtio.waitForRoute('invite', false);
    const probe = await hh.drachtio.options();
    expect(probe.status).toBe(503);
    expect(probe.get('Retry-After')).toBe('11');
    expect(call.state).toBe('answered');
    await leg.bye();
    await until(() => ends.length === 1);
    expect(ends[0]?.by).toBe('remote');
  });
});

describe('drachtio backend contract: the SRTP policy (rtp.srtp)', () => {
  const harness = useHarness(PORTS);
  const SAVP_SDP = CALLER_SDP.replace('RTP/AVP', 'RTP/SAVP').replace('a=sendrecv', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 3).toString('base64')}\r\na=sendrecv`);

  const started = (srtp: 'off' | 'required'): Promise<Harness> => harness.started({ config: { rtp: { srtp } } });

  it('required: a plain RTP/AVP offer gets 488 with Warning 302 before any call or FreeSWITCH channel exists', async () => {
    const hh = await started('required');
    let offered = 0;
    hh.backend.on('call', () => (offered += 1));
    const r = await hh.drachtio.invite().final();
    expect(r.status).toBe(488);
    expect(r.get('Warning')).toBe('302 pay-ivr "SRTP required: offer RTP/SAVP with an SDES a=crypto line"');
    const refused = hh.drachtio.invite({ sdp: CALLER_SDP.replace('m=audio 40000 RTP/AVP', 'm=audio 40000 UDP/TLS/RTP/SAVPF') });
    expect((await refused.final()).status).toBe(488);
    expect(offered).toBe(0);
    expect(hh.fs.channels.size).toBe(0);
    expect(hh.logs.text).toContain('INVITE refused: SDP offer not acceptable');
  });

  it('required: an SRTP offer becomes a call; off: the same offer gets 488', async () => {
    const hh = await started('required');
    const leg = hh.drachtio.invite({ sdp: SAVP_SDP });
    const call = await hh.nextCall();
    await call.reject(486);
    expect((await leg.final()).status).toBe(486);
    const off = await started('off');
    const r = await off.drachtio.invite({ sdp: SAVP_SDP }).final();
    expect(r.status).toBe(488);
    expect(r.get('Warning')).toBe('302 pay-ivr "SRTP disabled here: offer RTP/AVP"');
    expect(off.logs.text).not.toContain(Buffer.alloc(30, 3).toString('base64'));
  });

  it('off: a re-INVITE that would move to RTP/SAVP is refused 488 and never reaches FreeSWITCH', async () => {
    const hh = await started('off');
    const { leg } = await answeredCall(hh);
    const reinvites: SipMsg[] = [];
    hh.fs.on('reinvite', (_c: FakeChannel, req: SipMsg) => reinvites.push(req));
    const secure = SAVP_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1001');
    const r = await leg.request('INVITE', [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']], secure);
    expect(r?.status).toBe(488);
    expect(reinvites).toHaveLength(0);
    leg.ack();
  });
});

/**
 * Parity with the embedded backend on in-dialog rules and rtp.* settings (docs/parity-dialog.md):
 * the dialog-peer rule, SIP INFO keys, in-band keys, the settings FreeSWITCH takes, the shutdown.
 */
const PARITY_PORTS: HarnessPorts = { drachtio: 17142, esl: 17141, sip: 17150, listen: 17155 };
const THIRD_PARTY = { address: '127.0.0.8', port: 5090, protocol: 'udp' as const };
const NO_TELEPHONE_EVENT_SDP = CALLER_SDP.replace('RTP/AVP 0 8 101', 'RTP/AVP 0 8').replace('a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n', '');

describe('drachtio backend parity: in-dialog requests only from the dialog\'s peer', () => {
  const harness = useHarness(PARITY_PORTS);
  const started = (config: Record<string, unknown> = {}): Promise<Harness> => harness.started({ config });
  const relay = (d: string): [[string, string][], string] => [[['Content-Type', 'application/dtmf-relay']], `Signal=${d}\r\nDuration=160\r\n`];

  it('INFO, re-INVITE, UPDATE and NOTIFY from a third address get 403: no digit, no media change, the call goes on; the peer\'s are taken', async () => {
    const hh = await started();
    const { leg, call, ends, digits } = await answeredCall(hh);
    const reinvites: SipMsg[] = [];
    hh.fs.on('reinvite', (_c: FakeChannel, req: SipMsg) => reinvites.push(req));
    expect((await leg.request('INFO', ...relay('9'), THIRD_PARTY))?.status).toBe(403);
    const moved = CALLER_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1001').replace('m=audio 40000', 'm=audio 40100');
    const sdpHeaders: [string, string][] = [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.8:5090>']];
    expect((await leg.request('INVITE', sdpHeaders, moved, THIRD_PARTY))?.status).toBe(403);
    expect((await leg.request('UPDATE', sdpHeaders, moved, THIRD_PARTY))?.status).toBe(403);
    expect((await leg.request('NOTIFY', [['Event', 'refer'], ['Subscription-State', 'terminated'], ['Content-Type', 'message/sipfrag']], 'SIP/2.0 200 OK\r\n', THIRD_PARTY))?.status).toBe(403);
    expect(call.state).toBe('answered');
    expect(ends).toEqual([]);
    expect(digits).toEqual([]);
    expect(reinvites).toEqual([]);
    expect(hh.logs.text).toContain('in-dialog request from another address refused');
    // The peer: same address, another port (a trunk may send from several), is taken.
    expect((await leg.request('INFO', ...relay('5'), { address: '127.0.0.1', port: 5091, protocol: 'udp' }))?.status).toBe(200);
    expect(digits).toEqual([['5', 'sip-info']]);
    expect((await leg.bye())?.status).toBe(200);
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'remote', reason: 'BYE' }]);
  });

  it('a BYE from a third address gets 403, but drachtio-server dropped the dialog as it relayed it: the call ends by error dialog-lost, the FreeSWITCH leg with it', async () => {
    const hh = await started();
    const { leg, call, ch, ends } = await answeredCall(hh);
    expect((await leg.bye([], THIRD_PARTY))?.status).toBe(403);
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'dialog-lost' }]);
    expect(call.state).toBe('ended');
    await until(() => ch.hungUp);
    // drachtio-server answers the caller's requests in that dialog itself.
    expect((await leg.request('INFO', ...relay('5')))?.status).toBe(503);
    expect(hh.logs.text).toContain('drachtio-server dropped the dialog');
  });

  it('the same address on another transport gets 403; another allow-listed signalling address may send', async () => {
    const hh = await started({ security: { allowList: ['127.0.0.1', '127.0.0.9'] } });
    const { leg, digits, ends } = await answeredCall(hh);
    expect((await leg.request('INFO', ...relay('1'), { address: '127.0.0.1', port: 5090, protocol: 'tcp' }))?.status).toBe(403);
    expect((await leg.request('INFO', ...relay('2'), THIRD_PARTY))?.status).toBe(403);
    expect((await leg.request('INFO', ...relay('3'), { address: '127.0.0.9', port: 5060, protocol: 'udp' }))?.status).toBe(200);
    expect(digits).toEqual([['3', 'sip-info']]);
    expect((await leg.bye([], { address: '127.0.0.9', port: 5060, protocol: 'udp' }))?.status).toBe(200);
    await until(() => ends.length === 1);
  });
});

describe('drachtio backend parity: SIP INFO keys (telephony/dtmf-info.ts, the embedded rule)', () => {
  const harness = useHarness(PARITY_PORTS);
  let h: Harness;
  beforeEach(async () => {
    h = await harness.started();
  });

  // The cases of test/dtmf-info.test.ts, now as requests: [type, body, status, digit].
  const CASES: [string | undefined, string, number, string | undefined][] = [
    ['application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n', 200, '5'],
    ['application/dtmf-relay', 'signal = #\nDuration=100', 200, '#'],
    ['application/dtmf-relay', 'Duration=160\r\nSIGNAL=11\r\n', 200, '#'],
    ['application/dtmf-relay', '  Signal=10', 200, '*'],
    ['application/dtmf-relay', 'Signal=*', 200, '*'],
    ['Application/DTMF-Relay; charset=us-ascii', 'Signal=d', 200, 'D'],
    ['application/dtmf-relay', 'Duration=160', 400, undefined],
    ['application/dtmf-relay', 'Signal=', 400, undefined],
    ['application/dtmf-relay', 'Signal=123', 400, undefined],
    ['application/dtmf-relay', 'Signals=5', 400, undefined],
    ['application/dtmf-relay', 'Signal 5', 400, undefined],
    ['application/dtmf-relay', ' '.repeat(300), 400, undefined],
    ['application/dtmf', '7', 200, '7'],
    ['application/dtmf', '11\r\n', 200, '#'],
    ['application/dtmf', ' 9 ', 200, '9'],
    ['application/dtmf', '16', 400, undefined],
    ['application/dtmf', '55555', 400, undefined],
    ['text/plain', 'Signal=5', 415, undefined],
    [undefined, '', 200, undefined],
  ];

  it('answers each body as the embedded stack does (200 with the key, 400 Bad DTMF Body, 415 with Accept) and reports only real keys', async () => {
    const { leg, digits } = await answeredCall(h);
    const got: [string | undefined, string, number, string | undefined][] = [];
    for (const [type, body, , ] of CASES) {
      const before = digits.length;
      const r = await leg.request('INFO', type === undefined ? [] : [['Content-Type', type]], body);
      got.push([type, body, r?.status ?? 0, digits.length > before ? digits[digits.length - 1]?.[0] : undefined]);
      if (r?.status === 415) expect(r.get('Accept')).toBe('application/dtmf-relay, application/dtmf');
      if (r?.status === 400) expect(r.reason).toBe('Bad DTMF Body');
    }
    expect(got).toEqual(CASES);
    expect(digits.every(([, s]) => s === 'sip-info')).toBe(true);
  });

  it('a card number keyed by INFO (peer, third party, bad bodies) leaves no card digits in the log', async () => {
    const CARD = '4111111111111111';
    const { leg, digits } = await answeredCall(h);
    for (const d of CARD) {
      expect((await leg.request('INFO', [['Content-Type', 'application/dtmf-relay']], `Signal=${d}\r\nDuration=160\r\n`))?.status).toBe(200);
      expect((await leg.request('INFO', [['Content-Type', 'application/dtmf']], d, THIRD_PARTY))?.status).toBe(403);
    }
    expect((await leg.request('INFO', [['Content-Type', 'application/dtmf']], CARD))?.status).toBe(400);
    expect((await leg.request('INFO', [['Content-Type', 'text/plain']], CARD))?.status).toBe(415);
    expect(digits.map(([d]) => d).join('')).toBe(CARD);
    expect(cardDigitHits([{ where: 'backend log', text: h.logs.text }], [CARD, CARD.slice(0, 6)])).toEqual([]);
    expect(h.logs.text).not.toContain('Signal=');
  });
});

describe('drachtio backend parity: in-band keys when telephone-event is not negotiated', () => {
  const harness = useHarness(PARITY_PORTS);
  let h: Harness;
  beforeEach(async () => {
    h = await harness.started();
  });

  const callWith = (sdp: string): Promise<Answered> => answeredCall(h, { sdp });


  it('no telephone-event: FreeSWITCH\'s start_dtmf runs and its INBAND_AUDIO keys come as \'inband\'', async () => {
    const { ch, digits } = await callWith(NO_TELEPHONE_EVENT_SDP);
    const start = await h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf');
    await until(() => start.state === 'done');
    expect(h.fs.inbandTone(ch, '6')).toBe(true);
    expect(h.fs.inbandTone(ch, '#')).toBe(true);
    await until(() => digits.length === 2);
    expect(digits).toEqual([['6', 'inband'], ['#', 'inband']]);
  });

  it('telephone-event negotiated: no in-band detection (a key is not reported twice); a re-INVITE that adds or drops it switches detection', async () => {
    const { leg, ch, digits } = await callWith(CALLER_SDP);
    h.fs.sendDtmf(ch, '3');
    await until(() => digits.length === 1);
    expect(digits).toEqual([['3', 'rfc4733']]);
    expect(ch.executes.filter((e) => e.app === 'start_dtmf' || e.app === 'stop_dtmf')).toEqual([]);
    expect(h.fs.inbandTone(ch, '4')).toBe(false);
    const headers: [string, string][] = [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']];
    const without = NO_TELEPHONE_EVENT_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1001');
    expect((await leg.request('INVITE', headers, without))?.status).toBe(200);
    const start = await h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf');
    await until(() => start.state === 'done');
    const back = CALLER_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1002');
    expect((await leg.request('INVITE', headers, back))?.status).toBe(200);
    const stop = await h.fs.waitForExecute(ch, (e) => e.app === 'stop_dtmf');
    await until(() => stop.state === 'done');
    expect(h.fs.inbandTone(ch, '4')).toBe(false);
    expect(ch.executes.filter((e) => e.app.endsWith('_dtmf')).map((e) => e.app)).toEqual(['start_dtmf', 'stop_dtmf']);
  });
});

describe('drachtio backend parity: rtp.* settings reach FreeSWITCH', () => {
  const harness = useHarness(PARITY_PORTS);
  const started = (config: Record<string, unknown> = {}): Promise<Harness> => harness.started({ config });

  it('non-default noRtpTimeoutMs, srtpSuites, comfortNoiseDbov: the INVITE to FreeSWITCH carries them, the caller never sees them, the idle noise level follows', async () => {
    const hh = await started({ rtp: { noRtpTimeoutMs: 7000, srtpSuites: ['AES_CM_128_HMAC_SHA1_32'], comfortNoiseDbov: 70 } });
    const { leg, ch } = await answeredCall(hh);
    expect(ch.vars.get('variable_sip_h_X-Payivr-Media-Timeout')).toBe('7000');
    expect(ch.vars.get('variable_media_timeout')).toBe('7000');
    expect(ch.vars.get('variable_sip_h_X-Payivr-Srtp-Suites')).toBe('AES_CM_128_HMAC_SHA1_32');
    expect(ch.vars.get('variable_rtp_secure_media_inbound')).toBe('optional:AES_CM_128_HMAC_SHA1_32');
    // 10^(70/20)/sqrt(3): noise of about -70 dBov (media-settings.ts).
    await hh.fs.waitForExecute(ch, (e) => isIdleFiller(e) && e.arg === 'silence_stream://-1,1826');
    const ok = leg.responses.find((r) => r.status === 200);
    expect(ok?.headers.filter(([k]) => /^x-payivr/i.test(k))).toEqual([]);
  });

  it('defaults: 30 s media timeout, both suites, digital silence', async () => {
    const hh = await started();
    const { ch } = await answeredCall(hh);
    expect(ch.vars.get('variable_media_timeout')).toBe('30000');
    expect(ch.vars.get('variable_sip_h_X-Payivr-Srtp-Suites')).toBe('AES_CM_128_HMAC_SHA1_80:AES_CM_128_HMAC_SHA1_32');
    await hh.fs.waitForExecute(ch, (e) => isIdleFiller(e) && e.arg === 'silence_stream://-1');
  });

  it('an SRTP offer goes the same way: FreeSWITCH first with the settings (answer and event socket), then the caller', async () => {
    const hh = await started({ rtp: { srtp: 'required', srtpSuites: ['AES_CM_128_HMAC_SHA1_80'] } });
    const sdp = CALLER_SDP.replace('RTP/AVP', 'RTP/SAVP').replace('a=sendrecv', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 5).toString('base64')}\r\na=sendrecv`);
    // The event socket well after FreeSWITCH's 200 OK: the caller's 200 OK waits for it.
    hh.fs.holdOutbound = true;
    const leg = hh.drachtio.invite({ sdp });
    const call = await hh.nextCall();
    const answering = call.answer();
    await until(() => hh.fs.lastChannel?.connectOutbound !== undefined);
    const ch = hh.fs.lastChannel as FakeChannel;
    expect(leg.responses.filter((r) => r.status >= 200)).toEqual([]);
    const ready = hh.fs.nextChannel();
    ch.connectOutbound?.();
    await ready;
    const ok = await leg.final();
    expect(ok.status).toBe(200);
    await answering;
    expect(call.state).toBe('answered');
    expect(ch.vars.get('variable_sip_h_X-Payivr-Srtp-Suites')).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(ok.headers.filter(([k]) => /^x-/i.test(k))).toEqual([]);
    leg.ack();
  });

  it('an SRTP offer whose event socket connects before FreeSWITCH\'s 200 OK reaches the app is answered too (drachtio-fsmrf 4.1.2\'s connectCaller timed out)', async () => {
    const hh = await started({ rtp: { srtp: 'required', srtpSuites: ['AES_CM_128_HMAC_SHA1_80'] } });
    const sdp = CALLER_SDP.replace('RTP/AVP', 'RTP/SAVP').replace('a=sendrecv', `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 5).toString('base64')}\r\na=sendrecv`);
    // FakeFreeswitch connects as soon as its dialog exists, before drachtio relays its 200 OK.
    const leg = hh.drachtio.invite({ sdp });
    const call = await hh.nextCall();
    const answering = call.answer();
    const ok = await leg.final();
    expect(ok.status).toBe(200);
    await answering;
    expect(call.state).toBe('answered');
    leg.ack();
  });

  it('FreeSWITCH\'s MEDIA_TIMEOUT ends the call as the embedded no-RTP timeout does: by error, rtp-timeout, BYE Reason 408', async () => {
    const hh = await started({ rtp: { noRtpTimeoutMs: 7000 } });
    const { leg, ch, ends } = await answeredCall(hh);
    hh.fs.hangupChannel(ch, 'MEDIA_TIMEOUT');
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=408;text="no RTP received"');
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'error', reason: 'rtp-timeout' }]);
  });
});

describe('drachtio backend parity: shutdown and Retry-After', () => {
  const harness = useHarness(PARITY_PORTS);

  it('stop(): an answered call ends by local/shutdown; an offered one gets 503 with drain.retryAfterSeconds', async () => {
    const hh = await harness.started({ config: { drain: { retryAfterSeconds: 12 } } });
    const answered = await answeredCall(hh);
    const offeredLeg = hh.drachtio.invite();
    const offered = await hh.nextCall();
    const offeredEnds: CallEndInfo[] = [];
    offered.on('ended', (i) => offeredEnds.push(i));
    await hh.backend.stop();
    const r = await offeredLeg.final();
    expect(r.status).toBe(503);
    expect(r.get('Retry-After')).toBe('12');
    expect(offeredEnds).toEqual([{ by: 'local', reason: 'shutdown' }]);
    expect(answered.ends).toEqual([{ by: 'local', reason: 'shutdown' }]);
    expect((await answered.leg.nextRequest('BYE')).get('Reason')).toBe('SIP;cause=503;text="service shutting down"');
  });

  it('answer() without a media server: 503 with drain.retryAfterSeconds (default 30)', async () => {
    const hh = await harness.started();
    const leg = hh.drachtio.invite();
    const call = await hh.nextCall();
    await hh.fs.crash();
    await until(() => !hh.backend.ready);
    await expect(call.answer()).rejects.toThrow();
    const r = await leg.final();
    expect(r.status).toBe(503);
    expect(r.get('Retry-After')).toBe('30');
  });
});

describe('drachtio backend parity: session timers (sip.sessionExpires, RFC 4028)', () => {
  const harness = useHarness(PARITY_PORTS);
  /** unitMs: milliseconds per second of the RFC's timers (5: a 90 s interval is 450 ms). */
  const started = (unitMs: number): Promise<Harness> => harness.started({ backend: { sessionTimerUnitMs: unitMs } });
  async function answer(hh: Harness, headers: [string, string][]): Promise<Answered & { ok: SipMsg }> {
    const leg = hh.drachtio.invite({ headers });
    const call = await hh.nextCall();
    const ends: CallEndInfo[] = [];
    call.on('ended', (i) => ends.push(i));
    const ready = hh.fs.nextChannel();
    await call.answer();
    const ch = await ready;
    const ok = await leg.final();
    expect(ok.status).toBe(200);
    leg.ack();
    return { leg, call, ch, ends, digits: [], ok };
  }

  it('an interval below Min-SE gets 422 with Min-SE: 90 and no call; no timer asked, none given', async () => {
    const hh = await started(1000);
    let offered = 0;
    hh.backend.on('call', () => (offered += 1));
    const r = await hh.drachtio.invite({ headers: [['Supported', 'timer'], ['Session-Expires', '60']] }).final();
    expect(r.status).toBe(422);
    expect(r.get('Min-SE')).toBe('90');
    expect(offered).toBe(0);
    const { ok } = await answer(hh, []);
    expect(ok.get('Session-Expires')).toBeUndefined();
  });

  it('the caller refreshes: our 200 OK and each refresh\'s 200 carry the interval, too short a refresh gets 422', async () => {
    const hh = await started(1000);
    const { leg, ok, call } = await answer(hh, [['Supported', 'timer'], ['Session-Expires', '120;refresher=uac']]);
    expect(ok.get('Session-Expires')).toBe('120;refresher=uac');
    expect(ok.get('Require')).toBe('timer');
    const refresh = await leg.request('UPDATE', [['Supported', 'timer'], ['Session-Expires', '100;refresher=uac']]);
    expect(refresh?.status).toBe(200);
    expect(refresh?.get('Session-Expires')).toBe('100;refresher=uac');
    const headers: [string, string][] = [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>'], ['Supported', 'timer'], ['Session-Expires', '95;refresher=uac']];
    const reinvite = await leg.request('INVITE', headers, CALLER_SDP);
    expect(reinvite?.status).toBe(200);
    expect(reinvite?.get('Session-Expires')).toBe('95;refresher=uac');
    leg.ack();
    const tooShort = await leg.request('UPDATE', [['Supported', 'timer'], ['Session-Expires', '30']]);
    expect(tooShort?.status).toBe(422);
    expect(tooShort?.get('Min-SE')).toBe('90');
    expect(call.state).toBe('answered');
  });

  it('no refresh from the caller ends the call: BYE with 408 session expired, ended local/session-expired', async () => {
    const hh = await started(5);
    const { leg, ends } = await answer(hh, [['Supported', 'timer'], ['Session-Expires', '120;refresher=uac']]);
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=408;text="session expired"');
    await until(() => ends.length === 1);
    expect(ends).toEqual([{ by: 'local', reason: 'session-expired' }]);
  });

  it('we refresh (refresher=uas): UPDATE when the caller allows it, re-INVITE otherwise; a failed refresh ends the call', async () => {
    const hh = await started(5);
    const withUpdate = await answer(hh, [['Supported', 'timer'], ['Session-Expires', '90;refresher=uas'], ['Allow', 'INVITE, ACK, BYE, CANCEL, UPDATE']]);
    expect(withUpdate.ok.get('Session-Expires')).toBe('90;refresher=uas');
    const first = await withUpdate.leg.nextRequest('UPDATE');
    expect(first.get('Session-Expires')).toBe('90;refresher=uas');
    await withUpdate.leg.nextRequest('UPDATE');
    expect(withUpdate.call.state).toBe('answered');
    withUpdate.leg.respond = (req) => ({ status: req.method === 'UPDATE' ? 481 : 200 });
    const bye = await withUpdate.leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=408;text="session refresh failed"');
    await until(() => withUpdate.ends.length === 1);
    expect(withUpdate.ends).toEqual([{ by: 'error', reason: 'session-refresh-failed' }]);

    const noUpdate = await answer(hh, [['Supported', 'timer'], ['Session-Expires', '90;refresher=uas'], ['Allow', 'INVITE, ACK, BYE, CANCEL']]);
    const reinvite = await noUpdate.leg.nextRequest('INVITE');
    expect(reinvite.get('Session-Expires')).toBe('90;refresher=uas');
    expect(reinvite.body).toContain('m=audio');
    // Answered, it is armed again: a second refresh follows.
    await noUpdate.leg.nextRequest('INVITE');
    expect(noUpdate.call.state).toBe('answered');
  });
});

/**
 * Conference legs (docs/genesys.md 7.1): listenForInbandKeys() runs FreeSWITCH's start_dtmf even
 * with telephone-event, and one press reported both ways counts once (telephony/key-merger.ts, the
 * embedded rule; embedded: test/media-session.test.ts "a conference leg (listenForInbandKeys) …").
 * The merger's clock is the test's: each key FreeSWITCH reports takes the next time of `times`.
 */
const CONFERENCE_PORTS: HarnessPorts = { drachtio: 17162, esl: 17161, sip: 17170, listen: 17175 };

describe('drachtio backend parity: conference legs listen for in-band keys (listenForInbandKeys)', () => {
  const harness = useHarness(CONFERENCE_PORTS);
  let h: Harness;
  const times: number[] = [];
  let clockReads = 0;
  beforeEach(async () => {
    times.length = 0;
    clockReads = 0;
    const keyClock = (): number => {
      clockReads++;
      const t = times.shift();
      if (t === undefined) throw new Error('the key merger read the clock more often than the test reported keys');
      return t;
    };
    h = await harness.started({ backend: { keyClock } });
  });

  /** A call with telephone-event, answered; `conference`: listenForInbandKeys() before the answer, as the controller calls it. */
  const call = (conference: boolean): Promise<Answered> => answeredCall(h, {}, conference ? (c) => c.listenForInbandKeys?.() : undefined);


  /** Every execute FreeSWITCH got before the next playback (same event socket, so in order). */
  async function executesBeforePlayback(c: InboundCall, ch: FakeChannel): Promise<string[]> {
    const playback = nextPlayback(h, ch);
    const playing = c.play(['1'], { language: 'en-US', bargeIn: false });
    await playback;
    h.fs.finishPlayback(ch);
    expect(await playing).toBe('done');
    return ch.executes.map((e) => e.app).filter((a) => a.endsWith('_dtmf'));
  }

  it('telephone-event negotiated: start_dtmf runs; tones-only and events-only keys arrive; a press reported both ways counts once; a fast "44" is two keys', async () => {
    const { ch, digits } = await call(true);
    expect(ch.telephoneEvent).toBe(true);
    const start = await h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf');
    await until(() => start.state === 'done');
    // [digit, DTMF-Source, DTMF-Duration ms, the merger's clock when FreeSWITCH's report arrives]
    const reports: [string, 'RTP' | 'INBAND_AUDIO', number, number][] = [
      ['7', 'INBAND_AUDIO', 100, 1000], // tones only (a conference mix): a key
      ['8', 'RTP', 100, 2100], // events only: a key
      ['4', 'INBAND_AUDIO', 100, 3040], // one press both ways: in-band found it 40 ms in,
      ['4', 'RTP', 100, 3100], //          RFC 2833 reported at its end (3000 + 100): once
      ['4', 'INBAND_AUDIO', 100, 3220], // "44": the second press 180 ms after the first
      ['4', 'RTP', 100, 3280], //          and its event copy: once
      ['2', 'RTP', 40, 4040], // event first this time (began 4000),
      ['2', 'INBAND_AUDIO', 100, 4045], //  its tone copy: once
      ['6', 'INBAND_AUDIO', 100, 5040], // a held key: in-band at its start,
      ['6', 'RTP', 250, 5265], //          RFC 2833 at its end 250 ms later: still once
      ['5', 'INBAND_AUDIO', 100, 6040], // same digit, but the event began 200 ms later
      ['5', 'RTP', 100, 6300], //          (outside the window): two presses
      ['9', 'RTP', 60, 7060], // the same source twice, 80 ms apart: always two presses
      ['9', 'RTP', 60, 7140],
    ];
    for (const [digit, source, ms, at] of reports) {
      times.push(at);
      h.fs.sendDtmf(ch, digit, ms, source);
    }
    await until(() => clockReads === reports.length);
    expect(digits).toEqual([
      ['7', 'inband'],
      ['8', 'rfc4733'],
      ['4', 'inband'],
      ['4', 'inband'],
      ['2', 'rfc4733'],
      ['6', 'inband'],
      ['5', 'inband'],
      ['5', 'rfc4733'],
      ['9', 'rfc4733'],
      ['9', 'rfc4733'],
    ]);
    times.push(8000);
    expect(h.fs.inbandTone(ch, '1')).toBe(true);
    await until(() => digits.length === 11);
    expect(digits[10]).toEqual(['1', 'inband']);
  });

  it('a card number keyed both ways on a conference leg comes once, and leaves no card digits in the log', async () => {
    const CARD = '4111111111111111';
    const { ch, digits } = await call(true);
    const start = await h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf');
    await until(() => start.state === 'done');
    [...CARD].forEach((d, i) => {
      const began = 1000 + i * 200;
      times.push(began + 40, began + 100);
      expect(h.fs.inbandTone(ch, d)).toBe(true);
      h.fs.sendDtmf(ch, d, 60);
    });
    await until(() => clockReads === 2 * CARD.length);
    expect(digits.map(([d]) => d).join('')).toBe(CARD);
    expect(cardDigitHits([{ where: 'backend log', text: h.logs.text }], [CARD, CARD.slice(0, 6)])).toEqual([]);
  });

  it('a re-INVITE that keeps telephone-event does not stop in-band detection on a conference leg', async () => {
    const { leg, call: c, ch } = await call(true);
    await h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf');
    const headers: [string, string][] = [['Content-Type', 'application/sdp'], ['Contact', '<sip:caller@127.0.0.1:5090>']];
    const withoutTe = NO_TELEPHONE_EVENT_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1001');
    expect((await leg.request('INVITE', headers, withoutTe))?.status).toBe(200);
    const back = CALLER_SDP.replace('o=caller 1000 1000', 'o=caller 1000 1002');
    expect((await leg.request('INVITE', headers, back))?.status).toBe(200);
    expect(await executesBeforePlayback(c, ch)).toEqual(['start_dtmf']);
    expect(h.fs.inbandTone(ch, '3')).toBe(true);
  });

  it('a call that is not a conference, with telephone-event: no in-band detection, no merging (keys as before)', async () => {
    const { call: c, ch, digits } = await call(false);
    expect(await executesBeforePlayback(c, ch)).toEqual([]);
    expect(h.fs.inbandTone(ch, '4')).toBe(false);
    h.fs.sendDtmf(ch, '3');
    h.fs.sendDtmf(ch, '3');
    await until(() => digits.length === 2);
    expect(digits).toEqual([['3', 'rfc4733'], ['3', 'rfc4733']]);
    expect(clockReads).toBe(0);
  });
});
