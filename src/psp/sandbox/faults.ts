/** Faults the sandbox can inject, per request, to exercise the no-double-charge rules. */
export type Fault =
  /** Answer normally, after a delay (before executing: a retry meanwhile sees the key in flight). */
  | { kind: 'latency'; ms: number }
  /**
   * Never answer. With `execute`, the charge is made and stored first (the worst case: charged,
   * then silence); without it the request is stuck before processing.
   */
  | { kind: 'hang'; execute?: boolean }
  /** Answer this HTTP status (5xx, 429, ...) before executing anything: nothing is stored. */
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  /** Execute and store the charge, then destroy the connection without a reply. */
  | { kind: 'reply-lost' };

export type SandboxFace = 'stripe' | 'adyen';

export interface FaultRule {
  fault: Fault;
  /** How many matching requests this rule applies to (default 1; Infinity = until cleared). */
  count?: number;
  /** Only requests to this face (default both). */
  face?: SandboxFace;
  /** Only this method (default both). */
  method?: 'GET' | 'POST';
}

interface ActiveRule {
  fault: Fault;
  remaining: number;
  face: SandboxFace | undefined;
  method: 'GET' | 'POST' | undefined;
}

/** A queue of fault rules; each matching request consumes one count of the first matching rule. */
export class FaultQueue {
  #rules: ActiveRule[] = [];

  add(rule: FaultRule): void {
    const count = rule.count ?? 1;
    if (!(count > 0)) return;
    this.#rules.push({ fault: rule.fault, remaining: count, face: rule.face, method: rule.method });
  }

  take(face: SandboxFace, method: string): Fault | undefined {
    const i = this.#rules.findIndex((r) => (r.face === undefined || r.face === face) && (r.method === undefined || r.method === method));
    if (i < 0) return undefined;
    const r = this.#rules[i] as ActiveRule;
    r.remaining -= 1;
    if (r.remaining <= 0) this.#rules.splice(i, 1);
    return r.fault;
  }

  clear(): void {
    this.#rules = [];
  }

  get pending(): number {
    return this.#rules.length;
  }
}

export function isFaultRule(v: unknown): v is FaultRule {
  if (typeof v !== 'object' || v === null) return false;
  const f = (v as { fault?: unknown }).fault;
  if (typeof f !== 'object' || f === null) return false;
  const k = (f as { kind?: unknown }).kind;
  return k === 'latency' || k === 'hang' || k === 'status' || k === 'reply-lost';
}
