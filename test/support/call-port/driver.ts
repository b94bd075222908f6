import type { DtmfDigit } from '../../../src/domain/dtmf.js';
import type { InboundCall, TelephonyBackend } from '../../../src/telephony/types.js';

/**
 * What the call-port conformance suite (test/call-port-conformance.test.ts) drives: a backend
 * under test (Stack) and the caller on its other side (Caller). Two implementations: the wire
 * (real SIP/RTP over UDP, for the embedded engine and for a real drachtio-server + FreeSWITCH)
 * and the protocol-level fakes (FakeDrachtio + FakeFreeswitch). The case bodies only see these
 * interfaces, so every backend is held to the same promises.
 */

export type BackendKind = 'embedded' | 'drachtio-fakes' | 'drachtio-real';

/** How a key press travels. */
export type KeyMethod = 'rfc4733' | 'info-dtmf-relay' | 'info-dtmf' | 'inband';

/** What the INVITE offers: an SDP with telephone-event, one without it, or none (late offer). */
export type Offer = 'sdp' | 'sdp-no-telephone-event' | 'none';

/** How the caller treats a REFER: 202, then NOTIFY 100 + 200, NOTIFY 603, or no NOTIFY at all. */
export type ReferPlan = 'accepted' | 'declined' | 'silent';

export interface FinalResponse {
  status: number;
  header(name: string): string | undefined;
  body: string;
}

export interface Caller {
  readonly callId: string;
  /** Final response to the INVITE. */
  final(): Promise<FinalResponse>;
  /** ACK of the 2xx; for a late offer it carries the answer to the offer of the 200. */
  ack(): void;
  /** One key press by `method`. */
  key(digit: DtmfDigit, method: KeyMethod): Promise<void>;
  /** In-dialog INFO; resolves with the response status. */
  info(contentType: string, body: string): Promise<number>;
  /** An in-dialog INFO (valid DTMF) or BYE with the dialog's tags from another address; the status. */
  thirdParty(method: 'INFO' | 'BYE'): Promise<number>;
  /** BYE from the caller; the status of its response. */
  bye(): Promise<number>;
  /** CANCEL of the pending INVITE; resolves once the INVITE got its final response. */
  cancel(): Promise<FinalResponse>;
  /** Takes the next REFER (answers it 202) and then NOTIFYs as planned; resolves with its Refer-To. */
  handleRefer(plan: ReferPlan): Promise<{ referTo: string }>;
  /** The next BYE the caller receives (answered 200), with its Reason header. */
  byeReceived(): Promise<{ reason: string | undefined }>;
  /** BYEs received so far. */
  byeCount(): number;
  /** The prompts were played to the caller in full, in order (real audio, or FreeSWITCH playbacks). */
  heard(language: string, ids: readonly string[]): Promise<void>;
  /** The first of the prompts started. */
  hearing(language: string, ids: readonly string[]): Promise<void>;
  /** The prompts started were cut short (never heard to the end). */
  cutShort(language: string, ids: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** An INVITE the app neither answers nor rejects within this long gets 480. */
  offerTimeoutMs: number;
}

export interface Stack {
  readonly kind: BackendKind;
  /** The backend instance taking calls now (a new one after restart()). */
  readonly backend: TelephonyBackend;
  /** The next call the current backend instance emits. */
  nextCall(): Promise<InboundCall>;
  invite(offer?: Offer): Promise<Caller>;
  /** OPTIONS outside a dialog: status and Retry-After. */
  options(): Promise<{ status: number; retryAfter: string | undefined }>;
  /** The current backend instance drops dead: its connections close, it sends nothing more. */
  crash(): Promise<void>;
  /** A new backend instance in the place of the crashed one (started, ready for calls). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Resolves with `p`, or rejects naming `what` after `ms` (keeps a broken case from hanging). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Polls `pred` every few ms until it holds; rejects naming `what` after `ms`. */
export async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The backends of this run: the two in-process ones always; the real stack when its env names it. */
export function backendKinds(env: NodeJS.ProcessEnv = process.env): BackendKind[] {
  const kinds: BackendKind[] = ['embedded', 'drachtio-fakes'];
  if (env['PAYIVR_REAL_DRACHTIO'] !== undefined && env['PAYIVR_REAL_DRACHTIO'] !== '') kinds.push('drachtio-real');
  return kinds;
}
