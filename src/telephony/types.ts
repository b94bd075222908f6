import type { DtmfDigit } from '../domain/dtmf.js';
import type { TypedEmitter } from '../util/typed-emitter.js';

/**
 * The call port: what the payment call needs from a telephony backend (embedded SIP/RTP engine,
 * or drachtio-server + FreeSWITCH). Nothing above this file knows SIP transactions, SDP or RTP.
 */

export type DtmfSource = 'rfc4733' | 'sip-info' | 'inband';

export type Transport = 'udp' | 'tcp' | 'tls';

export interface RemoteEndpoint {
  address: string;
  port: number;
  transport: Transport;
}

/** A Reason header for BYE (RFC 3326). */
export interface HangupReason {
  protocol: 'SIP' | 'Q.850';
  cause: number;
  text: string;
}

export interface PlayOptions {
  /** Prompt pack language folder, e.g. "fr-FR". */
  language: string;
  /** Stop playback at the first digit (the digit is still delivered as a 'digit' event). */
  bargeIn: boolean;
  /** Repeat until stopPlay() (wait music during the PSP request). */
  loop?: boolean;
}

/** How a play() ended. */
export type PlayResult = 'done' | 'interrupted' | 'stopped' | 'ended';

export interface ReferResult {
  /** True when the final NOTIFY sipfrag was 2xx. */
  ok: boolean;
  /** Status of the REFER itself (202 when accepted) or 408 on timeout. */
  referStatus: number;
  /** Status line code of the final sipfrag, when one came. */
  finalStatus?: number | undefined;
  detail: string;
}

export interface CallEndInfo {
  by: 'remote' | 'local' | 'error';
  /** e.g. "BYE", "CANCEL", "no-ack", "rtp-timeout", "transport-lost" */
  reason: string;
}

/**
 * What the drachtio backend keeps of an answered call so that a restarted node can end it:
 * drachtio-server keeps the caller's dialog across app connections (it is found by its id alone),
 * and FreeSWITCH keeps the media channel until it is killed or its leg gets a BYE.
 */
export interface StoredDrachtioDialog {
  /** drachtio-server's id of the caller's dialog: "<Call-ID>;from-tag=<caller's tag>". */
  stackDialogId: string;
  /** The FreeSWITCH channel of the call, when it had one. */
  media?: {
    /** Channel uuid (uuid_kill). */
    uuid: string;
    /** host:port of the event socket of the media server that carried it (telephony.freeswitch*). */
    eventSocket: string;
    /** drachtio-server's id of the leg between drachtio and FreeSWITCH (BYE when no event socket). */
    legDialogId?: string | undefined;
  } | undefined;
}

/**
 * An answered SIP dialog as kept beside the payment journal, enough for a restarted node to send
 * a BYE in it. Never card data: tags, URIs, addresses and ids only. `drachtio` is set by the
 * drachtio backend (which ends the call through drachtio-server and FreeSWITCH).
 */
export interface StoredDialog {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our To header value (with our tag) and the caller's From, as in the dialog. */
  localParty: string;
  remoteParty: string;
  remoteTarget: string;
  routeSet: string[];
  transport: Transport;
  /** Where the INVITE came from (for stream transports: where to connect again). */
  address: string;
  port: number;
  /** Our CSeq number when the state was taken. */
  localSeq: number;
  /** drachtio backend only (the other fields are then informational). */
  drachtio?: StoredDrachtioDialog | undefined;
}

export interface CallEvents extends Record<string, unknown[]> {
  /** One detected key press (RFC 4733 de-duplicated). Never log the digit during card fields. */
  digit: [digit: DtmfDigit, source: DtmfSource];
  /** The dialog ended (either side). Emitted exactly once. */
  ended: [info: CallEndInfo];
}

export interface InboundCall extends TypedEmitter<CallEvents> {
  /** Locally unique id for logs and live-call listings. */
  readonly id: string;
  /** SIP Call-ID. */
  readonly callId: string;
  readonly fromUri: string;
  readonly toUri: string;
  readonly requestUri: string;
  /** Called number / user part of the Request-URI (profile selection). */
  readonly calledUser: string;
  readonly remote: RemoteEndpoint;
  /** First value of a header (case-insensitive, compact forms resolved). */
  header(name: string): string | undefined;
  /** All values of a header, in order. */
  headers(name: string): string[];
  readonly state: 'offered' | 'answered' | 'ended';

  /** Final non-2xx answer to the INVITE. */
  reject(status: number, reason?: string): Promise<void>;
  /** 200 OK with our SDP answer; resolves once the call is confirmed (ACK) or soon after 200. */
  answer(): Promise<void>;

  /** Plays prompt fragments in order; resolves when done, interrupted by a digit, stopped or the call ended. */
  play(fragments: readonly string[], options: PlayOptions): Promise<PlayResult>;
  /** Stops the current playback (no-op when nothing plays). */
  stopPlay(): void;

  /** In-dialog REFER (RFC 3515) with NOTIFY tracking; `referTo` is the complete Refer-To URI. */
  refer(referTo: string, options?: { timeoutMs?: number }): Promise<ReferResult>;
  /** BYE (or nothing when already ended). Idempotent. */
  hangup(reason?: HangupReason): Promise<void>;
  /**
   * Listen for in-band key tones in the caller's audio too, even when RFC 4733 telephone-event
   * was negotiated (a conference mix may carry keys as audio only). A key seen both ways counts
   * once. Backends without it leave it out (the caller's keys then arrive as negotiated).
   */
  listenForInbandKeys?(): void;
  /** The answered dialog, for the journal (backends that can end a stored dialog after a restart). */
  dialogState?(): StoredDialog | undefined;
}

export interface BackendEvents extends Record<string, unknown[]> {
  call: [call: InboundCall];
}

export interface TelephonyBackend extends TypedEmitter<BackendEvents> {
  readonly name: 'embedded' | 'drachtio' | 'edge';
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Calls in progress. */
  readonly activeCalls: number;
  /** True when the backend can take calls (readiness probe); false while draining. */
  readonly ready: boolean;
  /**
   * Ends a dialog a previous run of this node left behind (crash): sends a BYE in it. Resolves
   * with the final status, or 408 when nothing answered.
   */
  endStoredDialog?(dialog: StoredDialog, reason: HangupReason): Promise<number>;
  /** True once drain() was called: no new calls, calls in progress go on. */
  readonly draining: boolean;
  /**
   * Stops taking calls without touching those in progress: OPTIONS is answered 503 (so a SIP
   * load balancer takes the node out) and new INVITEs get 503 with Retry-After (so it fails the
   * call over to another node). Idempotent.
   */
  drain(retryAfterSeconds: number): void;
}
