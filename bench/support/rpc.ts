import type { ChildProcess } from 'node:child_process';

/**
 * Request/response over a forked child's IPC channel: each request carries an id, the child
 * answers with the same id; messages without an id are pushes (events from the child).
 */

export interface RpcRequest {
  id: number;
  cmd: string;
  [k: string]: unknown;
}

interface RpcReply {
  id: number;
  ok: boolean;
  data?: unknown;
  error?: string;
}

export interface RpcPush {
  push: string;
  [k: string]: unknown;
}

export class RpcClient {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #pushHandlers: ((p: RpcPush) => void)[] = [];
  #next = 1;

  constructor(child: ChildProcess, readonly name: string) {
    this.#child = child;
    child.on('message', (m: unknown) => this.#onMessage(m));
    child.on('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`${name} exited (${code ?? signal ?? '?'}) before answering`));
      this.#pending.clear();
    });
  }

  onPush(handler: (p: RpcPush) => void): void {
    this.#pushHandlers.push(handler);
  }

  request<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (!this.#child.connected) {
        this.#pending.get(id)?.reject(new Error(`${this.name}: IPC channel closed`));
        this.#pending.delete(id);
        return;
      }
      this.#child.send({ ...args, id, cmd } satisfies RpcRequest);
    });
  }

  #onMessage(m: unknown): void {
    if (typeof m !== 'object' || m === null) return;
    if ('push' in m) {
      for (const h of this.#pushHandlers) h(m as RpcPush);
      return;
    }
    const r = m as RpcReply;
    const p = this.#pending.get(r.id);
    if (p === undefined) return;
    this.#pending.delete(r.id);
    if (r.ok) p.resolve(r.data);
    else p.reject(new Error(`${this.name}: ${r.error ?? 'failed'}`));
  }
}

/** Child side: answers requests with handler results; exits when the parent goes away. */
export function serveRpc(handlers: Record<string, (req: RpcRequest) => unknown>): void {
  process.on('message', (m: unknown) => {
    const req = m as RpcRequest;
    if (typeof req !== 'object' || req === null || typeof req.id !== 'number') return;
    const h = handlers[req.cmd];
    const reply = (r: RpcReply): void => {
      if (process.connected) process.send?.(r);
    };
    if (h === undefined) {
      reply({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(req))
      .then(
        (data) => reply({ id: req.id, ok: true, data }),
        (e: unknown) => reply({ id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
  });
  // The parent died or closed the channel: nothing will ever stop us otherwise.
  process.on('disconnect', () => process.exit(0));
}

export function push(p: RpcPush): void {
  if (process.connected) process.send?.(p);
}
