/**
 * The seam between the write-back queue (durable, ordered, retried) and the Genesys Cloud
 * Platform API client that performs one write. Never card data: the attributes are the
 * result's brand, last 4 and the like, checked by the card-data guard before they are queued.
 */

/** What one participant-data write ended with. */
export type WriteVerdict =
  /** Genesys accepted the attributes. */
  | { kind: 'written' }
  /** Worth trying again: 429 (afterMs from Retry-After), 5xx, timeout, network error, a token that could not be renewed. */
  | { kind: 'retry'; why: string; afterMs?: number | undefined }
  /** A retry cannot change it: conversation or participant not found, permission refused, request refused as malformed. */
  | { kind: 'rejected'; why: string; status?: number | undefined };

export interface ParticipantDataWriter {
  /** Patches the customer participant of the conversation with `attributes` (name -> value). */
  write(conversationId: string, attributes: Readonly<Record<string, string>>): Promise<WriteVerdict>;
  /** Drops the token and any open request. */
  close(): Promise<void>;
}
