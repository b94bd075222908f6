import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import type { PaymentGateway } from './psp/types.js';
import { createGateway } from './psp/index.js';
import { createStore } from './store/index.js';
import { openJournal, Reconciler, type ReconcileEntry } from './journal/index.js';

/**
 * `pay-ivr reconcile`: one reconciliation round on demand (the server also runs them at start and
 * every reconcile.intervalSeconds). Opens the configured store and journal, settles every open
 * attempt by a PSP lookup, prints one line per attempt and returns the entries.
 * With the memory store the journal is the node's spool file: run it while the server is stopped.
 */
export async function reconcileOnce(config: Config, logger: Logger, out: (line: string) => void): Promise<ReconcileEntry[]> {
  const inner = createStore(config.store, logger);
  const journal = openJournal(config, inner, logger);
  const gateways = new Map<string, PaymentGateway>();
  const closers: (() => Promise<void>)[] = [];
  try {
    for (const [name, profile] of Object.entries(config.profiles)) {
      const g = await createGateway(profile.psp, profile.retry, logger.child({ profile: name }), { configPath: `profiles.${name}.psp` });
      closers.push(() => g.close());
      gateways.set(name, g.gateway);
    }
    // Results spooled by an earlier outage go first, so the round reads the latest records.
    await journal.replay();
    const reconciler = new Reconciler({
      journal: journal.journal,
      results: journal.store,
      gatewayFor: (p) => gateways.get(p),
      noRecordAfterMs: config.reconcile.noRecordAfterSeconds * 1000,
      logger,
    });
    const entries = await reconciler.runOnce();
    for (const e of entries) {
      out(`${e.outcome === 'open' ? 'open       ' : 'settled    '} ${e.outcome.padEnd(11)} attempt=${e.attemptId} call=${e.callRef} ref=${e.reference} amount=${e.amount} ${e.currency} ${e.outcome === 'open' ? `(${e.detail})` : `result=${e.detail}`}`);
    }
    const open = entries.filter((e) => e.outcome === 'open').length;
    out(`${entries.length - open} settled, ${open} still open${journal.status().pending > 0 ? `, ${journal.status().pending} records still spooled (store unreachable)` : ''}`);
    return entries;
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await journal.close();
    await inner.close();
  }
}
