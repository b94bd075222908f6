import type Srf from 'drachtio-srf';
import { isDialogPeer, type SignallingSource } from '../dialog-peer.js';
import { PayIvrError } from '../../errors.js';
import { transportOf } from './sip-text.js';

/** drachtio-srf's Dialog#handle (lib/dialog.js), not in its typings: every in-dialog request goes through it. */
interface HandlesRequests {
  handle(req: Srf.SrfRequest, res: Srf.SrfResponse): void;
}

export interface PeerGateOptions {
  /** The INVITE's source. */
  peer: SignallingSource;
  /** Another of the trunk's signalling addresses (the allow-list), which may send in the dialog too. */
  listed: (address: string) => boolean;
  /** A request from another source was answered 403 (an ACK: dropped). */
  refused: (req: Srf.SrfRequest) => void;
  /** Sees each of the peer's requests first; false when it answered the request itself. */
  inspect?: (req: Srf.SrfRequest, res: Srf.SrfResponse) => boolean;
}

/**
 * Puts the dialog-peer rule (`telephony/dialog-peer.ts`, the embedded stack's too) in front of a
 * drachtio-srf dialog. drachtio-srf hands every in-dialog request to Dialog#handle, which answers
 * a BYE 200 and ends the dialog before any listener could look at its source; so the gate takes
 * the place of `handle` on this one dialog: a request from another source gets 403 and goes no
 * further (the call goes on), the peer's requests go on to drachtio-srf unchanged.
 */
export function gateDialog(dialog: Srf.Dialog, o: PeerGateOptions): void {
  const d = dialog as unknown as HandlesRequests;
  if (typeof d.handle !== 'function') throw new PayIvrError('ERR_INTERNAL', 'drachtio-srf Dialog#handle not found: the in-dialog peer check cannot be installed');
  const handle = d.handle.bind(dialog);
  d.handle = (req, res) => {
    const from: SignallingSource = { address: req.source_address, transport: transportOf(req.protocol) };
    if (isDialogPeer(o.peer, from, o.listed)) {
      if (o.inspect?.(req, res) !== false) handle(req, res);
      return;
    }
    o.refused(req);
    if (req.method !== 'ACK') res.send(403);
  };
}
