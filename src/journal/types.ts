import type { DeclineClass } from '../domain/outcome.js';
import type { StoredDialog } from '../telephony/types.js';

export type { StoredDialog };

/**
 * The payment journal: one record per charge attempt, written before the first send and updated
 * when the outcome is known, so that no charge can happen without a trace. Never card data: the
 * brand and last 4 only (records are checked like results: domain/card-data-guard.ts).
 */

/** What the PSP did with an attempt. `not-charged`: the PSP has no charge for it. */
export type AttemptOutcome = 'approved' | 'declined' | 'not-charged';

/** Who settled the attempt: the call itself, or reconciliation after the fact. */
export type SettleOrigin = 'call' | 'reconciled';

export interface JournalAttempt {
  /** Attempt id (journal key). */
  id: string;
  /** The key of every send of this attempt; reconciliation looks the attempt up by it. */
  idempotencyKey: string;
  /** Local call id: the id of the call's result record. */
  callRef: string;
  /** SIP Call-ID. */
  callId: string;
  /** Node that sent it (journal.nodeId). */
  node: string;
  /** Gateway name (sandbox-stripe, stripe, adyen, rest). */
  psp: string;
  /** Profile whose gateway charged it (reconciliation uses the same gateway). */
  profile: string;
  /** Minor units. */
  amount: number;
  currency: string;
  reference: string;
  brand?: string | undefined;
  last4?: string | undefined;
  /** 1, 2, ... within the call. */
  attempt: number;
  /** Who keyed the card: an IVR call (absent: older records) or an agent-assisted capture. */
  mode?: 'automated' | 'agent' | undefined;
  /**
   * Genesys conversation of the call, when known: a result reconciliation writes for a call that
   * left none (kill -9 right after the charge) still reaches the conversation (write-back).
   */
  conversationId?: string | undefined;
  createdAt: string;
  state: 'open' | 'settled';
  outcome?: AttemptOutcome | undefined;
  transactionId?: string | undefined;
  authCode?: string | undefined;
  declineClass?: DeclineClass | undefined;
  origin?: SettleOrigin | undefined;
  settledAt?: string | undefined;
  /** The call ended with the outcome unknown (why, e.g. "timeout"): only a lookup can tell. */
  unknownReason?: string | undefined;
  /** Lookups that could not tell yet (reconciliation). */
  checks?: number | undefined;
  lastCheckAt?: string | undefined;
  /** Grows with every change; a replay never replaces a record by an older one. */
  version: number;
}

/** Where journal records live: the local spool (memory store) or Redis (shared by the nodes). */
export interface JournalBackend {
  readonly kind: 'local' | 'redis';
  /** Writes the record unless a newer version is already there. Throws when the backend fails. */
  put(a: JournalAttempt): Promise<void>;
  get(id: string): Promise<JournalAttempt | undefined>;
  /** Attempts without a final outcome, oldest first. */
  open(): Promise<JournalAttempt[]>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * What a node needs to end a call it had in progress when it died: the dialog, and enough about
 * the call to write its result.
 */
export interface OrphanDialog {
  /** Local call id (result id). */
  callRef: string;
  /** Backend that can end it (the one that kept it). */
  backend: 'embedded' | 'drachtio';
  dialog: StoredDialog;
  profile: string;
  mode: 'automated' | 'agent';
  currency: string;
  reference?: string | undefined;
  conversationId?: string | undefined;
  accountId?: string | undefined;
  startedAt: string;
}
