/**
 * The one errors module (fastify-style coded errors). Every error a caller or operator can hit
 * has a stable code; messages never contain card data (callers pass lengths, never digits).
 */
export type ErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CONFIG_READ'
  | 'ERR_SIP_PARSE'
  | 'ERR_SIP_TRANSPORT'
  | 'ERR_SIP_TRANSACTION_TIMEOUT'
  | 'ERR_SIP_DIALOG_GONE'
  | 'ERR_SDP_NO_COMMON_CODEC'
  | 'ERR_RTP_PORTS_EXHAUSTED'
  | 'ERR_PROMPT_MISSING'
  | 'ERR_PROMPT_FORMAT'
  | 'ERR_CALL_ENDED'
  | 'ERR_REFER_FAILED'
  | 'ERR_PSP_CONFIG'
  | 'ERR_PSP_TRANSPORT'
  | 'ERR_PSP_PROTOCOL'
  | 'ERR_PSP_CIRCUIT_OPEN'
  | 'ERR_UUI_DECODE'
  | 'ERR_STORE'
  | 'ERR_JOURNAL'
  | 'ERR_JOURNAL_FULL'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_RTPENGINE_UNREACHABLE'
  | 'ERR_RTPENGINE_REFUSED'
  | 'ERR_RTPENGINE_UNSUPPORTED'
  | 'ERR_RTPENGINE_CLOSED'
  | 'ERR_RTPENGINE_BIND'
  /** Agent Assist: no call with that edge session id (404). */
  | 'ERR_ASSIST_UNKNOWN_CALL'
  /** Agent Assist: the call has ended (410). */
  | 'ERR_ASSIST_CALL_ENDED'
  /** Agent Assist: a capture already runs on that call (409). */
  | 'ERR_ASSIST_BUSY'
  /** Agent Assist: the command does not fit the capture's state, e.g. charge before the card is complete (409). */
  | 'ERR_ASSIST_STATE'
  /** Agent Assist: a request field is wrong (400, with the field path). */
  | 'ERR_ASSIST_BAD_REQUEST'
  /** Agent Assist: too many captures at once on this node (503). */
  | 'ERR_ASSIST_CAPACITY'
  /** Agent Assist: the media anchor did not block the caller's keys: no capture (502). */
  | 'ERR_ASSIST_BLOCK'
  /** Genesys participant data: a result value looked like card data, so nothing was written (path and rule only). */
  | 'ERR_PARTICIPANT_DATA'
  | 'ERR_INTERNAL';

export class PayIvrError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PayIvrError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isPayIvrError(e: unknown, code?: ErrorCode): e is PayIvrError {
  return e instanceof PayIvrError && (code === undefined || e.code === code);
}

/** A short description of any thrown value, safe for logs (no stack, no payloads). */
export function describeError(e: unknown): string {
  if (e instanceof PayIvrError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
