import type Srf from 'drachtio-srf';
import type { HangupReason, RemoteEndpoint, StoredDialog, StoredDrachtioDialog } from '../types.js';
import { formatReason } from '../sip-reason.js';
import { uriOfNameAddr } from './sip-text.js';

/**
 * Ending a call a previous run of this node left behind (kill -9, host loss), drachtio side.
 *
 * drachtio-server keeps a dialog after the app connection that made it is gone (its dialog
 * table is not per client), finds it by its id alone, and relays the response to whichever
 * connection sent the request. So a new connection can send a BYE in the caller's dialog with
 * Srf#request("sip:placeholder", { stackDialogId }): the server fills in the Request-URI, tags,
 * Call-ID and CSeq from the dialog. The FreeSWITCH channel is killed over the event socket
 * (uuid_kill); without one, a BYE in the FreeSWITCH leg's dialog does the same.
 */

/** What the dialog state is built from (the INVITE's headers, the drachtio dialog). */
export interface DialogStateSource {
  /** All values of a header of the INVITE (lower-case name). */
  headers: (name: string) => string[];
  dialog: { readonly id: string; readonly sip: { callId: string; localTag: string; remoteTag: string } };
  remote: RemoteEndpoint;
  media?: StoredDrachtioDialog['media'];
}

/** The StoredDialog of an answered drachtio call; tags, URIs and ids only (never card data). */
export function drachtioDialogState(src: DialogStateSource): StoredDialog {
  const first = (name: string): string => src.headers(name)[0] ?? '';
  const { callId, localTag, remoteTag } = src.dialog.sip;
  return {
    callId,
    localTag,
    remoteTag,
    localParty: `${first('to')};tag=${localTag}`,
    remoteParty: first('from'),
    remoteTarget: uriOfNameAddr(first('contact')),
    routeSet: src.headers('record-route'),
    transport: src.remote.transport,
    address: src.remote.address,
    port: src.remote.port,
    // drachtio-server numbers the requests of its dialogs itself.
    localSeq: 0,
    drachtio: { stackDialogId: src.dialog.id, ...(src.media !== undefined ? { media: src.media } : {}) },
  };
}

/**
 * BYE inside a dialog drachtio-server still has, with a Reason. Resolves with the final status;
 * 481 when the server no longer has the dialog (the caller hung up meanwhile, or the server
 * restarted), 408 when no final response came within `timeoutMs`, 503 when it could not be sent.
 */
export function byeInStoredDialog(srf: Srf, stackDialogId: string, reason: HangupReason | undefined, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (status: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(status);
    };
    const timer = setTimeout(() => settle(408), timeoutMs);
    try {
      srf.request('sip:placeholder', { method: 'BYE', stackDialogId, headers: reason !== undefined ? { Reason: formatReason(reason) } : {} }, (err, req) => {
        if (err) {
          settle(err.code === 'ENODIALOG' ? 481 : 503);
          return;
        }
        req.on('response', (res) => {
          if (res.status >= 200) settle(res.status);
        });
      });
    } catch {
      // No connection to drachtio-server (drachtio-srf throws before sending).
      settle(503);
    }
  });
}

/** FreeSWITCH's answer to uuid_kill: killed, already gone, or not answered. */
export type MediaKill = 'killed' | 'gone' | 'failed';

export function mediaKillOutcome(apiBody: string): MediaKill {
  const b = apiBody.trim();
  if (b.startsWith('+OK')) return 'killed';
  if (/no such channel/i.test(b)) return 'gone';
  return 'failed';
}
