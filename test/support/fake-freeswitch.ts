import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { FakeDialog, FakeDrachtio, PeerResponse, SipMsg, SipTarget } from './fake-drachtio.js';

/**
 * A test FreeSWITCH: the event socket (mod_event_socket) as drachtio-modesl and drachtio-fsmrf
 * speak to it, plus the SIP side of the drachtio_mrf profile behind a FakeDrachtio.
 *
 * Event socket, inbound (we listen): on connect "Content-Type: auth/request"; "auth <pw>" ->
 * "Content-Type: command/reply / Reply-Text: +OK accepted" or "-ERR invalid" followed by a
 * text/disconnect-notice and close; an address refused by the ACL gets "Content-Type:
 * rude/rejection" and close. Commands end with an empty line; replies are command/reply with
 * Reply-Text, `api` answers "Content-Type: api/response" with Content-Length, `bgapi` answers
 * "+OK Job-UUID: <id>" with a Job-UUID header and later a BACKGROUND_JOB event, `event json|plain
 * <names>` answers "+OK event listener enabled json|plain", `filter <header> <value>` answers
 * "+OK filter added. [<header>]=[<value>]". Events go to the connections that subscribed (and
 * pass their filters) as "Content-Length: N / Content-Type: text/event-json" + JSON body.
 *
 * Outbound (per call, we connect): the dialplan's `socket <X-esl-outbound> async full` connects
 * to the app; the app sends "connect" and gets the channel data as a command/reply with
 * Event-Name: CHANNEL_DATA and every channel variable as a url-encoded header. `sendmsg` with
 * call-command: execute / execute-app-name / execute-app-arg / Event-UUID answers "+OK", queues
 * the application (async mode) and fires CHANNEL_EXECUTE, then CHANNEL_EXECUTE_COMPLETE with
 * Application-Response and Application-UUID = the Event-UUID. `playback` runs until the test
 * finishes it, `uuid_break` breaks it ("FILE PLAYED"), a missing file completes "FILE NOT FOUND".
 * An application sent while a playback runs runs on top of it (FreeSWITCH's playback loop runs
 * the queued applications); `uuid_break` stops the topmost playback, `uuid_break ... all` all of them.
 * DTMF events carry DTMF-Digit, DTMF-Duration and DTMF-Source. A hangup fires CHANNEL_CALLSTATE
 * (HANGUP) and CHANNEL_HANGUP, sends BYE on the SIP leg and closes the socket with a
 * text/disconnect-notice.
 */

export interface FakeFreeswitchOptions {
  eslPort: number;
  password: string;
  /** The drachtio_mrf profile's SIP port (in `sofia status` and as the SIP target). */
  sipPort: number;
  profileRunning?: boolean;
  /** Event-socket ACL: may this address connect? Default: everyone. */
  acl?: (address: string) => boolean;
  /** Whether a prompt file exists; default: every file. */
  fileExists?: (path: string) => boolean;
  /**
   * Channels outlive their outbound event socket (FreeSWITCH's `linger`, or a node whose host
   * vanished without closing its sockets); default: a closed socket hangs the channel up.
   */
  keepChannelsOnSocketLoss?: boolean;
}

interface EslConn {
  readonly socket: Socket;
  readonly outbound: boolean;
  readonly channel?: FakeChannel;
  buf: string;
  authed: boolean;
  all: boolean;
  events: Set<string>;
  format: 'plain' | 'json';
  filters: [string, string][];
}

/** pay-ivr's idle filler (src/telephony/drachtio/playback.ts idleFillerCommand), not a prompt. */
export function isIdleFiller(e: { app: string; arg: string }): boolean {
  return e.app === 'playback' && e.arg.startsWith('silence_stream://');
}

export interface ExecRecord {
  app: string;
  arg: string;
  eventUuid: string;
  state: 'queued' | 'running' | 'done';
  response?: string;
}

export interface CommandRecord {
  channel?: string;
  command: string;
  headers: Record<string, string>;
}

export class FakeChannel {
  readonly uuid = randomUUID();
  readonly vars = new Map<string, string>();
  conn: EslConn | undefined;
  dialog: FakeDialog | undefined;
  readonly executes: ExecRecord[] = [];
  current: ExecRecord | undefined;
  /** Playbacks under `current`: it runs on top of them and they go on after it. */
  suspended: ExecRecord[] = [];
  queue: ExecRecord[] = [];
  hungUp = false;
  sdpVersion = 1;
  /** The INVITE had no SDP (3pcc): our 200 OK was the offer. */
  lateOffer = false;
  /** The SDP of the ACK to our 200 OK (the answer to a late offer), when it had one. */
  ackSdp: string | undefined;
  /** Why the channel was hung up (Hangup-Cause). */
  hangupCause: string | undefined;
  /** Whether the answer keeps telephone-event (only when the offer had it, as FreeSWITCH answers). */
  telephoneEvent = true;
  /** Set while FakeFreeswitch.holdOutbound: opens the channel's outbound event socket. */
  connectOutbound: (() => void) | undefined;
  /** Whether start_dtmf (in-band key detection) runs: only then do tones become DTMF events. */
  inbandDetection = false;
  /** The headers of the INVITE that created the channel (pay-ivr's X- headers among them). */
  inviteHeaders: [string, string][] = [];
}

/** PCMU or PCMA on an active m=audio line: what this FreeSWITCH can take. */
function hasCommonCodec(sdp: string): boolean {
  return sdp
    .split(/\r?\n/)
    .filter((l) => l.startsWith('m=audio ') && !l.startsWith('m=audio 0 '))
    .some((l) => l.split(' ').slice(3).some((pt) => pt === '0' || pt === '8'));
}

function localSdp(port: number, version: number, telephoneEvent = true): string {
  return [
    'v=0',
    `o=FreeSWITCH 1700000000 ${1700000000 + version} IN IP4 127.0.0.1`,
    's=FreeSWITCH',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0${telephoneEvent ? ' 101' : ''}`,
    'a=rtpmap:0 PCMU/8000',
    ...(telephoneEvent ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'] : []),
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function files(app: string, arg: string): string[] {
  if (app !== 'playback' && app !== 'endless_playback') return [];
  return arg.startsWith('file_string://') ? arg.slice('file_string://'.length).split('!') : [arg];
}

export class FakeFreeswitch extends EventEmitter implements SipTarget {
  readonly opts: FakeFreeswitchOptions;
  #server: Server | undefined;
  readonly #conns = new Set<EslConn>();
  readonly channels = new Map<string, FakeChannel>();
  readonly commands: CommandRecord[] = [];
  profileRunning: boolean;
  /**
   * Hold each channel's outbound event socket until the test calls ch.connectOutbound(): FreeSWITCH
   * connects it after its 200 OK, and which of the two reaches the app first is a race.
   */
  holdOutbound = false;
  #drachtio: FakeDrachtio | undefined;
  #up = false;
  #rtpPort = 24000;
  readonly coreUuid = randomUUID();

  constructor(opts: FakeFreeswitchOptions) {
    super();
    this.opts = opts;
    this.profileRunning = opts.profileRunning ?? true;
  }

  get sipHostport(): string {
    return `127.0.0.1:${this.opts.sipPort}`;
  }

  /** Puts the drachtio_mrf profile's SIP side behind a fake drachtio-server. */
  attach(drachtio: FakeDrachtio): void {
    this.#drachtio = drachtio;
    drachtio.addTarget(this.sipHostport, this);
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((s) => this.#onInbound(s));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.eslPort, '127.0.0.1', () => resolve());
    });
    this.#up = true;
  }

  /** FreeSWITCH dies: every socket closes at once, SIP stops answering. */
  async crash(): Promise<void> {
    this.#up = false;
    const server = this.#server;
    this.#server = undefined;
    for (const c of this.#conns) c.socket.destroy();
    this.#conns.clear();
    this.channels.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  get inboundConnections(): number {
    return [...this.#conns].filter((c) => !c.outbound).length;
  }

  /** The newest channel (the call under test). */
  get lastChannel(): FakeChannel | undefined {
    return [...this.channels.values()].at(-1);
  }

  /** Resolves with the next channel whose outbound event socket got its channel data. */
  nextChannel(): Promise<FakeChannel> {
    return new Promise((resolve) => this.once('channel-ready', resolve));
  }

  /** Resolves with an execute matching the predicate (already seen or future). */
  waitForExecute(ch: FakeChannel, pred: (e: ExecRecord) => boolean): Promise<ExecRecord> {
    const have = ch.executes.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => {
      const on = (c: FakeChannel, e: ExecRecord): void => {
        if (c !== ch || !pred(e)) return;
        this.off('execute', on);
        resolve(e);
      };
      this.on('execute', on);
    });
  }

  waitForCommand(pred: (c: CommandRecord) => boolean): Promise<CommandRecord> {
    const have = this.commands.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => {
      const on = (c: CommandRecord): void => {
        if (!pred(c)) return;
        this.off('command', on);
        resolve(c);
      };
      this.on('command', on);
    });
  }

  /** The running playback completes normally ("FILE PLAYED"). */
  finishPlayback(ch: FakeChannel): void {
    const cur = ch.current;
    if (cur && (cur.app === 'playback' || cur.app === 'endless_playback')) this.#complete(ch, cur, 'FILE PLAYED');
  }

  /** A key press on the caller's RTP stream (RFC 2833), as FreeSWITCH reports it. */
  sendDtmf(ch: FakeChannel, digit: string, durationMs = 250, source = 'RTP'): void {
    this.#fireEvent(ch, {
      'Event-Name': 'DTMF',
      'DTMF-Digit': digit,
      'DTMF-Duration': String(durationMs * 8),
      'DTMF-Source': source,
    });
  }

  /**
   * Whether FreeSWITCH was asked to listen for in-band tones on the channel (`start_dtmf`): only
   * then does it report DTMF-Source INBAND_AUDIO for tones in the caller's audio.
   */
  detectsInband(ch: FakeChannel): boolean {
    return ch.executes.some((e) => e.app === 'start_dtmf');
  }

  /**
   * A key tone in the caller's audio: FreeSWITCH reports it (DTMF-Source INBAND_AUDIO) only while
   * start_dtmf runs on the channel. Returns whether it was reported.
   */
  inbandTone(ch: FakeChannel, digit: string, durationMs = 100): boolean {
    if (!ch.inbandDetection) return false;
    this.sendDtmf(ch, digit, durationMs, 'INBAND_AUDIO');
    return true;
  }

  /** FreeSWITCH ends the channel itself (media timeout, operator): events, BYE, socket close. */
  hangupChannel(ch: FakeChannel, cause = 'NORMAL_CLEARING', sendBye = true): void {
    if (ch.hungUp) return;
    ch.hungUp = true;
    ch.hangupCause = cause;
    for (const e of [ch.current, ...ch.suspended].filter((x): x is ExecRecord => x !== undefined)) this.#complete(ch, e, 'FILE PLAYED');
    ch.queue = [];
    this.#fireEvent(ch, { 'Event-Name': 'CHANNEL_CALLSTATE', 'Channel-Call-State': 'HANGUP', 'Original-Channel-Call-State': 'ACTIVE', 'Hangup-Cause': cause });
    this.#fireEvent(ch, { 'Event-Name': 'CHANNEL_HANGUP', 'Hangup-Cause': cause });
    const d = ch.dialog;
    if (sendBye && d && !d.ended && this.#drachtio) void this.#drachtio.peerRequest(d, 'BYE', [['Reason', `Q.850;cause=16;text="${cause}"`]]);
    const conn = ch.conn;
    if (conn && !conn.socket.destroyed) {
      const notice = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
      conn.socket.write(`Content-Type: text/disconnect-notice\nController-Type: call\nContent-Disposition: disconnect\nContent-Length: ${Buffer.byteLength(notice)}\n\n${notice}`);
      conn.socket.end();
    }
    this.channels.delete(ch.uuid);
  }

  // ---------- SIP side (drachtio_mrf profile) ----------

  onInvite(req: SipMsg): PeerResponse {
    if (!this.#up || !this.profileRunning) return { status: 503 };
    const ch = new FakeChannel();
    ch.lateOffer = req.body.trim() === '';
    const ua = req.get('User-Agent') ?? '';
    const esl = req.get('X-esl-outbound') ?? '';
    const port = this.#rtpPort;
    this.#rtpPort += 2;
    ch.telephoneEvent = /telephone-event/i.test(req.body);
    ch.inviteHeaders = req.headers.map(([k, v]) => [k, v]);
    const sdp = localSdp(port, ch.sdpVersion, ch.telephoneEvent);
    const v = ch.vars;
    v.set('Channel-Unique-ID', ch.uuid);
    v.set('Unique-ID', ch.uuid);
    v.set('Channel-Call-UUID', ch.uuid);
    v.set('Channel-State', 'CS_EXECUTE');
    v.set('Channel-Call-State', 'ACTIVE');
    v.set('Answer-State', 'answered');
    v.set('Caller-Destination-Number', 'drachtio');
    v.set('variable_sip_user_agent', ua);
    v.set('variable_sip_h_X-esl-outbound', esl);
    v.set('variable_sip_call_id', req.get('Call-ID') ?? '');
    v.set('variable_rtp_local_sdp_str', sdp);
    v.set('variable_local_media_ip', '127.0.0.1');
    v.set('variable_local_media_port', String(port));
    v.set('variable_switch_r_sdp', req.body);
    v.set('variable_remote_media_ip', '127.0.0.1');
    v.set('variable_remote_media_port', '40000');
    v.set('variable_dtmf_type', 'rfc2833');
    v.set('variable_playback_terminators', 'none');
    // sofia keeps every X- header of the INVITE as sip_h_<name>; the dialplan (mrf.xml) copies pay-ivr's.
    for (const [k, val] of req.headers) if (/^x-/i.test(k)) v.set(`variable_sip_h_${k}`, val);
    const mediaTimeout = req.get('X-Payivr-Media-Timeout');
    if (mediaTimeout !== undefined) v.set('variable_media_timeout', mediaTimeout);
    const suites = req.get('X-Payivr-Srtp-Suites');
    // The mode is the deployment's SRTP= (start.sh); this fake stands for SRTP=optional.
    if (suites !== undefined) v.set('variable_rtp_secure_media_inbound', `optional:${suites}`);
    // mrf.xml's late-offer extension: a plain RTP offer when pay-ivr asks for one.
    if (req.get('X-Payivr-Late-Offer') === 'plain') v.set('variable_rtp_secure_media_inbound', 'forbidden');
    this.channels.set(ch.uuid, ch);
    return { status: 200, headers: [['Contact', `<sip:drachtio@${this.sipHostport}>`], ['Content-Type', 'application/sdp']], body: sdp };
  }

  onDialog(d: FakeDialog): void {
    const ch = [...this.channels.values()].find((c) => c.vars.get('variable_sip_call_id') === d.callId);
    if (!ch) return;
    ch.dialog = d;
    if (this.holdOutbound) {
      ch.connectOutbound = () => this.#connectOutbound(ch);
      return;
    }
    this.#connectOutbound(ch);
  }

  /** The dialplan answered; now `socket <X-esl-outbound> async full`. */
  #connectOutbound(ch: FakeChannel): void {
    const [host, port] = (ch.vars.get('variable_sip_h_X-esl-outbound') ?? '').split(':');
    const socket = connect(Number(port), host ?? '127.0.0.1');
    const conn: EslConn = { socket, outbound: true, channel: ch, buf: '', authed: true, all: false, events: new Set(), format: 'plain', filters: [] };
    ch.conn = conn;
    this.#conns.add(conn);
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => this.#onData(conn, data));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#conns.delete(conn);
      // The controlling socket went away: FreeSWITCH hangs the channel up.
      if (!ch.hungUp && this.#up && this.opts.keepChannelsOnSocketLoss !== true) this.hangupChannel(ch, 'NORMAL_CLEARING');
    });
  }

  onRequest(req: SipMsg, d: FakeDialog): PeerResponse {
    const ch = [...this.channels.values()].find((c) => c.dialog === d);
    if (req.method === 'BYE') {
      if (ch) this.hangupChannel(ch, 'NORMAL_CLEARING', false);
      return { status: 200 };
    }
    if (req.method === 'INVITE') {
      if (!ch) return { status: 481 };
      // No codec in common: the re-INVITE is refused and the call stays as it was.
      if (req.body.trim() !== '' && !hasCommonCodec(req.body)) {
        this.emit('reinvite-refused', ch, req);
        return { status: 488 };
      }
      ch.sdpVersion += 1;
      ch.telephoneEvent = /telephone-event/i.test(req.body);
      const sdp = localSdp(Number(ch.vars.get('variable_local_media_port')), ch.sdpVersion, ch.telephoneEvent);
      ch.vars.set('variable_rtp_local_sdp_str', sdp);
      ch.vars.set('variable_switch_r_sdp', req.body);
      this.emit('reinvite', ch, req);
      return { status: 200, headers: [['Contact', `<sip:drachtio@${this.sipHostport}>`], ['Content-Type', 'application/sdp']], body: sdp };
    }
    return { status: 200 };
  }

  onAck(req: SipMsg, d: FakeDialog): void {
    // The ACK of our 200 OK: for a late offer it carries the answer (fsmrf: a recvonly copy of ours).
    const ch = [...this.channels.values()].find((c) => c.dialog === d || c.vars.get('variable_sip_call_id') === d.callId);
    if (ch && req.body.trim() !== '') ch.ackSdp = req.body;
  }

  // ---------- event socket ----------

  #onInbound(socket: Socket): void {
    const conn: EslConn = { socket, outbound: false, buf: '', authed: false, all: false, events: new Set(), format: 'plain', filters: [] };
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    if (this.opts.acl && !this.opts.acl(socket.remoteAddress ?? '')) {
      const msg = 'Access Denied, go away.\n';
      // Keep reading so the client's FIN is seen and the socket closes.
      socket.resume();
      socket.end(`Content-Type: rude/rejection\nContent-Length: ${Buffer.byteLength(msg)}\n\n${msg}`);
      return;
    }
    this.#conns.add(conn);
    socket.on('close', () => this.#conns.delete(conn));
    socket.on('data', (data: string) => this.#onData(conn, data));
    socket.write('Content-Type: auth/request\n\n');
  }

  #onData(conn: EslConn, data: string): void {
    conn.buf += data;
    for (;;) {
      const end = conn.buf.indexOf('\n\n');
      if (end === -1) return;
      const block = conn.buf.slice(0, end);
      conn.buf = conn.buf.slice(end + 2);
      const lines = block.split('\n').map((l) => l.replace(/\r$/, ''));
      while (lines.length > 0 && lines[0] === '') lines.shift();
      const command = lines.shift();
      if (command === undefined) continue;
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim()] = l.slice(i + 1).trim();
      }
      const rec: CommandRecord = { command, headers, ...(conn.channel ? { channel: conn.channel.uuid } : {}) };
      this.commands.push(rec);
      this.emit('command', rec);
      this.#onCommand(conn, command, headers);
    }
  }

  #reply(conn: EslConn, text: string): void {
    if (!conn.socket.destroyed) conn.socket.write(`Content-Type: command/reply\nReply-Text: ${text}\n\n`);
  }

  #apiResponse(conn: EslConn, body: string): void {
    if (!conn.socket.destroyed) conn.socket.write(`Content-Type: api/response\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`);
  }

  #onCommand(conn: EslConn, command: string, headers: Record<string, string>): void {
    if (command.startsWith('exit')) {
      this.#reply(conn, '+OK bye');
      const notice = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
      conn.socket.end(`Content-Type: text/disconnect-notice\nContent-Length: ${Buffer.byteLength(notice)}\n\n${notice}`);
      return;
    }
    if (!conn.authed) {
      if (command.startsWith('auth ')) {
        if (command.slice(5) === this.opts.password) {
          conn.authed = true;
          this.#reply(conn, '+OK accepted');
        } else {
          this.#reply(conn, '-ERR invalid');
          const notice = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
          conn.socket.end(`Content-Type: text/disconnect-notice\nContent-Length: ${Buffer.byteLength(notice)}\n\n${notice}`);
        }
      } else {
        this.#reply(conn, '-ERR command not found');
      }
      return;
    }
    if (conn.outbound && command.startsWith('connect')) {
      this.#sendChannelData(conn);
      return;
    }
    if (command.startsWith('event ')) {
      const parts = command.split(/\s+/).slice(1);
      const format = parts[0] === 'json' || parts[0] === 'plain' ? parts.shift() : undefined;
      if (format) conn.format = format as 'json' | 'plain';
      for (const p of parts) {
        if (p.toUpperCase() === 'ALL') conn.all = true;
        else conn.events.add(p);
      }
      this.#reply(conn, `+OK event listener enabled ${conn.format}`);
      return;
    }
    if (command.startsWith('filter ')) {
      const [, name, ...rest] = command.split(' ');
      const value = rest.join(' ');
      conn.filters.push([name ?? '', value]);
      this.#reply(conn, `+OK filter added. [${name}]=[${value}]`);
      return;
    }
    if (command.startsWith('myevents')) {
      this.#reply(conn, '+OK Events Enabled');
      return;
    }
    if (command.startsWith('api ')) {
      this.#apiResponse(conn, this.#api(command.slice(4)));
      return;
    }
    if (command.startsWith('bgapi ')) {
      const job = headers['Job-UUID'] ?? randomUUID();
      conn.socket.write(`Content-Type: command/reply\nReply-Text: +OK Job-UUID: ${job}\nJob-UUID: ${job}\n\n`);
      const body = this.#api(command.slice(6));
      setImmediate(() => this.#sendEvent(conn, { 'Event-Name': 'BACKGROUND_JOB', 'Job-UUID': job, 'Job-Command': command.slice(6).split(' ')[0] ?? '' }, body));
      return;
    }
    if (command.startsWith('sendmsg')) {
      const uuid = command.slice(7).trim() || conn.channel?.uuid || '';
      const ch = this.channels.get(uuid);
      if (!ch) {
        this.#reply(conn, `-ERR invalid session id [${uuid}]`);
        return;
      }
      this.#reply(conn, '+OK');
      if (headers['call-command'] === 'execute') {
        const exec: ExecRecord = { app: headers['execute-app-name'] ?? '', arg: headers['execute-app-arg'] ?? '', eventUuid: headers['Event-UUID'] ?? randomUUID(), state: 'queued' };
        ch.executes.push(exec);
        ch.queue.push(exec);
        this.emit('execute', ch, exec);
        this.#runNext(ch);
      }
      return;
    }
    this.#reply(conn, '-ERR command not found');
  }

  #api(line: string): string {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === 'sofia' && args[0] === 'status') {
      const rows = [
        '                     Name\t   Type\t                                      Data\tState',
        '=================================================================================================',
      ];
      if (this.profileRunning) rows.push(`            drachtio_mrf\tprofile\t        sip:mod_sofia@127.0.0.1:${this.opts.sipPort}\tRUNNING (0)`);
      rows.push('=================================================================================================');
      rows.push(`${this.profileRunning ? 1 : 0} profile 0 aliases`);
      return rows.join('\n') + '\n';
    }
    if (cmd === 'uuid_break') {
      const ch = this.channels.get(args[0] ?? '');
      if (!ch) return '-ERR No such channel!\n';
      const cur = ch.current;
      if (args[1] === 'all') {
        // Empties the queue and, as FreeSWITCH 1.10.12 does, stops the playbacks under the top one too.
        ch.queue = [];
        for (const e of [...ch.suspended]) this.#complete(ch, e, 'FILE PLAYED');
      }
      if (cur && (cur.app === 'playback' || cur.app === 'endless_playback')) this.#complete(ch, cur, 'FILE PLAYED');
      return '+OK\n';
    }
    if (cmd === 'uuid_set_media_stats') return '+OK\n';
    if (cmd === 'uuid_kill') {
      const ch = this.channels.get(args[0] ?? '');
      if (!ch) return '-ERR No such channel!\n';
      this.emit('uuid-kill', ch);
      this.hangupChannel(ch, args[1] ?? 'NORMAL_CLEARING');
      return '+OK\n';
    }
    if (cmd === 'uuid_dump') {
      const ch = this.channels.get(args[0] ?? '');
      if (!ch) return '-ERR No such channel!\n';
      return [...ch.vars].map(([k, v]) => `${k}: ${encodeURIComponent(v)}`).join('\n') + '\n';
    }
    if (cmd === 'status') return 'UP 0 years, 0 days\n';
    return `-ERR ${cmd ?? ''} Command not found!\n`;
  }

  #sendChannelData(conn: EslConn): void {
    const ch = conn.channel;
    if (!ch) return;
    const headers: [string, string][] = [
      ['Event-Name', 'CHANNEL_DATA'],
      ['Core-UUID', this.coreUuid],
      ['FreeSWITCH-Hostname', 'fake-freeswitch'],
      ...[...ch.vars],
      ['Content-Type', 'command/reply'],
      ['Reply-Text', '+OK'],
      ['Socket-Mode', 'async'],
      ['Control', 'full'],
    ];
    conn.socket.write(headers.map(([k, v]) => `${k}: ${encodeURIComponent(v)}`).join('\n') + '\n\n');
    this.emit('channel-ready', ch);
  }

  #runNext(ch: FakeChannel): void {
    const cur = ch.current;
    if (ch.hungUp) return;
    // As switch_ivr_play_file does: a running playback runs the channel's queued applications
    // from inside (every frame), so the next one runs on top of it; anything else runs them after.
    if (cur && !((cur.app === 'playback' || cur.app === 'endless_playback') && cur.state === 'running')) return;
    const exec = ch.queue.shift();
    if (!exec) return;
    if (cur) ch.suspended.push(cur);
    ch.current = exec;
    exec.state = 'running';
    this.#fireEvent(ch, { 'Event-Name': 'CHANNEL_EXECUTE', Application: exec.app, 'Application-Data': exec.arg, 'Application-UUID': exec.eventUuid });
    switch (exec.app) {
      case 'set':
      case 'export': {
        const i = exec.arg.indexOf('=');
        if (i > 0) ch.vars.set(`variable_${exec.arg.slice(0, i)}`, exec.arg.slice(i + 1));
        this.#complete(ch, exec, '_none_');
        return;
      }
      case 'playback':
      case 'endless_playback': {
        const exists = this.opts.fileExists ?? (() => true);
        if (!files(exec.app, exec.arg).every(exists)) {
          this.#complete(ch, exec, 'FILE NOT FOUND');
          return;
        }
        this.emit('playback', ch, exec);
        return;
      }
      case 'hangup':
        this.hangupChannel(ch, exec.arg || 'NORMAL_CLEARING');
        return;
      case 'start_dtmf':
      case 'stop_dtmf':
        // mod_dptools: a media bug that queues detected tones as DTMF (source INBAND_AUDIO), or its removal.
        ch.inbandDetection = exec.app === 'start_dtmf';
        this.#complete(ch, exec, '_none_');
        return;
      default:
        this.#complete(ch, exec, '_none_');
    }
  }

  #complete(ch: FakeChannel, exec: ExecRecord, response: string): void {
    if (exec.state === 'done') return;
    exec.state = 'done';
    exec.response = response;
    if (ch.current === exec) ch.current = ch.suspended.pop();
    else ch.suspended = ch.suspended.filter((e) => e !== exec);
    this.#fireEvent(ch, {
      'Event-Name': 'CHANNEL_EXECUTE_COMPLETE',
      Application: exec.app,
      'Application-Data': exec.arg,
      'Application-Response': response,
      'Application-UUID': exec.eventUuid,
    });
    this.emit('execute-complete', ch, exec);
    setImmediate(() => this.#runNext(ch));
  }

  #fireEvent(ch: FakeChannel, headers: Record<string, string>): void {
    const full: Record<string, string> = {
      'Core-UUID': this.coreUuid,
      'FreeSWITCH-Hostname': 'fake-freeswitch',
      'Event-Date-Timestamp': String(Date.now() * 1000),
      'Unique-ID': ch.uuid,
      'Channel-Call-UUID': ch.uuid,
      ...headers,
    };
    for (const c of this.#conns) this.#sendEvent(c, full);
  }

  #sendEvent(conn: EslConn, headers: Record<string, string>, body?: string): void {
    const name = headers['Event-Name'] ?? '';
    if (!conn.authed || conn.socket.destroyed) return;
    if (!conn.all && !conn.events.has(name)) return;
    for (const [k, v] of conn.filters) if (headers[k] !== undefined && headers[k] !== v) return;
    if (conn.filters.length > 0 && !conn.filters.some(([k, v]) => headers[k] === v)) return;
    let payload: string;
    if (conn.format === 'json') {
      payload = JSON.stringify(body === undefined ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)), _body: body });
    } else {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${encodeURIComponent(v)}`);
      payload = body === undefined ? `${lines.join('\n')}\n\n` : `${lines.join('\n')}\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`;
    }
    conn.socket.write(`Content-Length: ${Buffer.byteLength(payload)}\nContent-Type: text/event-${conn.format}\n\n${payload}`);
  }
}
