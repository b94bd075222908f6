import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Metrics } from '../../src/http/metrics.js';
import { openJournal, type JournalRuntime } from '../../src/journal/index.js';
import { createReports, type Reports } from '../../src/reports/index.js';
import { createGateway, type GatewayHandle } from '../../src/psp/index.js';
import { startAdminServer, type AdminServer } from '../../src/http/server.js';
import { AssistService } from '../../src/assist/service.js';
import type { Config } from '../../src/config/schema.js';
import { FakeCaptureHost } from './fake-edge.js';

export const ASSIST_KEY = 'assist-data-action-key-0123456789';
export const TOKEN_SECRET = 'assist-panel-token-secret-0123456789abcdef';

/**
 * The assist capture service on a real admin server, with the sandbox PSP behind the resilient
 * gateway, a local payment journal (spool file), the memory result store and reports, and an
 * in-memory capture host. Everything binds 127.0.0.1 on the given ports; every log line is kept.
 */
export interface AssistHarness {
  base: string;
  config: Config;
  host: FakeCaptureHost;
  service: AssistService;
  store: MemoryStore;
  journal: JournalRuntime;
  reports: Reports;
  psp: GatewayHandle;
  logLines: string[];
  dir: string;
  /** Every text the run produced that a card digit must never reach (logs, spool, stores). */
  producedTexts(): Promise<{ where: string; text: string }[]>;
  stop(): Promise<void>;
}

export async function startAssistHarness(opts: { adminPort: number; pspPort: number; assist?: Record<string, unknown> }): Promise<AssistHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-assist-'));
  const config = parseConfig({
    journal: { dataDir: join(dir, 'data') },
    admin: { host: '127.0.0.1', port: opts.adminPort, apiToken: 'admin-token-0123456789abcdef' },
    edge: {
      assist: {
        apiKeys: [ASSIST_KEY],
        tokenSecret: TOKEN_SECRET,
        prompts: { dir: '/srv/prompts', language: 'en-US' },
        ...opts.assist,
      },
    },
    profiles: {
      default: {
        currency: 'EUR',
        acceptedCurrencies: { USD: { minAmount: 100, maxAmount: 200_000 } },
        minAmount: 100,
        maxAmount: 500_000,
        allowedBrands: ['visa', 'mastercard', 'amex'],
        psp: { type: 'sandbox', listenPort: opts.pspPort },
      },
    },
  });
  const logLines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void logLines.push(s) } });
  const store = new MemoryStore();
  const metrics = new Metrics();
  const journal = openJournal(config, store, logger);
  const reports = createReports(config, logger, metrics);
  const profile = config.profiles.default;
  if (profile === undefined) throw new Error('no default profile');
  const psp = await createGateway(profile.psp, profile.retry, logger, { configPath: 'profiles.default.psp' });
  const host = new FakeCaptureHost();
  const service = new AssistService({ config, host, gatewayFor: () => psp.gateway, journal: journal.journal, store, reports, metrics, logger });
  const admin: AdminServer = await startAdminServer({
    config,
    store,
    metrics,
    reports,
    assist: service,
    backendStatus: () => ({ ready: true, activeCalls: 0 }),
    logger,
  });
  return {
    base: `http://127.0.0.1:${admin.port}`,
    config,
    host,
    service,
    store,
    journal,
    reports,
    psp,
    logLines,
    dir,
    async producedTexts() {
      const out: { where: string; text: string }[] = [];
      out.push({ where: 'log', text: logLines.join('') });
      out.push({ where: 'spool', text: readFileSync(journal.journal.spool.path, 'latin1') });
      out.push({ where: 'results', text: JSON.stringify(await store.recent(500)) });
      out.push({ where: 'segments', text: JSON.stringify(await reports.store.range(0, Date.now() + 60_000, 10_000)) });
      out.push({ where: 'metrics', text: await metrics.text() });
      out.push({ where: 'psp ledger', text: JSON.stringify(psp.sandbox?.ledger() ?? []) });
      return out;
    },
    async stop() {
      await service.close();
      await admin.close();
      await psp.close();
      await reports.close();
      await journal.close();
      await store.close();
    },
  };
}

/** A server-sent event stream read with fetch (like the panel), its events kept in order. */
export class SseReader {
  readonly events: { type: string; data: unknown; raw: string }[] = [];
  raw = '';
  status = 0;
  /** The stream has ended (by the server, or close()). */
  closed = false;
  #waiters: (() => void)[] = [];
  readonly #abort = new AbortController();
  readonly done: Promise<void>;

  constructor(url: string, authorization: string) {
    this.done = (async () => {
      const r = await fetch(url, { headers: { authorization }, signal: this.#abort.signal });
      this.status = r.status;
      if (!r.ok || r.body === null) {
        this.raw = await r.text();
        this.#wake();
        return;
      }
      const decoder = new TextDecoder();
      let buf = '';
      const reader = r.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const text = decoder.decode(value, { stream: true });
          this.raw += text;
          buf += text;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let type = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) type = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data !== '') this.events.push({ type, data: JSON.parse(data) as unknown, raw: block });
            this.#wake();
          }
        }
      } catch {
        // aborted
      }
      this.closed = true;
      this.#wake();
    })().finally(() => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves once an event matching `pred` has arrived. */
  async waitFor(pred: (e: { type: string; data: unknown }) => boolean): Promise<{ type: string; data: unknown }> {
    for (;;) {
      const found = this.events.find(pred);
      if (found !== undefined) return found;
      if (this.closed) throw new Error(`event stream closed without the awaited event (${this.events.map((e) => e.type).join(', ')})`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  close(): void {
    this.#abort.abort();
  }
}
