import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { parseUui, runGenesysCall } from './support/genesys-sipp.js';

/**
 * The drain deadline: a call still in its dialogue when drain.maxMs runs out is not dropped but
 * handed back to Genesys (REFER) with outcome `error`, and the node then has no call left.
 */

const SIP_PORT = 25460;
let app: App | undefined;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-drain-'));
  const config = parseConfig({
    journal: { dataDir: join(dir, 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: 35000, portMax: 35099, noRtpTimeoutMs: 120_000 },
    admin: { enabled: false },
    drain: { maxMs: 1_000, retryAfterSeconds: 9 },
    profiles: { default: { currency: 'EUR', psp: { type: 'sandbox' }, handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: 'genesys.example' } } },
  });
  app = await startApp(config, createLogger({ level: 'info', destination: join(dir, 'pay-ivr.log') }));
}, 30_000);

afterAll(async () => {
  await app?.stop();
});

describe('drain deadline', () => {
  it('a caller still in the dialogue is handed back with res=error|why=node-drained, not left in silence', async () => {
    // The caller listens to the amount menu and presses nothing; the node is drained meanwhile.
    const call = runGenesysCall({
      scenario: 'payment',
      target: `127.0.0.1:${SIP_PORT}`,
      uui: 'acct=C-1|amt=12.00|cur=EUR|ref=INV-DRAIN',
      conversationId: 'drain-1',
      steps: [{ pauseMs: 20_000 }],
      localPort: 25470,
      mediaPort: 35200,
      timeoutS: 60,
    });
    while ((app?.backend.activeCalls ?? 0) === 0) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1_500));
    await app!.drain();
    const r = await call;
    expect(r.exitCode, r.output).toBe(0);
    expect(parseUui(r.resultUui ?? '')).toMatchObject({ res: 'error', why: 'node-drained', ref: 'INV-DRAIN' });
    expect(r.referTo).toContain('+18005550100');
    expect(app!.backend.activeCalls).toBe(0);
    const log = readFileSync(join(dir, 'pay-ivr.log'), 'utf8');
    expect(log).toContain('drain deadline reached');
    expect(log).toContain('dialogue ended by the node');
  }, 90_000);
});
