import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUui, runGenesysCall, type GenesysCallResult } from './support/genesys-sipp.js';
import type { DtmfStep } from './support/dtmf-pcap.js';
import { paymentSteps } from './support/payment-steps.js';
import { panNeedles, randomLuhnPan, scanProcessMemory } from './support/proc-mem.js';
import { cliArgs } from './support/dist.js';
import { shortPromptsDir } from './support/short-prompts.js';

/**
 * Card data lifetime (issue 9 item 6): the server runs as a child process (embedded SIP/RTP
 * backend, two profiles charging the in-process sandbox over HTTP, one with the Stripe adapter and
 * one with the Adyen adapter). SIPp places approved payments with random Luhn-valid card numbers
 * (RFC 2833 keys from generated pcaps); afterwards the child's whole memory (/proc/<pid>/maps +
 * /proc/<pid>/mem) is read and must hold none of the numbers nor their first 12 digits, in ASCII
 * or UTF-16. A canary proves the scan can fail: a random 16-digit number sent to the admin API in
 * a URL (not card data, kept by nobody on purpose) must be found in the same memory.
 */

const SIP_PORT = 25460;
const ADMIN_PORT = 19460;
const STRIPE_SANDBOX_PORT = 19461;
const ADYEN_SANDBOX_PORT = 19462;
const TOKEN = 'memscan-token-0123456789abcdef';

interface Payment {
  label: string;
  pan: string;
  service: string;
  face: 'stripe' | 'adyen';
}

const PAYMENTS: Payment[] = [
  { label: 'stripe-visa-1', pan: randomLuhnPan('4', 16), service: '+18005550123', face: 'stripe' },
  { label: 'stripe-visa-2', pan: randomLuhnPan('4', 16), service: '+18005550123', face: 'stripe' },
  { label: 'stripe-mc', pan: randomLuhnPan('52', 16), service: '+18005550123', face: 'stripe' },
  { label: 'adyen-visa', pan: randomLuhnPan('4', 16), service: '+18005550126', face: 'adyen' },
  { label: 'adyen-mc', pan: randomLuhnPan('55', 16), service: '+18005550126', face: 'adyen' },
];
/** Not card data: a number the test itself puts into the server's memory, to prove the scan finds such things. */
const CANARY = randomLuhnPan('9', 16);

const keys = (pan: string): DtmfStep[] => paymentSteps(pan);

let child: ChildProcess | undefined;
let dir: string;
let stderr = '';
const calls = new Map<string, GenesysCallResult>();

async function waitReady(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child?.exitCode !== null && child?.exitCode !== undefined) throw new Error(`server exited ${child.exitCode}: ${stderr.slice(-2000)}`);
    try {
      const res = await fetch(`http://127.0.0.1:${ADMIN_PORT}/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server not ready: ${stderr.slice(-2000)}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-memscan-'));
  const profile = (face: 'stripe' | 'adyen', listenPort: number, calledNumbers?: string[]): Record<string, unknown> => ({
    ...(calledNumbers ? { calledNumbers } : {}),
    language: 'en-US',
    currency: 'USD',
    amountSource: 'context',
    minAmount: 100,
    maxAmount: 500_000,
    allowedBrands: ['visa', 'mastercard'],
    timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 10_000 },
    psp: { type: 'sandbox', face, listenPort },
    handBack: { automated: 'sip:+18005550100@127.0.0.1', returnHost: 'genesys.example' },
  });
  const config = {
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: 36100, portMax: 36299, noRtpTimeoutMs: 120_000 },
    admin: { host: '127.0.0.1', port: ADMIN_PORT, apiToken: TOKEN },
    log: { level: 'debug', file: join(dir, 'pay-ivr.log') },
    // The scan reads memory, not audio: the short prompt pack.
    promptsDir: shortPromptsDir(),
    journal: { dataDir: join(dir, 'data') },
    profiles: { default: profile('stripe', STRIPE_SANDBOX_PORT), adyen: profile('adyen', ADYEN_SANDBOX_PORT, ['+18005550126']) },
  };
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify(config));
  child = spawn(process.execPath, cliArgs('serve', '--config', cfg), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await waitReady();

  await Promise.all(
    PAYMENTS.map(async (p, i) => {
      await new Promise((r) => setTimeout(r, i * 300));
      calls.set(
        p.label,
        await runGenesysCall({
          scenario: 'payment',
          target: `127.0.0.1:${SIP_PORT}`,
          uui: `acct=C-${2000 + i}|amt=12.34|cur=USD|ref=MEM-${i}`,
          conversationId: `cnv-memscan-${i}`,
          steps: keys(p.pan),
          service: p.service,
          localPort: 25470 + i * 2,
          mediaPort: 36400 + i * 4,
          timeoutS: 120,
        }),
      );
    }),
  );
  // The canary: a 16-digit number in a request URL (the admin API answers 404 or an empty list).
  await fetch(`http://127.0.0.1:${ADMIN_PORT}/v1/results?reference=${CANARY}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  // Let every attempt end (results stored, sockets idle) before looking. No garbage collection is
  // forced: a collection frees memory without zeroing it, so it could not make a leftover go away.
  await new Promise((r) => setTimeout(r, 3_000));
}, 180_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const gone = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

describe('card data lifetime: the server process memory after approved payments', () => {
  it('every payment was approved on the PSP it was meant for', async () => {
    for (const p of PAYMENTS) {
      const r = calls.get(p.label);
      expect(r?.resultUui, `${p.label}: ${r?.output}`).toBeTruthy();
      expect(parseUui(r?.resultUui ?? '')).toMatchObject({ res: 'approved', last4: p.pan.slice(-4) });
    }
    for (const [face, port] of [['stripe', STRIPE_SANDBOX_PORT], ['adyen', ADYEN_SANDBOX_PORT]] as const) {
      const charges = (await (await fetch(`http://127.0.0.1:${port}/_sandbox/charges`)).json()) as { last4: string }[];
      expect(charges.map((c) => c.last4).sort()).toEqual(PAYMENTS.filter((p) => p.face === face).map((p) => p.pan.slice(-4)).sort());
    }
  });

  it('holds none of the card numbers nor their first 12 digits (ASCII or UTF-16); the canary is found', () => {
    const pid = child?.pid;
    expect(pid).toBeDefined();
    const needles = new Map<string, Buffer>(PAYMENTS.flatMap((p) => panNeedles(p.label, p.pan)));
    for (const [k, v] of panNeedles('canary', CANARY)) needles.set(k, v);
    const scan = scanProcessMemory(pid as number, needles);
    const found = [...scan.hits].filter(([k, n]) => n > 0 && !k.startsWith('canary'));
    const canary = scan.hits.get('canary:pan') ?? 0;
    console.log(`[memory-scan] pid ${pid}: ${scan.regions} regions, ${Math.round(scan.bytes / 1048576)} MiB read; ${PAYMENTS.length} approved payments; card-number hits: ${found.length === 0 ? 0 : found.map(([k, n]) => `${k}=${n}`).join(' ')}; canary hits: ${canary}`);
    expect(canary, 'the scan finds a number the process does hold').toBeGreaterThan(0);
    expect(found, `card numbers left in the server process memory:\n${scan.where.filter((w) => !w.startsWith('canary')).join('\n')}`).toEqual([]);
    // The server log holds none of them either.
    const log = readFileSync(join(dir, 'pay-ivr.log'), 'utf8');
    for (const p of PAYMENTS) expect(log.includes(p.pan.slice(0, 12)), p.label).toBe(false);
  });
});
