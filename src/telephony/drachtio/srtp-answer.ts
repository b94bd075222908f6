import { randomUUID } from 'node:crypto';
import type Srf from 'drachtio-srf';
import type Mrf from 'drachtio-fsmrf';
import EndpointImpl from 'drachtio-fsmrf/lib/endpoint.js';
import { PayIvrError } from '../../errors.js';

/**
 * Answering an SDES-SRTP offer: FreeSWITCH answers first (its crypto goes into our 200 OK), then
 * the caller. drachtio-fsmrf 4.1.2's connectCaller does that order but races: it registers for
 * FreeSWITCH's outbound event-socket connection only once FreeSWITCH's 200 OK has reached the
 * app, and a connection that came first is kept and never used, so the answer fails after 4 s
 * ("Connection timeout"). Here both are awaited in any order, through the same table of pending
 * connections fsmrf's MediaServer fills (its files are not changed).
 */

/** What MediaServer#_onNewCall does with a connection: calls `fn`, or keeps it in `conn`. */
interface PendingSlot {
  conn?: unknown;
  fn?: (conn: unknown) => void;
  connTimeout?: ReturnType<typeof setTimeout>;
}

interface MediaServerInternals {
  pendingConnections: Map<string, PendingSlot>;
  _mrf?: { customEvents?: string[] };
  /** The outbound event-socket address FreeSWITCH is told to connect to (X-esl-outbound). */
  advertisedAddress?: string;
  advertisedPort?: number;
}

function internals(ms: Mrf.MediaServer): MediaServerInternals {
  const i = ms as unknown as Partial<MediaServerInternals>;
  if (!(i.pendingConnections instanceof Map)) throw new PayIvrError('ERR_INTERNAL', 'drachtio-fsmrf MediaServer#pendingConnections not found: SRTP calls cannot be answered');
  return i as MediaServerInternals;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new PayIvrError('ERR_BACKEND_UNAVAILABLE', `FreeSWITCH: no ${what} within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface SrtpAnswerOptions {
  /** Headers of the INVITE to FreeSWITCH only (media-settings.ts). */
  fsHeaders: Record<string, string>;
  /** Headers of our 200 OK to the caller. */
  callerHeaders: Record<string, string>;
  /** How long FreeSWITCH's event socket and its subscription may take once FreeSWITCH answered. */
  connectMs: number;
  /** True when the caller went away meanwhile (no 200 OK then). */
  cancelled: () => boolean;
}

export async function answerSrtpCaller(ms: Mrf.MediaServer, srf: Srf, req: Srf.SrfRequest, res: Srf.SrfResponse, o: SrtpAnswerOptions): Promise<{ endpoint: Mrf.Endpoint; dialog: Srf.Dialog }> {
  const i = internals(ms);
  const address = ms.sip.ipv4.udp.address;
  if (address === undefined) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', 'FreeSWITCH has no SIP address yet');
  const uuid = randomUUID();
  let connected: (conn: unknown) => void = () => undefined;
  const conn = new Promise<unknown>((resolve) => (connected = resolve));
  i.pendingConnections.set(uuid, { fn: connected });
  let fsLeg: Srf.Dialog | undefined;
  try {
    fsLeg = await srf.createUAC(`sip:drachtio@${address}`, {
      headers: { ...o.fsHeaders, 'User-Agent': `drachtio-fsmrf:${uuid}`, 'X-esl-outbound': `${i.advertisedAddress ?? ''}:${i.advertisedPort ?? ''}` },
      localSdp: req.body,
    });
    const endpoint = new EndpointImpl(await within(conn, o.connectMs, 'event-socket connection'), fsLeg, ms, { customEvents: i._mrf?.customEvents ?? [] });
    await within(new Promise<void>((resolve) => endpoint.once('ready', resolve)), o.connectMs, 'event subscription');
    if (o.cancelled()) throw new PayIvrError('ERR_CALL_ENDED', 'the caller cancelled while media was set up');
    try {
      const dialog = await srf.createUAS(req, res, { localSdp: fsLeg.remote.sdp, headers: o.callerHeaders });
      return { endpoint, dialog };
    } catch (e) {
      endpoint.destroy().catch(() => undefined);
      throw e;
    }
  } catch (e) {
    if (fsLeg?.connected) fsLeg.destroy().catch(() => undefined);
    throw e;
  } finally {
    i.pendingConnections.delete(uuid);
  }
}
