import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LANGUAGES, allPromptIds } from '../../src/domain/prompts/catalog.js';

/**
 * A prompt pack for suites that do not listen to the audio: every id of the catalog, in every
 * language, as 160 ms of a quiet tone (8 kHz, 16-bit mono, as the real pack). The dialogue, its
 * barge-in and its timers run exactly as with the real pack; only the waiting for speech goes.
 * Each id gets its own pitch, so a test that checks which prompt was sent still can. Suites that
 * check the audio itself (prompt sequence, known-plaintext SRTP checks) keep the real pack.
 */

export const SHORT_PROMPT_MS = 160;
const RATE = 8000;

function wav(samples: Int16Array): Buffer {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(RATE, 24);
  h.writeUInt32LE(RATE * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/** A pitch per id between 200 and 600 Hz: below every DTMF row frequency (697 Hz and up). */
export function shortPromptPitch(id: string): number {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return 200 + (h % 400);
}

function tone(id: string): Int16Array {
  const n = (RATE * SHORT_PROMPT_MS) / 1000;
  const out = new Int16Array(n);
  const f = shortPromptPitch(id);
  for (let i = 0; i < n; i++) out[i] = Math.round(3000 * Math.sin((2 * Math.PI * f * i) / RATE));
  return out;
}

let made: string | undefined;

/** The short pack's directory (made once per machine and catalog; safe when files race to make it). */
export function shortPromptsDir(): string {
  if (made !== undefined) return made;
  const ids = LANGUAGES.map((l) => allPromptIds(l).join(',')).join('|');
  let h = 0;
  for (const c of ids) h = (h * 33 + c.charCodeAt(0)) >>> 0;
  const dir = join(tmpdir(), `payivr-short-prompts-${SHORT_PROMPT_MS}-${h.toString(16)}`);
  if (!existsSync(join(dir, '.complete'))) {
    const staging = `${dir}.${process.pid}.${Date.now()}`;
    for (const lang of LANGUAGES) {
      mkdirSync(join(staging, lang), { recursive: true });
      for (const id of allPromptIds(lang)) writeFileSync(join(staging, lang, `${id}.wav`), wav(tone(id)));
    }
    writeFileSync(join(staging, '.complete'), '');
    try {
      renameSync(staging, dir);
    } catch {
      // Another worker made it first: theirs is the same pack.
      rmSync(staging, { recursive: true, force: true });
    }
  }
  made = dir;
  return dir;
}
