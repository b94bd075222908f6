import type { DtmfDigit } from '../../../src/domain/dtmf.js';
import { decode } from '../../../src/telephony/embedded/media/g711.js';
import { headerValue, type SipMessage, type SipResponse } from '../../../src/telephony/embedded/sip/message.js';
import { RtpPeer, expectPromptSequence } from '../rtp-peer.js';
import { SHORT_PROMPT_MS, shortPromptPitch } from '../short-prompts.js';
import { SipPeer, type PeerCall } from '../sip-peer.js';
import { waitUntil, within, type Caller, type FinalResponse, type KeyMethod, type Offer, type ReferPlan } from './driver.js';

/**
 * The caller on the wire: raw SIP over UDP (SipPeer) and an RTP endpoint (RtpPeer) on
 * 127.0.0.1, in front of the embedded engine or a real drachtio-server (whose media is a real
 * FreeSWITCH). How prompts are recognised in the audio: `exact` compares the G.711 bytes with the
 * encoded prompt files (our own encoder on the other side); `tone` looks for each short prompt's
 * pitch (another encoder, e.g. FreeSWITCH's, may round a sample differently).
 */

export type AudioCheck = 'exact' | 'tone';

export interface WireTarget {
  /** SIP port of the system under test on 127.0.0.1. */
  sipPort: number;
  promptsDir: string;
  audio: AudioCheck;
}

const WAIT_MS = 5000;
const PACKET_SAMPLES = 160;

function sdpOffer(rtpPort: number, telephoneEvent: boolean): string {
  const pts = telephoneEvent ? '0 101' : '0';
  return [
    'v=0',
    'o=caller 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${rtpPort} RTP/AVP ${pts}`,
    'a=rtpmap:0 PCMU/8000',
    ...(telephoneEvent ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'] : []),
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/**
 * The answer to a late offer (RFC 3264 section 6): one m-line per offered one, in order; the
 * caller takes the first plain RTP/AVP audio line and rejects the others with port 0 (an
 * SRTP-optional FreeSWITCH offers RTP/SAVP and RTP/AVP lines on the same port).
 */
function lateAnswer(offer: string, rtpPort: number): string {
  const lines = offer.split(/\r?\n/).filter((l) => l.startsWith('m='));
  const take = lines.findIndex((l) => /^m=audio \d+ RTP\/AVP /.test(l));
  const te = /telephone-event/.test(offer);
  const media = lines.flatMap((l, i) => {
    if (i === take) return [`m=audio ${rtpPort} RTP/AVP ${te ? '0 101' : '0'}`, 'a=rtpmap:0 PCMU/8000', ...(te ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'] : []), 'a=ptime:20', 'a=sendrecv'];
    const [kind, , proto, ...fmts] = l.slice(2).split(' ');
    return [`m=${kind ?? 'audio'} 0 ${proto ?? 'RTP/AVP'} ${fmts.join(' ') || '0'}`];
  });
  return ['v=0', 'o=caller 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', ...media, ''].join('\r\n');
}

/** Where the SDP says to send RTP. */
function mediaTarget(sdp: string): { address: string; port: number } | undefined {
  const address = /^c=IN IP4 (\S+)/m.exec(sdp)?.[1];
  const port = /^m=audio (\d+)/m.exec(sdp)?.[1];
  return address !== undefined && port !== undefined ? { address, port: Number(port) } : undefined;
}

/** Frames (20 ms) in which `freq` carries most of the energy: how a pitch is found in the audio. */
function toneFrames(pcm: Int16Array, freq: number): boolean[] {
  const out: boolean[] = [];
  const w = (2 * Math.PI * freq) / 8000;
  const coeff = 2 * Math.cos(w);
  for (let off = 0; off + PACKET_SAMPLES <= pcm.length; off += PACKET_SAMPLES) {
    let s1 = 0;
    let s2 = 0;
    let energy = 0;
    for (let i = 0; i < PACKET_SAMPLES; i++) {
      const x = pcm[off + i] as number;
      energy += x * x;
      const s0 = x + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure tone at `freq` gives 1; the quiet prompts are far above the silence floor.
    out.push(energy > PACKET_SAMPLES * 500 * 500 && (2 * power) / (PACKET_SAMPLES * energy) > 0.6);
  }
  return out;
}

/** First frame index where the prompt's pitch holds for most of its length, or -1. */
function toneAt(pcm: Int16Array, id: string, from = 0): number {
  const frames = toneFrames(pcm, shortPromptPitch(id));
  const need = Math.max(2, Math.floor(SHORT_PROMPT_MS / 20) - 3);
  let run = 0;
  for (let i = from; i < frames.length; i++) {
    run = frames[i] === true ? run + 1 : 0;
    if (run >= need) return i - need + 1;
  }
  return -1;
}

export class WireCaller implements Caller {
  readonly callId: string;
  readonly #target: WireTarget;
  readonly #peer: SipPeer;
  readonly #rtp: RtpPeer;
  readonly #c: PeerCall;
  readonly #offer: Offer;
  #cseq = 1;
  #final: Promise<FinalResponse> | undefined;
  #remoteOffer: string | undefined;
  #byeSeen = 0;
  /** Packet index at which the prompts under a barge-in started. */
  #hearingAt = 0;

  private constructor(target: WireTarget, peer: SipPeer, rtp: RtpPeer, offer: Offer) {
    this.#target = target;
    this.#peer = peer;
    this.#rtp = rtp;
    this.#offer = offer;
    this.#c = peer.newCall();
    this.callId = this.#c.callId;
  }

  static async invite(target: WireTarget, offer: Offer): Promise<WireCaller> {
    const peer = await SipPeer.open('udp', target.sipPort);
    const rtp = await RtpPeer.open({ port: 0 });
    const caller = new WireCaller(target, peer, rtp, offer);
    const sdp = offer === 'none' ? '' : sdpOffer(rtp.port, offer === 'sdp');
    peer.send(peer.invite(caller.#c, { sdp }));
    return caller;
  }

  final(): Promise<FinalResponse> {
    this.#final ??= (async () => {
      const r = (await this.#peer.waitFor(
        (m) => m.kind === 'response' && m.status >= 200 && headerValue(m, 'call-id') === this.callId && headerValue(m, 'cseq') === '1 INVITE',
        WAIT_MS,
      )) as SipResponse;
      this.#c.to = headerValue(r, 'to');
      const body = r.body.toString('utf8');
      if (r.status >= 300) {
        // A non-2xx final is ACKed in its own transaction (same branch).
        this.#peer.send(this.#peer.inDialog(this.#c, 'ACK', { cseq: 1, branch: this.#c.branch }));
      } else {
        const to = mediaTarget(body);
        if (to !== undefined) this.#rtp.setTarget(to.address, to.port);
        if (this.#offer === 'none') this.#remoteOffer = body;
      }
      return { status: r.status, header: (name: string) => headerValue(r, name), body };
    })();
    return this.#final;
  }

  ack(): void {
    const answer = this.#offer === 'none' && this.#remoteOffer !== undefined ? lateAnswer(this.#remoteOffer, this.#rtp.port) : '';
    this.#peer.send(this.#peer.inDialog(this.#c, 'ACK', { cseq: 1, body: answer }));
    this.#rtp.start();
  }

  async key(digit: DtmfDigit, method: KeyMethod): Promise<void> {
    switch (method) {
      case 'rfc4733':
        await this.#rtp.sendDigit(digit, { durationMs: 100 });
        return;
      case 'inband':
        // Tones count once media runs both ways: FreeSWITCH's first packets (its idle silence) show it.
        await this.#rtp.waitForPackets(1, WAIT_MS);
        await this.#rtp.sendTone(digit, 100);
        return;
      case 'info-dtmf-relay':
        expectOk(await this.info('application/dtmf-relay', `Signal=${digit}\r\nDuration=160\r\n`));
        return;
      case 'info-dtmf':
        expectOk(await this.info('application/dtmf', digit));
        return;
    }
  }

  info(contentType: string, body: string): Promise<number> {
    return this.#request(this.#peer, 'INFO', { contentType, body });
  }

  async thirdParty(method: 'INFO' | 'BYE'): Promise<number> {
    const third = await SipPeer.open('udp', this.#target.sipPort, 0, '127.0.0.2');
    try {
      return await this.#request(third, method, method === 'INFO' ? { contentType: 'application/dtmf-relay', body: 'Signal=1\r\nDuration=160\r\n' } : {});
    } finally {
      await third.close();
    }
  }

  bye(): Promise<number> {
    return this.#request(this.#peer, 'BYE', {});
  }

  async cancel(): Promise<FinalResponse> {
    const p = this.#peer;
    const c = this.#c;
    p.send(
      [
        `CANCEL sip:+33140000001@127.0.0.1:${this.#target.sipPort} SIP/2.0`,
        p.via(c.branch),
        'Max-Forwards: 70',
        `From: "Caller" <sip:caller@127.0.0.1>;tag=${c.fromTag}`,
        'To: <sip:+33140000001@127.0.0.1>',
        `Call-ID: ${c.callId}`,
        'CSeq: 1 CANCEL',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    return this.final();
  }

  async handleRefer(plan: ReferPlan): Promise<{ referTo: string }> {
    const refer = await this.#peer.request('REFER', this.callId, WAIT_MS);
    this.#peer.respond(refer, 202);
    const notify = async (frag: string, state: string): Promise<void> => {
      expectOk(await this.#request(this.#peer, 'NOTIFY', { contentType: 'message/sipfrag;version=2.0', body: `${frag}\r\n`, extra: ['Event: refer', `Subscription-State: ${state}`] }));
    };
    if (plan === 'accepted') {
      await notify('SIP/2.0 100 Trying', 'active;expires=60');
      await notify('SIP/2.0 200 OK', 'terminated;reason=noresource');
    } else if (plan === 'declined') {
      await notify('SIP/2.0 603 Decline', 'terminated;reason=noresource');
    }
    return { referTo: headerValue(refer, 'refer-to') ?? '' };
  }

  async byeReceived(): Promise<{ reason: string | undefined }> {
    const from = this.#byeSeen;
    const byes = (): SipMessage[] => this.#peer.received.filter((m) => m.kind === 'request' && m.method === 'BYE' && headerValue(m, 'call-id') === this.callId);
    await waitUntil(() => byes().length > from, WAIT_MS, 'BYE to the caller');
    this.#byeSeen = from + 1;
    return { reason: headerValue(byes()[from] as SipMessage, 'reason') };
  }

  byeCount(): number {
    return this.#peer.count((m) => m.kind === 'request' && m.method === 'BYE' && headerValue(m, 'call-id') === this.callId);
  }

  async heard(language: string, ids: readonly string[]): Promise<void> {
    await waitUntil(() => this.#found(language, ids), ids.length * SHORT_PROMPT_MS + WAIT_MS, `audio of ${ids.length} prompt(s) on the wire`);
  }

  async hearing(language: string, ids: readonly string[]): Promise<void> {
    await waitUntil(() => this.#found(language, ids.slice(0, 1)), WAIT_MS, 'audio of the first prompt on the wire');
    this.#hearingAt = this.#rtp.received.length;
  }

  async cutShort(language: string, ids: readonly string[]): Promise<void> {
    // Listen for as long as the whole sequence would have lasted (and a margin): its end never comes.
    const packets = (ids.length * SHORT_PROMPT_MS) / 20 + 25;
    await this.#rtp.waitForPackets(this.#hearingAt + packets, ids.length * SHORT_PROMPT_MS + WAIT_MS);
    const last = ids.slice(-1);
    if (this.#found(language, ids) || this.#found(language, last)) throw new Error('the prompts were played to the end despite the barge-in');
  }

  async close(): Promise<void> {
    this.#rtp.close();
    await this.#peer.close();
  }

  #found(language: string, ids: readonly string[]): boolean {
    const audio = this.#rtp.audio();
    if (this.#target.audio === 'exact') {
      try {
        expectPromptSequence(audio, ids.map((id) => ({ language, id })), this.#target.promptsDir, 'PCMU');
        return true;
      } catch {
        return false;
      }
    }
    const pcm = decode('PCMU', audio);
    let from = 0;
    for (const id of ids) {
      const at = toneAt(pcm, id, from);
      if (at < 0) return false;
      from = at + 1;
    }
    return true;
  }

  /** An in-dialog request from `peer` with the dialog's tags; resolves with the final status. */
  async #request(peer: SipPeer, method: string, o: { contentType?: string; body?: string; extra?: string[] }): Promise<number> {
    this.#cseq += 1;
    const cseq = `${this.#cseq} ${method}`;
    peer.send(peer.inDialog(this.#c, method, { cseq: this.#cseq, ...o }));
    const r = await within(
      peer.waitFor((m) => m.kind === 'response' && m.status >= 200 && headerValue(m, 'call-id') === this.callId && headerValue(m, 'cseq') === cseq, WAIT_MS),
      WAIT_MS + 100,
      `final response to ${method}`,
    );
    return r.kind === 'response' ? r.status : 0;
  }
}

function expectOk(status: number): void {
  if (status !== 200) throw new Error(`in-dialog request answered ${status}, not 200`);
}
