import dgram from 'node:dgram';
import { PayIvrError } from '../../src/errors.js';
import { TypedEmitter } from '../../src/util/typed-emitter.js';
import type { AnchorDtmfEvent, AnchorIds, DtmfSecurityMode, MediaAnchor, MediaAnchorEvents } from '../../src/edge/types.js';

/**
 * A MediaAnchor for the B2BUA's tests, standing in for rtpengine: each call gets a pair of local
 * UDP sockets; every SDP that passes is rewritten to name the socket the receiving leg must send
 * to, and datagrams are relayed between the two legs' SDP addresses. Every operation is logged
 * so tests can check which ids the B2BUA used. `failOffers` makes offers reject as an
 * unreachable rtpengine would.
 */

export interface AnchorOp {
  op: 'offer' | 'answer' | 'delete' | 'block' | 'unblock' | 'play' | 'stop';
  callId: string;
  fromTag?: string | undefined;
  toTag?: string | undefined;
  detail?: string;
}

interface AnchoredCall {
  /** The tag of the first offerer: socket `a` faces it, `b` faces the other leg. */
  firstTag: string;
  a: dgram.Socket;
  b: dgram.Socket;
  /** Where each side receives (from its SDP): 'first' and 'other'. */
  first?: { address: string; port: number } | undefined;
  other?: { address: string; port: number } | undefined;
}

export class FakeAnchor extends TypedEmitter<MediaAnchorEvents> implements MediaAnchor {
  readonly ops: AnchorOp[] = [];
  failOffers = false;
  /** While set, offers wait for it (an rtpengine that is slow to answer). */
  offerGate: Promise<void> | undefined;
  reachable = true;
  readonly #calls = new Map<string, AnchoredCall>();
  #nextPort: number;
  readonly #maxPort: number;

  /** Relay sockets take ports from [portMin, portMax]. */
  constructor(portMin: number, portMax: number) {
    super();
    this.#nextPort = portMin;
    this.#maxPort = portMax;
  }

  get liveCalls(): number {
    return this.#calls.size;
  }

  async offer(ids: AnchorIds, sdp: string): Promise<string> {
    this.ops.push({ op: 'offer', callId: ids.callId, fromTag: ids.fromTag, toTag: ids.toTag });
    if (this.offerGate !== undefined) await this.offerGate;
    if (this.failOffers) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'rtpengine did not answer the offer');
    let call = this.#calls.get(ids.callId);
    if (call === undefined) {
      call = { firstTag: ids.fromTag, a: await this.#socket(), b: await this.#socket() };
      const c = call;
      c.a.on('message', (m) => c.other !== undefined && c.b.send(m, c.other.port, c.other.address));
      c.b.on('message', (m) => c.first !== undefined && c.a.send(m, c.first.port, c.first.address));
      this.#calls.set(ids.callId, call);
    }
    const fromFirst = ids.fromTag === call.firstTag;
    if (fromFirst) call.first = mediaOf(sdp);
    else call.other = mediaOf(sdp);
    // The other leg sends to the socket that faces it.
    return rewrite(sdp, fromFirst ? call.b : call.a);
  }

  answer(ids: AnchorIds & { toTag: string }, sdp: string): Promise<string> {
    this.ops.push({ op: 'answer', callId: ids.callId, fromTag: ids.fromTag, toTag: ids.toTag });
    const call = this.#calls.get(ids.callId);
    if (call === undefined) return Promise.reject(new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'unknown call'));
    const answererIsFirst = ids.toTag === call.firstTag;
    if (answererIsFirst) call.first = mediaOf(sdp);
    else call.other = mediaOf(sdp);
    return Promise.resolve(rewrite(sdp, answererIsFirst ? call.b : call.a));
  }

  async delete(callId: string): Promise<void> {
    this.ops.push({ op: 'delete', callId });
    const call = this.#calls.get(callId);
    if (call === undefined) return;
    this.#calls.delete(callId);
    await Promise.all([call.a, call.b].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  blockDtmf(callId: string, fromTag: string, mode: DtmfSecurityMode): Promise<void> {
    this.ops.push({ op: 'block', callId, fromTag, detail: mode });
    return Promise.resolve();
  }

  unblockDtmf(callId: string, fromTag: string): Promise<void> {
    this.ops.push({ op: 'unblock', callId, fromTag });
    return Promise.resolve();
  }

  playMedia(callId: string, toTag: string, file: string): Promise<void> {
    this.ops.push({ op: 'play', callId, toTag, detail: file });
    return Promise.resolve();
  }

  stopMedia(callId: string, toTag: string): Promise<void> {
    this.ops.push({ op: 'stop', callId, toTag });
    return Promise.resolve();
  }

  /** What rtpengine would report for a key it decoded on the leg `sourceTag`. */
  report(ev: AnchorDtmfEvent): void {
    this.emit('dtmf', ev);
  }

  async close(): Promise<void> {
    for (const id of [...this.#calls.keys()]) await this.delete(id);
  }

  async #socket(): Promise<dgram.Socket> {
    for (;;) {
      if (this.#nextPort > this.#maxPort) throw new Error('fake anchor: no relay port left');
      const port = this.#nextPort++;
      const s = dgram.createSocket('udp4');
      const ok = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.bind(port, '127.0.0.1', () => r(true));
      });
      if (ok) return s;
      s.close();
    }
  }
}

function mediaOf(sdp: string): { address: string; port: number } | undefined {
  const c = /^c=IN IP4 (\S+)/m.exec(sdp);
  const m = /^m=audio (\d+)/m.exec(sdp);
  return c !== null && m !== null ? { address: c[1] as string, port: Number(m[1]) } : undefined;
}

function rewrite(sdp: string, socket: dgram.Socket): string {
  const port = socket.address().port;
  return sdp.replace(/^c=IN IP4 \S+/gm, 'c=IN IP4 127.0.0.1').replace(/^m=audio \d+/m, `m=audio ${port}`);
}
