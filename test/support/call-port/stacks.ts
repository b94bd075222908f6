import { cpSync, mkdirSync } from 'node:fs';
import { parseConfig } from '../../../src/config/load.js';
import { configSchema, type Config } from '../../../src/config/schema.js';
import type { DtmfDigit } from '../../../src/domain/dtmf.js';
import { silentLogger } from '../../../src/log.js';
import { DrachtioBackend } from '../../../src/telephony/drachtio/backend.js';
import { EmbeddedBackend } from '../../../src/telephony/embedded/backend.js';
import type { InboundCall, TelephonyBackend } from '../../../src/telephony/types.js';
import { callQueue, startHarness, type DrachtioBackendOptions, type Harness } from '../drachtio-harness.js';
import { CALLER_SDP, type CallerLeg, type SipMsg } from '../fake-drachtio.js';
import type { ExecRecord, FakeChannel } from '../fake-freeswitch.js';
import { headerValue } from '../../../src/telephony/embedded/sip/message.js';
import { shortPromptsDir } from '../short-prompts.js';
import { SipPeer } from '../sip-peer.js';
import { TcpCut } from '../tcp-cut.js';
import { waitUntil, within, type BackendKind, type Caller, type FinalResponse, type KeyMethod, type Offer, type ReferPlan, type Stack, type StackOptions } from './driver.js';
import { WireCaller, type WireTarget } from './wire.js';

/** The fixed ports of the suite (one lane's sub-range; the caller side binds port 0). */
export interface StackPorts {
  /** Embedded: SIP (UDP) and the RTP range of its media engine. */
  sip: number;
  rtpMin: number;
  rtpMax: number;
  /** Fakes: FakeDrachtio, FakeFreeswitch's event socket and SIP side. */
  drachtio: number;
  esl: number;
  fsSip: number;
  /** Drachtio backends: the relay a crash cuts, and fsmrf's listen port (the next one after a restart). */
  relay: number;
  listen: number;
}

const WAIT_MS = 5000;
/** Drachtio backends: how long a caller's ACK may take (a case never lets it run out). */
const ACK_TIMEOUT_MS = 5000;

/** Backend options a newer backend may know (passed as they are; unknown ones are ignored). */
function drachtioOptions(o: StackOptions): DrachtioBackendOptions & Record<string, unknown> {
  return { ackTimeoutMs: ACK_TIMEOUT_MS, offerTimeoutMs: o.offerTimeoutMs };
}

function withDrachtio(c: Config, port: number, listenPort: number): Config {
  return {
    ...c,
    telephony: { ...c.telephony, drachtio: { ...c.telephony.drachtio, port }, freeswitch: { ...c.telephony.freeswitch, listenPort } },
  };
}

async function drachtioReady(b: TelephonyBackend): Promise<void> {
  await waitUntil(() => b.ready, WAIT_MS, 'ready drachtio backend');
}

export async function startStack(kind: BackendKind, ports: StackPorts, opts: StackOptions): Promise<Stack> {
  if (kind === 'embedded') return EmbeddedStack.start(ports, opts);
  if (kind === 'drachtio-fakes') return FakesStack.start(ports, opts);
  return RealDrachtioStack.start(ports, opts);
}

// ---------- a backend driven by the SIP/RTP wire caller ----------

/** What the embedded and the real drachtio stacks share: the wire caller and the current instance. */
abstract class WireStack<B extends TelephonyBackend> {
  protected readonly target: WireTarget;
  protected readonly callers: WireCaller[] = [];
  protected current: B;
  protected next: () => Promise<InboundCall>;

  protected constructor(target: WireTarget, backend: B) {
    this.target = target;
    this.current = backend;
    this.next = callQueue(backend);
  }

  /** The instance taking calls from now on (after a restart). */
  protected use(backend: B): void {
    this.current = backend;
    this.next = callQueue(backend);
  }

  get backend(): TelephonyBackend {
    return this.current;
  }

  nextCall(): Promise<InboundCall> {
    return within(this.next(), WAIT_MS, 'call from the backend');
  }

  async invite(offer: Offer = 'sdp'): Promise<Caller> {
    const c = await WireCaller.invite(this.target, offer);
    this.callers.push(c);
    return c;
  }

  options(): Promise<{ status: number; retryAfter: string | undefined }> {
    return wireOptions(this.target.sipPort);
  }
}

// ---------- the embedded engine, on the wire ----------

class EmbeddedStack extends WireStack<EmbeddedBackend> implements Stack {
  readonly kind = 'embedded' as const;
  readonly #config: Config;
  readonly #opts: StackOptions;
  /** Instances that crashed: closed for good at the end. */
  readonly #dead: EmbeddedBackend[] = [];

  private constructor(config: Config, opts: StackOptions, target: WireTarget) {
    super(target, EmbeddedStack.#make(config, opts));
    this.#config = config;
    this.#opts = opts;
  }

  static async start(ports: StackPorts, opts: StackOptions): Promise<EmbeddedStack> {
    const config = configSchema.parse({
      sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: ports.sip }] },
      rtp: { host: '127.0.0.1', portMin: ports.rtpMin, portMax: ports.rtpMax, workers: 0 },
      promptsDir: shortPromptsDir(),
    });
    const s = new EmbeddedStack(config, opts, { sipPort: ports.sip, promptsDir: config.promptsDir, audio: 'exact' });
    await s.current.start();
    return s;
  }

  static #make(config: Config, opts: StackOptions): EmbeddedBackend {
    return new EmbeddedBackend(config, silentLogger, { timers: { t1: 20, t2: 160, t4: 200 }, ackGraceMs: 2000, offerTimeoutMs: opts.offerTimeoutMs });
  }

  async crash(): Promise<void> {
    // The sockets close and nothing more goes out (no BYE, no retransmission); the media engine
    // of the dead instance is left alone until close().
    await this.current.userAgent?.transport.stop();
    this.#dead.push(this.current);
  }

  async restart(): Promise<void> {
    this.use(EmbeddedStack.#make(this.#config, this.#opts));
    await this.current.start();
  }

  async close(): Promise<void> {
    // The backend first: the callers still answer its BYEs.
    await this.current.stop();
    for (const b of this.#dead) {
      // Its sockets are gone: no BYE of its own can go out, so do not wait for answers to them.
      await b.userAgent?.stop(0);
      await b.stop().catch(() => undefined);
    }
    for (const c of this.callers) await c.close();
  }
}

async function wireOptions(sipPort: number): Promise<{ status: number; retryAfter: string | undefined }> {
  const peer = await SipPeer.open('udp', sipPort);
  try {
    const o = peer.newCall();
    peer.send(
      [`OPTIONS sip:127.0.0.1:${sipPort} SIP/2.0`, peer.via(o.branch), 'Max-Forwards: 70', `From: <sip:ping@127.0.0.1>;tag=${o.fromTag}`, 'To: <sip:127.0.0.1>', `Call-ID: ${o.callId}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'),
    );
    const r = await peer.waitFor((m) => m.kind === 'response' && m.status >= 200 && headerValue(m, 'call-id') === o.callId, WAIT_MS);
    return { status: r.kind === 'response' ? r.status : 0, retryAfter: headerValue(r, 'retry-after') };
  } finally {
    await peer.close();
  }
}

// ---------- drachtio-server + FreeSWITCH, real ones, on the wire ----------

function hostPort(v: string | undefined, name: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(v ?? '');
  if (!m) throw new Error(`${name} must be host:port (got ${v === undefined ? 'nothing' : JSON.stringify(v)})`);
  return { host: m[1] as string, port: Number(m[2]) };
}

/** The real stack the environment names (docs/test-suite.md): drachtio-server, its SIP port, FreeSWITCH, the prompts directory. */
function realStackEnv(env: NodeJS.ProcessEnv = process.env): { drachtio: { host: string; port: number }; drachtioSecret: string; sip: { host: string; port: number }; freeswitch: { host: string; port: number }; freeswitchSecret: string; promptsDir: string } {
  const promptsDir = env['PAYIVR_REAL_PROMPTS_DIR'];
  if (promptsDir === undefined || promptsDir === '') throw new Error('PAYIVR_REAL_PROMPTS_DIR must name the prompts directory FreeSWITCH reads');
  const sip = hostPort(env['PAYIVR_REAL_DRACHTIO_SIP'], 'PAYIVR_REAL_DRACHTIO_SIP');
  if (sip.host !== '127.0.0.1') throw new Error('PAYIVR_REAL_DRACHTIO_SIP must be on 127.0.0.1 (the caller binds 127.0.0.1 only)');
  return {
    drachtio: hostPort(env['PAYIVR_REAL_DRACHTIO'], 'PAYIVR_REAL_DRACHTIO'),
    drachtioSecret: env['PAYIVR_REAL_DRACHTIO_SECRET'] ?? 'cymru',
    sip,
    freeswitch: hostPort(env['PAYIVR_REAL_FREESWITCH'], 'PAYIVR_REAL_FREESWITCH'),
    freeswitchSecret: env['PAYIVR_REAL_FREESWITCH_SECRET'] ?? 'ClueCon',
    promptsDir,
  };
}

class RealDrachtioStack extends WireStack<DrachtioBackend> implements Stack {
  readonly kind = 'drachtio-real' as const;
  readonly #config: Config;
  readonly #opts: StackOptions;
  readonly #ports: StackPorts;
  readonly #direct: number;
  readonly #relay: TcpCut;
  readonly #stopping: Promise<void>[] = [];

  private constructor(config: Config, opts: StackOptions, ports: StackPorts, direct: number, relay: TcpCut, target: WireTarget) {
    super(target, new DrachtioBackend(withDrachtio(config, ports.relay, ports.listen), silentLogger, drachtioOptions(opts)));
    this.#config = config;
    this.#opts = opts;
    this.#ports = ports;
    this.#direct = direct;
    this.#relay = relay;
  }

  static async start(ports: StackPorts, opts: StackOptions): Promise<RealDrachtioStack> {
    const env = realStackEnv();
    // FreeSWITCH plays the files it reads: the short pack goes where it reads them.
    mkdirSync(env.promptsDir, { recursive: true });
    cpSync(shortPromptsDir(), env.promptsDir, { recursive: true });
    const config = parseConfig({
      telephony: {
        backend: 'drachtio',
        drachtio: { host: env.drachtio.host, port: env.drachtio.port, secret: env.drachtioSecret, maxReconnectDelayMs: 200 },
        freeswitch: { host: env.freeswitch.host, port: env.freeswitch.port, secret: env.freeswitchSecret, listenAddress: '127.0.0.1', listenPort: ports.listen, promptsDir: env.promptsDir },
      },
    });
    const relay = await TcpCut.open(ports.relay, env.drachtio);
    const s = new RealDrachtioStack(config, opts, ports, env.drachtio.port, relay, { sipPort: env.sip.port, promptsDir: env.promptsDir, audio: 'tone' });
    await s.current.start();
    await drachtioReady(s.current);
    await s.#inviteRouted();
    return s;
  }

  /**
   * The backend is ready once its INVITE route is sent; drachtio-server takes it a moment later
   * and answers 503 itself until then. A probe INVITE, retried while it gets that 503, shows the
   * route is in place; the backend's call for it is taken from the queue and refused.
   */
  async #inviteRouted(): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < WAIT_MS) {
      const probe = await WireCaller.invite(this.target, 'sdp');
      try {
        const first = await Promise.race([probe.final().then((f) => f.status, () => 0), new Promise<number>((r) => setTimeout(() => r(0), 200))]);
        if (first === 503) continue;
        const call = await within(this.next(), WAIT_MS, 'probe call from the backend');
        await call.reject(486);
        await probe.final().catch(() => undefined);
        return;
      } finally {
        await probe.close();
      }
    }
    throw new Error(`drachtio-server did not take the INVITE route within ${WAIT_MS} ms`);
  }

  async crash(): Promise<void> {
    await this.#relay.cut();
    // What is left of the instance cannot reach drachtio-server any more; let it wind down.
    this.#stopping.push(this.current.stop().catch(() => undefined));
  }

  async restart(): Promise<void> {
    this.use(new DrachtioBackend(withDrachtio(this.#config, this.#direct, this.#ports.listen + 1), silentLogger, drachtioOptions(this.#opts)));
    await this.current.start();
    await drachtioReady(this.current);
    await this.#inviteRouted();
  }

  async close(): Promise<void> {
    await this.current.stop();
    await this.#relay.cut().catch(() => undefined);
    await Promise.all(this.#stopping);
    for (const c of this.callers) await c.close();
  }
}

// ---------- the protocol-level fakes ----------

class FakesStack implements Stack {
  readonly kind = 'drachtio-fakes' as const;
  readonly #h: Harness;
  readonly #opts: StackOptions;
  readonly #ports: StackPorts;
  readonly #relay: TcpCut;
  readonly #channels: FakeChannel[] = [];
  readonly #claimed = new Set<FakeChannel>();
  readonly #callers: FakesCaller[] = [];
  readonly #stopping: Promise<void>[] = [];
  #backend: DrachtioBackend;
  #next: () => Promise<InboundCall>;

  private constructor(h: Harness, opts: StackOptions, ports: StackPorts, relay: TcpCut) {
    this.#h = h;
    this.#opts = opts;
    this.#ports = ports;
    this.#relay = relay;
    this.#backend = h.backend;
    this.#next = h.nextCall;
    h.fs.on('channel-ready', (ch: FakeChannel) => this.#channels.push(ch));
  }

  static async start(ports: StackPorts, opts: StackOptions): Promise<FakesStack> {
    const h = await startHarness(
      { drachtio: ports.drachtio, esl: ports.esl, sip: ports.fsSip, listen: ports.listen },
      { tweak: (c) => withDrachtio(c, ports.relay, ports.listen), backend: drachtioOptions(opts) },
    );
    const relay = await TcpCut.open(ports.relay, { host: '127.0.0.1', port: ports.drachtio });
    const s = new FakesStack(h, opts, ports, relay);
    await h.backend.start();
    await within(h.drachtio.waitForRoute('invite'), WAIT_MS, 'INVITE route on the fake drachtio-server');
    await drachtioReady(h.backend);
    return s;
  }

  get backend(): TelephonyBackend {
    return this.#backend;
  }

  nextCall(): Promise<InboundCall> {
    return within(this.#next(), WAIT_MS, 'call from the backend');
  }

  async invite(offer: Offer = 'sdp'): Promise<Caller> {
    const sdp = offer === 'none' ? '' : offer === 'sdp' ? CALLER_SDP : CALLER_SDP.replace('m=audio 40000 RTP/AVP 0 8 101', 'm=audio 40000 RTP/AVP 0 8').replace(/a=rtpmap:101[^\r]*\r\na=fmtp:101[^\r]*\r\n/, '');
    const leg = this.#h.drachtio.invite({ sdp });
    const c = new FakesCaller(this.#h, leg, offer, () => this.#claimChannel());
    this.#callers.push(c);
    return Promise.resolve(c);
  }

  async options(): Promise<{ status: number; retryAfter: string | undefined }> {
    const r = await within(this.#h.drachtio.options(), WAIT_MS, 'answer to OPTIONS');
    return { status: r.status, retryAfter: r.get('Retry-After') };
  }

  async crash(): Promise<void> {
    await this.#relay.cut();
    this.#stopping.push(this.#backend.stop().catch(() => undefined));
    await within(this.#h.drachtio.waitForRoute('invite', false), WAIT_MS, 'INVITE route gone with the crashed instance');
  }

  async restart(): Promise<void> {
    const config = withDrachtio(this.#h.config, this.#ports.drachtio, this.#ports.listen + 1);
    this.#backend = new DrachtioBackend(config, silentLogger, drachtioOptions(this.#opts));
    this.#next = callQueue(this.#backend);
    await this.#backend.start();
    await within(this.#h.drachtio.waitForRoute('invite'), WAIT_MS, 'INVITE route of the new instance');
    await drachtioReady(this.#backend);
  }

  async close(): Promise<void> {
    if (this.#backend !== this.#h.backend) await this.#backend.stop();
    await this.#h.close();
    await this.#relay.cut().catch(() => undefined);
    await Promise.all(this.#stopping);
  }

  async #claimChannel(): Promise<FakeChannel> {
    let ch: FakeChannel | undefined;
    await waitUntil(() => (ch = this.#channels.find((c) => !this.#claimed.has(c))) !== undefined, WAIT_MS, 'FreeSWITCH channel of the call');
    const got = ch as FakeChannel;
    this.#claimed.add(got);
    return got;
  }
}

const THIRD_PARTY = { address: '127.0.0.2', port: 5099, protocol: 'udp' as const };

function filesOf(e: ExecRecord): string[] {
  if (e.app !== 'playback' && e.app !== 'endless_playback') return [];
  return e.arg.startsWith('file_string://') ? e.arg.slice('file_string://'.length).split('!') : [e.arg];
}

/** The caller as a FakeDrachtio leg; its media is what FakeFreeswitch was told to play and reports. */
class FakesCaller implements Caller {
  readonly callId: string;
  readonly #h: Harness;
  readonly #leg: CallerLeg;
  readonly #offer: Offer;
  readonly #claim: () => Promise<FakeChannel>;
  #ch: Promise<FakeChannel> | undefined;
  #playing: ExecRecord | undefined;

  constructor(h: Harness, leg: CallerLeg, offer: Offer, claim: () => Promise<FakeChannel>) {
    this.#h = h;
    this.#leg = leg;
    this.#offer = offer;
    this.#claim = claim;
    this.callId = leg.invite.get('Call-ID') ?? '';
  }

  async final(): Promise<FinalResponse> {
    const r: SipMsg = await within(this.#leg.final(), WAIT_MS, 'final response to the INVITE');
    return { status: r.status, header: (n) => r.get(n), body: r.body };
  }

  ack(): void {
    this.#leg.ack(this.#offer === 'none' ? CALLER_SDP : '');
  }

  /** The call's FreeSWITCH channel, once its event socket subscribed and filtered (DTMF can go). */
  #channel(): Promise<FakeChannel> {
    this.#ch ??= (async () => {
      const ch = await this.#claim();
      await within(this.#h.fs.waitForCommand((c) => c.channel === ch.uuid && c.command === `filter Unique-ID ${ch.uuid}`), WAIT_MS, 'event filter of the channel');
      return ch;
    })();
    return this.#ch;
  }

  async key(digit: DtmfDigit, method: KeyMethod): Promise<void> {
    switch (method) {
      case 'rfc4733':
        this.#h.fs.sendDtmf(await this.#channel(), digit, 100, 'RTP');
        return;
      case 'inband': {
        const ch = await this.#channel();
        // FreeSWITCH hears tones only where it was asked to listen for them (start_dtmf).
        await within(this.#h.fs.waitForExecute(ch, (e) => e.app === 'start_dtmf'), WAIT_MS, 'start_dtmf on the channel: FreeSWITCH would not detect the tone');
        if (this.#h.fs.detectsInband(ch)) this.#h.fs.sendDtmf(ch, digit, 100, 'INBAND_AUDIO');
        return;
      }
      case 'info-dtmf-relay':
        expectOk(await this.info('application/dtmf-relay', `Signal=${digit}\r\nDuration=160\r\n`));
        return;
      case 'info-dtmf':
        expectOk(await this.info('application/dtmf', digit));
        return;
    }
  }

  async info(contentType: string, body: string): Promise<number> {
    const r = await within(this.#leg.request('INFO', [['Content-Type', contentType]], body), WAIT_MS, 'answer to INFO');
    return r?.status ?? 0;
  }

  async thirdParty(method: 'INFO' | 'BYE'): Promise<number> {
    const r =
      method === 'INFO'
        ? this.#leg.request('INFO', [['Content-Type', 'application/dtmf-relay']], 'Signal=1\r\nDuration=160\r\n', THIRD_PARTY)
        : this.#leg.request('BYE', [], '', THIRD_PARTY);
    return (await within(r, WAIT_MS, `answer to the third party's ${method}`))?.status ?? 0;
  }

  async bye(): Promise<number> {
    return (await within(this.#leg.bye(), WAIT_MS, 'answer to BYE'))?.status ?? 0;
  }

  async cancel(): Promise<FinalResponse> {
    this.#leg.cancel();
    return this.final();
  }

  async handleRefer(plan: ReferPlan): Promise<{ referTo: string }> {
    const refer = await within(this.#leg.nextRequest('REFER'), WAIT_MS, 'REFER');
    if (plan === 'accepted') {
      expectOk((await this.#leg.notify('SIP/2.0 100 Trying', 'active;expires=60'))?.status ?? 0);
      expectOk((await this.#leg.notify('SIP/2.0 200 OK', 'terminated;reason=noresource'))?.status ?? 0);
    } else if (plan === 'declined') {
      expectOk((await this.#leg.notify('SIP/2.0 603 Decline', 'terminated;reason=noresource'))?.status ?? 0);
    }
    return { referTo: refer.get('Refer-To') ?? '' };
  }

  async byeReceived(): Promise<{ reason: string | undefined }> {
    const bye = await within(this.#leg.nextRequest('BYE'), WAIT_MS, 'BYE to the caller');
    return { reason: bye.get('Reason') };
  }

  byeCount(): number {
    return this.#leg.requests.filter((r) => r.method === 'BYE').length;
  }

  async heard(language: string, ids: readonly string[]): Promise<void> {
    const exec = await this.#playback(language, ids);
    // FreeSWITCH plays the files to the end.
    await waitUntil(() => exec.state !== 'queued', WAIT_MS, 'playback running');
    this.#h.fs.finishPlayback(await this.#channel());
    await waitUntil(() => exec.state === 'done', WAIT_MS, 'playback complete');
  }

  async hearing(language: string, ids: readonly string[]): Promise<void> {
    this.#playing = await this.#playback(language, ids);
    await waitUntil(() => this.#playing?.state === 'running', WAIT_MS, 'playback running');
  }

  async cutShort(): Promise<void> {
    const ch = await this.#channel();
    const exec = this.#playing;
    if (exec === undefined) throw new Error('cutShort() before hearing()');
    await waitUntil(() => exec.state === 'done' && this.#h.fs.commands.some((c) => c.command === `api uuid_break ${ch.uuid} all`), WAIT_MS, 'playback broken off (uuid_break)');
    if (exec.response !== 'FILE PLAYED') throw new Error(`playback ended with ${exec.response ?? 'nothing'}`);
  }

  async close(): Promise<void> {
    // The fake legs hold no sockets.
  }

  async #playback(language: string, ids: readonly string[]): Promise<ExecRecord> {
    const ch = await this.#channel();
    const dir = this.#h.config.telephony.freeswitch.promptsDir;
    const want = ids.map((id) => `${dir}/${language}/${id}.wav`).join('!');
    return within(this.#h.fs.waitForExecute(ch, (e) => filesOf(e).join('!') === want), WAIT_MS, 'FreeSWITCH playback of the prompts');
  }
}

function expectOk(status: number): void {
  if (status !== 200) throw new Error(`in-dialog request answered ${status}, not 200`);
}
