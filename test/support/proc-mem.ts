import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { randomInt } from 'node:crypto';

/** A random Luhn-valid card number: `prefix`, random digits, check digit; `length` digits in all. */
export function randomLuhnPan(prefix: string, length = 16): string {
  let body = prefix;
  while (body.length < length - 1) body += String(randomInt(10));
  let sum = 0;
  // Doubling starts at the rightmost digit of the body (the check digit is not there yet).
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

export interface MemScan {
  regions: number;
  bytes: number;
  /** Hits per needle label. */
  hits: Map<string, number>;
  /** Where the first hits were: the mapping and the bytes around (digits shown as '#'), for diagnosis. */
  where: string[];
}

function printable(b: Buffer): string {
  let s = '';
  for (const c of b) s += c >= 0x30 && c <= 0x39 ? '#' : c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.';
  return s;
}

/**
 * Reads every readable mapping of a process (/proc/<pid>/maps + /proc/<pid>/mem) and counts where
 * each needle occurs. Needles are searched as given (Buffers): callers pass ASCII and UTF-16LE forms.
 * The reading process needs ptrace rights over the target (a child of ours, same user).
 */
export function scanProcessMemory(pid: number, needles: ReadonlyMap<string, Buffer>): MemScan {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const hits = new Map<string, number>([...needles.keys()].map((k) => [k, 0]));
  const longest = Math.max(...[...needles.values()].map((n) => n.length));
  const CHUNK = 8 << 20;
  const buf = Buffer.alloc(CHUNK + longest);
  let regions = 0;
  let bytes = 0;
  const where: string[] = [];
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4})/.exec(line);
      if (!m || m[3]?.[0] !== 'r' || line.includes('[vvar]') || line.includes('[vsyscall]')) continue;
      const start = parseInt(m[1] as string, 16);
      const end = parseInt(m[2] as string, 16);
      regions += 1;
      let carry = 0;
      for (let at = start; at < end; at += CHUNK) {
        const want = Math.min(CHUNK, end - at);
        let got = 0;
        try {
          got = readSync(fd, buf, carry, want, at);
        } catch {
          break; // a mapping that vanished or cannot be read (guard pages)
        }
        if (got <= 0) break;
        bytes += got;
        const view = buf.subarray(0, carry + got);
        for (const [label, needle] of needles) {
          for (let i = view.indexOf(needle); i !== -1; i = view.indexOf(needle, i + 1)) {
            hits.set(label, (hits.get(label) ?? 0) + 1);
            if (where.length < 20) where.push(`${label} at ${(at - carry + i).toString(16)} in ${line.trim()}: ${printable(view.subarray(Math.max(0, i - 160), i + needle.length + 80))}`);
          }
        }
        // Keep the tail so a needle across two chunks is found (a short needle inside the tail may
        // be counted twice: that only makes the scan stricter).
        carry = Math.min(longest - 1, view.length);
        view.copy(buf, 0, view.length - carry);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { regions, bytes, hits, where };
}

/** The needles for one card number: whole and first 12 digits, ASCII and UTF-16LE. */
export function panNeedles(label: string, pan: string): [string, Buffer][] {
  const first12 = pan.slice(0, 12);
  return [
    [`${label}:pan`, Buffer.from(pan, 'latin1')],
    [`${label}:first12`, Buffer.from(first12, 'latin1')],
    [`${label}:pan-utf16`, Buffer.from(pan, 'utf16le')],
    [`${label}:first12-utf16`, Buffer.from(first12, 'utf16le')],
  ];
}
