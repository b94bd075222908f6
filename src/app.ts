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
import { openJournal, Reconciler, type JournalRuntime } from './journal/index.js';
import { endOrphanedCalls } from './journal/orphans.js';
import { RedisRateCounter } from './store/redis-rate.js';
import type { FleetRateCounter } from './telephony/admission.js';
import type { MediaEngineLike } from './telephony/embedded/media-port.js';
import { EdgeBackend } from './edge/edge-backend.js';
import type { CaptureHost, MediaAnchor } from './edge/types.js';
import type { RelayedCall } from './edge/edge-call.js';
import { AssistService } from './assist/service.js';
import { sandboxProfiles } from './config/fail-closed.js';
import { openWriteBack, type WriteBackDepsFactory, type WriteBackRuntime } from './genesys/platform/write-back-runtime.js';

export interface App {
  readonly backend: TelephonyBackend;
  readonly store: ResultStore;
  readonly metrics: Metrics;
  /** The payment journal and its spool. */
  readonly journal: JournalRuntime;
  readonly reconciler: Reconciler;
  /** genesys.platform.enabled: the participant-data write-back (queue and dead letters). */
  readonly writeBack: WriteBackRuntime | undefined;
  /** Admin HTTP port actually bound (0 when disabled). */
  readonly adminPort: number;
  /** Edge role (edge.enabled): the relayed calls by edge session id; undefined on a payment IVR node. */
  readonly captureHost: CaptureHost | undefined;
  /** Resolves when every call in progress has finished (tests, graceful stop). */
  idle(): Promise<void>;
  /**
   * Graceful drain: no new calls (OPTIONS and INVITE answer 503), calls in progress finish; at
   * drain.maxMs the rest are ended with a hand-back. Resolves when no call is left. Idempotent.
   */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

function createBackend(config: Config, logger: Logger, fleetRate: FleetRateCounter | undefined, media: MediaEngineLike | undefined): TelephonyBackend {
  const opts = { ...(fleetRate !== undefined ? { fleetRate } : {}), ...(media !== undefined ? { media } : {}) };
  return config.telephony.backend === 'drachtio' ? new DrachtioBackend(config, logger, opts) : new EmbeddedBackend(config, logger, opts);
}

/**
 * Wires the process: store, metrics, one gateway per profile, the telephony backend, the admin
 * API, and a CallController per inbound call. Start order: what calls depend on first, the
 * backend (which starts taking calls) last.
 */
interface AppOptions {
  /** Called once a drain asked over the admin API is over (the CLI then stops and exits). */
  onDrained?: () => void;
  /** Embedded backend only: this media engine instead of the one rtp.* describes (the bench's instrumented one). */
  media?: MediaEngineLike;
  /**
   * Agent Assist over another host's calls than this node's B2BUA (tests): with `edge.assist`
   * configured, captures run on them and the admin server serves /v1/assist and the agent panel.
   */
  captureHost?: CaptureHost;
  /** Edge role: makes the rtpengine media anchor (closed when the app stops). */
  mediaAnchor?: MediaAnchorFactory;
  /** Edge role: SIP timers (tests shrink them). */
  edgeTimers?: { t1: number; t2: number; t4: number };
  /**
   * genesys.platform.enabled: the participant-data writer and the result -> attributes mapping
   * (the Platform API client in production; tests give a double).
   */
  participantData?: WriteBackDepsFactory;
}

export type MediaAnchorFactory = (config: Config, logger: Logger) => MediaAnchor | Promise<MediaAnchor>;

/** How long calls cut short at the drain deadline get to hand back before the node stops anyway. */
const DRAIN_HANDBACK_MS = 30_000;

export async function startApp(config: Config, logger: Logger, options: AppOptions = {}): Promise<App> {
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
    // Every result saved from here on (calls, captures, start-up recovery, reconciliation) also
    // queues its write onto the Genesys conversation, durably, before the save resolves.
    let writeBack: WriteBackRuntime | undefined;
    if (config.genesys.platform.enabled) {
      if (options.participantData === undefined) {
        throw new PayIvrError('ERR_CONFIG_INVALID', 'genesys.platform.enabled: no participant data writer is available to this process');
      }
      const wb = await openWriteBack({ config, spool: journal.journal.spool, inner: journal.store, deps: options.participantData, node: journal.journal.node, events: metrics.writeBackEvents(), logger });
      closers.push(() => wb.close());
      metrics.watchWriteBack(() => wb.queue.status());
      writeBack = wb;
    }
    const store = writeBack?.store ?? journal.store;
    journal.start((st) => metrics.journal({ degraded: st.degraded, spoolBytes: st.spoolBytes, spoolPending: st.pending }));
    // Segments name the node as the live-call list does (the Redis store's node id).
    const reports = createReports(config, logger, metrics, 'nodeId' in innerStore && typeof innerStore.nodeId === 'string' ? innerStore.nodeId : undefined);
    closers.push(() => reports.close());

    // The sandbox approves without charging: say so once, loudly (config validation already
    // refused it on a node reachable off loopback unless psp.allowOffLoopback says otherwise).
    const sandbox = sandboxProfiles(config);
    if (sandbox.length > 0) logger.warn({ profiles: sandbox }, `sandbox PSP in profile(s) ${sandbox.join(', ')}: approves any valid card number and charges nothing (test nodes only)`);
    const gateways = new Map<string, PaymentGateway>();
    for (const [name, profile] of Object.entries(config.profiles)) {
      const g = await createGateway(profile.psp, profile.retry, logger.child({ psp: profile.psp.type, profile: name }), { configPath: `profiles.${name}.psp` });
      closers.push(() => g.close());
      gateways.set(name, g.gateway);
    }

    // Nodes sharing Redis share the per-source INVITE rate too.
    let fleetRate: RedisRateCounter | undefined;
    if (config.store.type === 'redis') {
      const counter = new RedisRateCounter({ url: config.store.redisUrl, keyPrefix: config.store.keyPrefix, logger });
      closers.push(() => counter.close());
      fleetRate = counter;
    }
    const controllers = new Set<CallController>();
    const running = new Set<Promise<unknown>>();
    let idleWaiters: (() => void)[] = [];
    const track = (p: Promise<unknown>): void => {
      const done = p.finally(() => {
        running.delete(done);
        if (running.size === 0) {
          const w = idleWaiters;
          idleWaiters = [];
          for (const f of w) f();
        }
      });
      running.add(done);
    };
    /** Edge role: relayed calls in progress (a drain waits for them, its deadline hangs them up). */
    const edgeCalls = new Set<RelayedCall>();
    let backend: TelephonyBackend;
    let captureHost: CaptureHost | undefined;
    let mediaRelay: (() => 'up' | 'down') | undefined;
    if (config.edge.enabled) {
      // Edge role: the B2BUA toward Genesys instead of the payment IVR; it never emits 'call'.
      if (options.mediaAnchor === undefined) throw new PayIvrError('ERR_CONFIG_INVALID', 'edge.enabled: no media anchor (rtpengine) is available to this process');
      const anchor = await options.mediaAnchor(config, logger.child({ component: 'rtpengine' }));
      closers.push(() => anchor.close());
      mediaRelay = () => (anchor.reachable ? 'up' : 'down');
      const edge = new EdgeBackend(config, logger.child({ backend: 'edge' }), {
        anchor,
        ...(fleetRate !== undefined ? { fleetRate } : {}),
        ...(options.edgeTimers !== undefined ? { timers: options.edgeTimers } : {}),
        onCall: (call) => {
          edgeCalls.add(call);
          track(new Promise<void>((r) => call.once('ended', () => r())).finally(() => edgeCalls.delete(call)));
        },
      });
      // Asked at each lookup: the B2BUA's registry exists only once the backend has started (below).
      captureHost = { find: (sessionId) => edge.captureHost?.find(sessionId) };
      backend = edge;
    } else {
      backend = createBackend(config, logger.child({ backend: config.telephony.backend }), fleetRate, options.media);
    }
    metrics.watch({
      backendReady: () => backend.ready,
      // A store that does not answer within a scrape's patience counts as down.
      storeUp: () => Promise.race([store.ping(), new Promise<boolean>((r) => setTimeout(() => r(false), 1_000).unref())]),
      breakers: () => [...gateways].map(([profile, g]) => ({ profile, open: 'breakerState' in g && g.breakerState === 'open' })),
    });
    const gatewayFor = (name: string): PaymentGateway => {
      const g = gateways.get(name);
      if (!g) throw new PayIvrError('ERR_INTERNAL', `no gateway for profile ${name}`);
      return g;
    };
    backend.on('call', (call: InboundCall) => {
      const ctl = new CallController(call, {
        config,
        logger,
        store,
        metrics,
        journal: journal.journal,
        reports,
        gatewayFor,
      });
      controllers.add(ctl);
      track(ctl.run().finally(() => controllers.delete(ctl)));
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
    const idle = (): Promise<void> => (running.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r)));
    let draining: Promise<void> | undefined;
    const drain = (): Promise<void> => {
      draining ??= (async () => {
        backend.drain(config.drain.retryAfterSeconds);
        logger.info({ activeCalls: running.size, maxMs: config.drain.maxMs }, 'drain started');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), config.drain.maxMs)));
        const how = await Promise.race([idle().then(() => 'idle' as const), late]);
        clearTimeout(timer);
        if (how === 'late') {
          logger.warn({ activeCalls: running.size }, 'drain deadline reached: handing the remaining calls back');
          for (const c of controllers) c.endForDrain();
          for (const c of edgeCalls) void c.hangup('node draining');
          await Promise.race([idle(), new Promise((r) => setTimeout(r, DRAIN_HANDBACK_MS).unref())]);
        }
        logger.info({ activeCalls: running.size }, 'drain finished');
      })();
      return draining;
    };

    // Agent Assist runs on this node's relayed calls (edge role), or on a host the caller gives.
    let assist: AssistService | undefined;
    const hostForAssist = options.captureHost ?? captureHost;
    if (config.edge.assist !== undefined && hostForAssist !== undefined) {
      const service = new AssistService({ config, host: hostForAssist, gatewayFor, journal: journal.journal, store, reports, metrics, logger });
      closers.push(() => service.close());
      assist = service;
    } else if (config.edge.assist !== undefined) {
      logger.warn('edge.assist is configured but edge.enabled is false: no relayed calls, the assist API is off');
    }

    let adminPort = 0;
    if (config.admin.enabled) {
      const admin = await startAdminServer({
        config,
        store,
        metrics,
        reports,
        assist,
        backendStatus: () => ({ ready: backend.ready, activeCalls: backend.activeCalls, draining: backend.draining, journal: journal.status(), mediaRelay: mediaRelay?.(), genesysWriteBack: writeBack?.queue.status(), sandboxPsp: sandbox }),
        writeBack: writeBack?.queue,
        drain: () => void drain().then(() => options.onDrained?.()),
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
      writeBack,
      adminPort,
      get captureHost() {
        return captureHost;
      },
      idle,
      drain,
      stop: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
