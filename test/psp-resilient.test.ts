import { describe, expect, it } from 'vitest';
import type { PspAdapter, PspCapabilities } from '../src/psp/adapter.js';
import { ResilientGateway } from '../src/psp/resilient.js';
import { CircuitBreaker } from '../src/psp/breaker.js';
import { PspError } from '../src/psp/errors.js';
import type { ChargeRequest, LookupKey } from '../src/psp/types.js';
import type { ChargeOutcome } from '../src/domain/charge.js';
import { FAST_RETRY, chargeRequest } from './support/psp-fixtures.js';

type Step = ChargeOutcome | PspError | Error | 'hang';

/** An adapter that plays a script of answers and records what it was asked. */
class ScriptedAdapter implements PspAdapter {
  readonly name = 'scripted';
  readonly sends: { key: string; at: number }[] = [];
  readonly lookups: LookupKey[] = [];
  closed = false;
  constructor(
    private readonly script: Step[],
    readonly capabilities: PspCapabilities = { idempotentReplay: true, lookupByKey: true, lookupById: true },
    private readonly lookupAnswer: ChargeOutcome | undefined = undefined,
    /** Answers of the first lookups (then lookupAnswer). */
    private readonly lookupScript: (ChargeOutcome | undefined | PspError)[] = [],
  ) {}

  async charge(req: ChargeRequest, signal?: AbortSignal): Promise<ChargeOutcome> {
    this.sends.push({ key: req.idempotencyKey, at: Date.now() });
    const step = this.script.shift() ?? new PspError('network', 'script exhausted');
    if (step === 'hang') {
      return new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(new PspError('aborted', 'aborted')), { once: true });
      });
    }
    if (step instanceof Error) throw step;
    return step;
  }

  async lookup(key: LookupKey): Promise<ChargeOutcome | undefined> {
    this.lookups.push(key);
    if (this.lookupScript.length > 0) {
      const step = this.lookupScript.shift();
      if (step instanceof Error) throw step;
      return step;
    }
    return this.lookupAnswer;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const approved: ChargeOutcome = { status: 'approved', transactionId: 'tx_1', authCode: 'A1' };
const timeout = (): PspError => new PspError('timeout', 'timeout', { maybeExecuted: true });
const http503 = (): PspError => new PspError('http', 'HTTP 503', { status: 503, maybeExecuted: true });

describe('ResilientGateway: resends with the same key, lookup, unknown, breaker', () => {
  it('resends the same request (same key) after transport failures and returns the answer', async () => {
    const a = new ScriptedAdapter([timeout(), http503(), approved]);
    const g = new ResilientGateway(a, FAST_RETRY);
    const r = chargeRequest('4242424242424242');
    expect(await g.charge(r)).toEqual(approved);
    expect(a.sends.map((s) => s.key)).toEqual([r.idempotencyKey, r.idempotencyKey, r.idempotencyKey]);
    expect(g.stats()).toMatchObject({ sends: 3, resends: 2, approved: 1, lookups: 0 });
  });

  it('after maxSends it looks up by key, then replays; a hit is the outcome', async () => {
    const a = new ScriptedAdapter([timeout(), timeout(), timeout(), approved], undefined, undefined);
    const g = new ResilientGateway(a, { ...FAST_RETRY, breakerFailures: 10 });
    const r = chargeRequest('4242424242424242');
    expect(await g.charge(r)).toEqual(approved);
    expect(a.lookups).toEqual([{ idempotencyKey: r.idempotencyKey }]);
    expect(a.sends).toHaveLength(4); // three sends + the replay lookup
    expect(g.stats()).toMatchObject({ lookups: 2, lookupHits: 1 });
  });

  it('still unknown after lookup: unknown with the last reason, never a new key', async () => {
    const a = new ScriptedAdapter([timeout(), timeout(), timeout(), timeout()]);
    const g = new ResilientGateway(a, { ...FAST_RETRY, budgetMs: 500, breakerFailures: 10 });
    const r = chargeRequest('4242424242424242');
    const out = await g.charge(r);
    expect(out).toMatchObject({ status: 'unknown', reason: expect.stringMatching(/-budget-exhausted$/) as unknown as string });
    expect(new Set(a.sends.map((s) => s.key))).toEqual(new Set([r.idempotencyKey]));
  });

  it('a protocol error (4xx) is not resent; it is looked up only if the PSP may have executed it', async () => {
    const a = new ScriptedAdapter([new PspError('protocol', 'HTTP 400', { status: 400, maybeExecuted: false })]);
    const g = new ResilientGateway(a, FAST_RETRY);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'psp-protocol-error' });
    expect(a.sends).toHaveLength(1);
    expect(a.lookups).toHaveLength(0);
    const b = new ScriptedAdapter([new PspError('protocol', 'idempotency', { status: 400, maybeExecuted: true })], undefined, approved);
    expect(await new ResilientGateway(b, FAST_RETRY).charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect(b.lookups).toHaveLength(1);
  });

  it('failures that certainly never reached the PSP (refused connection) need no lookup', async () => {
    const refused = (): PspError => new PspError('network', 'ECONNREFUSED', { maybeExecuted: false });
    const a = new ScriptedAdapter([refused(), refused(), refused()]);
    const g = new ResilientGateway(a, { ...FAST_RETRY, breakerFailures: 10 });
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'network' });
    expect(a.lookups).toHaveLength(0);
    expect(a.sends).toHaveLength(3);
  });

  it('a PSP without idempotency gets one send and a lookup, never a resend', async () => {
    const a = new ScriptedAdapter([timeout(), approved], { idempotentReplay: false, lookupByKey: true, lookupById: false }, approved);
    const g = new ResilientGateway(a, FAST_RETRY);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect(a.sends).toHaveLength(1);
    expect(a.lookups).toHaveLength(1);
  });

  it('honours Retry-After, but stops resending when it would overrun the budget', async () => {
    const a = new ScriptedAdapter([new PspError('http', '429', { status: 429, retryAfterMs: 60_000, maybeExecuted: false }), approved]);
    const g = new ResilientGateway(a, FAST_RETRY);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'http-429-budget-exhausted' });
    expect(a.sends).toHaveLength(1);
    const b = new ScriptedAdapter([new PspError('http', '429', { status: 429, retryAfterMs: 150, maybeExecuted: false }), approved]);
    const gb = new ResilientGateway(b, { ...FAST_RETRY, backoffMs: 1, maxBackoffMs: 1 });
    expect(await gb.charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect((b.sends[1]?.at ?? 0) - (b.sends[0]?.at ?? 0)).toBeGreaterThanOrEqual(140);
  });

  it('a hanging PSP is cut at the send deadline; the lookup still runs in the time kept for it', async () => {
    const a = new ScriptedAdapter(['hang', 'hang', 'hang', 'hang'], { idempotentReplay: true, lookupByKey: true, lookupById: false }, approved);
    const g = new ResilientGateway(a, { ...FAST_RETRY, budgetMs: 400, breakerFailures: 10 });
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect(a.lookups).toHaveLength(1);
  });

  it('the caller can cancel: the charge ends unknown/cancelled (the send may have charged) without a lookup', async () => {
    const a = new ScriptedAdapter(['hang']);
    const g = new ResilientGateway(a, FAST_RETRY);
    const ac = new AbortController();
    const p = g.charge(chargeRequest('4242424242424242'), ac.signal);
    setTimeout(() => ac.abort(), 30);
    expect(await p).toEqual({ status: 'unknown', reason: 'cancelled' });
    expect(a.lookups).toHaveLength(0);
  });

  it('never throws: an adapter bug becomes unknown; an invalid key is never sent (failed)', async () => {
    const a = new ScriptedAdapter([new TypeError('boom')]);
    const g = new ResilientGateway(a, { ...FAST_RETRY, budgetMs: 300 });
    expect((await g.charge(chargeRequest('4242424242424242'))).status).toBe('unknown');
    const b = new ScriptedAdapter([approved]);
    const gb = new ResilientGateway(b, FAST_RETRY);
    expect(await gb.charge(chargeRequest('4242424242424242', { idempotencyKey: 'bad key with spaces' }))).toEqual({ status: 'failed', reason: 'invalid-idempotency-key' });
    expect(await gb.charge(chargeRequest('4242424242424242', { idempotencyKey: 'x'.repeat(65) }))).toEqual({ status: 'failed', reason: 'invalid-idempotency-key' });
    expect(b.sends).toHaveLength(0);
  });

  it('declines and approvals are returned as they are, after one send', async () => {
    const declined: ChargeOutcome = { status: 'declined', declineClass: 'insufficient-funds', pspCode: 'x' };
    const a = new ScriptedAdapter([declined]);
    expect(await new ResilientGateway(a, FAST_RETRY).charge(chargeRequest('4242424242424242'))).toEqual(declined);
    expect(a.sends).toHaveLength(1);
  });

  it('opens after N consecutive transport failures, rejects at once, half-opens one probe, closes on success', async () => {
    // 503s answered before executing anything (maybeExecuted false): nothing to look up.
    const down = (): PspError => new PspError('http', 'HTTP 503', { status: 503, maybeExecuted: false });
    const a = new ScriptedAdapter([down(), down(), down()], { idempotentReplay: true, lookupByKey: false, lookupById: false });
    const g = new ResilientGateway(a, { ...FAST_RETRY, breakerFailures: 3, breakerResetMs: 100 });
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'circuit-open' });
    expect(g.breakerState).toBe('open');
    const sendsBefore = a.sends.length;
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'circuit-open' });
    expect(a.sends.length).toBe(sendsBefore);
    await new Promise((r) => setTimeout(r, 120));
    expect(g.breakerState).toBe('half-open');
    a.sends.length = 0;
    (a as unknown as { script: Step[] }).script.push('hang' as Step);
    // Only one probe at a time while half-open: the second charge is refused at once.
    const probe = g.charge(chargeRequest('4242424242424242'), AbortSignal.timeout(50));
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'circuit-open' });
    expect(await probe).toEqual({ status: 'unknown', reason: 'cancelled' });
    (a as unknown as { script: Step[] }).script.push(approved);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect(g.breakerState).toBe('closed');
  });

  it('429 and 409 (PSP up, busy) are resent but do not open the breaker', async () => {
    const busy = (s: number): PspError => new PspError('http', String(s), { status: s, maybeExecuted: s !== 429 });
    const a = new ScriptedAdapter([busy(429), busy(409), approved]);
    const g = new ResilientGateway(a, { ...FAST_RETRY, breakerFailures: 1 });
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual(approved);
    expect(g.breakerState).toBe('closed');
  });

  it('the breaker alone: failures count only when consecutive; a failed probe reopens', () => {
    let now = 0;
    const b = new CircuitBreaker({ failures: 2, resetMs: 10, now: () => now });
    b.failure();
    b.success();
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    expect(b.acquire()).toBe('reject');
    now = 10;
    expect(b.acquire()).toBe('probe');
    expect(b.acquire()).toBe('reject');
    b.failure();
    expect(b.state).toBe('open');
    now = 20;
    expect(b.acquire()).toBe('probe');
    b.success();
    expect(b.state).toBe('closed');
    expect(b.acquire()).toBe('go');
  });

  it('close() closes the adapter; later charges answer failed without sending', async () => {
    const a = new ScriptedAdapter([approved]);
    const g = new ResilientGateway(a, FAST_RETRY);
    await g.close();
    await g.close();
    expect(a.closed).toBe(true);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'gateway-closed' });
    expect(a.sends).toHaveLength(0);
  });

  it('keeps looking up through 409, 429 and 5xx until it finds the outcome (the budget is not given up early)', async () => {
    const busy = (st: number, retryAfterMs?: number): PspError => new PspError('http', String(st), { status: st, retryAfterMs, maybeExecuted: st !== 429 });
    // Every send: reply lost. Search and replay then meet 409 (in flight), 503, 429 and timeouts.
    const sends: Step[] = [timeout(), timeout(), timeout(), busy(409), busy(503), timeout(), busy(409), busy(500), approved];
    const lookups = [busy(503), undefined, busy(429, 30), busy(409), busy(502), undefined];
    const a = new ScriptedAdapter(sends, undefined, undefined, lookups);
    const g = new ResilientGateway(a, { ...FAST_RETRY, breakerFailures: 100 });
    const r = chargeRequest('4242424242424242');
    expect(await g.charge(r)).toEqual(approved);
    expect(a.sends).toHaveLength(9);
    expect(a.lookups).toHaveLength(6);
    expect(new Set(a.sends.map((x) => x.key))).toEqual(new Set([r.idempotencyKey]));
    expect(g.stats()).toMatchObject({ sends: 3, lookups: 12, lookupHits: 1, approved: 1 });
  });

  it('a send that may have charged and is never confirmed ends unknown (unconfirmed), after lookups to the end of the budget', async () => {
    const a = new ScriptedAdapter([timeout()], { idempotentReplay: false, lookupByKey: true, lookupById: false }, undefined, []);
    const g = new ResilientGateway(a, { ...FAST_RETRY, budgetMs: 600, backoffMs: 10, maxBackoffMs: 20 });
    const out = await g.charge(chargeRequest('4242424242424242'));
    expect(out).toEqual({ status: 'unknown', reason: 'no-record-budget-exhausted' });
    expect(a.sends).toHaveLength(1);
    // Lookups went on while there was budget (backoff 10-20 ms in 600 ms: far more than a handful).
    expect(a.lookups.length).toBeGreaterThanOrEqual(5);
  });

  it('failed (psp-error) only when nothing can have been charged: 429s throughout, refused connections, 4xx', async () => {
    const r429 = (): PspError => new PspError('http', '429', { status: 429, retryAfterMs: 10, maybeExecuted: false });
    const a = new ScriptedAdapter([r429(), r429(), r429()]);
    const g = new ResilientGateway(a, FAST_RETRY);
    expect(await g.charge(chargeRequest('4242424242424242'))).toEqual({ status: 'failed', reason: 'http-429' });
    expect(a.lookups).toHaveLength(0);
    // One 5xx among them (may have executed) makes it a lookup case, and then unknown if never found.
    const b = new ScriptedAdapter([r429(), http503(), r429()], { idempotentReplay: true, lookupByKey: true, lookupById: false }, undefined);
    const gb = new ResilientGateway(b, { ...FAST_RETRY, budgetMs: 400 });
    expect((await gb.charge(chargeRequest('4242424242424242'))).status).toBe('unknown');
    expect(b.lookups.length).toBeGreaterThan(0);
  });
});
