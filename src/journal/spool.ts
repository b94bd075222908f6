import { closeSync, existsSync, fdatasync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, write, writeFileSync, writeSync } from 'node:fs';
import { open as openAsync, rename as renameAsync } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { PayIvrError, describeError } from '../errors.js';
import { findCardData } from '../domain/card-data-guard.js';

/**
 * The node's durable local file: a key -> JSON value map kept as an append-only log of JSON
 * lines (`{"k":key,"v":value}`, `"v":null` deletes). `set`/`delete` change the map at once and
 * resolve when the line is fsync'd, so an awaited record survives kill -9 and power loss.
 *
 * Writes are group-committed off the event loop: lines queued while a write + fdatasync is in
 * the thread pool go out together in the next one. A synchronous fsync per record would stall
 * every call the process serves (SIP, dialogue, media) for a disk flush each time; this way the
 * event loop never waits for the disk and a busy node pays one flush per batch, not per record.
 *
 * On open the log is replayed (last write wins); a torn or unparseable line (a crash in the
 * middle of a write) is skipped and the file rewritten clean. The file is bounded: when it would
 * pass `maxBytes` (or holds more than twice the live data) it is compacted (only the live map is
 * written, minus what `retain` drops) and, if the live data alone would pass `maxBytes`, the
 * write is refused with ERR_JOURNAL_FULL. Values are checked for card-like data first.
 *
 * One process owns a spool file at a time (the server, or `pay-ivr reconcile` while it is
 * stopped): `<path>.lock` holds the owner's pid; a second process is refused with ERR_JOURNAL,
 * and the lock of a dead process (kill -9) is taken over.
 */

interface SpoolOptions {
  path: string;
  maxBytes: number;
  logger?: Logger;
  /** At compaction, whether a live entry is kept (default: all). Lets old settled records go. */
  retain?: (key: string, value: unknown) => boolean;
}

/** Compaction starts once the log holds this many bytes and twice the live data. */
const COMPACT_MIN_BYTES = 256 * 1024;

interface QueuedLine {
  line: string;
  bytes: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const writeP = promisify(write);
const fdatasyncP = promisify(fdatasync);

export class Spool {
  readonly path: string;
  readonly maxBytes: number;
  readonly #log: Logger;
  readonly #retain: ((key: string, value: unknown) => boolean) | undefined;
  readonly #map = new Map<string, { value: unknown; bytes: number }>();
  #fd: number | undefined;
  /** Bytes in the file (written and synced). */
  #bytes = 0;
  /** Bytes of the live map (what a compaction would write). */
  #liveBytes = 0;
  #queue: QueuedLine[] = [];
  #queuedBytes = 0;
  #compactWanted = false;
  #flushing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
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
      // At open nothing else runs yet: a synchronous rewrite is fine here.
      const text = spool.#snapshot(false);
      try {
        writeFileSync(`${opts.path}.tmp`, text, { mode: 0o600, flush: true });
        renameSync(`${opts.path}.tmp`, opts.path);
        fsyncDir(dirname(opts.path));
      } catch (e) {
        throw new PayIvrError('ERR_JOURNAL', `cannot rewrite the spool ${opts.path}: ${describeError(e)}`, { cause: e });
      }
      spool.#bytes = Buffer.byteLength(text);
    } else {
      spool.#bytes = existsSync(opts.path) ? statSync(opts.path).size : 0;
    }
    spool.#openForAppend();
    return spool;
  }

  get bytes(): number {
    return this.#bytes + this.#queuedBytes;
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

  /**
   * Sets `key` now (get() sees it at once); resolves when it is on disk (fsync'd). Rejects with
   * ERR_JOURNAL_FULL (nothing changed) or ERR_JOURNAL (card-like data refused, disk error).
   */
  set(key: string, value: unknown): Promise<void> {
    const finding = findCardData(value);
    if (finding !== undefined) {
      this.#log.error({ path: finding.path, rule: finding.rule }, 'spool: refused a record that looks like card data');
      return Promise.reject(new PayIvrError('ERR_JOURNAL', `spool record refused: card-like data at ${finding.path}`));
    }
    return this.#append(key, value);
  }

  /** Removes `key` now; resolves when that is on disk (no-op when absent). */
  delete(key: string): Promise<void> {
    if (!this.#map.has(key)) return Promise.resolve();
    return this.#append(key, null);
  }

  /** Rewrites the file with the live entries only (those `retain` keeps); resolves when done. */
  compact(): Promise<void> {
    this.#compactWanted = true;
    void this.#kick();
    return this.flushed();
  }

  /** Resolves when everything written so far is on disk (or failed). */
  async flushed(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing.catch(() => undefined);
  }

  /** Writes what is queued, closes the file and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.flushed();
      this.#closeFd();
      unlock(this.path);
    })();
    return this.#closing;
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

  #append(key: string, value: unknown): Promise<void> {
    if (this.#fd === undefined || this.#closing !== undefined) return Promise.reject(new PayIvrError('ERR_JOURNAL', 'spool closed'));
    const line = `${JSON.stringify({ k: key, v: value })}\n`;
    const len = Buffer.byteLength(line);
    const fileAfter = this.#bytes + this.#queuedBytes + len;
    if (fileAfter > this.maxBytes || (fileAfter > COMPACT_MIN_BYTES && fileAfter > 2 * this.#liveBytes)) {
      // The next flush compacts; the write is refused only when the live data alone is too much.
      this.#dropUnretained();
      const liveAfter = this.#liveBytes - (this.#map.get(key)?.bytes ?? 0) + (value === null ? 0 : len);
      if (liveAfter > this.maxBytes) {
        return Promise.reject(
          new PayIvrError('ERR_JOURNAL_FULL', `spool ${this.path} is full (${this.#liveBytes} of ${this.maxBytes} bytes in live records): raise journal.maxSpoolBytes or restore the store`),
        );
      }
      this.#compactWanted = true;
    }
    this.#apply(key, value, len);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ line, bytes: len, resolve, reject });
      this.#queuedBytes += len;
      void this.#kick();
    });
  }

  /** Starts the flush loop unless it runs; resolves when it has written everything. */
  #kick(): Promise<void> {
    this.#flushing ??= this.#flushLoop().finally(() => {
      this.#flushing = undefined;
      // Lines queued after the loop's last look (a waiter's continuation) start the next round.
      if (this.#queue.length > 0 || this.#compactWanted) void this.#kick();
    });
    return this.#flushing;
  }

  async #flushLoop(): Promise<void> {
    while (this.#queue.length > 0 || this.#compactWanted) {
      const batch = this.#queue;
      this.#queue = [];
      let batchBytes = 0;
      for (const q of batch) batchBytes += q.bytes;
      try {
        if (this.#compactWanted) {
          this.#compactWanted = false;
          // The snapshot holds the batch's values already (the map changed at set time).
          await this.#rewrite();
        } else {
          const fd = this.#fd;
          if (fd === undefined) throw new PayIvrError('ERR_JOURNAL', 'spool closed');
          const buf = Buffer.from(batch.map((q) => q.line).join(''));
          for (let off = 0; off < buf.length; ) off += (await writeP(fd, buf, off, buf.length - off)).bytesWritten;
          await fdatasyncP(fd);
          this.#bytes += batchBytes;
        }
        this.#queuedBytes -= batchBytes;
        for (const q of batch) q.resolve();
      } catch (e) {
        this.#queuedBytes -= batchBytes;
        const err = e instanceof PayIvrError ? e : new PayIvrError('ERR_JOURNAL', `spool write failed: ${describeError(e)}`, { cause: e });
        for (const q of batch) q.reject(err);
      }
    }
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

  #dropUnretained(): void {
    if (this.#retain === undefined) return;
    for (const [k, e] of [...this.#map]) {
      if (!this.#retain(k, e.value)) {
        this.#map.delete(k);
        this.#liveBytes -= e.bytes;
      }
    }
  }

  /** The live map as spool lines (what a compaction writes). */
  #snapshot(useRetain: boolean): string {
    if (useRetain) this.#dropUnretained();
    let text = '';
    for (const [k, e] of this.#map) text += `${JSON.stringify({ k, v: e.value })}\n`;
    return text;
  }

  /** Writes the live map to a temporary file, syncs it and renames it over the spool (async). */
  async #rewrite(): Promise<void> {
    const text = this.#snapshot(true);
    const tmp = `${this.path}.tmp`;
    try {
      const fh = await openAsync(tmp, 'w', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await renameAsync(tmp, this.path);
      await fsyncDirAsync(dirname(this.path));
    } catch (e) {
      throw new PayIvrError('ERR_JOURNAL', `spool compaction failed: ${describeError(e)}`, { cause: e });
    }
    // Appends go to the new file from now on.
    this.#closeFd();
    this.#openForAppend();
    this.#bytes = Buffer.byteLength(text);
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

async function fsyncDirAsync(dir: string): Promise<void> {
  try {
    const fh = await openAsync(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data itself is already synced.
  }
}
