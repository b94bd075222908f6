import { describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EPHEMERAL_RANGE, FIXED_PORT_LIMIT, LANE_BANDS, kernelEphemeralRange, portViolation, type E2eLane } from './support/port-guard.js';
import { E2E_FILES, E2E_LANE_A, E2E_LANE_B } from '../vitest.config.js';

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

  it("each end-to-end lane's guard refuses the ephemeral range and the other lane's bands", () => {
    expect(portViolation('e2e-b', FIXED_PORT_LIMIT - 1)).toBeUndefined();
    expect(portViolation('e2e-a', 25_060)).toBeUndefined();
    expect(portViolation('e2e-b', 25_060)).toMatch(/outside the bands of lane e2e-b/);
    expect(portViolation('e2e-a', 16_379)).toMatch(/outside the bands of lane e2e-a/);
    expect(portViolation('e2e-a', FIXED_PORT_LIMIT)).toMatch(/inside the ephemeral range/);
    expect(portViolation('e2e-b', 0)).toBeUndefined();
  });

  it('the lanes\' bands are disjoint, below the ephemeral range, and every end-to-end file is in one lane', () => {
    const a = LANE_BANDS['e2e-a'];
    const b = LANE_BANDS['e2e-b'];
    for (const [lo, hi] of a) for (const [lo2, hi2] of b) expect(hi < lo2 || hi2 < lo, `${lo}-${hi} and ${lo2}-${hi2}`).toBe(true);
    for (const [, hi] of [...a, ...b]) expect(hi).toBeLessThan(FIXED_PORT_LIMIT);
    expect(new Set(E2E_FILES).size).toBe(E2E_LANE_A.length + E2E_LANE_B.length);
  });

  it("the ports each end-to-end file names are inside its lane's bands", () => {
    const offenders: string[] = [];
    let seen = 0;
    const lanes: [E2eLane, readonly string[]][] = [
      ['e2e-a', E2E_LANE_A],
      ['e2e-b', E2E_LANE_B],
    ];
    for (const [lane, files] of lanes) {
      for (const f of files) {
        readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
          const found: number[] = [];
          // Port constants, bind keys, RTP ranges of a config (lines naming a host) and e2eNodeConfig's rtp tuple.
          for (const m of line.matchAll(/\b[A-Z_]*PORT[A-Z_]*\s*=\s*(\d[\d_]*)|\b(?:port|sipPort|adminPort|localPort|mediaPort|ctrlPort|rtpMin|rtpMax|rtpPortMin)\s*:\s*(\d[\d_]*)/g)) found.push(Number((m[1] ?? m[2] ?? '').replace(/_/g, '')));
          if (/host/.test(line)) for (const m of line.matchAll(/\bport(?:Min|Max)\s*:\s*(\d[\d_]*)/g)) found.push(Number((m[1] as string).replace(/_/g, '')));
          for (const m of line.matchAll(/\brtp:\s*\[(\d[\d_]*),\s*(\d[\d_]*)\]/g)) found.push(Number((m[1] as string).replace(/_/g, '')), Number((m[2] as string).replace(/_/g, '')));
          // Port tables (`const PORTS = { drachtio: 17122, ... }`): every number in them.
          if (/\bconst [A-Z_]*(?:PORTS|SECOND)\b/.test(line)) for (const m of line.matchAll(/(?<![\w.])(\d{4,5})(?![\w.])/g)) found.push(Number(m[1]));
          seen += found.length;
          for (const n of found) if (n >= 1024 && portViolation(lane, n) !== undefined) offenders.push(`${f}:${i + 1}: ${n} (${lane})`);
        });
      }
    }
    expect(offenders).toEqual([]);
    // The scan reads the ports it should (the SIP, Redis, admin and RTP ports of 30-odd files).
    expect(seen).toBeGreaterThan(60);
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
