import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AdminApp } from './admin-app.js';
import type { AssistService, CaptureUpdate } from '../assist/service.js';
import { bearerOf } from '../assist/panel-token.js';
import { isPayIvrError, type ErrorCode } from '../errors.js';
import { currencyExponent } from '../domain/money.js';
import { openEventStream } from './sse.js';

/**
 * The Agent Assist API, under /v1/assist (its own credentials, not admin.apiToken):
 *   POST /v1/assist/captures                   start a capture on a relayed call      (API key)
 *   GET  /v1/assist/captures/:id               its masked state                       (panel token or API key)
 *   GET  /v1/assist/captures/:id/events        server-sent events of its masked state (panel token or API key)
 *   POST /v1/assist/captures/:id/clear-field   {field?}: clear a field                 (panel token or API key)
 *   POST /v1/assist/captures/:id/charge        charge the complete card               (panel token or API key)
 *   POST /v1/assist/captures/:id/cancel        end without charging                   (panel token or API key)
 * API key: `Authorization: Bearer <one of edge.assist.apiKeys>` (the Genesys data action). Panel
 * token: the one the start answered, which opens that capture only (another capture: 403).
 * Wrong or expired credentials: 401. Answers and events carry the masked view only.
 */

/** SSE comment line interval: keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  ERR_ASSIST_UNKNOWN_CALL: 404,
  ERR_ASSIST_CALL_ENDED: 410,
  ERR_ASSIST_BUSY: 409,
  ERR_ASSIST_STATE: 409,
  ERR_ASSIST_BAD_REQUEST: 400,
  ERR_ASSIST_CAPACITY: 503,
  ERR_ASSIST_BLOCK: 502,
};

const startSchema = z.strictObject({
  /** The edge session id the B2BUA gave Genesys. */
  sessionId: z.string().regex(/^[A-Za-z0-9_.:-]{8,128}$/, 'must be the edge session id (8-128 letters, digits, "_", ".", ":", "-")'),
  /** Minor units. */
  amount: z.number().int('must be an integer (minor units)').positive('must be positive').max(Number.MAX_SAFE_INTEGER),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as EUR')
    .refine((c) => currencyExponent(c) !== undefined, { message: 'not an ISO 4217 currency code' })
    .optional(),
  reference: z.string().regex(/^[\x20-\x7E]{1,64}$/, 'must be 1-64 printable ASCII characters'),
  language: z.enum(['fr-FR', 'en-US']).optional(),
});

const clearSchema = z.strictObject({ field: z.enum(['pan', 'expiry', 'securityCode']).optional() }).optional();

function pathOf(issue: { path: readonly PropertyKey[] } | undefined): string {
  return issue === undefined || issue.path.length === 0 ? '(body)' : issue.path.map(String).join('.');
}

function sendError(reply: FastifyReply, e: unknown): FastifyReply {
  if (isPayIvrError(e)) {
    const status = STATUS_OF[e.code];
    if (status !== undefined) {
      const path = typeof e.details?.path === 'string' ? e.details.path : undefined;
      return reply.code(status).send({ error: e.message, code: e.code, ...(path !== undefined ? { path } : {}) });
    }
  }
  throw e;
}

type Access = { ok: true } | { ok: false; status: 401 | 403 };

export function registerAssistRoutes(app: AdminApp, service: AssistService): void {
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });

  /** May this request act on capture `id`? */
  const access = (request: FastifyRequest, id: string): Access => {
    if (service.apiKeyMatches(request.headers.authorization)) return { ok: true };
    const claims = service.tokens.verify(bearerOf(request.headers.authorization));
    if (claims === undefined) return { ok: false, status: 401 };
    return claims.captureId === id ? { ok: true } : { ok: false, status: 403 };
  };
  const refuse = (reply: FastifyReply, status: 401 | 403): FastifyReply =>
    status === 401
      ? reply.code(401).header('www-authenticate', 'Bearer realm="pay-ivr-assist"').send({ error: 'unauthorized' })
      : reply.code(403).send({ error: 'this token opens another capture' });
  const idOf = (request: FastifyRequest): string => String((request.params as { id?: unknown }).id ?? '');

  app.post('/captures', async (request, reply) => {
    if (!service.apiKeyMatches(request.headers.authorization)) return refuse(reply, 401);
    const parsed = startSchema.safeParse(request.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return reply.code(400).send({ error: `${pathOf(issue)}: ${issue?.message ?? 'invalid'}`, code: 'ERR_ASSIST_BAD_REQUEST', path: pathOf(issue) });
    }
    try {
      const started = await service.start(parsed.data);
      return reply.code(201).send({ ...started, panelPath: `/assist/panel#token=${started.panelToken}` });
    } catch (e) {
      return sendError(reply, e);
    }
  });

  app.get('/captures/:id', async (request, reply) => {
    const id = idOf(request);
    const a = access(request, id);
    if (!a.ok) return refuse(reply, a.status);
    const s = service.snapshot(id);
    if (s === undefined) return reply.code(404).send({ error: 'no such capture', code: 'ERR_ASSIST_UNKNOWN_CALL' });
    return s;
  });

  app.post('/captures/:id/clear-field', async (request, reply) => {
    const id = idOf(request);
    const a = access(request, id);
    if (!a.ok) return refuse(reply, a.status);
    const parsed = clearSchema.safeParse(request.body ?? undefined);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return reply.code(400).send({ error: `${pathOf(issue)}: ${issue?.message ?? 'invalid'}`, code: 'ERR_ASSIST_BAD_REQUEST', path: pathOf(issue) });
    }
    try {
      return service.clearField(id, parsed.data?.field);
    } catch (e) {
      return sendError(reply, e);
    }
  });

  for (const command of ['charge', 'cancel'] as const) {
    app.post(`/captures/:id/${command}`, async (request, reply) => {
      const id = idOf(request);
      const a = access(request, id);
      if (!a.ok) return refuse(reply, a.status);
      try {
        const s = command === 'charge' ? service.charge(id) : service.cancel(id);
        return reply.code(command === 'charge' ? 202 : 200).send(s);
      } catch (e) {
        return sendError(reply, e);
      }
    });
  }

  app.get('/captures/:id/events', async (request, reply) => {
    const id = idOf(request);
    const a = access(request, id);
    if (!a.ok) return refuse(reply, a.status);
    const first = service.snapshot(id);
    if (first === undefined) return reply.code(404).send({ error: 'no such capture', code: 'ERR_ASSIST_UNKNOWN_CALL' });
    let closed = false;
    let beat: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    const stop = (): void => {
      if (closed) return;
      closed = true;
      if (beat !== undefined) clearInterval(beat);
      unsubscribe?.();
    };
    const send = (u: CaptureUpdate): void => {
      if (closed) return;
      reply.raw.write(`event: ${u.type}\ndata: ${JSON.stringify(u.capture)}\n\n`);
      if (u.type === 'ended') {
        stop();
        reply.raw.end();
      }
    };
    if (first.status === 'running') {
      unsubscribe = service.subscribe(id, send);
      if (unsubscribe === undefined) return reply.code(503).send({ error: 'too many event streams for this capture' });
    }
    openEventStream(reply);
    // The state now (an update may have come between the snapshot and the subscription: send the latest).
    const now = service.snapshot(id) ?? first;
    send({ type: now.status === 'ended' ? 'ended' : 'progress', capture: now });
    if (!closed) {
      beat = setInterval(() => reply.raw.write(': ping\n\n'), HEARTBEAT_MS);
      request.raw.on('close', stop);
      reply.raw.on('error', stop);
    }
    return reply;
  });
}
