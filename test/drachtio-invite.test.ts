import { describe, it, expect, beforeEach, afterEach, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createLogger, silentLogger } from '../src/log.js';
import type { CallEndInfo, InboundCall, StoredDialog } from '../src/telephony/types.js';
import { Spool, PaymentJournal } from '../src/journal/index.js';
import { LocalJournalBackend } from '../src/journal/local-backend.js';
import { endOrphanedCalls } from '../src/journal/orphans.js';
import { MemoryStore } from '../src/store/index.js';
import { DrachtioBackend } from '../src/telephony/drachtio/backend.js';
import { FakeDrachtio, tagOf, type CallerLeg, type FakeDialog, type SipMsg } from './support/fake-drachtio.js';
import { FakeFreeswitch, isIdleFiller, type FakeChannel } from './support/fake-freeswitch.js';
import { DRACHTIO_SECRET, ESL_PASSWORD, LogCapture, drachtioConfig, drachtioRawConfig, until, useHarness, type Harness, type HarnessPorts } from './support/drachtio-harness.js';
import { ROOT } from './support/dist.js';
import { kill9 } from './support/children.js';

/**
 * The INVITE-level behaviours the drachtio backend shares with the embedded one (late offer, 480
 * for a call the app leaves unanswered, silent refusals, ending a crashed run's calls), against
 * the protocol-level fakes of drachtio-server and FreeSWITCH. Lane B, ports 46500-46999.
 */

const PORTS: HarnessPorts = { drachtio: 46500, esl: 46501, sip: 46502, listen: 46503 };
const CRASH_PORTS: HarnessPorts = { drachtio: 46510, esl: 46511, sip: 46512, listen: 46513 };
/** The restarted node listens elsewhere for FreeSWITCH's outbound sockets (the dead one's port may linger). */
const RESTART_LISTEN = 46514;

/** The caller's answer to FreeSWITCH's offer (PCMU + telephone-event, as the fake offers). */
const CALLER_ANSWER = [
  'v=0',
  'o=caller 2000 2000 IN IP4 127.0.0.1',
  's=caller',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 40002 RTP/AVP 0 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=sendrecv',
  '',
].join('\r\n');

interface Offered {
  leg: CallerLeg;
  call: InboundCall;
  ends: CallEndInfo[];
}

async function offered(h: Harness, sdp?: string): Promise<Offered> {
  const leg = h.drachtio.invite(sdp === undefined ? {} : { sdp });
  const call = await h.nextCall();
  const ends: CallEndInfo[] = [];
  call.on('ended', (i) => ends.push(i));
  return { leg, call, ends };
}

/** A late-offer call answered: the 200 OK is out, the ACK not yet sent. */
async function lateOfferAnswered(h: Harness): Promise<Offered & { ch: FakeChannel; ok: SipMsg }> {
  const o = await offered(h, '');
  const ready = h.fs.nextChannel();
  await o.call.answer();
  const ch = await ready;
  await h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command === `filter Unique-ID ${ch.uuid}`);
  const ok = await o.leg.final();
  expect(ok.status).toBe(200);
  return { ...o, ch, ok };
}

function nextReinvite(fs: FakeFreeswitch, ch: FakeChannel): Promise<SipMsg> {
  return new Promise((resolve) => {
    const on = (c: FakeChannel, req: SipMsg): void => {
      if (c !== ch) return;
      fs.off('reinvite', on);
      resolve(req);
    };
    fs.on('reinvite', on);
  });
}

describe('drachtio INVITE parity: late offer (INVITE without SDP)', () => {
  const harness = useHarness(PORTS);
  let h: Harness;
  beforeEach(async () => {
    h = await harness.started();
  });

  it('the 200 OK carries FreeSWITCH\'s offer, the ACK\'s answer reaches FreeSWITCH, then media starts', async () => {
    const { leg, call, ch, ok } = await lateOfferAnswered(h);
    expect(leg.invite.body).toBe('');
    // fsmrf asked FreeSWITCH without SDP; FreeSWITCH's offer is what the caller got.
    expect(ch.lateOffer).toBe(true);
    // rtp.srtp optional: FreeSWITCH is asked for a plain RTP offer (mrf.xml's late-offer extension).
    expect(ch.inviteHeaders.find(([k]) => k === 'X-Payivr-Late-Offer')?.[1]).toBe('plain');
    expect(ch.vars.get('variable_rtp_secure_media_inbound')).toBe('forbidden');
    expect(ok.headers.filter(([k]) => /^x-payivr/i.test(k))).toEqual([]);
    expect(ok.body).toBe(ch.vars.get('variable_rtp_local_sdp_str'));
    expect(call.state).toBe('answered');
    const reinvite = nextReinvite(h.fs, ch);
    leg.ack(CALLER_ANSWER);
    expect((await reinvite).body).toBe(CALLER_ANSWER);
    const silence = await h.fs.waitForExecute(ch, isIdleFiller);
    expect(silence.arg).toBe('silence_stream://-1');
    expect(ch.vars.get('variable_switch_r_sdp')).toBe(CALLER_ANSWER);
    // Prompts play once the answer is in.
    const started = new Promise<{ arg: string }>((r) => h.fs.once('playback', (_c: FakeChannel, e: { arg: string }) => r(e)));
    const played = call.play(['welcome'], { language: 'en-US', bargeIn: false });
    expect((await started).arg).toBe('/srv/prompts/en-US/welcome.wav');
    h.fs.finishPlayback(ch);
    expect(await played).toBe('done');
    expect(h.logs.has('late offer: no usable SDP answer')).toBe(false);
  });

  it('an ACK from another address than the INVITE\'s is ignored: its SDP never reaches FreeSWITCH, the caller\'s own ACK still counts', async () => {
    const { leg, ch } = await lateOfferAnswered(h);
    const reinvites: SipMsg[] = [];
    h.fs.on('reinvite', (_c: FakeChannel, r: SipMsg) => reinvites.push(r));
    leg.ack(CALLER_ANSWER.replace('c=IN IP4 127.0.0.1', 'c=IN IP4 127.0.0.9'), { address: '127.0.0.9', port: 5090 });
    await h.logs.waitFor('in-dialog request from another address refused');
    expect(reinvites).toEqual([]);
    leg.ack(CALLER_ANSWER);
    await h.fs.waitForExecute(ch, isIdleFiller);
    expect(reinvites.map((r) => r.body)).toEqual([CALLER_ANSWER]);
  });

  it('an ACK without SDP ends the call with BYE (Reason 488), FreeSWITCH released', async () => {
    const { leg, call, ch, ends } = await lateOfferAnswered(h);
    const reinvites: SipMsg[] = [];
    h.fs.on('reinvite', (_c: FakeChannel, r: SipMsg) => reinvites.push(r));
    const play = call.play(['welcome'], { language: 'en-US', bargeIn: false });
    leg.ack();
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=488;text="no usable SDP answer in ACK"');
    expect(await play).toBe('ended');
    expect(ends).toEqual([{ by: 'error', reason: 'bad-sdp-answer' }]);
    expect(reinvites).toEqual([]);
    await until(() => ch.hungUp);
    expect(h.backend.activeCalls).toBe(0);
  });

  it('an answer FreeSWITCH cannot take (no common codec) ends the call with BYE', async () => {
    const { leg, ch, ends } = await lateOfferAnswered(h);
    const refused = new Promise<void>((r) => h.fs.once('reinvite-refused', () => r()));
    leg.ack(CALLER_ANSWER.replace('RTP/AVP 0 101', 'RTP/AVP 18 101').replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:18 G729/8000'));
    await refused;
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toContain('cause=488');
    expect(ends).toEqual([{ by: 'error', reason: 'bad-sdp-answer' }]);
    await until(() => ch.hungUp);
  });
});

describe('drachtio INVITE parity: the answer in the ACK meets the offer rules', () => {
  const harness = useHarness(PORTS);

  it('security.mediaRanges: an answer naming an address outside them ends the call, FreeSWITCH never sees it', async () => {
    const h = await harness.started({ config: { security: { mediaRanges: ['127.0.0.0/8'] } } });
    const { leg, ch, ends } = await lateOfferAnswered(h);
    const reinvites: SipMsg[] = [];
    h.fs.on('reinvite', (_c: FakeChannel, r: SipMsg) => reinvites.push(r));
    leg.ack(CALLER_ANSWER.replace('c=IN IP4 127.0.0.1', 'c=IN IP4 10.9.8.7'));
    expect((await leg.nextRequest('BYE')).get('Reason')).toContain('cause=488');
    expect(ends).toEqual([{ by: 'error', reason: 'bad-sdp-answer' }]);
    expect(reinvites).toEqual([]);
    expect(ch.vars.get('variable_switch_r_sdp')).toBe('');
    expect(h.logs.has('media address not an IP inside security.mediaRanges')).toBe(true);
  });

  it('rtp.srtp required: a plain RTP/AVP answer ends the call; off: an RTP/SAVP answer does', async () => {
    const required = await harness.started({ config: { rtp: { srtp: 'required' } } });
    const plain = await lateOfferAnswered(required);
    plain.leg.ack(CALLER_ANSWER);
    expect((await plain.leg.nextRequest('BYE')).get('Reason')).toContain('cause=488');
    expect(plain.ends).toEqual([{ by: 'error', reason: 'bad-sdp-answer' }]);
    expect(required.logs.has('SRTP required')).toBe(true);
    // A new harness on the same ports: the first is closed before it starts.
    const off = await harness.started({ config: { rtp: { srtp: 'off' } } });
    const secure = await lateOfferAnswered(off);
    secure.leg.ack(CALLER_ANSWER.replace('RTP/AVP', 'RTP/SAVP').replace('a=sendrecv', 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=sendrecv'));
    expect((await secure.leg.nextRequest('BYE')).get('Reason')).toContain('cause=488');
    expect(secure.ends).toEqual([{ by: 'error', reason: 'bad-sdp-answer' }]);
    expect(off.logs.has('SRTP disabled here')).toBe(true);
  });
});

describe('drachtio INVITE parity: 480 when the app never answers', () => {
  const harness = useHarness(PORTS);

  it('a call neither answered nor rejected within the deadline gets 480, no media was set up', async () => {
    const h = await harness.started({ backend: { offerTimeoutMs: 50 } });
    const { leg, call, ends } = await offered(h);
    const final = await leg.final();
    expect(final.status).toBe(480);
    expect(final.reason).toBe('Not Answered In Time');
    expect(call.state).toBe('ended');
    expect(ends).toEqual([{ by: 'local', reason: 'rejected 480' }]);
    expect(h.backend.activeCalls).toBe(0);
    expect(h.fs.channels.size).toBe(0);
    await expect(call.answer()).rejects.toMatchObject({ code: 'ERR_CALL_ENDED' });
    expect(h.logs.has('call neither answered nor rejected in time')).toBe(true);
  });

  it('a call answered in time is not ended by the deadline', async () => {
    const h = await harness.started({ backend: { offerTimeoutMs: 200 } });
    const { leg, call, ends } = await offered(h);
    const ready = h.fs.nextChannel();
    await call.answer();
    const ch = await ready;
    expect((await leg.final()).status).toBe(200);
    leg.ack();
    await h.fs.waitForExecute(ch, isIdleFiller);
    // A playback that outlasts the deadline: the call is still up when it completes.
    const started = new Promise<void>((r) => h.fs.once('playback', () => r()));
    const played = call.play(['welcome'], { language: 'en-US', bargeIn: false });
    await started;
    await new Promise((r) => setTimeout(r, 300));
    h.fs.finishPlayback(ch);
    expect(await played).toBe('done');
    expect(call.state).toBe('answered');
    expect(ends).toEqual([]);
    expect(leg.responses.some((r) => r.status === 480)).toBe(false);
  });
});

describe('drachtio INVITE parity: refusals (security.refusal)', () => {
  const harness = useHarness(PORTS);
  const refusedByAllowList = { security: { allowList: ['10.0.0.0/8'], refusal: 'silent' } };

  it('silent: no final response; drachtio-server\'s 100 Trying is all the caller gets, and no call exists', async () => {
    const h = await harness.started({ config: refusedByAllowList, drachtio: { pendingTimeoutMs: 1, sendTrying: true }, backend: { silenceReleaseMs: 300 } });
    let calls = 0;
    h.backend.on('call', () => (calls += 1));
    const forgotten = new Promise<void>((r) => h.drachtio.once('pending-timeout', () => r()));
    const released = new Promise<SipMsg>((r) => h.drachtio.once('response-not-sent', (_t: string, m: SipMsg) => r(m)));
    const leg = h.drachtio.invite();
    await forgotten;
    // The late response that frees drachtio-srf's record reached a server that had forgotten the INVITE.
    expect((await released).status).toBe(403);
    expect(leg.responses.map((r) => r.status)).toEqual([100]);
    expect(calls).toBe(0);
    expect(h.backend.activeCalls).toBe(0);
    expect(h.fs.channels.size).toBe(0);
    expect(h.logs.has('INVITE refused')).toBe(true);
  });

  it('respond: the same INVITE gets one final 403; a flood is logged once per source and rule', async () => {
    const h = await harness.started({ config: { security: { allowList: ['10.0.0.0/8'] } }, drachtio: { sendTrying: true } });
    const leg = h.drachtio.invite();
    expect((await leg.final()).status).toBe(403);
    expect(leg.responses.map((r) => r.status)).toEqual([100, 403]);
    expect((await h.drachtio.invite().final()).status).toBe(403);
    expect(h.logs.lines.filter((l) => l.includes('"msg":"INVITE refused"'))).toHaveLength(1);
  });

  it('silent: a digest challenge is still answered (401), or nobody could authenticate', async () => {
    const h = await harness.started({ config: { security: { refusal: 'silent', digest: { realm: 'pay-ivr', username: 'genesys', password: 'secret-digest-pw' } } } });
    const final = await h.drachtio.invite().final();
    expect(final.status).toBe(401);
    expect(final.get('WWW-Authenticate')).toMatch(/^Digest /);
  });
});

// ---------- a crashed run's calls ----------

interface CrashRun {
  drachtio: FakeDrachtio;
  fs: FakeFreeswitch;
  child: ChildProcess;
  lines: string[];
  stderr: string[];
}

/** Resolves with the first stdout line of the child starting with `prefix`. */
async function childLine(run: CrashRun, prefix: string): Promise<string> {
  await until(() => run.lines.some((l) => l.startsWith(prefix)) || run.child.exitCode !== null);
  const line = run.lines.find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`child exited (${String(run.child.exitCode)}) before "${prefix}": ${run.stderr.join('').slice(-2000)}`);
  return line;
}

function spawnNode(ports: HarnessPorts): { child: ChildProcess; lines: string[]; stderr: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/drachtio-crash-child.ts'], {
    cwd: ROOT,
    env: { ...process.env, PAYIVR_CHILD_CONFIG: JSON.stringify(drachtioRawConfig(ports)) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  return { child, lines, stderr };
}

describe('drachtio: a restarted node ends the calls a crashed run left (journal)', () => {
  let dir: string;
  let run: CrashRun | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'drachtio-orphans-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    if (run) {
      await kill9(run.child);
      await run.fs.crash();
      await run.drachtio.stop();
    }
    run = undefined;
  });

  /** A node (child process) takes one call, tells its dialog state, and is killed with SIGKILL. */
  async function crashWithOneCall(keepChannels: boolean): Promise<{ leg: CallerLeg; ch: FakeChannel; dialog: StoredDialog; fsLeg: FakeDialog }> {
    const drachtio = new FakeDrachtio({ port: CRASH_PORTS.drachtio, secret: DRACHTIO_SECRET });
    const fs = new FakeFreeswitch({ eslPort: CRASH_PORTS.esl, password: ESL_PASSWORD, sipPort: CRASH_PORTS.sip, keepChannelsOnSocketLoss: keepChannels });
    fs.attach(drachtio);
    await drachtio.start();
    await fs.start();
    const node = spawnNode(CRASH_PORTS);
    run = { drachtio, fs, ...node };
    await childLine(run, 'STARTED');
    await drachtio.waitForRoute('invite');
    const ready = fs.nextChannel();
    const leg = drachtio.invite();
    expect((await leg.final()).status).toBe(200);
    const ch = await ready;
    leg.ack();
    await fs.waitForExecute(ch, isIdleFiller);
    const dialog = JSON.parse((await childLine(run, 'DIALOG ')).slice('DIALOG '.length)) as StoredDialog;
    const fsLeg = ch.dialog as FakeDialog;
    await kill9(run.child);
    await until(() => drachtio.clients.size === 0 && !drachtio.hasRoute('invite'));
    return { leg, ch, dialog, fsLeg };
  }

  async function restartAndEndOrphans(dialog: StoredDialog): Promise<{ ended: number; logs: LogCapture; results: MemoryStore; journal: PaymentJournal }> {
    const spool = Spool.open({ path: join(dir, `${Math.random().toString(36).slice(2)}.jsonl`), maxBytes: 1 << 20 });
    const journal = new PaymentJournal({ backend: new LocalJournalBackend(spool), spool, node: 'n1', logger: silentLogger });
    // As the call controller keeps it (it labels every dialog 'embedded'; the drachtio part tells the owner).
    await journal.saveDialog({ callRef: 'call-1', backend: 'embedded', dialog, profile: 'default', mode: 'automated', currency: 'EUR', startedAt: new Date().toISOString() });
    const logs = new LogCapture();
    const config = drachtioConfig({ ...CRASH_PORTS, listen: RESTART_LISTEN });
    const backend = new DrachtioBackend(config, createLogger({ level: 'debug', destination: logs.stream }), { orphanWaitMs: 10_000 });
    const results = new MemoryStore();
    try {
      await backend.start();
      const ended = await endOrphanedCalls({ journal, results, backend, logger: createLogger({ level: 'debug', destination: logs.stream }) });
      return { ended, logs, results, journal };
    } finally {
      await backend.stop();
    }
  }

  it('the dialog state names drachtio-server\'s dialog and the FreeSWITCH channel; no card data, no SDP', async () => {
    const { leg, ch, dialog, fsLeg } = await crashWithOneCall(true);
    expect(dialog.callId).toBe(leg.invite.get('Call-ID'));
    expect(dialog.drachtio?.stackDialogId).toBe(`${leg.invite.get('Call-ID')};from-tag=${tagOf(leg.invite.get('From'))}`);
    expect(dialog.drachtio?.media).toEqual({ uuid: ch.uuid, eventSocket: `127.0.0.1:${CRASH_PORTS.esl}`, legDialogId: fsLeg.id });
    expect(dialog.remoteTag).toBe(tagOf(leg.invite.get('From')));
    expect(dialog.localTag).toBe(leg.dialog?.appTag);
    expect(JSON.stringify(dialog)).not.toContain('v=0');
  });

  it('kill -9 mid-call: the new node BYEs the caller with a Reason through drachtio-server and kills the FreeSWITCH channel', async () => {
    const { leg, ch, fsLeg, dialog } = await crashWithOneCall(true);
    const { drachtio, fs } = run as CrashRun;
    // The channel outlived the dead node's sockets (the case uuid_kill is for).
    expect(fs.channels.has(ch.uuid)).toBe(true);
    const foreign: SipMsg[] = [];
    drachtio.on('foreign-dialog-request', (_d: FakeDialog, m: SipMsg) => foreign.push(m));
    const { ended, logs, results, journal } = await restartAndEndOrphans(dialog);
    expect(ended).toBe(1);
    const bye = await leg.nextRequest('BYE');
    expect(bye.get('Reason')).toBe('SIP;cause=503;text="pay-ivr restarted during the call"');
    expect(bye.get('Call-ID')).toBe(leg.invite.get('Call-ID'));
    expect(tagOf(bye.get('To'))).toBe(tagOf(leg.invite.get('From')));
    expect(foreign.map((m) => m.method)).toEqual(['BYE']);
    expect(drachtio.dialogs.has(dialog.drachtio?.stackDialogId ?? '')).toBe(false);
    // FreeSWITCH: uuid_kill over the event socket, the channel hung up, its leg's BYE met no app (481).
    expect(fs.commands.some((c) => c.command === `api uuid_kill ${ch.uuid}`)).toBe(true);
    expect(ch.hungUp).toBe(true);
    await until(() => !drachtio.dialogs.has(fsLeg.id));
    expect(logs.has('"outcome":"killed"')).toBe(true);
    expect(logs.has('"byeStatus":200')).toBe(true);
    expect(journal.dialogs()).toEqual([]);
    const r = await results.getById('call-1');
    expect(r).toMatchObject({ outcome: 'error', origin: 'reconciled', stage: 'ended', callId: leg.invite.get('Call-ID') });
  });

  it('FreeSWITCH already hung the channel up when the socket closed: the caller still gets its BYE', async () => {
    const { leg, ch, dialog } = await crashWithOneCall(false);
    await until(() => ch.hungUp);
    const { ended, logs } = await restartAndEndOrphans(dialog);
    expect(ended).toBe(1);
    expect((await leg.nextRequest('BYE')).get('Reason')).toContain('cause=503');
    expect(logs.has('"outcome":"gone"')).toBe(true);
  });

  it('the caller hung up after the crash: drachtio-server no longer has the dialog, the BYE gets 481 and nothing is sent', async () => {
    const { leg, ch, dialog } = await crashWithOneCall(true);
    // drachtio-server answers a BYE in a dialog whose app is gone itself (481) and forgets the dialog.
    expect((await leg.bye())?.status).toBe(481);
    const sent = leg.requests.length;
    const { ended, logs } = await restartAndEndOrphans(dialog);
    expect(ended).toBe(1);
    expect(logs.has('"byeStatus":481')).toBe(true);
    expect(leg.requests.length).toBe(sent);
    // The channel is still released.
    expect(ch.hungUp).toBe(true);
  });
});
