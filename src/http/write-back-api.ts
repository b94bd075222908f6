import type { AdminApp } from './admin-app.js';
import type { WriteBackQueue } from '../genesys/platform/write-back.js';
import type { DeadLetter } from '../genesys/platform/write-back-records.js';

/**
 * The write-back's dead letters under /v1 (token or page session, see server.ts):
 *   GET    /v1/genesys/dead-letters                   the queue's figures and the dead letters, newest first
 *   POST   /v1/genesys/dead-letters/:callRef/retry    back into the queue (tries and age start again)
 *   DELETE /v1/genesys/dead-letters/:callRef          dismissed for good
 * A dead letter holds the attribute names and values written (brand, last 4, outcome...), never
 * card data: they passed the card-data guard before they were queued.
 */

const CALL_REF = /^[A-Za-z0-9._:@-]{1,200}$/;

function view(d: DeadLetter): Record<string, unknown> {
  return {
    conversationId: d.conversationId,
    callRef: d.callRef,
    key: d.key,
    outcome: d.outcome,
    reason: d.reason,
    lastError: d.lastError,
    tries: d.tries,
    attributes: [...Object.keys(d.attributes), ...(d.transactionIdAttributes ?? [])].sort(),
    queuedAt: d.updatedAt,
    lastTryAt: d.lastTryAt,
    deadAt: d.deadAt,
  };
}

function callRefOf(params: unknown): string | undefined {
  const v = (params as { callRef?: unknown }).callRef;
  return typeof v === 'string' && CALL_REF.test(v) ? v : undefined;
}

export function registerWriteBackRoutes(v1: AdminApp, queue: WriteBackQueue): void {
  v1.get('/genesys/dead-letters', async () => {
    const s = queue.status();
    return {
      queue: { state: s.backingOff ? 'backing-off' : 'ok', queued: s.queued, oldestAgeSeconds: Math.floor(s.oldestAgeMs / 1000), deadLetters: s.deadLetters },
      deadLetters: queue.deadLetters().map(view),
    };
  });

  v1.post('/genesys/dead-letters/:callRef/retry', async (request, reply) => {
    const callRef = callRefOf(request.params);
    if (callRef === undefined) return reply.code(400).send({ error: 'bad call reference' });
    const r = await queue.retryDeadLetter(callRef);
    if (r === 'not-found') return reply.code(404).send({ error: 'no such dead letter' });
    return { result: r };
  });

  v1.delete('/genesys/dead-letters/:callRef', async (request, reply) => {
    const callRef = callRefOf(request.params);
    if (callRef === undefined) return reply.code(400).send({ error: 'bad call reference' });
    if (!(await queue.dismissDeadLetter(callRef))) return reply.code(404).send({ error: 'no such dead letter' });
    return reply.code(204).send();
  });
}
