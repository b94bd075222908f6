import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { describeError, isPayIvrError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ResultStore } from '../store/types.js';
import type { Metrics } from './metrics.js';
import type { Reports } from '../reports/index.js';
import { registerReportRoutes } from './reports-api.js';
import { registerPage } from './page.js';
import { Sessions, sessionIdOf } from './session.js';
import { bearerMatches } from './token.js';
import type { AssistService } from '../assist/service.js';
import { registerAssistRoutes } from './assist-api.js';
import { registerAssistPage } from './assist-page.js';
import type { WriteBackQueue, WriteBackStatus } from '../genesys/platform/write-back.js';
import { registerWriteBackRoutes } from './write-back-api.js';

export { bearerMatches } from './token.js';

/**
 * The admin HTTP API:
 *   GET /health                      liveness: 200 while the process runs
 *   GET /ready                       200 when the telephony backend takes calls, else 503;
 *                                    `sandboxPsp` lists the profiles on the sandbox PSP
 *   GET /metrics                     Prometheus exposition
 *   GET /v1/results?reference=R      results of a payment reference, newest first   (token)
 *   GET /v1/results?conversationId=C results of a Genesys conversation              (token)
 *   GET /v1/results?limit=N          latest results (default 50, max 500)            (token)
 *   GET /v1/results/:id              one result, 404 when unknown                     (token)
 *   GET /v1/calls                    live calls (every node with the Redis store)     (token)
 *   /v1/reports/*, /v1/calls/stream  reports (reports-api.ts)                         (token)
 *   /v1/genesys/dead-letters[/...]   write-back dead letters: list, retry, dismiss
 *                                    (write-back-api.ts; genesys.platform.enabled)    (token)
 *   GET /, /session                  the reports page and its sign-in (page.ts)
 *   /v1/assist/*, /assist/*          Agent Assist capture API and agent panel (assist-api.ts,
 *                                    assist-page.ts; their own credentials), when configured
 * "(token)": the bearer token, or the reports page's session cookie.
 * The /v1 routes need `Authorization: Bearer <admin.apiToken>`; with no token configured they
 * answer 503. Request logs carry the method, the route pattern, the status and the duration only:
 * no query string (references), no path ids, no headers.
 */

export interface BackendStatus {
  ready: boolean;
  activeCalls: number;
  /** Payment journal: degraded while the store is unreachable (spooling locally). */
  journal?: { degraded: boolean; spoolBytes: number; spoolMaxBytes: number; pending: number } | undefined;
  /** True while the node drains (takes no new calls). */
  draining?: boolean | undefined;
  /** Edge role: whether rtpengine's control socket answers (new calls get 503 while it does not). */
  mediaRelay?: 'up' | 'down' | undefined;
  /** Profiles whose PSP is the sandbox (approves without charging); shown on /ready when any. */
  sandboxPsp?: readonly string[] | undefined;
  /** genesys.platform: the participant-data write-back queue (shown, never a reason to be unready). */
  genesysWriteBack?: WriteBackStatus | undefined;
}

/** Above this share of journal.maxSpoolBytes the node is not ready: attempts could soon not be recorded. */
const SPOOL_NOT_READY = 0.9;

interface AdminServerOptions {
  config: Pick<Config, 'admin'> & Partial<Pick<Config, 'reports'>>;
  /** Segment records and call events; without it the report routes and the page are absent. */
  reports?: Reports | undefined;
  store: ResultStore;
  metrics: Metrics;
  backendStatus: () => BackendStatus;
  /** Agent Assist capture (edge.assist); absent: no /v1/assist routes and no panel. */
  assist?: AssistService | undefined;
  /** genesys.platform: dead letters of the participant-data write-back (/v1/genesys/...). */
  writeBack?: WriteBackQueue | undefined;
  /** Starts a graceful drain (POST /v1/admin/drain); absent: the route answers 501. */
  drain?: (() => void) | undefined;
  logger: Logger;
}

export interface AdminServer {
  /** Idempotent. */
  close(): Promise<void>;
  /** The bound port (the real one when port 0 asked for an ephemeral port). */
  port: number;
}

const MAX_QUERY_VALUE = 256;
const DEFAULT_RECENT = 50;
const MAX_RECENT = 500;

/** The route pattern ("/v1/results/:id"), never the concrete URL. */
function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched';
}

/** Fastify's own log lines, reduced to fields that can hold nothing sensitive. */
class SafeLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: false });
  }
  override incomingRequest(): void {
    // One line per request is enough: see requestCompleted.
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const fields = { method: request.method, route: routeOf(request), statusCode: reply.statusCode, responseTimeMs: Math.round(reply.elapsedTime) };
    if (error) reply.log.error({ ...fields, err: describeError(error) }, 'admin request errored');
    else if (request.url === '/health' || request.url === '/ready' || request.url === '/metrics') reply.log.debug(fields, 'admin request');
    else reply.log.info(fields, 'admin request');
  }
  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    reply.log.warn({ method: request.method, route: routeOf(request), statusCode: reply.statusCode, err: describeError(error) }, 'admin request failed');
  }
  override routeNotFound(request: FastifyRequest): void {
    request.log.debug({ method: request.method }, 'admin route not found');
  }
  override writeHeadError(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
    reply.log.warn({ err: describeError(error) }, 'admin response write failed');
  }
  override streamError(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
    reply.log.warn({ err: describeError(error) }, 'admin response stream failed');
  }
  override serializerError(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
    reply.log.error({ err: describeError(error) }, 'admin response serialization failed');
  }
}

function queryValue(q: unknown, name: string): string | undefined | null {
  if (q === null || typeof q !== 'object') return undefined;
  const v = (q as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > MAX_QUERY_VALUE) return null;
  return v;
}

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const { config, store, metrics, backendStatus } = opts;
  const log = opts.logger.child({ component: 'admin-http' });
  const app = Fastify({
    loggerInstance: log,
    logController: new SafeLogController(),
    bodyLimit: 1024,
    requestTimeout: 10_000,
    connectionTimeout: 10_000,
    routerOptions: { maxParamLength: 200 },
    // Request ids from a header could be anything; ours are local counters.
    requestIdHeader: false,
    forceCloseConnections: true,
  });

  app.setErrorHandler((error: unknown, _request, reply) => {
    const status = typeof (error as { statusCode?: unknown }).statusCode === 'number' ? (error as { statusCode: number }).statusCode : 500;
    if (isPayIvrError(error, 'ERR_STORE')) {
      log.error({ err: describeError(error) }, 'result store failed');
      return reply.code(503).send({ error: 'result store unavailable' });
    }
    if (status >= 400 && status < 500) return reply.code(status).send({ error: 'bad request' });
    log.error({ err: describeError(error) }, 'admin handler failed');
    return reply.code(500).send({ error: 'internal error' });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_request, reply) => {
    let status: BackendStatus;
    try {
      status = backendStatus();
    } catch {
      status = { ready: false, activeCalls: 0 };
    }
    const j = status.journal;
    const spoolFull = j !== undefined && j.spoolBytes >= SPOOL_NOT_READY * j.spoolMaxBytes;
    // An edge node whose rtpengine does not answer refuses every new call: not ready.
    const ready = status.ready && !spoolFull && status.mediaRelay !== 'down';
    // Degraded but ready while spooling: payments are still recorded durably (locally).
    const base = {
      ready,
      activeCalls: status.activeCalls,
      draining: status.draining === true,
      ...(status.mediaRelay === undefined ? {} : { mediaRelay: status.mediaRelay }),
      // A monitor or load balancer check can tell a node that charges nothing from one that does.
      ...(status.sandboxPsp === undefined || status.sandboxPsp.length === 0 ? {} : { sandboxPsp: [...status.sandboxPsp] }),
    };
    const withJournal = j === undefined ? base : { ...base, store: j.degraded ? 'degraded' : 'ok', spool: { bytes: j.spoolBytes, maxBytes: j.spoolMaxBytes, pending: j.pending, full: spoolFull } };
    // Genesys down never makes the node unready: payments go on and the writes wait in the queue.
    const wb = status.genesysWriteBack;
    const body = wb === undefined ? withJournal : { ...withJournal, genesysWriteBack: { state: wb.backingOff ? 'backing-off' : 'ok', queued: wb.queued, oldestAgeSeconds: Math.floor(wb.oldestAgeMs / 1000), deadLetters: wb.deadLetters } };
    return reply.code(ready ? 200 : 503).send(body);
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.text();
    return reply.header('content-type', metrics.contentType).send(text);
  });

  const sessions = new Sessions((config.reports?.sessionHours ?? 8) * 3_600_000);
  if (opts.reports !== undefined) {
    await app.register(async (root) => registerPage(root, { token: config.admin.apiToken, sessions, secureCookie: config.reports?.secureCookie === true }));
  }

  const assist = opts.assist;
  if (assist !== undefined) {
    // Beside /v1, not inside it: the admin token's hook does not apply, the assist credentials do.
    await app.register(async (a) => registerAssistRoutes(a, assist), { prefix: '/v1/assist' });
    await app.register(async (root) => registerAssistPage(root, assist.frameAncestors));
  }

  await app.register(async (v1) => {
    v1.addHook('onRequest', async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const token = config.admin.apiToken;
      if (token === undefined || token === '') {
        return reply.code(503).send({ error: 'result API disabled: set admin.apiToken in the configuration' });
      }
      if (!bearerMatches(request.headers.authorization, token) && !sessions.valid(sessionIdOf(request.headers.cookie))) {
        return reply.code(401).header('www-authenticate', 'Bearer realm="pay-ivr"').send({ error: 'unauthorized' });
      }
      return undefined;
    });

    v1.get('/results', async (request, reply) => {
      const reference = queryValue(request.query, 'reference');
      const conversationId = queryValue(request.query, 'conversationId');
      const limitText = queryValue(request.query, 'limit');
      if (reference === null || conversationId === null || limitText === null) return reply.code(400).send({ error: 'bad query parameter' });
      if (reference !== undefined && conversationId !== undefined) {
        return reply.code(400).send({ error: 'give reference or conversationId, not both' });
      }
      if (reference !== undefined) return { results: await store.getByReference(reference) };
      if (conversationId !== undefined) return { results: await store.getByConversationId(conversationId) };
      let limit = DEFAULT_RECENT;
      if (limitText !== undefined) {
        if (!/^[0-9]{1,4}$/.test(limitText)) return reply.code(400).send({ error: 'limit must be an integer' });
        limit = Math.min(Math.max(Number(limitText), 1), MAX_RECENT);
      }
      return { results: await store.recent(limit) };
    });

    v1.get('/results/:id', async (request, reply) => {
      const id = (request.params as { id?: unknown }).id;
      if (typeof id !== 'string' || id === '') return reply.code(400).send({ error: 'bad id' });
      const result = await store.getById(id);
      if (result === undefined) return reply.code(404).send({ error: 'not found' });
      return result;
    });

    v1.get('/calls', async () => {
      const calls = await store.liveCalls();
      // The dialogue step comes from the call events (every node's with the Redis relay).
      return { calls: calls.map((c) => ({ ...c, step: opts.reports?.events.stepOf(c.id)?.step })) };
    });
    if (opts.reports !== undefined) registerReportRoutes(v1, opts.reports);
    if (opts.writeBack !== undefined) registerWriteBackRoutes(v1, opts.writeBack);

    // Graceful drain: answered at once; the node exits by itself when its calls are done.
    v1.post('/admin/drain', async (_request, reply) => {
      if (opts.drain === undefined) return reply.code(501).send({ error: 'drain not available' });
      opts.drain();
      const status = backendStatus();
      return reply.code(202).send({ draining: true, activeCalls: status.activeCalls });
    });
  }, { prefix: '/v1' });

  await app.listen({ host: config.admin.host, port: config.admin.port });
  const address = app.server.address() as AddressInfo | null;
  const port = address?.port ?? config.admin.port;
  log.info({ host: config.admin.host, port, resultApi: config.admin.apiToken !== undefined }, 'admin API listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closing ??= app.close().then(() => undefined);
      return closing;
    },
  };
}
