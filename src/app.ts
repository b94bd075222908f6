import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import type { TelephonyBackend, InboundCall } from './telephony/types.js';
import type { PaymentGateway } from './psp/types.js';
import { createGateway } from './psp/index.js';
import { createStore } from './store/index.js';
import type { ResultStore } from './store/types.js';
import { Metrics } from './http/metrics.js';
import { createReports } from './reports/index.js';
import { startAdminServer } from './http/server.js';
import { CallController } from './call/controller.js';
import { EmbeddedBackend } from './telephony/embedded/backend.js';
import { DrachtioBackend } from './telephony/drachtio/backend.js';
import { PayIvrError, describeError } from './errors.js';

export interface App {
  readonly backend: TelephonyBackend;
  readonly store: ResultStore;
  readonly metrics: Metrics;
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
    const store = await createStore(config.store, logger);
    closers.push(() => store.close());
    const metrics = new Metrics();
    // Segments name the node as the live-call list does (the Redis store's node id).
    const reports = createReports(config, logger, metrics, 'nodeId' in store && typeof store.nodeId === 'string' ? store.nodeId : undefined);
    closers.push(() => reports.close());

    const gateways = new Map<string, PaymentGateway>();
    for (const [name, profile] of Object.entries(config.profiles)) {
      const g = await createGateway(profile.psp, profile.retry, logger.child({ psp: profile.psp.type, profile: name }), { configPath: `profiles.${name}.psp` });
      closers.push(() => g.close());
      gateways.set(name, g.gateway);
    }

    const backend = createBackend(config, logger.child({ backend: config.telephony.backend }));
    metrics.watch({
      backendReady: () => backend.ready,
      // A store that does not answer within a scrape's patience counts as down.
      storeUp: () => Promise.race([store.ping(), new Promise<boolean>((r) => setTimeout(() => r(false), 1_000).unref())]),
      breakers: () => [...gateways].map(([profile, g]) => ({ profile, open: 'breakerState' in g && g.breakerState === 'open' })),
    });
    const controllers = new Set<CallController>();
    const running = new Set<Promise<unknown>>();
    let idleWaiters: (() => void)[] = [];
    backend.on('call', (call: InboundCall) => {
      const ctl = new CallController(call, {
        config,
        logger,
        store,
        metrics,
        reports,
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

    let adminPort = 0;
    if (config.admin.enabled) {
      const admin = await startAdminServer({
        config,
        store,
        metrics,
        reports,
        backendStatus: () => ({ ready: backend.ready, activeCalls: backend.activeCalls }),
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

    return {
      backend,
      store,
      metrics,
      adminPort,
      idle: () => (running.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r))),
      stop: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
