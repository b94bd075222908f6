import { afterAll, describe, expect, it } from 'vitest';
import type { PspAdapter } from '../../src/psp/adapter.js';
import { ResilientGateway, type ResilientOptions } from '../../src/psp/resilient.js';
import type { FaultRule } from '../../src/psp/sandbox/faults.js';
import type { ChargeOutcome } from '../../src/domain/charge.js';
import type { Logger } from '../../src/log.js';
import { ADAPTER_TIMEOUT_MS, FAST_RETRY, chargeRequest } from './psp-fixtures.js';

/** What the fault suite needs from a PSP under test (the sandbox, or a test server for REST). */
export interface PspHarness {
  label: string;
  logger: Logger;
  newAdapter(timeoutMs: number): PspAdapter;
  inject(rule: FaultRule): void;
  setDown(down: boolean): void;
  clearFaults(): void;
  /** Successful charges on the PSP's books for this idempotency key. */
  chargesFor(key: string): number;
  /** The charge POSTs the PSP received with this key: body digest and how each was handled. */
  postsFor(key: string): { digest: string | undefined; handling: string }[];
}

/** Totals over the fault tests whose outcome is known: charges on the books vs approved outcomes. */
export interface FaultTally {
  charges: number;
  approved: number;
}

const APPROVED_PAN = '4242424242424242';

/**
 * The no-double-charge suite every adapter passes: resends with the same key and body, lookup
 * after a lost reply, psp-error rather than a second charge, and the circuit breaker.
 */
export function describeFaultSuite(getHarness: () => PspHarness, tally: FaultTally): void {
  describe('faults: never a double charge', () => {
    const open: ResilientGateway[] = [];
    const gateway = (over: Partial<ResilientOptions> = {}): ResilientGateway => {
      const h = getHarness();
      const g = new ResilientGateway(h.newAdapter(ADAPTER_TIMEOUT_MS), { ...FAST_RETRY, ...over, logger: h.logger });
      open.push(g);
      return g;
    };
    afterAll(async () => {
      getHarness().clearFaults();
      getHarness().setDown(false);
      for (const g of open) await g.close();
    });

    /** Charges once through a fresh gateway and checks the books: one charge, all sends identical. */
    async function chargeAndCheck(rule: FaultRule | FaultRule[] | undefined, over: Partial<ResilientOptions> = {}): Promise<{ out: ChargeOutcome; g: ResilientGateway; posts: number; handling: string[] }> {
      const h = getHarness();
      h.clearFaults();
      for (const r of rule === undefined ? [] : Array.isArray(rule) ? rule : [rule]) h.inject(r);
      const g = gateway(over);
      const req = chargeRequest(APPROVED_PAN);
      const out = await g.charge(req);
      h.clearFaults();
      const posts = h.postsFor(req.idempotencyKey);
      const digests = new Set(posts.map((p) => p.digest));
      expect(digests.size, 'every send of one attempt carries the same body').toBe(1);
      expect(posts.filter((p) => p.handling === 'executed').length, 'executed once').toBeLessThanOrEqual(1);
      const charges = h.chargesFor(req.idempotencyKey);
      expect(charges).toBeLessThanOrEqual(1);
      if (out.status !== 'unknown') {
        tally.charges += charges;
        if (out.status === 'approved') tally.approved += 1;
        expect(charges).toBe(out.status === 'approved' ? 1 : 0);
      }
      return { out, g, posts: posts.length, handling: posts.map((p) => p.handling) };
    }

    it('timeout after the PSP charged, then success on the resend with the same key: one charge', async () => {
      const { out, handling } = await chargeAndCheck({ fault: { kind: 'hang', execute: true }, method: 'POST' });
      expect(out.status).toBe('approved');
      expect(handling).toEqual(['executed', 'replayed']);
    });

    it('timeout before the PSP executed, then success on the resend: one charge', async () => {
      const { out, handling } = await chargeAndCheck({ fault: { kind: 'hang' }, method: 'POST' });
      expect(out.status).toBe('approved');
      expect(handling).toEqual(['fault', 'executed']);
    });

    it('500 then success: one charge', async () => {
      const { out, handling } = await chargeAndCheck({ fault: { kind: 'status', status: 500 }, method: 'POST' });
      expect(out.status).toBe('approved');
      expect(handling).toEqual(['fault', 'executed']);
    });

    it('503 twice then success on the third send: one charge', async () => {
      const { out, handling } = await chargeAndCheck({ fault: { kind: 'status', status: 503 }, method: 'POST', count: 2 });
      expect(out.status).toBe('approved');
      expect(handling).toEqual(['fault', 'fault', 'executed']);
    });

    it('429 with Retry-After, then success: one charge', async () => {
      const { out, handling, g } = await chargeAndCheck({ fault: { kind: 'status', status: 429, retryAfterSeconds: 1 }, method: 'POST' });
      expect(out.status).toBe('approved');
      expect(handling).toEqual(['fault', 'executed']);
      expect(g.breakerState).toBe('closed');
    });

    it('a resend while the first send is still executing is refused as in flight, then replayed: one charge', async () => {
      const { out, handling } = await chargeAndCheck({ fault: { kind: 'latency', ms: ADAPTER_TIMEOUT_MS + 300 }, method: 'POST' }, { maxSends: 8, backoffMs: 100, maxBackoffMs: 400 });
      expect(out.status).toBe('approved');
      expect(handling).toContain('in-flight');
      expect(handling.filter((x) => x === 'executed')).toHaveLength(1);
      expect(handling[handling.length - 1]).toBe('replayed');
    });

    it('reply lost after charging on every send: the lookup finds the charge, one charge', async () => {
      const { out, g, handling } = await chargeAndCheck({ fault: { kind: 'reply-lost' }, method: 'POST', count: FAST_RETRY.maxSends });
      expect(out.status).toBe('approved');
      expect(g.stats().lookupHits).toBe(1);
      expect(handling.slice(0, FAST_RETRY.maxSends)).toEqual(['executed', 'replayed', 'replayed']);
    });

    it('PSP down: the breaker opens, later charges fail fast without a send (not charged), then it closes again', async () => {
      const h = getHarness();
      const resetMs = 1_500;
      const g = gateway({ budgetMs: 600, breakerResetMs: resetMs });
      const states: string[] = [];
      g.on('breaker', (s) => states.push(s));
      h.setDown(true);
      try {
        // 503s may have executed (for all we know): looked up to the end of the budget, then unconfirmed.
        const first = await g.charge(chargeRequest(APPROVED_PAN));
        expect(first.status).toBe('unknown');
        expect(g.breakerState).toBe('open');
        const req = chargeRequest(APPROVED_PAN);
        const fast = await g.charge(req);
        expect(fast).toEqual({ status: 'failed', reason: 'circuit-open' });
        expect(h.postsFor(req.idempotencyKey)).toHaveLength(0);
        expect(g.stats().circuitRejections).toBe(1);
      } finally {
        h.setDown(false);
      }
      await new Promise((r) => setTimeout(r, resetMs + 50));
      expect(g.breakerState).toBe('half-open');
      const probe = chargeRequest(APPROVED_PAN);
      const again = await g.charge(probe);
      expect(again.status).toBe('approved');
      tally.charges += h.chargesFor(probe.idempotencyKey);
      tally.approved += 1;
      expect(g.breakerState).toBe('closed');
      expect(states).toEqual(['open', 'half-open', 'closed']);
    });

    it('outcome still unknown after resends and lookups to the end of the budget: unconfirmed (unknown), and no second charge', async () => {
      const h = getHarness();
      h.clearFaults();
      h.inject({ fault: { kind: 'reply-lost' }, count: Infinity });
      const g = gateway();
      const req = chargeRequest(APPROVED_PAN);
      const out = await g.charge(req);
      h.clearFaults();
      expect(out.status).toBe('unknown');
      // The PSP did charge once (we never heard back): never twice.
      expect(h.chargesFor(req.idempotencyKey)).toBe(1);
      expect(new Set(h.postsFor(req.idempotencyKey).map((p) => p.digest)).size).toBe(1);
    });
  });
}
