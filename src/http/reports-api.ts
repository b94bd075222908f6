import type { FastifyReply } from 'fastify';
import type { AdminApp } from './admin-app.js';
import type { Reports } from '../reports/index.js';
import type { CallEvent } from '../reports/live.js';
import { GROUP_BY, funnel, summarize, type GroupBy } from '../reports/aggregate.js';
import { toCsv, toNdjson } from '../reports/export.js';
import { MAX_RANGE_SEGMENTS } from '../reports/segment-store.js';
import { isTimeZone, parseBound, startOfDay } from '../reports/time.js';
import { openEventStream } from './sse.js';

/**
 * The report routes under /v1 (token or page session, see server.ts):
 *   GET /v1/reports/summary?from&to&tz&groupBy   figures over a range, optionally grouped
 *   GET /v1/reports/funnel?from&to&tz            per dialogue step: reached, completed, ended, abandoned, invalid entries, timeouts
 *   GET /v1/reports/export.csv?from&to&tz        segment records, one CSV row per call
 *   GET /v1/reports/export.ndjson?from&to&tz     segment records, one JSON per line
 *   GET /v1/calls/stream                         server-sent events of call events (every node with Redis)
 * `from`/`to`: ISO instants, or local dates YYYY-MM-DD (midnight in `tz`); default today in `tz`
 * until now. `tz`: an IANA name (default UTC).
 */

/** Widest range one request may cover. */
const MAX_RANGE_MS = 400 * 24 * 3_600_000;
/** SSE comment line interval: keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

interface Range {
  fromMs: number;
  toMs: number;
  tz: string;
}

function q(query: unknown, name: string): string | undefined {
  if (query === null || typeof query !== 'object') return undefined;
  const v = (query as Record<string, unknown>)[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The range of a request, or the reason it is refused. */
export function rangeOf(query: unknown, nowMs: number): Range | { error: string } {
  const tz = q(query, 'tz') ?? 'UTC';
  if (!isTimeZone(tz)) return { error: 'tz must be an IANA time zone name' };
  const fromText = q(query, 'from');
  const toText = q(query, 'to');
  const fromMs = fromText === undefined ? startOfDay(nowMs, tz) : parseBound(fromText.slice(0, 40), tz);
  const toMs = toText === undefined ? nowMs + 1 : parseBound(toText.slice(0, 40), tz);
  if (fromMs === undefined || toMs === undefined) return { error: 'from/to must be ISO instants or YYYY-MM-DD dates' };
  if (toMs <= fromMs) return { error: 'to must be after from' };
  if (toMs - fromMs > MAX_RANGE_MS) return { error: 'range longer than 400 days' };
  return { fromMs, toMs, tz };
}

export function registerReportRoutes(v1: AdminApp, reports: Reports, now: () => number = Date.now): void {
  const load = async (query: unknown, reply: FastifyReply): Promise<{ range: Range; segs: Awaited<ReturnType<Reports['store']['range']>> } | undefined> => {
    const range = rangeOf(query, now());
    if ('error' in range) {
      await reply.code(400).send({ error: range.error });
      return undefined;
    }
    const segs = await reports.store.range(range.fromMs, range.toMs, MAX_RANGE_SEGMENTS + 1);
    if (segs.length > MAX_RANGE_SEGMENTS) {
      await reply.code(413).send({ error: `more than ${MAX_RANGE_SEGMENTS} calls in the range: ask for a shorter one` });
      return undefined;
    }
    return { range, segs };
  };
  const rangeJson = (r: Range): { from: string; to: string; tz: string } => ({ from: new Date(r.fromMs).toISOString(), to: new Date(r.toMs).toISOString(), tz: r.tz });

  v1.get('/reports/summary', async (request, reply) => {
    const groupBy = q(request.query, 'groupBy');
    if (groupBy !== undefined && !(GROUP_BY as readonly string[]).includes(groupBy)) {
      return reply.code(400).send({ error: `groupBy must be one of ${GROUP_BY.join(', ')}` });
    }
    const l = await load(request.query, reply);
    if (l === undefined) return reply;
    const s = summarize(l.segs, { groupBy: groupBy as GroupBy | undefined, tz: l.range.tz, fromMs: l.range.fromMs, toMs: l.range.toMs });
    return { range: rangeJson(l.range), ...s };
  });

  v1.get('/reports/funnel', async (request, reply) => {
    const l = await load(request.query, reply);
    if (l === undefined) return reply;
    return { range: rangeJson(l.range), calls: l.segs.length, steps: funnel(l.segs) };
  });

  v1.get('/reports/export.csv', async (request, reply) => {
    const l = await load(request.query, reply);
    if (l === undefined) return reply;
    return reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="pay-ivr-segments.csv"')
      .send(toCsv(l.segs));
  });

  v1.get('/reports/export.ndjson', async (request, reply) => {
    const l = await load(request.query, reply);
    if (l === undefined) return reply;
    return reply
      .header('content-type', 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', 'attachment; filename="pay-ivr-segments.ndjson"')
      .send(toNdjson(l.segs));
  });

  v1.get('/calls/stream', async (request, reply) => {
    const send = (e: CallEvent): void => {
      reply.raw.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const unsubscribe = reports.events.subscribe(send);
    if (unsubscribe === undefined) return reply.code(503).send({ error: 'too many event streams' });
    openEventStream(reply);
    const beat = setInterval(() => reply.raw.write(': ping\n\n'), HEARTBEAT_MS);
    const stop = (): void => {
      clearInterval(beat);
      unsubscribe();
    };
    request.raw.on('close', stop);
    reply.raw.on('error', stop);
    return reply;
  });
}
