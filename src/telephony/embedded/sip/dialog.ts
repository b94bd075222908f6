import type { StoredDialog, Transport } from '../../types.js';
import { headerValue, headerValues, parseCSeq, parseNameAddr, parseUri, tagOf, uriHost, type SipHeader, type SipRequest, type SipResponse } from './message.js';
import { newBranch } from './serializer.js';
import type { Flow } from './transport.js';

/**
 * A dialog (RFC 3261 12.1, 12.2), as UAS (12.1.1: route set from the INVITE's Record-Route in
 * request order, remote target from its Contact) or as UAC (12.1.2: route set from the 2xx's
 * Record-Route reversed, remote target from the 2xx's Contact). Contact URI params are kept, so
 * they reach in-dialog Request-URIs. It holds the CSeq counters and tags, builds in-dialog
 * requests and resolves where they are sent.
 */

/** What a dialog is made of, whichever side created it. */
export interface DialogInit {
  callId: string;
  localTag: string;
  remoteTag: string;
  localParty: string;
  remoteParty: string;
  routeSet: readonly string[];
  remoteTarget: string;
  remoteSeq: number;
  localSeq: number;
  flow: Flow;
}

export interface LocalEndpoint {
  transport: Transport;
  host: string;
  port: number;
}

export class Dialog {
  readonly id: string;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** Our side (the INVITE's To, with our tag) and theirs (its From), as header values. */
  readonly localParty: string;
  readonly remoteParty: string;
  readonly routeSet: readonly string[];
  remoteTarget: string;
  remoteSeq: number;
  localSeq: number;
  /** The flow the INVITE came on: reused for stream transports. */
  readonly flow: Flow;

  constructor(init: DialogInit) {
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.id = dialogId(this.callId, this.localTag, this.remoteTag);
    this.localParty = init.localParty;
    this.remoteParty = init.remoteParty;
    this.routeSet = init.routeSet;
    this.remoteTarget = init.remoteTarget;
    this.remoteSeq = init.remoteSeq;
    this.localSeq = init.localSeq;
    this.flow = init.flow;
  }

  /** The UAS side of the dialog an INVITE creates when we answer it with `localTag` (12.1.1). */
  static uas(invite: SipRequest, flow: Flow, localTag: string): Dialog {
    const to = headerValue(invite, 'to') ?? '';
    const cseq = /^(\d+)/.exec(headerValue(invite, 'cseq') ?? '');
    return new Dialog({
      callId: headerValue(invite, 'call-id') ?? '',
      localTag,
      remoteTag: tagOf(headerValue(invite, 'from')) ?? '',
      localParty: tagOf(to) === undefined ? `${to};tag=${localTag}` : to,
      remoteParty: headerValue(invite, 'from') ?? '',
      routeSet: headerValues(invite, 'record-route'),
      remoteTarget: contactUri(invite) ?? invite.uri,
      remoteSeq: cseq === null ? 0 : Number(cseq[1]),
      localSeq: 1 + Math.floor(Math.random() * 0x7fff),
      flow,
    });
  }

  /**
   * The UAC side of the dialog a 2xx to our INVITE creates (12.1.2): the route set is the 2xx's
   * Record-Route in reverse, the remote target its Contact, the remote CSeq unset until the peer
   * sends a request. `flow` is where the INVITE went (its stream connection is reused).
   */
  static uac(invite: SipRequest, response: SipResponse, flow: Flow): Dialog {
    const from = headerValue(invite, 'from') ?? '';
    const to = headerValue(response, 'to') ?? '';
    return new Dialog({
      callId: headerValue(invite, 'call-id') ?? '',
      localTag: tagOf(from) ?? '',
      remoteTag: tagOf(to) ?? '',
      localParty: from,
      remoteParty: to,
      routeSet: headerValues(response, 'record-route').reverse(),
      remoteTarget: contactUri(response) ?? invite.uri,
      remoteSeq: 0,
      localSeq: parseCSeq(headerValue(invite, 'cseq'))?.seq ?? 1,
      flow,
    });
  }

  /** A target refresh (re-INVITE, UPDATE) may change the remote target. */
  refreshTarget(req: SipRequest | SipResponse): void {
    const c = contactUri(req);
    if (c !== undefined) this.remoteTarget = c;
  }

  /**
   * Builds an in-dialog request (12.2.1.1). `cseq` is given for ACK (the INVITE's number);
   * otherwise the local CSeq is incremented.
   */
  createRequest(
    method: string,
    localFor: (transport: Transport) => LocalEndpoint,
    opts: { headers?: SipHeader[]; body?: Buffer; cseq?: number } = {},
  ): { request: SipRequest; flow: Flow } {
    const routes = [...this.routeSet];
    let uri = stripUriHeaders(this.remoteTarget);
    const firstRoute = routes[0] !== undefined ? parseNameAddr(routes[0]) : undefined;
    if (firstRoute !== undefined && !parseUri(firstRoute.uri)?.params.has('lr')) {
      // Strict router: it becomes the Request-URI, the remote target the last Route.
      uri = stripUriHeaders(firstRoute.uri);
      routes.shift();
      routes.push(`<${this.remoteTarget}>`);
    }
    let seq: number;
    if (opts.cseq !== undefined) seq = opts.cseq;
    else {
      this.localSeq += 1;
      seq = this.localSeq;
    }
    const nextHop = routes.length > 0 && firstRoute !== undefined && parseUri(firstRoute.uri)?.params.has('lr') ? firstRoute.uri : uri;
    const flow = this.resolve(nextHop);
    const local = localFor(flow.transport);
    const headers: SipHeader[] = [
      { name: 'via', value: `SIP/2.0/${local.transport.toUpperCase()} ${uriHost(local.host)}:${local.port};branch=${newBranch()};rport` },
      ...routes.map((r) => ({ name: 'route', value: r })),
      { name: 'max-forwards', value: '70' },
      { name: 'from', value: this.localParty },
      { name: 'to', value: this.remoteParty },
      { name: 'call-id', value: this.callId },
      { name: 'cseq', value: `${seq} ${method}` },
      ...(opts.headers ?? []),
    ];
    const request: SipRequest = { kind: 'request', method, uri, headers, body: opts.body ?? Buffer.alloc(0) };
    return { request, flow };
  }

  /** Where a URI's request goes: its host/port/transport, reusing the INVITE's stream connection. */
  resolve(uriText: string): Flow {
    const uri = parseUri(uriText);
    // Explicit transport param, else sips -> TLS, else the transport the caller used.
    let transport: Transport = this.flow.transport;
    const tp = uri?.params.get('transport')?.toLowerCase();
    if (tp === 'udp' || tp === 'tcp' || tp === 'tls') transport = tp;
    else if (uri?.scheme === 'sips') transport = 'tls';
    const host = uri?.host !== undefined && uri.host !== '' ? uri.host : this.flow.address;
    const port = uri?.port ?? (transport === 'tls' ? 5061 : 5060);
    const flow: Flow = { transport, address: host, port };
    if (transport === this.flow.transport && transport !== 'udp') flow.connectionId = this.flow.connectionId;
    return flow;
  }
}

export function dialogId(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\u0000${localTag}\u0000${remoteTag}`;
}

/** The URI of the first Contact, when it is a usable sip/sips URI. */
export function contactUri(msg: SipRequest | SipResponse): string | undefined {
  const c = headerValues(msg, 'contact')[0];
  if (c === undefined) return undefined;
  const na = parseNameAddr(c);
  if (na === undefined || parseUri(na.uri) === undefined) return undefined;
  return na.uri;
}

/** Request-URIs must not carry `?headers` (RFC 3261 19.1.5). */
function stripUriHeaders(uri: string): string {
  const q = uri.indexOf('?');
  return q < 0 ? uri : uri.slice(0, q);
}

/** The state a restarted node needs to send a BYE in this dialog (payment journal). */
export function dialogState(d: Dialog): StoredDialog {
  return {
    callId: d.callId,
    localTag: d.localTag,
    remoteTag: d.remoteTag,
    localParty: d.localParty,
    remoteParty: d.remoteParty,
    remoteTarget: d.remoteTarget,
    routeSet: [...d.routeSet],
    transport: d.flow.transport,
    address: d.flow.address,
    port: d.flow.port,
    localSeq: d.localSeq,
  };
}

/** CSeq head room of a restored dialog: in-dialog requests sent after the state was taken. */
const RESTORED_CSEQ_MARGIN = 100;

/** A dialog rebuilt from stored state (as if from its INVITE), to send a BYE after a restart. */
export function restoreDialog(s: StoredDialog): Dialog {
  const invite: SipRequest = {
    kind: 'request',
    method: 'INVITE',
    uri: s.remoteTarget,
    headers: [
      { name: 'call-id', value: s.callId },
      { name: 'from', value: s.remoteParty },
      { name: 'to', value: s.localParty },
      { name: 'cseq', value: '1 INVITE' },
      { name: 'contact', value: `<${s.remoteTarget}>` },
      ...s.routeSet.map((r) => ({ name: 'record-route', value: r })),
    ],
    body: Buffer.alloc(0),
  };
  const d = Dialog.uas(invite, { transport: s.transport, address: s.address, port: s.port }, s.localTag);
  d.localSeq = s.localSeq + RESTORED_CSEQ_MARGIN;
  return d;
}
