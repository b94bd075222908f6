import type { IncomingHttpHeaders } from 'node:http';
import type { SandboxFace } from './faults.js';

/** One charge on the sandbox's books. Never the PAN, expiry or security code: last 4 only. */
export interface LedgerEntry {
  /** PaymentIntent id (Stripe face) or pspReference (Adyen face). */
  id: string;
  face: SandboxFace;
  status: 'succeeded' | 'declined' | 'pending';
  amount: number;
  /** As sent: lower case on the Stripe face, upper case on the Adyen face. */
  currency: string;
  brand: string;
  last4: string;
  /** The PSP was told this is a mail/telephone order (no 3-D Secure). */
  moto: boolean;
  reference: string | undefined;
  idempotencyKey: string | undefined;
  /** Decline code (Stripe decline_code/code, Adyen refusalReasonCode). */
  declineCode?: string | undefined;
  createdAt: string;
}

/** How the sandbox treated one request (for tests: same key, same body, replays). */
export interface RequestRecord {
  seq: number;
  face: SandboxFace;
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  /** Keyed digest of the body (not reversible), so resends can be shown byte-identical. */
  bodyDigest: string | undefined;
  handling: 'executed' | 'replayed' | 'in-flight' | 'key-mismatch' | 'rejected' | 'read' | 'fault';
  fault?: string | undefined;
  status?: number | undefined;
}

export interface FaceRequest {
  method: string;
  path: string;
  query: string;
  headers: IncomingHttpHeaders;
  /** Raw body; the server zeroes it after the face has handled the request. */
  body: Buffer;
}

export interface FaceResponse {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export interface FaceResult {
  response: FaceResponse;
  /** Whether the PSP would keep this answer under the idempotency key (not for validation errors). */
  store: boolean;
}

/** What a PSP face implements; the server adds idempotency, faults, latency and the books. */
export interface Face {
  readonly name: SandboxFace;
  matches(path: string): boolean;
  /** An error answer when the credentials are wrong, else undefined. */
  authenticate(req: FaceRequest): FaceResponse | undefined;
  /** The idempotency key of a POST, or undefined. An invalid key yields an error answer. */
  idempotencyKey(req: FaceRequest): { key: string | undefined; error?: FaceResponse };
  /** Scope of idempotency keys (Stripe: per API key; Adyen: per company account). */
  keyScope(req: FaceRequest): string;
  /** Stripe refuses a reused key with different parameters; Adyen replays the first answer. */
  readonly strictKeyReuse: boolean;
  keyMismatch(): FaceResponse;
  inFlight(): FaceResponse;
  /** The face's error shape for an injected HTTP status. */
  injected(status: number): FaceResponse;
  /** Replay headers added to a stored answer. */
  replayHeaders(key: string): Record<string, string>;
  handle(req: FaceRequest, book: (e: LedgerEntry) => void): FaceResult;
  reset(): void;
}
