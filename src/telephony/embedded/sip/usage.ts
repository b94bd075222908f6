import type { Transport } from '../../types.js';
import type { Dialog, LocalEndpoint } from './dialog.js';
import { headerValue, parseCSeq, type SipHeader, type SipRequest, type SipResponse } from './message.js';
import { buildResponse, header } from './serializer.js';
import type { ServerTransaction, TransactionLayer } from './transaction.js';
import type { Flow } from './transport.js';

/**
 * What the user agent core needs from whatever owns a dialog (an INVITE we answered or one we
 * sent, RFC 5057's "dialog usage"): in-dialog requests, ACKs for its 2xx, and the peer rule.
 */
export interface DialogUsage {
  readonly callId: string;
  /**
   * True when `flow` is the dialog's own peer (same transport and source address); `listed` says
   * whether an address is one of the trunk's other signalling addresses, which a usage may accept.
   */
  isPeer(flow: Flow, listed: (address: string) => boolean): boolean;
  handleAck(req: SipRequest): void;
  handleRequest(req: SipRequest, tx: ServerTransaction): void;
}

/**
 * The answer a B2BUA gives to an in-dialog offer it relayed to the other leg: a final status,
 * with the SDP answer for a 2xx, and headers to add.
 */
export interface RelayAnswer {
  status: number;
  reason?: string | undefined;
  sdp?: string | undefined;
  headers?: SipHeader[] | undefined;
}

/**
 * Hands an in-dialog offer (re-INVITE or UPDATE with SDP) to the session's owner instead of the
 * local media; the session answers the peer with what it resolves to (500 when it rejects).
 */
export type InDialogRelay = (req: SipRequest) => Promise<RelayAnswer>;

/** What an in-dialog offer we sent came back with. */
export type OfferResult = { kind: 'response'; response: SipResponse } | { kind: 'timeout' } | { kind: 'ended' };

/**
 * Sends an in-dialog offer (re-INVITE or UPDATE carrying `sdp`) and resolves with its final
 * answer. A 2xx to a re-INVITE is ACKed here (13.2.2.4), and again for each retransmission; the
 * dialog's remote target follows the 2xx's Contact (a target refresh).
 */
export function sendOffer(
  layer: TransactionLayer,
  localFor: (transport: Transport) => LocalEndpoint,
  dialog: Dialog,
  method: 'INVITE' | 'UPDATE',
  sdp: string,
  headers: SipHeader[],
): Promise<OfferResult> {
  const { request, flow } = dialog.createRequest(method, localFor, {
    headers: [...headers, header('content-type', 'application/sdp')],
    body: Buffer.from(sdp, 'utf8'),
  });
  const seq = dialog.localSeq;
  let ack: { request: SipRequest; flow: Flow } | undefined;
  const sendAck = (): void => {
    ack ??= dialog.createRequest('ACK', localFor, { cseq: seq });
    layer.resend(ack.request, ack.flow);
  };
  return new Promise<OfferResult>((resolve) => {
    const tx = layer.sendRequest(request, flow, (r) => {
      if (r.kind === 'timeout') {
        resolve({ kind: 'timeout' });
        return;
      }
      const ok = r.response.status >= 200 && r.response.status < 300;
      if (ok && method === 'INVITE') sendAck();
      if (ok) dialog.refreshTarget(r.response);
      resolve({ kind: 'response', response: r.response });
    });
    if (method === 'INVITE') {
      tx.on2xxRetransmission = () => sendAck();
      tx.deadline();
    }
  });
}

/**
 * The checks every in-dialog request passes before its method is looked at (RFC 3261 12.2.2): no
 * dialog any more → 481; a CSeq below the last one seen → 500; else the remote sequence moves on.
 * Returns the dialog when the request may go on (the response is sent otherwise).
 */
export function admitInDialog(dialog: Dialog | undefined, ended: boolean, req: SipRequest, tx: ServerTransaction): Dialog | undefined {
  if (dialog === undefined || ended) {
    tx.respond(buildResponse(req, 481));
    return undefined;
  }
  const seq = parseCSeq(headerValue(req, 'cseq'))?.seq ?? 0;
  if (seq < dialog.remoteSeq) {
    tx.respond(buildResponse(req, 500, { reason: 'CSeq Out of Order' }));
    return undefined;
  }
  dialog.remoteSeq = seq;
  return dialog;
}
