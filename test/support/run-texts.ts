import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

/**
 * Everything a run produced, as text, and the card-digit search over it: the one scan the
 * end-to-end suites share (files under the run's folders, every Redis key, metrics, pages).
 */

export interface RunText {
  where: string;
  text: string;
}

/** Every file under `dirs`, read as latin1 (binary captures and screenshots left out). */
export function filesUnder(dirs: readonly string[], skip: readonly string[] = ['.pcap', '.png']): RunText[] {
  const out: RunText[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (!skip.some((s) => p.endsWith(s))) out.push({ where: p, text: readFileSync(p, 'latin1') });
    }
  };
  for (const d of dirs) walk(d);
  return out;
}

/** Every key of the Redis database (matching `pattern`) with its value, whatever its type. */
export async function redisTexts(c: Redis, pattern = '*'): Promise<RunText[]> {
  const out: RunText[] = [];
  for (const k of await c.keys(pattern)) {
    const type = await c.type(k);
    const dump =
      type === 'string' ? await c.get(k)
      : type === 'hash' ? JSON.stringify(await c.hgetall(k))
      : type === 'set' ? JSON.stringify(await c.smembers(k))
      : type === 'zset' ? JSON.stringify(await c.zrange(k, '0', '-1'))
      : type === 'list' ? JSON.stringify(await c.lrange(k, '0', '-1'))
      : '';
    out.push({ where: `redis:${k}`, text: `${k} ${dump ?? ''}` });
  }
  return out;
}

/** A secret bounded by non-digits, and not after a '.' (4000000000000002 also ends floats such as 1.4000000000000002). */
function secretRe(secret: string): RegExp {
  return new RegExp(`(?<![\\d.])${secret}`);
}

/**
 * Where any of `secrets` (card numbers, their first digits...) occurs in `texts`, each hit masked
 * in its context. Throws if the search could not find a planted secret: a scan that cannot fail
 * proves nothing.
 */
export function cardDigitHits(texts: readonly RunText[], secrets: readonly string[]): string[] {
  const probe = secrets[0];
  if (probe === undefined || !secretRe(probe).test(`{"x":"${probe}"}`)) throw new Error('card-digit scan: the search does not find a planted secret');
  const hits: string[] = [];
  for (const t of texts) {
    for (const s of secrets) {
      const m = secretRe(s).exec(t.text);
      if (m !== null) hits.push(`${s.slice(0, 4)}... in ${t.where}: ${t.text.slice(Math.max(0, m.index - 40), m.index + 40).replace(s, '<card>')}`);
    }
    if (/"(pan|cvc|cvv|expiry)"\s*:\s*"\d/.test(t.text)) hits.push(`card field in ${t.where}`);
  }
  return hits;
}

/**
 * The log file once it holds `count` lines with this message: the app logs through an
 * asynchronous destination, so the last lines of a call may reach the file a moment after the
 * call has ended.
 */
export async function logOnceItHas(file: string, msg: string, count: number, timeoutMs = 5_000): Promise<string> {
  const needle = `"msg":${JSON.stringify(msg)}`;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(file, 'utf8');
    if (text.split('\n').filter((l) => l.includes(needle)).length >= count || Date.now() > end) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
}
