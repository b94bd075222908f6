import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { describeError } from '../errors.js';
import { parseCallEvent, type CallEvents } from './live.js';

/**
 * Shares call events between the nodes of one Redis: each node publishes its own calls' events on
 * `<prefix>call-events` and delivers the other nodes' to its listeners, so every node's event
 * stream and `/v1/calls` steps show every call. Messages are validated like any outside input;
 * a node ignores its own. Best effort: a lost message only delays a live view.
 */
export class RedisEventRelay {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #node: string;
  readonly #events: CallEvents;
  readonly #log: Logger;
  #closed = false;

  constructor(o: { url: string; keyPrefix: string; node: string; events: CallEvents; logger?: Logger }) {
    this.#channel = `${o.keyPrefix}call-events`;
    this.#node = o.node;
    this.#events = o.events;
    this.#log = o.logger ?? silentLogger;
    const opts = { maxRetriesPerRequest: 1, connectTimeout: 5_000, commandTimeout: 2_000, retryStrategy: (n: number) => Math.min(n * 200, 5_000) };
    this.#pub = new Redis(o.url, opts);
    // A subscriber connection must not time out its idle wait.
    this.#sub = new Redis(o.url, { ...opts, commandTimeout: undefined });
    let warned = false;
    for (const c of [this.#pub, this.#sub]) {
      c.on('error', (err: unknown) => {
        if (!warned) this.#log.warn({ err: describeError(err) }, 'call event relay: redis error');
        warned = true;
      });
      c.on('ready', () => (warned = false));
    }
    this.#sub.on('message', (channel: string, message: string) => this.#receive(channel, message));
    this.#events.relayTo((e) => {
      if (this.#closed) return;
      void this.#pub.publish(this.#channel, JSON.stringify({ node: this.#node, event: e })).catch(() => undefined);
    });
  }

  /** Subscribes; resolves once Redis confirmed (or rejects when it cannot). */
  async start(): Promise<void> {
    await this.#sub.subscribe(this.#channel);
  }

  #receive(channel: string, message: string): void {
    if (channel !== this.#channel || message.length > 4096) return;
    let v: unknown;
    try {
      v = JSON.parse(message);
    } catch {
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const { node, event } = v as { node?: unknown; event?: unknown };
    if (node === this.#node) return;
    const e = parseCallEvent(event);
    if (e !== undefined) this.#events.deliver(e);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.relayTo(undefined);
    for (const c of [this.#sub, this.#pub]) {
      try {
        if (c.status === 'ready') await c.quit();
        else c.disconnect();
      } catch {
        c.disconnect();
      }
      c.removeAllListeners();
      c.on('error', () => undefined);
    }
  }
}
