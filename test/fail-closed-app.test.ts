import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { startApp, type App } from '../src/app.js';
import { createLogger } from '../src/log.js';

/**
 * A node on the sandbox PSP says so (issue 20): one warning line at start naming the profiles,
 * and `sandboxPsp` on /ready. The whole app starts; the drachtio backend connects out (to a
 * drachtio-server that is not there) instead of binding SIP ports, so the only fixed port is the
 * admin server's (lane B; the sandbox simulators take ephemeral ports).
 */

const ADMIN_PORT = 44_010;
const SANDBOX = { type: 'sandbox' } as const;
/** A real PSP entry (nothing is charged: no call comes in); its key from this variable. */
const KEY_ENV = 'FAILCLOSED_TEST_STRIPE_KEY';
const STRIPE = { type: 'stripe', apiKeyEnv: KEY_ENV, baseUrl: 'http://127.0.0.1:9/' } as const;
/** A drachtio node whose secrets are set. */
const drachtio = (over: { drachtio?: object } = {}): Record<string, unknown> => ({
  backend: 'drachtio',
  drachtio: { host: '127.0.0.1', secret: 'a-long-drachtio-secret', maxReconnectDelayMs: 60_000, ...over.drachtio },
  freeswitch: { host: '127.0.0.1', secret: 'a-long-event-socket-password' },
});

describe('a node on the sandbox says so', () => {
  beforeAll(() => {
    process.env[KEY_ENV] = 'sk_test_failclosed';
  });
  afterAll(() => {
    delete process.env[KEY_ENV];
  });
  let app: App | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /**
   * The drachtio backend connects out (to a drachtio-server that is not there) rather than
   * binding SIP ports, so the whole app starts here on ephemeral ports only.
   */
  async function start(raw: Record<string, unknown>): Promise<{ lines: Record<string, unknown>[]; ready: { status: number; body: Record<string, unknown> } }> {
    dir = mkdtempSync(join(tmpdir(), 'payivr-failclosed-'));
    const config = parseConfig({ ...raw, journal: { dataDir: join(dir, 'data') }, admin: { host: '127.0.0.1', port: ADMIN_PORT } });
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
    app = await startApp(config, logger);
    const res = await fetch(`http://127.0.0.1:${app.adminPort}/ready`);
    return { lines, ready: { status: res.status, body: (await res.json()) as Record<string, unknown> } };
  }
  const sandboxWarnings = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => typeof l.msg === 'string' && /sandbox/i.test(l.msg) && l.level === 40);

  it('one warning line at start naming the sandbox profiles, and /ready lists them', async () => {
    const { lines, ready } = await start({
      telephony: drachtio(),
      profiles: { default: { psp: SANDBOX }, live: { psp: STRIPE }, test: { psp: { type: 'sandbox', face: 'adyen' } } },
    });
    const warned = sandboxWarnings(lines);
    expect(warned).toHaveLength(1);
    expect(warned[0]?.profiles).toEqual(['default', 'test']);
    expect(warned[0]?.msg).toBe('sandbox PSP in profile(s) default, test: approves any valid card number and charges nothing (test nodes only)');
    // Not ready (no drachtio-server here), and the body says the sandbox is in use.
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, sandboxPsp: ['default', 'test'] });
  }, 20_000);

  it('allowed off loopback by the explicit setting: started, with the warning line and /ready saying so', async () => {
    // drachtio-server on a documentation address (nothing answers): a node reachable off loopback.
    const { lines, ready } = await start({ telephony: drachtio({ drachtio: { host: '192.0.2.10' } }), profiles: { default: { psp: { type: 'sandbox', allowOffLoopback: true } } } });
    expect(sandboxWarnings(lines).map((l) => l.profiles)).toEqual([['default']]);
    expect(ready.body.sandboxPsp).toEqual(['default']);
  }, 20_000);

  it('a node with real PSPs only has no warning and no sandboxPsp on /ready', async () => {
    const { lines, ready } = await start({ telephony: drachtio(), profiles: { default: { psp: STRIPE } } });
    expect(sandboxWarnings(lines)).toEqual([]);
    expect(ready.body).not.toHaveProperty('sandboxPsp');
    expect(ready.body).toMatchObject({ ready: false, activeCalls: 0 });
  }, 20_000);
});
