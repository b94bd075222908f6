import type { CallMode, PaymentResult } from '../domain/outcome.js';

/**
 * The store port: payment results for reporting and lookup, and the live-call list of the admin
 * API. Two adapters: MemoryStore (one process, bounded) and RedisStore (several nodes).
 * Nothing here ever holds card data: records are checked before they are written (validate.ts).
 */

/** A saved result: the PaymentResult plus its id and when it was saved (ISO). */
export type StoredResult = PaymentResult & { id: string; savedAt: string };

/**
 * Where a live call is in its lifecycle (no card data, only the phase). The usual phases are
 * listed; any other lower-case word (letters and '-', up to 32) is accepted, anything else is
 * stored as "unknown", so a state can never carry digits.
 */
export type LiveCallState = 'answering' | 'collecting' | 'charging' | 'charged' | 'handing-back' | 'ending' | (string & Record<never, never>);

const STATE_WORD = /^[a-z][a-z-]{0,31}$/;

/** The state as stored: the word itself, or "unknown" when it is not a plain lower-case word. */
export function safeLiveState(state: string): string {
  return STATE_WORD.test(state) ? state : 'unknown';
}

/** The charge word as stored: one of the four, anything else dropped. */
export function safeCharge(c: string | undefined): LiveCallInfo['charge'] {
  return c === 'approved' || c === 'declined' || c === 'failed' || c === 'unknown' ? c : undefined;
}

export interface LiveCallInfo {
  /** Local call id (InboundCall.id). */
  id: string;
  /** SIP Call-ID. */
  callId: string;
  /** ISO timestamp. */
  startedAt: string;
  profile: string;
  conversationId?: string | undefined;
  mode?: CallMode | undefined;
  state: LiveCallState;
  /** Outcome of the latest charge (state `charged`): approved, declined, failed (not charged) or unknown (PSP could not confirm). */
  charge?: 'approved' | 'declined' | 'failed' | 'unknown' | undefined;
  /** Node that serves the call (filled by the store). */
  node?: string | undefined;
}

export interface ResultStore {
  readonly kind: 'memory' | 'redis';
  /** Saves (or replaces) a result. Throws ERR_STORE when the record holds card-like data or the backend fails. */
  saveResult(r: PaymentResult & { id: string }): Promise<void>;
  /** Results with this payment reference, newest first. */
  getByReference(reference: string): Promise<StoredResult[]>;
  /** Results with this Genesys conversation id, newest first. */
  getByConversationId(conversationId: string): Promise<StoredResult[]>;
  getById(id: string): Promise<StoredResult | undefined>;
  /** The latest results, newest first (at most `limit`). */
  recent(limit: number): Promise<StoredResult[]>;
  /** Registers a live call (or replaces it, same id). */
  liveCallStarted(info: LiveCallInfo): Promise<void>;
  /** Moves a live call to another phase (no-op for an unknown id); `charge` with state `charged`. */
  liveCallState(id: string, state: LiveCallState, extra?: Pick<LiveCallInfo, 'charge'>): Promise<void>;
  liveCallEnded(id: string): Promise<void>;
  /** Live calls of every node still alive, oldest first. */
  liveCalls(): Promise<LiveCallInfo[]>;
  /** True when the backend answers (readiness). */
  ping(): Promise<boolean>;
  /** Idempotent. */
  close(): Promise<void>;
}
