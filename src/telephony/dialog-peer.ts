import type { Transport } from './types.js';

/** Where a SIP request came from: the address and transport it arrived on. */
export interface SignallingSource {
  readonly address: string;
  readonly transport: Transport;
}

/**
 * A dialog answers only to its peer: the transport and source address its INVITE came from, or
 * another of the trunk's listed signalling addresses on that transport (`listed`: the allow-list).
 * The port is not compared: a trunk may send in-dialog requests from another port or TCP
 * connection. Knowing the Call-ID and tags (they travel in clear on UDP/TCP) must not let a third
 * party hang up a call, move its media, or key digits into it: such requests get 403.
 * Both backends ask this (embedded: sip/session.ts; drachtio: drachtio/peer-gate.ts).
 */
export function isDialogPeer(peer: SignallingSource, from: SignallingSource, listed: (address: string) => boolean): boolean {
  return from.transport === peer.transport && (from.address === peer.address || listed(from.address));
}
