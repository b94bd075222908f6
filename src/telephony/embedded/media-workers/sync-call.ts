import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { PayIvrError } from '../../../errors.js';
import type { SyncReply, SyncRequest } from './protocol.js';

/** How long the main thread waits for a worker's synchronous reply before giving up on it. */
const SYNC_TIMEOUT_MS = 2000;

type WithoutRid<T> = T extends unknown ? Omit<T, 'rid'> : never;

/**
 * Synchronous request/reply with a worker: post, then block on a shared flag until the worker
 * has posted its reply, then read that reply off the port without the event loop. The SIP side
 * needs a port and an SDP answer synchronously (MediaSessionLike); the worker answers between two
 * pacer bursts, so the wait is short (a burst is about 1-2 ms).
 */
export class SyncChannel {
  readonly #flag: Int32Array;
  readonly #replies: MessagePort;
  readonly #post: (m: SyncRequest) => void;
  #rid = 0;

  constructor(flag: SharedArrayBuffer, replies: MessagePort, post: (m: SyncRequest) => void) {
    this.#flag = new Int32Array(flag);
    this.#replies = replies;
    this.#post = post;
  }

  call(req: WithoutRid<SyncRequest>, timeoutMs = SYNC_TIMEOUT_MS): unknown {
    const rid = ++this.#rid;
    Atomics.store(this.#flag, 0, 0);
    this.#post({ ...req, rid } as SyncRequest);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) throw new PayIvrError('ERR_BACKEND_UNAVAILABLE', `media worker did not answer ${req.t} in ${timeoutMs} ms`);
      Atomics.wait(this.#flag, 0, 0, left);
      Atomics.store(this.#flag, 0, 0);
      // Replies to requests that timed out earlier may still be queued: skip them.
      for (let r = receiveMessageOnPort(this.#replies); r !== undefined; r = receiveMessageOnPort(this.#replies)) {
        const reply = r.message as SyncReply;
        if (reply.rid !== rid) continue;
        if (reply.ok) return reply.value;
        throw new PayIvrError(reply.error.code, reply.error.message, reply.error.details === undefined ? undefined : { details: reply.error.details });
      }
    }
  }
}

/** The worker side: post the reply, then wake the waiting main thread. */
export function replySync(flag: Int32Array, port: MessagePort, reply: SyncReply): void {
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}
