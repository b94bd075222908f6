import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { PayIvrError, describeError } from '../errors.js';
import { findCardData } from '../store/validate.js';

/**
 * The node's durable local file: a key -> JSON value map kept as an append-only log of JSON
 * lines (`{"k":key,"v":value}`, `"v":null` deletes). Every append is fsync'd before it returns,
 * so a record survives kill -9 and power loss. On open the log is replayed (last write wins); a
 * torn or unparseable line (a crash in the middle of a write) is skipped and the file rewritten
 * clean. The file is bounded: when an append would pass `maxBytes` the log is compacted (only
 * the live map is written, plus what `retain` keeps) and, if still too big, the append fails
 * with ERR_JOURNAL_FULL. Values are checked for card-like data before anything is written.
 *
 * One process owns a spool file at a time (the server, or `pay-ivr reconcile` while it is
 * stopped): `<path>.lock` holds the owner's pid; a second process is refused with ERR_JOURNAL,
 * and the lock of a dead process (kill -9) is taken over.
 */

export interface SpoolOptions {
  path: string;
  maxBytes: number;
  logger?: Logger;
  /** At compaction, whether a live entry is kept (default: all). Lets old settled records go. */
  retain?: (key: string, value: unknown) => boolean;
}

/** Compaction starts once the log holds this many bytes and twice the live data. */
const COMPACT_MIN_BYTES = 256 * 1024;

export class Spool {
  readonly path: string;
  readonly maxBytes: number;
  readonly #log: Logger;
  readonly #retain: ((key: string, value: unknown) => boolean) | undefined;
  readonly #map = new Map<string, { value: unknown; bytes: number }>();
  #fd: number | undefined;
  #bytes = 0;
  #liveBytes = 0;
  /** Lines skipped on open (torn tail after a crash, corruption). */
  readonly skippedLines: number;

  private constructor(opts: SpoolOptions, skipped: number) {
    this.path = opts.path;
    this.maxBytes = opts.maxBytes;
    this.#log = opts.logger ?? silentLogger;
    this.#retain = opts.retain;
    this.skippedLines = skipped;
  }

  /** Opens (creating its directory and file) and replays the spool. */
  static open(opts: SpoolOptions): Spool {
    try {
      mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new PayIvrError('ERR_JOURNAL', `cannot create the spool directory of ${opts.path}: ${describeError(e)}`, { cause: e });
    }
    lock(opts.path);
    try {
      return Spool.#load(opts);
    } catch (e) {
      unlock(opts.path);
      throw e;
    }
  }

  static #load(opts: SpoolOptions): Spool {
    const lines: string[] = [];
    let tornTail = false;
    if (existsSync(opts.path)) {
      let text: string;
      try {
        text = readFileSync(opts.path, 'utf8');
      } catch (e) {
        throw new PayIvrError('ERR_JOURNAL', `cannot read the spool ${opts.path}: ${describeError(e)}`, { cause: e });
      }
      tornTail = text.length > 0 && !text.endsWith('\n');
      lines.push(...text.split('\n'));
      if (!tornTail) lines.pop();
    }
    const entries: [string, unknown][] = [];
    let skipped = 0;
    for (const line of lines) {
      const e = parseLine(line);
      if (e === undefined) skipped += 1;
      else entries.push(e);
    }
    const spool = new Spool(opts, skipped);
    for (const [k, v] of entries) spool.#apply(k, v, Buffer.byteLength(JSON.stringify({ k, v })) + 1);
    if (skipped > 0 || tornTail) {
      spool.#log.warn({ path: opts.path, skippedLines: skipped }, 'spool: unreadable lines skipped (crash during a write); file rewritten');
      spool.#rewrite(false);
    } else {
      spool.#bytes = existsSync(opts.path) ? statSync(opts.path).size : 0;
    }
    spool.#openForAppend();
    return spool;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): unknown {
    return this.#map.get(key)?.value;
  }

  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** Live entries whose key starts with `prefix`, in first-write order. */
  entries(prefix = ''): [string, unknown][] {
    const out: [string, unknown][] = [];
    for (const [k, e] of this.#map) if (k.startsWith(prefix)) out.push([k, e.value]);
    return out;
  }

  /** Durably sets `key` (fsync'd when it returns). Throws ERR_JOURNAL_FULL / ERR_JOURNAL. */
  set(key: string, value: unknown): void {
    const finding = findCardData(value);
    if (finding !== undefined) {
      this.#log.error({ path: finding.path, rule: finding.rule }, 'spool: refused a record that looks like card data');
      throw new PayIvrError('ERR_JOURNAL', `spool record refused: card-like data at ${finding.path}`);
    }
    this.#append(key, value);
  }

  /** Durably removes `key` (no-op when absent). */
  delete(key: string): void {
    if (!this.#map.has(key)) return;
    this.#append(key, null);
  }

  /** Rewrites the file with the live entries only (those `retain` keeps). */
  compact(): void {
    this.#rewrite(true);
  }

  /** Closes the file and releases the lock. Idempotent. */
  close(): void {
    this.#closeFd();
    unlock(this.path);
  }

  #closeFd(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
    this.#fd = undefined;
  }

  #append(key: string, value: unknown): void {
    if (this.#fd === undefined) throw new PayIvrError('ERR_JOURNAL', 'spool closed');
    const line = `${JSON.stringify({ k: key, v: value })}\n`;
    const len = Buffer.byteLength(line);
    if (this.#bytes + len > this.maxBytes || (this.#bytes > COMPACT_MIN_BYTES && this.#bytes > 2 * this.#liveBytes)) {
      this.#rewrite(true);
      if (this.#bytes + len > this.maxBytes) {
        throw new PayIvrError('ERR_JOURNAL_FULL', `spool ${this.path} is full (${this.#bytes} of ${this.maxBytes} bytes in live records): raise journal.maxSpoolBytes or restore the store`);
      }
    }
    try {
      writeSync(this.#fd, line);
      fsyncSync(this.#fd);
    } catch (e) {
      throw new PayIvrError('ERR_JOURNAL', `spool write failed: ${describeError(e)}`, { cause: e });
    }
    this.#bytes += len;
    this.#apply(key, value, len);
  }

  #apply(key: string, value: unknown, bytes: number): void {
    const prev = this.#map.get(key);
    if (prev !== undefined) this.#liveBytes -= prev.bytes;
    if (value === null) {
      this.#map.delete(key);
      return;
    }
    // Re-insert so first-write order follows the latest write of a key.
    this.#map.delete(key);
    this.#map.set(key, { value, bytes });
    this.#liveBytes += bytes;
  }

  /** Writes the live map to a temporary file, fsyncs it and renames it over the spool. */
  #rewrite(useRetain: boolean): void {
    if (useRetain && this.#retain !== undefined) {
      for (const [k, e] of [...this.#map]) {
        if (!this.#retain(k, e.value)) {
          this.#map.delete(k);
          this.#liveBytes -= e.bytes;
        }
      }
    }
    const tmp = `${this.path}.tmp`;
    let bytes = 0;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        for (const [k, e] of this.#map) {
          const line = `${JSON.stringify({ k, v: e.value })}\n`;
          writeSync(fd, line);
          bytes += Buffer.byteLength(line);
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const reopen = this.#fd !== undefined;
      this.#closeFd();
      renameSync(tmp, this.path);
      fsyncDir(dirname(this.path));
      if (reopen) this.#openForAppend();
    } catch (e) {
      if (this.#fd === undefined) this.#openForAppend();
      throw new PayIvrError('ERR_JOURNAL', `spool compaction failed: ${describeError(e)}`, { cause: e });
    }
    this.#bytes = bytes;
    this.#liveBytes = bytes;
  }

  #openForAppend(): void {
    try {
      this.#fd = openSync(this.path, 'a', 0o600);
    } catch (e) {
      throw new PayIvrError('ERR_JOURNAL', `cannot open the spool ${this.path}: ${describeError(e)}`, { cause: e });
    }
  }
}

/** Takes `<path>.lock` for this process, or throws when a live process holds it. */
function lock(path: string): void {
  const lockPath = `${path}.lock`;
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, processId(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new PayIvrError('ERR_JOURNAL', `cannot lock the spool ${path}: ${describeError(e)}`, { cause: e });
    }
    const [pidText, started = ''] = readFileSync(lockPath, 'utf8').trim().split(' ');
    const owner = Number(pidText);
    // Same pid and same start time: the same process (a pid reused after a restart, as in a
    // container where the node is always pid 1, has another start time).
    if (Number.isInteger(owner) && owner > 0 && alive(owner) && (started === '' || startTime(owner) === started)) {
      throw new PayIvrError('ERR_JOURNAL', `spool ${path} is in use by process ${owner} (one process per spool: give each node its own journal.dataDir)`);
    }
    // The owner died (kill -9, crash): its lock goes.
    try {
      unlinkSync(lockPath);
    } catch {
      // another process took it over first; the next round says so
    }
  }
  throw new PayIvrError('ERR_JOURNAL', `cannot lock the spool ${path}`);
}

/** `pid start-time` (start time in clock ticks since boot, from /proc; empty elsewhere). */
function processId(pid: number): string {
  return `${pid} ${startTime(pid)}`.trim();
}

function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ") "; start time is field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function unlock(path: string): void {
  const lockPath = `${path}.lock`;
  try {
    if (readFileSync(lockPath, 'utf8').trim() === processId(process.pid)) unlinkSync(lockPath);
  } catch {
    // not ours, or gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLine(line: string): [string, unknown] | undefined {
  if (line.trim() === '') return undefined;
  try {
    const o = JSON.parse(line) as unknown;
    if (o === null || typeof o !== 'object') return undefined;
    const { k, v } = o as { k?: unknown; v?: unknown };
    if (typeof k !== 'string' || v === undefined) return undefined;
    return [k, v];
  } catch {
    return undefined;
  }
}

/** The rename is durable only once the directory entry is. */
function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data itself is already synced.
  }
}
