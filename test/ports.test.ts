import { describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EPHEMERAL_RANGE, FIXED_PORT_LIMIT, kernelEphemeralRange, portViolation } from './support/port-guard.js';
import { E2E_FILES } from '../vitest.config.js';

/**
 * The unit project (files in parallel) and the end-to-end project (serial, fixed ports) run side by
 * side: their ports must be disjoint. This file runs in the unit project, under its guard.
 */
describe('unit and end-to-end projects use disjoint ports', () => {
  it('the unit guard refuses a fixed port in this worker, and allows port 0', async () => {
    const s = dgram.createSocket('udp4');
    expect(() => s.bind(25_060, '127.0.0.1')).toThrow(/unit project binds port 0 only \(got fixed port 25060\)/);
    const srv = net.createServer();
    expect(() => srv.listen(18_000, '127.0.0.1')).toThrow(/port 0 only/);
    expect(() => srv.listen({ port: 18_000, host: '127.0.0.1' })).toThrow(/port 0 only/);
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const port = s.address().port;
    s.close();
    expect(port).toBeGreaterThanOrEqual(EPHEMERAL_RANGE[0]);
    expect(port).toBeLessThanOrEqual(EPHEMERAL_RANGE[1]);
  });

  it('the end-to-end guard refuses fixed ports inside the ephemeral range', () => {
    expect(portViolation('e2e', FIXED_PORT_LIMIT - 1)).toBeUndefined();
    expect(portViolation('e2e', 25_060)).toBeUndefined();
    expect(portViolation('e2e', FIXED_PORT_LIMIT)).toMatch(/inside the ephemeral range/);
    expect(portViolation('e2e', 0)).toBeUndefined();
  });

  it("the kernel's ephemeral range lies above every fixed test port (scripts/test-all.sh sets it)", () => {
    const range = kernelEphemeralRange();
    expect(range, 'net.ipv4.ip_local_port_range: run the tests through scripts/test-all.sh, or set it to 54000 60999').toEqual([...EPHEMERAL_RANGE]);
  });

  it('no test names a port at or above the ephemeral range (literals on lines about ports, in every test file and helper)', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.ts') && p !== join('test', 'support', 'port-guard.ts')) {
          readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
            // `port: 25060`, `PORT = 16390`, `rtpMin: 35000`, `portMax = 38999`, SIPp's `'-p', '5070'`.
            for (const m of line.matchAll(/(?:port|rtpM(?:in|ax))\w*\s*[:=]\s*(\d[\d_]*)|'-m?p',\s*'(\d+)'/gi)) {
              const n = Number((m[1] ?? m[2] ?? '').replace(/_/g, ''));
              if (n >= FIXED_PORT_LIMIT) offenders.push(`${p}:${i + 1}: ${n}`);
            }
          });
        }
      }
    };
    walk('test');
    expect(offenders).toEqual([]);
    expect(E2E_FILES.every((f) => f.startsWith('test/') && f.endsWith('.test.ts'))).toBe(true);
  });
});
