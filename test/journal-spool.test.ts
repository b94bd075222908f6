import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Spool } from '../src/journal/spool.js';
import { isPayIvrError } from '../src/errors.js';
import { retainAttempt } from '../src/journal/local-backend.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'payivr-spool-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('spool file', () => {
  it('keeps sets and deletes across a reopen (last write wins)', async () => {
    const path = join(tmp(), 'sub', 'spool.jsonl');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    await s.set('a', { n: 1 });
    await s.set('b', { n: 2 });
    await s.set('a', { n: 3 });
    await s.delete('b');
    // The map changes at once; the disk follows (group-committed off the event loop).
    const pending = Promise.all(Array.from({ length: 200 }, (_, i) => s.set(`c${i}`, { i })));
    expect(s.get('c199')).toEqual({ i: 199 });
    await pending;
    for (let i = 0; i < 200; i++) await s.delete(`c${i}`);
    await s.close();
    const r = Spool.open({ path, maxBytes: 1 << 20 });
    expect(r.entries()).toEqual([['a', { n: 3 }]]);
    expect(r.skippedLines).toBe(0);
    await r.close();
  });

  it('a record written just before kill -9 of the writing process is there after the restart', async () => {
    const path = join(tmp(), 'spool.jsonl');
    const script = `
      import { Spool } from ${JSON.stringify(resolve('src/journal/spool.ts'))};
      const s = Spool.open({ path: ${JSON.stringify(path)}, maxBytes: 1 << 20 });
      await Promise.all(Array.from({ length: 50 }, (_, i) => s.set('k' + i, { i })));
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.signal).toBe('SIGKILL');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    expect(s.size).toBe(50);
    expect(s.get('k49')).toEqual({ i: 49 });
    await s.close();
  });

  it('one process per spool: a live owner is refused with a clear error, a dead owner\'s lock is taken over', async () => {
    const path = join(tmp(), 'spool.jsonl');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    expect(() => Spool.open({ path, maxBytes: 1 << 20 })).toThrow(new RegExp(`spool ${path} is in use by process ${process.pid}`));
    await s.close();
    // A lock left by a process that no longer exists (kill -9).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(`${path}.lock`, dead);
    const r = Spool.open({ path, maxBytes: 1 << 20 });
    expect(readFileSync(`${path}.lock`, 'utf8')).toMatch(new RegExp(`^${process.pid} \\d+$`));
    await r.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    // Our own pid with another start time: a previous life of this node (containers reuse pid 1).
    writeFileSync(`${path}.lock`, `${process.pid} 1`);
    const again = Spool.open({ path, maxBytes: 1 << 20 });
    await again.close();
  });

  it('a torn last line (crash in the middle of a write) is skipped and the file rewritten clean', async () => {
    const path = join(tmp(), 'spool.jsonl');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    await s.set('a', { n: 1 });
    await s.set('b', { n: 2 });
    await s.close();
    appendFileSync(path, '{"k":"c","v":{"n":');
    const r = Spool.open({ path, maxBytes: 1 << 20 });
    expect(r.skippedLines).toBe(1);
    expect(r.entries().map(([k]) => k)).toEqual(['a', 'b']);
    await r.set('d', { n: 4 });
    await r.close();
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trim().split('\n').map((l) => (JSON.parse(l) as { k: string }).k)).toEqual(['a', 'b', 'd']);
  });

  it('a garbage line in the middle is skipped, the others kept', async () => {
    const path = join(tmp(), 'spool.jsonl');
    writeFileSync(path, '{"k":"a","v":1}\n\u0000\u0000garbage\n{"k":"b","v":2}\n');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    expect(s.entries()).toEqual([['a', 1], ['b', 2]]);
    expect(s.skippedLines).toBe(1);
    await s.close();
  });

  it('is bounded: compacts, then refuses with ERR_JOURNAL_FULL naming the file; deletes make room again', async () => {
    const path = join(tmp(), 'spool.jsonl');
    const s = Spool.open({ path, maxBytes: 4096 });
    const filler = 'x'.repeat(200);
    // Rewrites of the same key are compacted away, so they never fill the file.
    for (let i = 0; i < 200; i++) await s.set('same', { filler, i });
    expect(statSync(path).size).toBeLessThanOrEqual(4096);
    let err: unknown;
    let n = 0;
    try {
      for (; n < 100; n++) await s.set(`k${n}`, { filler });
    } catch (e) {
      err = e;
    }
    expect(isPayIvrError(err, 'ERR_JOURNAL_FULL')).toBe(true);
    expect((err as Error).message).toContain(path);
    expect(n).toBeGreaterThan(5);
    expect(statSync(path).size).toBeLessThanOrEqual(4096);
    for (let i = 0; i < n; i++) await s.delete(`k${i}`);
    await s.set('after', { filler });
    await s.close();
    const r = Spool.open({ path, maxBytes: 4096 });
    expect(r.entries().map(([k]) => k)).toEqual(['same', 'after']);
    await r.close();
  });

  it('refuses a record that looks like card data, and nothing of it reaches the file', async () => {
    const path = join(tmp(), 'spool.jsonl');
    const s = Spool.open({ path, maxBytes: 1 << 20 });
    await s.set('ok', { last4: '4242' });
    await expect(s.set('bad', { note: 'card 4242424242424242' })).rejects.toThrow(/card-like data at \$\.note/);
    await expect(s.set('bad2', { pan: '1' })).rejects.toThrow(/card-like/);
    await s.close();
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain('4242424242424242');
    expect(text).not.toContain('bad');
  });

  it('compaction drops settled attempts older than the retention, never open ones', async () => {
    const path = join(tmp(), 'spool.jsonl');
    let now = Date.parse('2026-01-10T00:00:00Z');
    const s = Spool.open({ path, maxBytes: 1 << 20, retain: retainAttempt(() => now, 3600_000) });
    await s.set('j:old', { state: 'settled', createdAt: '2026-01-09T00:00:00Z', settledAt: '2026-01-09T00:00:01Z' });
    await s.set('j:open', { state: 'open', createdAt: '2026-01-01T00:00:00Z' });
    await s.set('j:new', { state: 'settled', createdAt: '2026-01-09T23:59:00Z', settledAt: '2026-01-09T23:59:30Z' });
    await s.set('d:call', { callRef: 'x' });
    now += 1000;
    await s.compact();
    expect(s.entries().map(([k]) => k)).toEqual(['j:open', 'j:new', 'd:call']);
    await s.close();
  });
});

describe('journal configuration', () => {
  it('reconcile.noRecordAfterSeconds must exceed every profile retry budget (bad config fails at start with the path)', async () => {
    const { parseConfig } = await import('../src/config/load.js');
    expect(() => parseConfig({ reconcile: { noRecordAfterSeconds: 10 }, profiles: { default: { psp: { type: 'sandbox' }, retry: { budgetMs: 20_000 } } } })).toThrow(/reconcile\.noRecordAfterSeconds: must be above profiles\.default\.retry\.budgetMs/);
    expect(() => parseConfig({ journal: { nodeId: 'a b' } })).toThrow(/journal\.nodeId/);
    expect(parseConfig({}).journal).toMatchObject({ dataDir: 'data', maxSpoolBytes: 64 * 1024 * 1024 });
  });
});
