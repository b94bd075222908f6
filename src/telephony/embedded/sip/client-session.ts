import type { Logger } from '../../../log.js';
import { describeError } from '../../../errors.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { Transport } from '../../types.js';
import { Dialog, type LocalEndpoint } from './dialog.js';
import { contentType, headerValue, parseCSeq, rawHeaders, tagOf, uriHost, type SipHeader, type SipRequest, type SipResponse } from './message.js';
import { buildResponse, header, newBranch, randomToken } from './serializer.js';
import type { SessionEnd } from './session.js';
import type { ClientTransaction, ClientTxResult, ServerTransaction, TransactionLayer } from './transaction.js';
import type { Flow } from './transport.js';
import { admitInDialog, sendOffer, type DialogUsage, type InDialogRelay, type OfferResult } from './usage.js';

/**
 * One INVITE we send and the dialog its 2xx creates (UAC core, RFC 3261 13.2, 15, 9.1): the
 * INVITE client transaction does Timers A/B/D and the ACK for a non-2xx; here the ACK for a 2xx
 * (sent by the dialog, and sent again for each retransmitted 2xx), CANCEL of a pending INVITE
 * (held until a provisional arrived, 9.1), BYE either way, and in-dialog offers both ways
 * (re-INVITE/UPDATE sent, or received and handed to `relay`). No session timer is negotiated on
 * this side (no `Supported: timer`): the peer refreshes if it wants to, and its refresh is
 * served like any re-INVITE.
 */

export interface ClientContext {
  layer: TransactionLayer;
  log: Logger;
  localFor(transport: Transport): LocalEndpoint;
  /** Allow, Accept, Supported and Server/User-Agent headers of this UA. */
  capabilityHeaders(): SipHeader[];
  registerDialog(dialog: Dialog, usage: DialogUsage): void;
  unregister(usage: ClientSession): void;
}

export interface ClientInviteOptions {
  /** Request-URI. */
  uri: string;
  /** Next hop: where the INVITE is sent (host may be a name; UDP sends resolve it). */
  target: Flow;
  /** From as name-addr without a tag (ours is added). */
  from: string;
  /** To as name-addr, without a tag. */
  to: string;
  /** The SDP offer. */
  sdp: string;
  /** Call-ID; a fresh random one by default. */
  callId?: string;
  maxForwards?: number;
  /** User part of our Contact. */
  contactUser?: string;
  /** More headers, written after the standard ones. */
  headers?: SipHeader[];
}

/** How the INVITE ended. */
export type InviteOutcome =
  | { kind: 'answered'; response: SipResponse }
  | { kind: 'rejected'; response: SipResponse }
  | { kind: 'timeout' }
  | { kind: 'cancelled' };

/** A 491 made locally: an offer of ours while another is pending either way (14.1). */
export function glareResponse(): SipResponse {
  return { kind: 'response', status: 491, reason: 'Request Pending', headers: [], body: Buffer.alloc(0) };
}

interface ClientSessionEvents extends Record<string, unknown[]> {
  /** A provisional response to the INVITE (100 included). */
  provisional: [response: SipResponse];
  terminated: [info: SessionEnd];
}

type Timer = ReturnType<typeof setTimeout>;

export class ClientSession extends TypedEmitter<ClientSessionEvents> implements DialogUsage {
  readonly invite: SipRequest;
  readonly callId: string;
  readonly localTag: string;
  state: 'calling' | 'early' | 'confirmed' | 'terminated' = 'calling';
  /** Serves in-dialog offers from the peer; without it they get 488. */
  relay: InDialogRelay | undefined;
  /** Settles once, when the INVITE has its outcome. */
  readonly outcome: Promise<InviteOutcome>;
  readonly #ctx: ClientContext;
  readonly #target: Flow;
  readonly #contact: string;
  #resolveOutcome!: (o: InviteOutcome) => void;
  #settled = false;
  #tx: ClientTransaction | undefined;
  #dialog: Dialog | undefined;
  #ack: { request: SipRequest; flow: Flow } | undefined;
  /** The address the 2xx came from: the peer of the dialog, besides the target itself. */
  #peerAddress: string | undefined;
  #cancel: 'none' | 'wanted' | 'sent' = 'none';
  #cancelReason: string | undefined;
  /** SDP we last sent to the peer (offer or answer): served again for an offerless re-INVITE. */
  #localSdp: string;
  /** An offer/answer exchange in progress either way (glare: 491). */
  #offerPending = false;
  #pending2xx: { seq: number; timers: Timer[] } | undefined;

  constructor(opts: ClientInviteOptions, ctx: ClientContext) {
    super();
    this.#ctx = ctx;
    this.#target = opts.target;
    this.callId = opts.callId ?? `${randomToken(12)}`;
    this.localTag = randomToken(6);
    this.#localSdp = opts.sdp;
    const local = ctx.localFor(opts.target.transport);
    const tp = opts.target.transport === 'udp' ? '' : `;transport=${opts.target.transport}`;
    this.#contact = `<sip:${opts.contactUser ?? 'pay-ivr'}@${uriHost(local.host)}:${local.port}${tp}>`;
    const seq = 1 + Math.floor(Math.random() * 0x7fff);
    this.invite = {
      kind: 'request',
      method: 'INVITE',
      uri: opts.uri,
      headers: [
        header('via', `SIP/2.0/${local.transport.toUpperCase()} ${uriHost(local.host)}:${local.port};branch=${newBranch()};rport`),
        header('max-forwards', String(opts.maxForwards ?? 70)),
        header('from', `${opts.from};tag=${this.localTag}`),
        header('to', opts.to),
        header('call-id', this.callId),
        header('cseq', `${seq} INVITE`),
        header('contact', this.#contact),
        ...this.#capabilities(),
        ...(opts.headers ?? []),
        header('content-type', 'application/sdp'),
      ],
      body: Buffer.from(opts.sdp, 'utf8'),
    };
    this.outcome = new Promise<InviteOutcome>((resolve) => (this.#resolveOutcome = resolve));
  }

  get dialog(): Dialog | undefined {
    return this.#dialog;
  }

  /** Sends the INVITE (the user agent calls this once the session is registered). */
  start(): void {
    const tx = this.#ctx.layer.sendRequest(
      this.invite,
      this.#target,
      (r) => this.#onFinal(r),
      (res) => this.#onProvisional(res),
    );
    tx.on2xxRetransmission = (res) => this.#on2xx(res, undefined);
    this.#tx = tx;
  }

  /** The target we sent the INVITE to, or the address its 2xx came from; the caller side's list does not count here. */
  isPeer(flow: Flow): boolean {
    return flow.transport === this.#target.transport && (flow.address === this.#peerAddress || flow.address === this.#target.address);
  }

  /**
   * Gives up a pending INVITE: CANCEL now, or once a provisional arrives (a CANCEL must not be
   * sent before, 9.1). A 2xx that crosses it is ACKed and ended with BYE. The outcome is then
   * 'cancelled'. After the answer: a BYE instead.
   */
  cancel(reason?: string): void {
    if (this.state === 'terminated') return;
    if (this.state === 'confirmed') {
      void this.bye(reason);
      return;
    }
    if (this.#cancel !== 'none') return;
    this.#cancelReason = reason;
    this.#cancel = 'wanted';
    if (this.state === 'early') this.#sendCancel();
  }

  /** BYE (with an optional Reason header value); the session ends at once. Before the answer: CANCEL. */
  bye(reason?: string, end: SessionEnd = { by: 'local', reason: 'hangup' }): Promise<void> {
    const dialog = this.#dialog;
    if (this.state === 'terminated') return Promise.resolve();
    if (dialog === undefined || this.state !== 'confirmed') {
      this.cancel(reason);
      return Promise.resolve();
    }
    const headers: SipHeader[] = reason !== undefined ? [header('reason', reason)] : [];
    const { request, flow } = dialog.createRequest('BYE', (t) => this.#ctx.localFor(t), { headers });
    this.#terminate(end);
    return new Promise<void>((resolve) => {
      this.#ctx.layer.sendRequest(request, flow, () => resolve());
    });
  }

  /**
   * Sends an in-dialog offer (re-INVITE or UPDATE with SDP) and resolves with the final answer;
   * a 2xx to a re-INVITE is ACKed here (again for each retransmission). 491 at once while
   * another offer is pending either way.
   */
  offer(method: 'INVITE' | 'UPDATE', sdp: string, headers: SipHeader[] = []): Promise<OfferResult> {
    const dialog = this.#dialog;
    if (dialog === undefined || this.state !== 'confirmed') return Promise.resolve({ kind: 'ended' });
    if (this.#offerPending) return Promise.resolve({ kind: 'response', response: glareResponse() });
    this.#offerPending = true;
    const sent = sendOffer(this.#ctx.layer, (t) => this.#ctx.localFor(t), dialog, method, sdp, [header('contact', this.#contact), ...this.#capabilities(), ...headers]);
    return sent.then((r) => {
      this.#offerPending = false;
      if (r.kind === 'response' && r.response.status >= 200 && r.response.status < 300) this.#localSdp = sdp;
      return r;
    });
  }

  /** Ends the session without signalling (shutdown). */
  abort(info: SessionEnd): void {
    this.#terminate(info);
  }

  /** ACK for our 2xx to a re-INVITE from the peer. */
  handleAck(req: SipRequest): void {
    const p = this.#pending2xx;
    const seq = parseCSeq(headerValue(req, 'cseq'))?.seq;
    if (p === undefined || seq !== p.seq) return;
    this.#clearPending2xx();
  }

  handleRequest(req: SipRequest, tx: ServerTransaction): void {
    const dialog = admitInDialog(this.#dialog, this.state === 'terminated', req, tx);
    if (dialog === undefined) return;
    switch (req.method) {
      case 'BYE':
        tx.respond(buildResponse(req, 200));
        this.#terminate({ by: 'remote', reason: 'BYE' });
        return;
      case 'INVITE':
      case 'UPDATE':
        this.#onOffer(req, tx, dialog);
        return;
      case 'OPTIONS':
        tx.respond(buildResponse(req, 200, { headers: this.#ctx.capabilityHeaders() }));
        return;
      case 'REFER':
        // Transfers are not relayed to the caller's side.
        tx.respond(buildResponse(req, 603));
        return;
      default:
        tx.respond(buildResponse(req, 405, { headers: this.#ctx.capabilityHeaders() }));
    }
  }

  #onOffer(req: SipRequest, tx: ServerTransaction, dialog: Dialog): void {
    const isInvite = req.method === 'INVITE';
    if (this.#offerPending || this.#pending2xx !== undefined) {
      tx.respond(buildResponse(req, 491));
      return;
    }
    if (req.body.length === 0) {
      // A refresh without an offer: the re-INVITE gets our current SDP as the offer (its ACK
      // answers it unchanged, 14.2), the UPDATE a plain 200.
      dialog.refreshTarget(req);
      this.#answer(req, tx, isInvite ? this.#localSdp : undefined, []);
      return;
    }
    if (contentType(req) !== 'application/sdp') {
      tx.respond(buildResponse(req, 415, { headers: [header('accept', 'application/sdp')] }));
      return;
    }
    const relay = this.relay;
    if (relay === undefined) {
      tx.respond(buildResponse(req, 488));
      return;
    }
    this.#offerPending = true;
    relay(req).then(
      (ans) => {
        this.#offerPending = false;
        if (this.state === 'terminated') {
          tx.respond(buildResponse(req, 481));
          return;
        }
        if (ans.status < 200 || ans.status >= 300 || ans.sdp === undefined) {
          const status = ans.status >= 300 ? ans.status : 500;
          tx.respond(buildResponse(req, status, { ...(ans.reason !== undefined ? { reason: ans.reason } : {}), headers: ans.headers ?? [] }));
          return;
        }
        dialog.refreshTarget(req);
        this.#localSdp = ans.sdp;
        this.#answer(req, tx, ans.sdp, ans.headers ?? []);
      },
      (e: unknown) => {
        this.#offerPending = false;
        this.#ctx.log.warn({ err: describeError(e), callId: this.callId }, 'sip: in-dialog offer relay failed');
        tx.respond(buildResponse(req, 500));
      },
    );
  }

  /** 200 to an in-dialog INVITE/UPDATE; a re-INVITE's 2xx is sent again until its ACK (13.3.1.4). */
  #answer(req: SipRequest, tx: ServerTransaction, sdp: string | undefined, extra: SipHeader[]): void {
    const headers = [header('contact', this.#contact), ...this.#capabilities(), ...extra];
    if (sdp !== undefined) headers.push(header('content-type', 'application/sdp'));
    const res = buildResponse(req, 200, { headers, ...(sdp !== undefined ? { body: Buffer.from(sdp, 'utf8') } : {}) });
    tx.respond(res);
    if (req.method !== 'INVITE') return;
    const seq = parseCSeq(headerValue(req, 'cseq'))?.seq ?? 0;
    const { t1, t2 } = this.#ctx.layer.timers;
    const timers: Timer[] = [];
    const pending = { seq, timers };
    this.#pending2xx = pending;
    if (tx.flow.transport === 'udp') {
      let interval = t1;
      const again = (): void => {
        if (this.#pending2xx !== pending) return;
        this.#ctx.layer.resend(res, tx.flow);
        interval = Math.min(2 * interval, t2);
        timers[0] = setTimeout(again, interval);
      };
      timers[0] = setTimeout(again, interval);
    }
    // No ACK within 64*T1: the exchange is over (the dialog itself goes on; 13.3.1.4's BYE is
    // the owner's call, who still has media flowing).
    timers[1] = setTimeout(() => {
      if (this.#pending2xx === pending) this.#clearPending2xx();
    }, 64 * t1);
  }

  #clearPending2xx(): void {
    const p = this.#pending2xx;
    if (p === undefined) return;
    for (const t of p.timers) clearTimeout(t);
    this.#pending2xx = undefined;
  }

  #onProvisional(res: SipResponse): void {
    if (this.state === 'terminated') return;
    if (this.state === 'calling') this.state = 'early';
    if (this.#cancel === 'wanted') this.#sendCancel();
    if (this.#cancel !== 'none') return;
    this.#safeEmit('provisional', res);
  }

  #onFinal(r: ClientTxResult): void {
    if (r.kind === 'timeout') {
      this.#settle(this.#cancel !== 'none' ? { kind: 'cancelled' } : { kind: 'timeout' });
      this.#terminate({ by: 'error', reason: 'timeout' });
      return;
    }
    const res = r.response;
    if (res.status < 300) {
      this.#on2xx(res, r.source);
      return;
    }
    // The transaction ACKed it (17.1.1.3).
    this.#settle(this.#cancel !== 'none' ? { kind: 'cancelled' } : { kind: 'rejected', response: res });
    this.#terminate({ by: 'remote', reason: `rejected-${res.status}` });
  }

  /** A 2xx to the INVITE, first or retransmitted: the dialog's ACK (13.2.2.4). */
  #on2xx(res: SipResponse, source: Flow | undefined): void {
    const remoteTag = tagOf(headerValue(res, 'to'));
    const dialog = this.#dialog;
    if (dialog !== undefined) {
      if (remoteTag === dialog.remoteTag) {
        if (this.#ack !== undefined) this.#ctx.layer.resend(this.#ack.request, this.#ack.flow);
      } else {
        this.#endStrayDialog(res); // a second 2xx from a fork: ACK it, then BYE it
      }
      return;
    }
    if (this.state === 'terminated') {
      this.#endStrayDialog(res);
      return;
    }
    const created = Dialog.uac(this.invite, res, this.#target);
    this.#dialog = created;
    this.#peerAddress = source?.address;
    const seq = parseCSeq(headerValue(this.invite, 'cseq'))?.seq ?? 1;
    this.#ack = created.createRequest('ACK', (t) => this.#ctx.localFor(t), { cseq: seq });
    this.#ctx.layer.resend(this.#ack.request, this.#ack.flow);
    this.#ctx.registerDialog(created, this);
    this.state = 'confirmed';
    if (this.#cancel !== 'none') {
      // The answer crossed our CANCEL: the call is not wanted any more.
      this.#settle({ kind: 'cancelled' });
      void this.bye(this.#cancelReason, { by: 'local', reason: 'cancelled' });
      return;
    }
    this.#settle({ kind: 'answered', response: res });
  }

  #endStrayDialog(res: SipResponse): void {
    const stray = Dialog.uac(this.invite, res, this.#target);
    const seq = parseCSeq(headerValue(this.invite, 'cseq'))?.seq ?? 1;
    const ack = stray.createRequest('ACK', (t) => this.#ctx.localFor(t), { cseq: seq });
    this.#ctx.layer.resend(ack.request, ack.flow);
    const bye = stray.createRequest('BYE', (t) => this.#ctx.localFor(t));
    this.#ctx.layer.sendRequest(bye.request, bye.flow, () => undefined);
  }

  /** CANCEL (9.1): the INVITE's Request-URI, Call-ID, From, To, CSeq number, Route and top Via. */
  #sendCancel(): void {
    const tx = this.#tx;
    if (tx === undefined || this.#cancel === 'sent') return;
    this.#cancel = 'sent';
    const inv = this.invite;
    const seq = parseCSeq(headerValue(inv, 'cseq'))?.seq ?? 1;
    const headers: SipHeader[] = [
      { name: 'via', value: rawHeaders(inv, 'via')[0] ?? '' },
      ...rawHeaders(inv, 'route').map((v) => ({ name: 'route', value: v })),
      header('max-forwards', '70'),
      header('from', headerValue(inv, 'from') ?? ''),
      header('to', headerValue(inv, 'to') ?? ''),
      header('call-id', this.callId),
      header('cseq', `${seq} CANCEL`),
    ];
    if (this.#cancelReason !== undefined) headers.push(header('reason', this.#cancelReason));
    const cancel: SipRequest = { kind: 'request', method: 'CANCEL', uri: inv.uri, headers, body: Buffer.alloc(0) };
    this.#ctx.layer.sendRequest(cancel, this.#target, () => undefined);
    tx.deadline();
  }

  #capabilities(): SipHeader[] {
    // Not our UAS Supported: no 'timer' on this side (see the class comment).
    return this.#ctx.capabilityHeaders().filter((h) => h.name !== 'supported' && h.name !== 'server');
  }

  #settle(o: InviteOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolveOutcome(o);
  }

  #terminate(info: SessionEnd): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.#clearPending2xx();
    // A session that ends before its INVITE settled (shutdown) still settles it.
    this.#settle(this.#cancel !== 'none' ? { kind: 'cancelled' } : { kind: 'timeout' });
    this.#ctx.unregister(this);
    this.#safeEmit('terminated', info);
    this.removeAllListeners();
  }

  #safeEmit<K extends keyof ClientSessionEvents & string>(event: K, ...args: ClientSessionEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#ctx.log.error({ err: describeError(e), callId: this.callId }, 'sip: client session listener failed');
    }
  }
}
