import type { FastifyReply } from 'fastify';

/**
 * Takes the reply over as a server-sent event stream (the reports' live calls, a capture's
 * progress): no caching, no proxy buffering, a 3 s reconnect hint and a first comment line so the
 * client sees the stream open at once.
 */
export function openEventStream(reply: FastifyReply): void {
  reply.hijack();
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  reply.raw.write('retry: 3000\n: connected\n\n');
}
