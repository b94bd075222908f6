import { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import { createLogger } from '../../src/log.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { DrachtioBackend } from '../../src/telephony/drachtio/backend.js';
import type { InboundCall } from '../../src/telephony/types.js';
import { FakeDrachtio, type FakeDrachtioOptions } from './fake-drachtio.js';
import { FakeFreeswitch, type FakeFreeswitchOptions } from './fake-freeswitch.js';

/**
 * The DrachtioBackend between a FakeDrachtio and a FakeFreeswitch (the drachtio contract tests
 * and the call-port conformance suite): the servers, the backend, its log lines and its calls.
 */

/** Ports of one test file. */
export interface HarnessPorts {
  drachtio: number;
  esl: number;
  sip: number;
  listen: number;
}

export const DRACHTIO_SECRET = 'cymru-contract';
export const ESL_PASSWORD = 'ClueCon-contract';

/** Captures every log line the backend writes (PCI checks search them). */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer | string, _enc, cb) => {
      this.lines.push(chunk.toString());
      cb();
    },
  });
  get text(): string {
    return this.lines.join('');
  }
  has(fragment: string): boolean {
    return this.lines.some((l) => l.includes(fragment));
  }
  /** Resolves when a log line containing `fragment` was written. */
  async waitFor(fragment: string): Promise<void> {
    while (!this.has(fragment)) await new Promise((r) => setImmediate(r));
  }
}

/** The raw (unparsed) configuration of a drachtio node on these ports (a child process takes it as JSON). */
export function drachtioRawConfig(ports: HarnessPorts, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    telephony: {
      backend: 'drachtio',
      drachtio: { host: '127.0.0.1', port: ports.drachtio, secret: DRACHTIO_SECRET, maxReconnectDelayMs: 200 },
      freeswitch: {
        host: '127.0.0.1',
        port: ports.esl,
        secret: ESL_PASSWORD,
        listenAddress: '127.0.0.1',
        listenPort: ports.listen,
        connectTimeoutMs: 1500,
        promptsDir: '/srv/prompts',
      },
    },
    ...extra,
  };
}

export function drachtioConfig(ports: HarnessPorts, extra: Record<string, unknown> = {}): Config {
  return parseConfig(drachtioRawConfig(ports, extra));
}

export interface Harness {
  drachtio: FakeDrachtio;
  fs: FakeFreeswitch;
  backend: DrachtioBackend;
  logs: LogCapture;
  config: Config;
  /** Resolves with the next call the backend emits. */
  nextCall(): Promise<InboundCall>;
  /** Another backend on the same fake servers (a restarted node), with its own log capture. */
  newBackend(config: Config, options?: DrachtioBackendOptions): { backend: DrachtioBackend; logs: LogCapture };
  close(): Promise<void>;
}

export type DrachtioBackendOptions = NonNullable<ConstructorParameters<typeof DrachtioBackend>[2]>;

/** Calls a backend emits, taken one at a time in order. */
export function callQueue(backend: { on(event: 'call', fn: (c: InboundCall) => void): unknown }): () => Promise<InboundCall> {
  const pending: InboundCall[] = [];
  const waiters: ((c: InboundCall) => void)[] = [];
  backend.on('call', (c) => {
    const w = waiters.shift();
    if (w) w(c);
    else pending.push(c);
  });
  return () => {
    const c = pending.shift();
    return c ? Promise.resolve(c) : new Promise((r) => waiters.push(r));
  };
}

export interface HarnessOptions {
  drachtio?: Partial<FakeDrachtioOptions>;
  fs?: Partial<FakeFreeswitchOptions>;
  /** Extra top-level configuration sections (security, rtp ...). */
  config?: Record<string, unknown>;
  tweak?: (c: Config) => Config;
  /** Start the fake servers (default true). */
  startServers?: boolean;
  ackTimeoutMs?: number;
  /** Further backend options (ones a newer backend may know; passed through as they are). */
  backend?: DrachtioBackendOptions & Record<string, unknown>;
}

export async function startHarness(ports: HarnessPorts, opts: HarnessOptions = {}): Promise<Harness> {
  const drachtio = new FakeDrachtio({ port: ports.drachtio, secret: DRACHTIO_SECRET, ...opts.drachtio });
  const fs = new FakeFreeswitch({ eslPort: ports.esl, password: ESL_PASSWORD, sipPort: ports.sip, ...opts.fs });
  fs.attach(drachtio);
  if (opts.startServers !== false) {
    await drachtio.start();
    await fs.start();
  }
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs.stream });
  const base = drachtioConfig(ports, opts.config);
  const config = opts.tweak ? opts.tweak(base) : base;
  const backendOptions: DrachtioBackendOptions = { ...opts.backend, ...(opts.ackTimeoutMs !== undefined ? { ackTimeoutMs: opts.ackTimeoutMs } : {}) };
  const backend = new DrachtioBackend(config, logger, backendOptions);
  const nextCall = callQueue(backend);
  const extra: DrachtioBackend[] = [];
  return {
    drachtio,
    fs,
    backend,
    logs,
    config,
    nextCall,
    newBackend: (cfg, options = {}) => {
      const l = new LogCapture();
      const b = new DrachtioBackend(cfg, createLogger({ level: 'debug', destination: l.stream }), options);
      extra.push(b);
      return { backend: b, logs: l };
    },
    close: async () => {
      await backend.stop();
      for (const b of extra) await b.stop();
      await fs.crash();
      await drachtio.stop();
    },
  };
}

/** The harness of the running test (see useHarness). */
export interface HarnessSlot {
  /** A harness whose fake servers are up (unless told otherwise) and whose backend is not started yet. */
  created(opts?: HarnessOptions): Promise<Harness>;
  /** A harness whose backend is started and has registered its INVITE route: ready for calls. */
  started(opts?: HarnessOptions): Promise<Harness>;
}

/**
 * One harness at a time on `ports` for the tests of the calling describe: a new one closes the
 * previous (same ports), and the last is closed after each test. Call it inside a describe block.
 */
export function useHarness(ports: HarnessPorts): HarnessSlot {
  let current: Harness | undefined;
  const close = async (): Promise<void> => {
    const h = current;
    current = undefined;
    await h?.close();
  };
  afterEach(close);
  const created = async (opts: HarnessOptions = {}): Promise<Harness> => {
    await close();
    current = await startHarness(ports, opts);
    return current;
  };
  return {
    created,
    started: async (opts = {}) => {
      const h = await created(opts);
      await h.backend.start();
      await h.drachtio.waitForRoute('invite');
      return h;
    },
  };
}

/** Resolves when `pred` holds, checking after every event-loop turn (no wall-clock assertions). */
export async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setImmediate(r));
}
