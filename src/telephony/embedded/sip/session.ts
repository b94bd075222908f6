import type { Logger } from '../../../log.js';
import { PayIvrError, describeError } from '../../../errors.js';
import { TypedEmitter } from '../../../util/typed-emitter.js';
import type { HangupReason, ReferResult, Transport } from '../../types.js';
import { bracketUri, isReferEvent, ReferTracker } from '../../refer-tracker.js';
import { formatReason } from '../../sip-reason.js';
import type { DtmfDigit } from '../../../domain/dtmf.js';
import { Dialog, type LocalEndpoint } from './dialog.js';
import { judgeDtmfInfo } from '../../dtmf-info.js';
import { isDialogPeer } from '../../dialog-peer.js';
import { contentType, headerValue, optionTags, parseCSeq, parseNameAddr, type SipHeader, type SipRequest, type SipResponse } from './message.js';
import { buildResponse, header, randomToken } from './serializer.js';
import { negotiateSessionTimer, sessionExpiresValue, type SessionTimerPlan } from './session-timer.js';
import { timerDue } from '../../session-timer.js';
import type { ServerTransaction, TransactionLayer } from './transaction.js';
import type { Flow } from './transport.js';
import { admitInDialog, sendOffer, type DialogUsage, type InDialogRelay, type OfferResult, type RelayAnswer } from './usage.js';

/**
 * One inbound INVITE and the dialog it creates (UAS core, RFC 3261 13.3 and 14, RFC 3515 as the
 * REFER sender, RFC 4028 timers). The backend drives it (accept/reject/bye/refer) and hands it
 * SDP through `media`; everything else (in-dialog requests, 2xx retransmission, ACK, timers)
 * happens here.
 */

export interface SessionContext {
  layer: TransactionLayer;
  log: Logger;
  localFor(transport: Transport): LocalEndpoint;
  /** Allow, Accept, Supported and Server headers. */
  capabilityHeaders(): SipHeader[];
  sessionExpires: number;
  /** Milliseconds per session-timer second (1000; tests shrink it). */
  sessionTimerUnitMs: number;
  registerDialog(dialog: Dialog, session: DialogUsage): void;
  unregister(session: ServerSession): void;
}

/** SDP operations the session needs from the media engine. */
interface SessionMedia {
  /** New offer in a re-INVITE/UPDATE; undefined -> 488. */
  reoffer(offer: string): string | undefined;
  /** Our offer when the peer sends an INVITE without SDP. */
  createOffer(): string;
  /** The peer's answer (in the ACK or a 2xx to our re-INVITE). */
  applyAnswer(answer: string): boolean;
}

export interface SessionEnd {
  by: 'remote' | 'local' | 'error';
  reason: string;
}

interface SessionEvents extends Record<string, unknown[]> {
  confirmed: [];
  dtmf: [digit: DtmfDigit];
  terminated: [info: SessionEnd];
}

type AcceptOutcome = 'ack' | 'no-ack' | 'ended';

type Timer = ReturnType<typeof setTimeout>;

interface Pending2xx {
  seq: number;
  timers: Timer[];
  lateOffer: boolean;
  resolve: (o: AcceptOutcome) => void;
}

export class ServerSession extends TypedEmitter<SessionEvents> implements DialogUsage {
  readonly invite: SipRequest;
  /** Where responses to the INVITE go. */
  readonly flow: Flow;
  readonly localTag = randomToken(6);
  readonly callId: string;
  state: 'offered' | 'accepted' | 'confirmed' | 'terminated' = 'offered';
  media: SessionMedia | undefined;
  /**
   * When set (a B2BUA), re-INVITE and UPDATE offers with SDP go here instead of `media`; `media`
   * still serves offerless re-INVITEs and our own session refreshes.
   */
  relay: InDialogRelay | undefined;
  readonly #ctx: SessionContext;
  readonly #tx: ServerTransaction;
  #dialog: Dialog | undefined;
  #pending2xx: Pending2xx | undefined;
  #plan: SessionTimerPlan | undefined;
  #sessionTimer: Timer | undefined;
  #refer: ReferTracker | undefined;
  #refreshing = false;
  /** An offer from the peer is being relayed (a second one gets 491). */
  #relaying = false;
  readonly #peerAllowsUpdate: boolean;

  constructor(invite: SipRequest, flow: Flow, tx: ServerTransaction, ctx: SessionContext) {
    super();
    this.invite = invite;
    this.flow = flow;
    this.#tx = tx;
    this.#ctx = ctx;
    this.callId = headerValue(invite, 'call-id') ?? '';
    this.#peerAllowsUpdate = optionTags(invite, 'allow').has('update');
  }

  get dialog(): Dialog | undefined {
    return this.#dialog;
  }

  get sessionTimer(): SessionTimerPlan | undefined {
    return this.#plan;
  }

  /** The INVITE's source, or another of the trunk's listed signalling addresses, on the same transport. */
  isPeer(flow: Flow, listed: (address: string) => boolean): boolean {
    return isDialogPeer(this.flow, flow, listed);
  }

  /**
   * A provisional response (101-199) to the pending INVITE, with our tag and Contact (it makes
   * an early dialog at the caller) and SDP when given (early media).
   */
  progress(status: number, opts: { sdp?: string | undefined; headers?: SipHeader[]; reason?: string } = {}): void {
    if (this.state !== 'offered' || this.#tx.state !== 'proceeding' || status <= 100 || status >= 200) return;
    const headers = [header('contact', this.#contact()), ...(opts.headers ?? [])];
    if (opts.sdp !== undefined) headers.push(header('content-type', 'application/sdp'));
    this.#tx.respond(
      buildResponse(this.invite, status, {
        toTag: this.localTag,
        copyRecordRoute: true,
        headers,
        ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
        ...(opts.sdp !== undefined ? { body: Buffer.from(opts.sdp, 'utf8') } : {}),
      }),
    );
  }

  /** Final non-2xx answer to the INVITE (ends the session). */
  reject(status: number, opts: { reason?: string; headers?: SipHeader[] } = {}): void {
    if (this.state !== 'offered') return;
    const res = buildResponse(this.invite, status, {
      toTag: this.localTag,
      ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
      headers: [...(opts.headers ?? []), ...(status === 405 || status === 501 ? this.#ctx.capabilityHeaders() : [])],
    });
    this.#tx.respond(res);
    this.#terminate({ by: 'local', reason: `rejected-${status}` });
  }

  /**
   * 200 OK with `sdp` (our answer, or our offer when `lateOffer`). Resolves on the ACK, on
   * 'no-ack' after 64*T1 (the session then sends BYE and ends), or 'ended'.
   */
  accept(sdp: string, opts: { lateOffer: boolean; headers?: SipHeader[] }): Promise<AcceptOutcome> {
    if (this.state !== 'offered' || this.#tx.state !== 'proceeding') return Promise.resolve('ended');
    const dialog = Dialog.uas(this.invite, this.flow, this.localTag);
    this.#dialog = dialog;
    this.#ctx.registerDialog(dialog, this);
    const decision = negotiateSessionTimer(this.invite, this.#ctx.sessionExpires);
    this.#plan = decision.kind === 'use' ? decision.plan : undefined;
    const res = buildResponse(this.invite, 200, {
      toTag: this.localTag,
      copyRecordRoute: true,
      headers: [...this.#dialogHeaders(), ...this.#timerHeaders(), ...(opts.headers ?? []), header('content-type', 'application/sdp')],
      body: Buffer.from(sdp, 'utf8'),
    });
    this.state = 'accepted';
    this.#tx.respond(res);
    const seq = parseCSeq(headerValue(this.invite, 'cseq'))?.seq ?? 0;
    return new Promise<AcceptOutcome>((resolve) => this.#send2xxReliably(res, seq, opts.lateOffer, resolve));
  }

  /** BYE (with an optional Reason header); the session ends at once with `end`. */
  bye(reason?: HangupReason, end: SessionEnd = { by: 'local', reason: 'hangup' }): Promise<void> {
    if (this.state === 'terminated' || this.#dialog === undefined) return Promise.resolve();
    const dialog = this.#dialog;
    const headers: SipHeader[] = reason !== undefined ? [header('reason', formatReason(reason))] : [];
    const { request, flow } = dialog.createRequest('BYE', (t) => this.#ctx.localFor(t), { headers });
    this.#terminate(end);
    return new Promise<void>((resolve) => {
      this.#ctx.layer.sendRequest(request, flow, () => resolve());
    });
  }

  /**
   * Sends an in-dialog offer to the peer (a B2BUA relaying the other leg's re-INVITE/UPDATE) and
   * resolves with its final answer; a 491 comes back at once while another offer is pending.
   */
  offer(method: 'INVITE' | 'UPDATE', sdp: string, headers: SipHeader[] = []): Promise<OfferResult> {
    const dialog = this.#dialog;
    if (dialog === undefined || this.state !== 'confirmed') return Promise.resolve({ kind: 'ended' });
    if (this.#refreshing || this.#relaying || this.#pending2xx !== undefined) {
      return Promise.resolve({ kind: 'response', response: { kind: 'response', status: 491, reason: 'Request Pending', headers: [], body: Buffer.alloc(0) } });
    }
    this.#refreshing = true;
    return sendOffer(this.#ctx.layer, (t) => this.#ctx.localFor(t), dialog, method, sdp, [...this.#dialogHeaders(), ...headers]).then((r) => {
      this.#refreshing = false;
      return r;
    });
  }

  /** In-dialog REFER with NOTIFY tracking (RFC 3515). */
  refer(referTo: string, timeoutMs: number): Promise<ReferResult> {
    if (this.state !== 'confirmed' && this.state !== 'accepted') {
      return Promise.reject(new PayIvrError('ERR_CALL_ENDED', 'no dialog to send REFER in'));
    }
    if (this.#refer !== undefined) return Promise.reject(new PayIvrError('ERR_REFER_FAILED', 'a REFER is already pending'));
    const dialog = this.#dialog as Dialog;
    const local = parseNameAddr(dialog.localParty);
    const headers: SipHeader[] = [
      header('refer-to', bracketUri(referTo)),
      header('referred-by', `<${local?.uri ?? ''}>`),
      ...this.#dialogHeaders(),
    ];
    const { request, flow } = dialog.createRequest('REFER', (t) => this.#ctx.localFor(t), { headers });
    const tracker = new ReferTracker({
      timeoutMs,
      onSettled: () => {
        if (this.#refer === tracker) this.#refer = undefined;
      },
    });
    this.#refer = tracker;
    this.#ctx.layer.sendRequest(request, flow, (r) => {
      if (r.kind === 'timeout') tracker.referFailed(408, 'REFER timed out');
      else tracker.referAnswered(r.response.status);
    });
    return tracker.result;
  }

  /** CANCEL matched this INVITE: 487 and end (true when it still was pending). */
  cancelled(): boolean {
    if (this.state !== 'offered') return false;
    this.#tx.respond(buildResponse(this.invite, 487, { toTag: this.localTag }));
    this.#terminate({ by: 'remote', reason: 'CANCEL' });
    return true;
  }

  /** Ends the session without signalling (transport gone, shutdown after BYE). */
  abort(info: SessionEnd): void {
    this.#terminate(info);
  }

  /** ACK for our 2xx (the dialog matched it). */
  handleAck(req: SipRequest): void {
    const p = this.#pending2xx;
    const seq = parseCSeq(headerValue(req, 'cseq'))?.seq;
    if (p === undefined || seq !== p.seq) return;
    this.#clearPending2xx();
    if (p.lateOffer) {
      const ok = contentType(req) === 'application/sdp' && req.body.length > 0 && this.media?.applyAnswer(req.body.toString('utf8')) === true;
      if (!ok) {
        p.resolve('ended');
        void this.bye({ protocol: 'SIP', cause: 488, text: 'no usable SDP answer in ACK' }, { by: 'error', reason: 'bad-sdp-answer' });
        return;
      }
    }
    if (this.state === 'accepted') {
      this.state = 'confirmed';
      this.#armSessionTimer();
      this.#safeEmit('confirmed');
    }
    p.resolve('ack');
  }

  /** In-dialog request other than ACK/CANCEL, with its server transaction. */
  handleRequest(req: SipRequest, tx: ServerTransaction): void {
    const dialog = admitInDialog(this.#dialog, this.state === 'terminated', req, tx);
    if (dialog === undefined) return;
    switch (req.method) {
      case 'BYE':
        tx.respond(buildResponse(req, 200));
        this.#terminate({ by: 'remote', reason: 'BYE' });
        return;
      case 'INVITE':
        this.#onReInvite(req, tx, dialog);
        return;
      case 'UPDATE':
        this.#onUpdate(req, tx, dialog);
        return;
      case 'INFO':
        this.#onInfo(req, tx);
        return;
      case 'NOTIFY':
        this.#onNotify(req, tx);
        return;
      case 'OPTIONS':
        tx.respond(buildResponse(req, 200, { headers: this.#ctx.capabilityHeaders() }));
        return;
      case 'PRACK':
        tx.respond(buildResponse(req, 200));
        return;
      case 'REFER':
        // We only hand calls back; a transfer request from the peer is declined.
        tx.respond(buildResponse(req, 603));
        return;
      default:
        tx.respond(buildResponse(req, 405, { headers: this.#ctx.capabilityHeaders() }));
    }
  }

  #onReInvite(req: SipRequest, tx: ServerTransaction, dialog: Dialog): void {
    if (this.#refreshing) {
      tx.respond(buildResponse(req, 491));
      return;
    }
    if (this.#pending2xx !== undefined) {
      tx.respond(buildResponse(req, 500, { headers: [header('retry-after', String(1 + Math.floor(Math.random() * 9)))] }));
      return;
    }
    const timer = negotiateSessionTimer(req, this.#ctx.sessionExpires);
    if (timer.kind === 'reject') {
      tx.respond(buildResponse(req, 422, { headers: [header('min-se', String(timer.minSE))] }));
      return;
    }
    if (this.#relaying) {
      tx.respond(buildResponse(req, 491));
      return;
    }
    if (this.relay !== undefined && req.body.length > 0) {
      if (contentType(req) !== 'application/sdp') {
        tx.respond(buildResponse(req, 415, { headers: [header('accept', 'application/sdp')] }));
        return;
      }
      this.#relayOffer(req, tx, this.relay, (ans) => {
        dialog.refreshTarget(req);
        this.#plan = timer.kind === 'use' ? timer.plan : undefined;
        const res = buildResponse(req, 200, {
          headers: [...this.#dialogHeaders(), ...this.#timerHeaders(), ...(ans.headers ?? []), header('content-type', 'application/sdp')],
          body: Buffer.from(ans.sdp ?? '', 'utf8'),
        });
        tx.respond(res);
        this.#armSessionTimer();
        const seq = parseCSeq(headerValue(req, 'cseq'))?.seq ?? 0;
        this.#send2xxReliably(res, seq, false, () => undefined, tx.flow);
      });
      return;
    }
    const media = this.media;
    let sdp: string | undefined;
    let lateOffer = false;
    if (req.body.length === 0) {
      if (media === undefined) {
        tx.respond(buildResponse(req, 488));
        return;
      }
      sdp = media.createOffer();
      lateOffer = true;
    } else {
      if (contentType(req) !== 'application/sdp') {
        tx.respond(buildResponse(req, 415, { headers: [header('accept', 'application/sdp')] }));
        return;
      }
      sdp = media?.reoffer(req.body.toString('utf8'));
      if (sdp === undefined) {
        tx.respond(buildResponse(req, 488));
        return;
      }
    }
    dialog.refreshTarget(req);
    this.#plan = timer.kind === 'use' ? timer.plan : undefined;
    const res = buildResponse(req, 200, {
      headers: [...this.#dialogHeaders(), ...this.#timerHeaders(), header('content-type', 'application/sdp')],
      body: Buffer.from(sdp, 'utf8'),
    });
    tx.respond(res);
    this.#armSessionTimer();
    const seq = parseCSeq(headerValue(req, 'cseq'))?.seq ?? 0;
    this.#send2xxReliably(res, seq, lateOffer, () => undefined, tx.flow);
  }

  #onUpdate(req: SipRequest, tx: ServerTransaction, dialog: Dialog): void {
    const timer = negotiateSessionTimer(req, this.#ctx.sessionExpires);
    if (timer.kind === 'reject') {
      tx.respond(buildResponse(req, 422, { headers: [header('min-se', String(timer.minSE))] }));
      return;
    }
    let body: Buffer | undefined;
    if (req.body.length > 0) {
      if (contentType(req) !== 'application/sdp') {
        tx.respond(buildResponse(req, 415, { headers: [header('accept', 'application/sdp')] }));
        return;
      }
      if (this.relay !== undefined) {
        if (this.#relaying) {
          tx.respond(buildResponse(req, 491));
          return;
        }
        this.#relayOffer(req, tx, this.relay, (ans) => {
          dialog.refreshTarget(req);
          this.#plan = timer.kind === 'use' ? timer.plan : undefined;
          const headers = [...this.#dialogHeaders(), ...this.#timerHeaders(), ...(ans.headers ?? []), header('content-type', 'application/sdp')];
          tx.respond(buildResponse(req, 200, { headers, body: Buffer.from(ans.sdp ?? '', 'utf8') }));
          this.#armSessionTimer();
        });
        return;
      }
      const answer = this.media?.reoffer(req.body.toString('utf8'));
      if (answer === undefined) {
        tx.respond(buildResponse(req, 488));
        return;
      }
      body = Buffer.from(answer, 'utf8');
    }
    dialog.refreshTarget(req);
    this.#plan = timer.kind === 'use' ? timer.plan : undefined;
    const headers = [...this.#dialogHeaders(), ...this.#timerHeaders()];
    if (body !== undefined) headers.push(header('content-type', 'application/sdp'));
    tx.respond(buildResponse(req, 200, { headers, ...(body !== undefined ? { body } : {}) }));
    this.#armSessionTimer();
  }

  /** Hands an offer to the relay; its 2xx (with SDP) goes to `accepted`, anything else is answered as is. */
  #relayOffer(req: SipRequest, tx: ServerTransaction, relay: InDialogRelay, accepted: (ans: RelayAnswer) => void): void {
    this.#relaying = true;
    relay(req).then(
      (ans) => {
        this.#relaying = false;
        if (this.state === 'terminated') {
          tx.respond(buildResponse(req, 481));
          return;
        }
        if (ans.status >= 200 && ans.status < 300 && ans.sdp !== undefined) {
          accepted(ans);
          return;
        }
        const status = ans.status >= 300 ? ans.status : 500;
        tx.respond(buildResponse(req, status, { ...(ans.reason !== undefined ? { reason: ans.reason } : {}), headers: ans.headers ?? [] }));
      },
      (e: unknown) => {
        this.#relaying = false;
        this.#ctx.log.warn({ err: describeError(e), callId: this.callId }, 'sip: in-dialog offer relay failed');
        tx.respond(buildResponse(req, 500));
      },
    );
  }

  #onInfo(req: SipRequest, tx: ServerTransaction): void {
    // The rule and the zeroing of the body (the digit may be part of a card number): dtmf-info.ts.
    const r = judgeDtmfInfo(headerValue(req, 'content-type'), req.body);
    const headers = r.accept !== undefined ? [header('accept', r.accept)] : [];
    tx.respond(buildResponse(req, r.status, { ...(r.reason !== undefined ? { reason: r.reason } : {}), headers }));
    // Digits are delivered only once per INFO transaction (retransmissions are absorbed).
    if (r.digit !== undefined) this.#safeEmit('dtmf', r.digit);
  }

  #onNotify(req: SipRequest, tx: ServerTransaction): void {
    if (!isReferEvent(headerValue(req, 'event'))) {
      tx.respond(buildResponse(req, 489));
      return;
    }
    tx.respond(buildResponse(req, 200));
    this.#refer?.notify(req.body.toString('utf8', 0, Math.min(req.body.length, 200)), headerValue(req, 'subscription-state'));
  }

  /** Sends a 2xx until its ACK: T1 doubling up to T2 on UDP; 64*T1 without ACK ends the call. */
  #send2xxReliably(res: SipResponse, seq: number, lateOffer: boolean, resolve: (o: AcceptOutcome) => void, flow: Flow = this.flow): void {
    const { t1, t2 } = this.#ctx.layer.timers;
    const timers: Timer[] = [];
    const pending: Pending2xx = { seq, timers, lateOffer, resolve };
    this.#pending2xx = pending;
    if (flow.transport === 'udp') {
      let interval = t1;
      const again = (): void => {
        if (this.#pending2xx !== pending) return;
        this.#ctx.layer.resend(res, flow);
        interval = Math.min(2 * interval, t2);
        timers[0] = setTimeout(again, interval);
      };
      timers[0] = setTimeout(again, interval);
    }
    timers[1] = setTimeout(() => {
      if (this.#pending2xx !== pending) return;
      this.#clearPending2xx();
      this.#ctx.log.info({ callId: this.callId }, 'sip: no ACK for 2xx, ending the call');
      const dialog = this.#dialog;
      // RFC 3261 13.3.1.4 says SHOULD BYE. Not for an INVITE never ACKed: nobody has shown they
      // receive at the addresses it named, and a BYE (retransmitted for 64*T1) would make one
      // forged INVITE cost its target more traffic. A re-INVITE's dialog was confirmed: BYE.
      if (dialog !== undefined && this.state === 'confirmed') {
        const { request, flow: byeFlow } = dialog.createRequest('BYE', (t) => this.#ctx.localFor(t), {
          headers: [header('reason', formatReason({ protocol: 'SIP', cause: 408, text: 'no ACK' }))],
        });
        this.#ctx.layer.sendRequest(request, byeFlow, () => undefined);
      }
      this.#terminate({ by: 'error', reason: 'no-ack' });
      resolve('no-ack');
    }, 64 * t1);
  }

  #clearPending2xx(): void {
    const p = this.#pending2xx;
    if (p === undefined) return;
    for (const t of p.timers) clearTimeout(t);
    this.#pending2xx = undefined;
  }

  /** RFC 4028: we refresh at half the interval, or end the call when the peer did not refresh. */
  #armSessionTimer(): void {
    if (this.#sessionTimer !== undefined) clearTimeout(this.#sessionTimer);
    this.#sessionTimer = undefined;
    const plan = this.#plan;
    if (plan === undefined || this.state !== 'confirmed') return;
    const unit = this.#ctx.sessionTimerUnitMs;
    const due = timerDue(plan);
    if (due.action === 'refresh') {
      this.#sessionTimer = setTimeout(() => this.#refresh(), due.afterSeconds * unit);
    } else {
      this.#sessionTimer = setTimeout(() => {
        if (this.state === 'terminated') return;
        this.#ctx.log.info({ callId: this.callId }, 'sip: session expired without refresh');
        void this.bye({ protocol: 'SIP', cause: 408, text: 'session expired' }, { by: 'local', reason: 'session-expired' });
      }, due.afterSeconds * unit);
    }
  }

  #refresh(): void {
    const dialog = this.#dialog;
    const plan = this.#plan;
    if (dialog === undefined || plan === undefined || this.state !== 'confirmed') return;
    if (this.#refreshing || this.#relaying || this.#pending2xx !== undefined) {
      // An offer exchange is under way (a relayed one, with a B2BUA): refresh a second later.
      this.#sessionTimer = setTimeout(() => this.#refresh(), this.#ctx.sessionTimerUnitMs);
      return;
    }
    this.#refreshing = true;
    const headers = [...this.#dialogHeaders(), header('session-expires', `${plan.interval};refresher=uas`)];
    const useUpdate = this.#peerAllowsUpdate;
    let body: Buffer | undefined;
    if (!useUpdate && this.media !== undefined) {
      body = Buffer.from(this.media.createOffer(), 'utf8');
      headers.push(header('content-type', 'application/sdp'));
    }
    const { request, flow } = dialog.createRequest(useUpdate ? 'UPDATE' : 'INVITE', (t) => this.#ctx.localFor(t), {
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const seq = dialog.localSeq;
    const sendAck = (res: SipResponse): void => {
      const ack = dialog.createRequest('ACK', (t) => this.#ctx.localFor(t), { cseq: seq });
      this.#ctx.layer.resend(ack.request, ack.flow);
      void res;
    };
    const tx = this.#ctx.layer.sendRequest(request, flow, (r) => {
      this.#refreshing = false;
      if (this.state !== 'confirmed') return;
      if (r.kind === 'response' && r.response.status < 300) {
        if (!useUpdate) {
          sendAck(r.response);
          if (r.response.body.length > 0) this.media?.applyAnswer(r.response.body.toString('utf8'));
        }
        this.#armSessionTimer();
        return;
      }
      this.#ctx.log.info({ callId: this.callId }, 'sip: session refresh failed, ending the call');
      void this.bye({ protocol: 'SIP', cause: 408, text: 'session refresh failed' }, { by: 'error', reason: 'session-refresh-failed' });
    });
    if (!useUpdate) {
      tx.on2xxRetransmission = sendAck;
      tx.deadline(); // a refresh that only rings is a failed refresh
    }
  }

  /** Contact, Allow, Supported, Accept, Server. */
  #dialogHeaders(): SipHeader[] {
    return [header('contact', this.#contact()), ...this.#ctx.capabilityHeaders()];
  }

  #timerHeaders(): SipHeader[] {
    const plan = this.#plan;
    if (plan === undefined) return [];
    const h = [header('session-expires', sessionExpiresValue(plan))];
    if (plan.require) h.push(header('require', 'timer'));
    return h;
  }

  #contact(): string {
    const local = this.#ctx.localFor(this.flow.transport);
    const host = local.host.includes(':') ? `[${local.host}]` : local.host;
    // sip: with transport=tls rather than sips: (what trunks such as Genesys BYOC expect).
    const tp = this.flow.transport === 'udp' ? '' : `;transport=${this.flow.transport}`;
    return `<sip:pay-ivr@${host}:${local.port}${tp}>`;
  }

  #terminate(info: SessionEnd): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    const p = this.#pending2xx;
    this.#clearPending2xx();
    p?.resolve('ended');
    if (this.#sessionTimer !== undefined) clearTimeout(this.#sessionTimer);
    this.#sessionTimer = undefined;
    this.#refer?.callEnded();
    this.#ctx.unregister(this);
    this.#safeEmit('terminated', info);
    this.removeAllListeners();
  }

  #safeEmit<K extends keyof SessionEvents & string>(event: K, ...args: SessionEvents[K]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      this.#ctx.log.error({ err: describeError(e), callId: this.callId }, 'sip: session listener failed');
    }
  }
}
