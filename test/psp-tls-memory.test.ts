import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { panNeedles, scanProcessMemory } from './support/proc-mem.js';
import { selfSignedCert } from './support/certs.js';

/**
 * Card data lifetime over HTTPS (real PSPs): a child process charges through the Stripe and the
 * Adyen adapter against a TLS server in this test, with random card numbers that exist there only
 * as SensitiveDigits; then the child's memory (/proc/<pid>/mem) must hold none of them. Node's TLS
 * layer copies a multi-buffer write (headers + body) into a native buffer it frees without
 * zeroing; the PSP client therefore writes the body alone, on a connected, handshaken socket.
 */

const CHARGES = 6;
let server: https.Server;
let child: ChildProcess | undefined;
let out = '';
const pans: string[] = [];
let bodies = 0;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'payivr-tls-'));
  selfSignedCert(dir);
  server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies += 1;
      for (const c of chunks) c.fill(0);
      res.setHeader('content-type', 'application/json');
      if ((req.url ?? '').startsWith('/v1/')) {
        res.end(JSON.stringify({ id: `pi_tls${bodies}`, object: 'payment_intent', status: 'succeeded', amount: 1000, currency: 'usd', latest_charge: { id: 'ch_1', object: 'charge', authorization_code: 'A1' } }));
      } else {
        res.end(JSON.stringify({ pspReference: `PSP${bodies}`, resultCode: 'Authorised', additionalData: { authCode: 'A1' } }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  child = spawn(process.execPath, ['--import', 'tsx', 'test/support/tls-charge-child.ts'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PSP_URL: `https://127.0.0.1:${port}`, CHARGES: String(CHARGES), NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' },
  });
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child?.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('done\n')) resolve();
    });
    child?.on('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
  for (const line of out.split('\n')) if (/^\d{16}$/.test(line)) pans.push(line);
  await new Promise((r) => setTimeout(r, 500));
}, 60_000);

afterAll(async () => {
  child?.kill('SIGKILL');
  await new Promise<void>((r) => server?.close(() => r()));
});

describe('card data lifetime over HTTPS (Stripe and Adyen adapters)', () => {
  it('every charge was approved over TLS', () => {
    expect(pans).toHaveLength(CHARGES);
    expect(out.match(/charged approved/g)).toHaveLength(CHARGES);
    expect(bodies).toBe(CHARGES);
  });

  it('the child holds none of the card numbers nor their first 12 digits', () => {
    const needles = new Map<string, Buffer>(pans.flatMap((p, i) => panNeedles(`${i % 2 === 0 ? 'stripe' : 'adyen'}-${i}`, p)));
    const scan = scanProcessMemory(child?.pid as number, needles);
    const found = [...scan.hits].filter(([, n]) => n > 0);
    console.log(`[tls-memory] ${CHARGES} charges over HTTPS; ${scan.regions} regions, ${Math.round(scan.bytes / 1048576)} MiB read; hits: ${found.length === 0 ? 0 : found.map(([k, n]) => `${k}=${n}`).join(' ')}`);
    expect(found, scan.where.join('\n')).toEqual([]);
  });
});
