import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MissingToolError, TOOL_PACKAGES, findTool } from './support/tools.js';
import { ROOT } from './support/dist.js';

describe('a missing tool is one line naming the Debian package', () => {
  it('every peer maps to its package, and the message is one line with the apt-get command', () => {
    expect(TOOL_PACKAGES).toMatchObject({ sipp: 'sip-tester', baresip: 'baresip-core', 'redis-server': 'redis-server', kamailio: 'kamailio', chromium: 'chromium', rtpengine: 'rtpengine-daemon' });
    for (const tool of Object.keys(TOOL_PACKAGES) as (keyof typeof TOOL_PACKAGES)[]) {
      const m = new MissingToolError(tool).message;
      expect(m.split('\n')).toHaveLength(1);
      expect(m).toContain(`${tool} is not installed: apt-get install ${TOOL_PACKAGES[tool]}`);
    }
  });

  it('findTool looks on PATH only', () => {
    const empty = mkdtempSync(join(tmpdir(), 'payivr-nopath-'));
    expect(findTool('sipp', empty)).toBeUndefined();
    expect(findTool('openssl', '/usr/bin')).toBe('/usr/bin/openssl');
  });

  it('npm run sipp:approved without SIPp on PATH: one line, exit 1, no stack trace', () => {
    const empty = mkdtempSync(join(tmpdir(), 'payivr-nopath-'));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/sipp-call.ts', '--target', '127.0.0.1:9'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: empty } });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(new MissingToolError('sipp').message);
    expect(r.stdout).toBe('');
  });

  it('npm run bench -- sipp-load without SIPp on PATH: one line, exit 1', () => {
    const empty = mkdtempSync(join(tmpdir(), 'payivr-nopath-'));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'sipp-load'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: empty } });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`sipp-load: ${new MissingToolError('sipp').message}`);
  });
});
