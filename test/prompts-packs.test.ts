import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LANGUAGES, SILENCE_ID, WAIT_MUSIC_ID, allPromptIds, promptSpec, type Language } from '../src/domain/prompts/catalog.js';
import { FRAGMENTS } from '../src/domain/prompts/fragments.js';
import { PHRASES } from '../src/domain/prompts/phrases.js';
import { CURRENCIES, currencyExponent } from '../src/domain/money.js';
import { MAX_READ_NUMBER, readAmount, readDigits, readExpiry, readNumber, readReference, readSensitiveDigits } from '../src/domain/readback.js';
import { SensitiveDigits } from '../src/domain/sensitive.js';

const ROOT = resolve(import.meta.dirname, '..');
const PROMPTS = join(ROOT, 'prompts');

interface Wav {
  format: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  samples: Int16Array;
}

/** Minimal RIFF/WAVE reader for the checks (the player has its own parser): walks the chunks. */
function readWav(file: string): Wav {
  const b = readFileSync(file);
  if (b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') throw new Error(`${file}: not RIFF/WAVE`);
  let off = 12;
  let fmt: Omit<Wav, 'samples'> | undefined;
  let samples: Int16Array | undefined;
  while (off + 8 <= b.length) {
    const id = b.toString('latin1', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      fmt = { format: b.readUInt16LE(body), channels: b.readUInt16LE(body + 2), sampleRate: b.readUInt32LE(body + 4), bitsPerSample: b.readUInt16LE(body + 14) };
    } else if (id === 'data') {
      const data = b.subarray(body, body + size);
      samples = new Int16Array(data.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = data.readInt16LE(i * 2);
    }
    off = body + size + (size % 2);
  }
  if (fmt === undefined || samples === undefined) throw new Error(`${file}: missing fmt or data chunk`);
  return { ...fmt, samples };
}

function peak(s: Int16Array): number {
  let p = 0;
  for (const v of s) p = Math.max(p, Math.abs(v));
  return p / 32768;
}

const dbfs = (x: number): number => 20 * Math.log10(x);

describe.each(LANGUAGES)('pack %s', (lang) => {
  const dir = join(PROMPTS, lang);
  const ids = allPromptIds(lang);

  it('has every catalog id as an 8 kHz mono 16-bit PCM WAV', () => {
    expect(ids.length).toBeGreaterThan(150);
    for (const id of ids) {
      const file = join(dir, `${id}.wav`);
      expect(existsSync(file), `${lang}/${id}.wav`).toBe(true);
      const w = readWav(file);
      expect({ id, format: w.format, channels: w.channels, sampleRate: w.sampleRate, bits: w.bitsPerSample }).toEqual({
        id,
        format: 1,
        channels: 1,
        sampleRate: 8000,
        bits: 16,
      });
      expect(w.samples.length, id).toBeGreaterThan(0);
    }
  });

  it('speech is trimmed and normalized near -3 dBFS; music is gentle; silence is silent', () => {
    for (const id of ids) {
      const spec = promptSpec(lang, id);
      const w = readWav(join(dir, `${id}.wav`));
      const seconds = w.samples.length / 8000;
      if (spec?.kind === 'speech') {
        expect(dbfs(peak(w.samples)), id).toBeGreaterThan(-4);
        expect(dbfs(peak(w.samples)), id).toBeLessThan(-2.5);
        // Trimmed: the first 20 ms already carry sound (espeak pads ~100 ms of silence otherwise).
        expect(peak(w.samples.subarray(0, 160)), id).toBeGreaterThan(0);
        expect(seconds, id).toBeLessThan(10);
      } else if (spec?.kind === 'tone') {
        expect(seconds).toBeGreaterThanOrEqual(3.5);
        expect(seconds).toBeLessThanOrEqual(4.5);
        expect(dbfs(peak(w.samples))).toBeLessThan(-6);
        expect(dbfs(peak(w.samples))).toBeGreaterThan(-30);
        // Loopable: ends near zero amplitude, so the restart does not click.
        expect(peak(w.samples.subarray(w.samples.length - 80))).toBeLessThan(0.01);
      } else if (spec?.kind === 'silence') {
        expect(w.samples.length).toBe(spec.ms * 8);
        expect(peak(w.samples)).toBe(0);
      } else {
        throw new Error(`no spec for ${id}`);
      }
    }
  });

  it('holds no stale files', () => {
    const wanted = new Set([...ids.map((id) => `${id}.wav`), 'manifest.json']);
    expect(readdirSync(dir).filter((f) => !wanted.has(f))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { prompts: Record<string, string> };
    expect(Object.keys(manifest.prompts).sort()).toEqual(ids);
  });

  it('has every dialogue phrase', () => {
    for (const id of Object.keys(PHRASES)) {
      expect(ids).toContain(id);
      expect(existsSync(join(dir, `${id}.wav`)), `${lang}/${id}.wav`).toBe(true);
    }
    expect(ids).toContain(WAIT_MUSIC_ID);
    expect(ids).toContain(SILENCE_ID);
  });
});

it('the packs are up to date with the catalog texts (generate-prompts --check)', () => {
  // Throws (exit code 1) when a text changed without `npm run prompts`.
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/generate-prompts.ts'), '--check'], { cwd: ROOT, stdio: 'pipe' });
});

describe('every id a readback can produce is in the catalog and the pack', () => {
  const produced: Record<Language, Set<string>> = { 'en-US': new Set(), 'fr-FR': new Set() };
  const add = (lang: Language, ids: string[]): void => {
    for (const id of ids) produced[lang].add(id);
  };

  it.each(LANGUAGES)('%s', (lang) => {
    for (let n = 0; n <= 10000; n++) {
      add(lang, readNumber(lang, n));
      add(lang, readNumber(lang, n, 'f'));
    }
    for (const n of [80000, 80080, 100000, 180000, 200000, 201000, 999999, 1_000_000, 2_000_000, 21_000_000, 80_000_000, 81_000_000, 200_000_000, 280_000_000, 999_999_999]) {
      add(lang, readNumber(lang, n));
      add(lang, readNumber(lang, n, 'f'));
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_READ_NUMBER }), fc.constantFrom<'m' | 'f'>('m', 'f'), (n, g) => {
        add(lang, readNumber(lang, n, g));
      }),
      { numRuns: 5000 },
    );
    for (let m = 1; m <= 12; m++) for (let y = 2000; y <= 2099; y++) add(lang, readExpiry(lang, m, y));
    add(lang, readDigits(lang, '0123456789*#ABCD'));
    add(lang, readSensitiveDigits(lang, SensitiveDigits.from('0123456789')));
    add(lang, readReference(lang, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/._'));
    for (const cur of CURRENCIES) {
      const e = currencyExponent(cur) ?? 0;
      const unit = 10 ** e;
      for (const major of [0, 1, 2, 21, 80, 100, 1_000_000, 2_000_000, 21_000_000]) {
        for (const frac of [0, 1, 2, 21, 50, 80, 99]) if (frac < unit || frac === 0) add(lang, readAmount(lang, major * unit + frac, cur));
      }
    }
    const missing = [...produced[lang]].filter((id) => promptSpec(lang, id) === undefined || !existsSync(join(PROMPTS, lang, `${id}.wav`)));
    expect(missing).toEqual([]);
    // And no dead weight: every readback fragment in the inventory is reachable.
    expect([...FRAGMENTS[lang].keys()].filter((id) => !produced[lang].has(id))).toEqual([]);
  });
});
