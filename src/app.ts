import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import type { TelephonyBackend, InboundCall } from './telephony/types.js';
import type { PaymentGateway } from './psp/types.js';
import { createGateway } from './psp/index.js';
import { createStore } from './store/index.js';
import type { ResultStore } from './store/types.js';
import { Metrics } from './http/metrics.js';
import { startAdminServer } from './http/server.js';
import { CallController } from './call/controller.js';
import { EmbeddedBackend } from './telephony/embedded/backend.js';
import { DrachtioBackend } from './telephony/drachtio/backend.js';
import { PayIvrError, describeError } from './errors.js';
import { openJournal, Reconciler, type JournalRuntime } from './journal/index.js';
import { endOrphanedCalls } from './journal/orphans.js';

export interface App {
  readonly backend: TelephonyBackend;
  readonly store: ResultStore;
  readonly metrics: Metrics;
  /** The payment journal and its spool. */
  readonly journal: JournalRuntime;
  readonly reconciler: Reconciler;
  /** Admin HTTP port actually bound (0 when disabled). */
  readonly adminPort: number;
  /** Resolves when every call in progress has finished (tests, graceful stop). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

function createBackend(config: Config, logger: Logger): TelephonyBackend {
  return config.telephony.backend === 'drachtio' ? new DrachtioBackend(config, logger) : new EmbeddedBackend(config, logger);
}

/**
 * Wires the process: store, metrics, one gateway per profile, the telephony backend, the admin
 * API, and a CallController per inbound call. Start order: what calls depend on first, the
 * backend (which starts taking calls) last.
 */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch((e: unknown) => logger.warn({ err: describeError(e) }, 'close failed'));
  };
  try {
    const innerStore = await createStore(config.store, logger);
    closers.push(() => innerStore.close());
    const metrics = new Metrics();
    // The journal before anything that charges; with Redis, results go through its spool.
    const journal = openJournal(config, innerStore, logger);
    closers.push(() => journal.close());
    const store = journal.store;
    journal.start((st) => metrics.journal({ degraded: st.degraded, spoolBytes: st.spoolBytes, spoolPending: st.pending }));

    const gateways = new Map<string, PaymentGateway>();
    for (const [name, profile] of Object.entries(config.profiles)) {
      const g = await createGateway(profile.psp, profile.retry, logger.child({ psp: profile.psp.type, profile: name }), { configPath: `profiles.${name}.psp` });
      closers.push(() => g.close());
      gateways.set(name, g.gateway);
    }

    const backend = createBackend(config, logger.child({ backend: config.telephony.backend }));
    const controllers = new Set<CallController>();
    const running = new Set<Promise<unknown>>();
    let idleWaiters: (() => void)[] = [];
    backend.on('call', (call: InboundCall) => {
      const ctl = new CallController(call, {
        config,
        logger,
        store,
        metrics,
        journal: journal.journal,
        gatewayFor: (name) => {
          const g = gateways.get(name);
          if (!g) throw new PayIvrError('ERR_INTERNAL', `no gateway for profile ${name}`);
          return g;
        },
      });
      controllers.add(ctl);
      const p = ctl.run().finally(() => {
        controllers.delete(ctl);
        running.delete(p);
        if (running.size === 0) {
          const w = idleWaiters;
          idleWaiters = [];
          for (const f of w) f();
        }
      });
      running.add(p);
    });

    const reconciler = new Reconciler({
      journal: journal.journal,
      results: store,
      gatewayFor: (profile) => gateways.get(profile),
      noRecordAfterMs: config.reconcile.noRecordAfterSeconds * 1000,
      logger: logger.child({ component: 'reconcile' }),
      onSettled: (o) => metrics.reconciled(o),
    });
    closers.push(() => reconciler.stop());

    let adminPort = 0;
    if (config.admin.enabled) {
      const admin = await startAdminServer({
        config,
        store,
        metrics,
        backendStatus: () => ({ ready: backend.ready, activeCalls: backend.activeCalls, journal: journal.status() }),
        logger,
      });
      adminPort = admin.port;
      closers.push(() => admin.close());
    }

    await backend.start();
    closers.push(async () => {
      for (const c of controllers) c.kill();
      await Promise.race([Promise.allSettled([...running]), new Promise((r) => setTimeout(r, 5_000).unref())]);
      await backend.stop();
    });

    // Calls a previous run left behind: BYE, result; then every open attempt is settled.
    const recovery = (async () => {
      await endOrphanedCalls({ journal: journal.journal, results: store, backend, logger: logger.child({ component: 'recovery' }) });
      const settled = await reconciler.runOnce();
      metrics.openAttempts(settled.filter((e) => e.outcome === 'open').length);
    })().catch((e: unknown) => logger.error({ err: describeError(e) }, 'start-up recovery failed'));
    reconciler.start(config.reconcile.intervalSeconds * 1000);
    closers.push(() => recovery);

    return {
      backend,
      store,
      metrics,
      journal,
      reconciler,
      adminPort,
      idle: () => (running.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r))),
      stop: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
