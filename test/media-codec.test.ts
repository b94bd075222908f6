import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALAW_DECODE, decode, encode, encodeSample, transcode, ULAW_DECODE } from '../src/telephony/embedded/media/g711.js';
import { parseWav, writeWavPcm16 } from '../src/telephony/embedded/media/wav.js';
import { PromptLibrary, promptFromWav } from '../src/telephony/embedded/media/prompt-library.js';
import { isPayIvrError } from '../src/errors.js';
import { requireTool } from './support/tools.js';

/**
 * Independent G.711 reference, written from the segment tables of ITU-T G.711 (not from the
 * G.191 code the module follows): encode by searching the decision thresholds.
 */
function referenceUlawDecode(code: number): number {
  const c = ~code & 0xff;
  const seg = (c >> 4) & 7;
  const mant = c & 0x0f;
  const mag = (((mant << 3) + 0x84) << seg) - 0x84; // 14-bit magnitude scaled to 16 bits
  return c & 0x80 ? -mag : mag;
}

function referenceAlawDecode(code: number): number {
  const c = code ^ 0x55;
  const seg = (c >> 4) & 7;
  const mant = c & 0x0f;
  let mag = seg === 0 ? (mant << 4) + 8 : ((mant << 4) + 0x108) << (seg - 1);
  mag = Math.min(mag, 32767);
  return c & 0x80 ? mag : -mag;
}

describe('G.711', () => {
  it('decode tables match the ITU-T G.711 segment formulas for all 256 codes', () => {
    for (let c = 0; c < 256; c++) {
      expect(ULAW_DECODE[c]).toBe(referenceUlawDecode(c) || 0);
      expect(ALAW_DECODE[c]).toBe(referenceAlawDecode(c) || 0);
    }
  });

  it('known values: silence codes, full scale', () => {
    expect(encodeSample('PCMU', 0)).toBe(0xff);
    expect(encodeSample('PCMA', 0)).toBe(0xd5);
    expect(ULAW_DECODE[0x00]).toBe(-32124);
    expect(ULAW_DECODE[0x80]).toBe(32124);
    expect(ALAW_DECODE[0xaa]).toBe(32256);
    expect(ALAW_DECODE[0x2a]).toBe(-32256);
    expect(encodeSample('PCMU', 32767)).toBe(0x80);
    expect(encodeSample('PCMU', -32768)).toBe(0x00);
    expect(encodeSample('PCMA', 32767)).toBe(0xaa);
    expect(encodeSample('PCMA', -32768)).toBe(0x2a);
  });

  it('every code survives decode then encode (except mu-law negative zero 0x7F -> 0xFF)', () => {
    for (let c = 0; c < 256; c++) {
      expect(encodeSample('PCMA', ALAW_DECODE[c] as number)).toBe(c);
      expect(encodeSample('PCMU', ULAW_DECODE[c] as number)).toBe(c === 0x7f ? 0xff : c);
    }
  });

  it('encoding stays within half a quantisation step of the input (plus the bits G.711 drops)', () => {
    for (const codec of ['PCMU', 'PCMA'] as const) {
      const table = codec === 'PCMU' ? ULAW_DECODE : ALAW_DECODE;
      const dropped = codec === 'PCMU' ? 3 : 15; // mu-law keeps 14 bits, A-law 13
      const maxLevel = table[codec === 'PCMU' ? 0x80 : 0xaa] as number;
      for (let x = -32768; x <= 32767; x++) {
        const c = encodeSample(codec, x);
        const got = table[c] as number;
        const step = Math.abs((table[(c & 0xf0) | 1] as number) - (table[c & 0xf0] as number));
        if (Math.abs(x) <= maxLevel) expect(Math.abs(got - x)).toBeLessThanOrEqual(step / 2 + dropped);
        else expect(Math.abs(got)).toBe(maxLevel);
      }
    }
  });

  it('is monotonic', () => {
    for (const codec of ['PCMU', 'PCMA'] as const) {
      let prev = -Infinity;
      for (let x = -32768; x <= 32767; x++) {
        const y = decode(codec, Buffer.from([encodeSample(codec, x)]))[0] as number;
        expect(y >= prev).toBe(true);
        prev = y;
      }
    }
  });

  it('transcodes between laws through linear', () => {
    const pcm = Int16Array.from({ length: 800 }, (_, i) => Math.round(8000 * Math.sin(i / 5)));
    const mu = encode('PCMU', pcm);
    const a = transcode('PCMU', 'PCMA', mu);
    expect(a.equals(encode('PCMA', decode('PCMU', mu)))).toBe(true);
    expect(transcode('PCMU', 'PCMU', mu).equals(mu)).toBe(true);
  });
});

function chunk(id: string, body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.write(id, 0, 'latin1');
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body, body.length & 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

function riff(chunks: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), ...chunks]);
  const h = Buffer.alloc(8);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
}

function fmt(format: number, channels: number, rate: number, bits: number, extra?: Buffer): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(format, 0);
  b.writeUInt16LE(channels, 2);
  b.writeUInt32LE(rate, 4);
  b.writeUInt32LE((rate * channels * bits) / 8, 8);
  b.writeUInt16LE((channels * bits) / 8, 12);
  b.writeUInt16LE(bits, 14);
  return extra === undefined ? b : Buffer.concat([b, extra]);
}

describe('WAV parsing', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'media-wav-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pcm = Int16Array.from({ length: 321 }, (_, i) => (i * 97) % 20000 - 10000);

  it('canonical 44-byte PCM16', () => {
    const w = parseWav(writeWavPcm16(pcm));
    expect(w.kind).toBe('linear');
    expect(w.kind === 'linear' && Array.from(w.samples)).toEqual(Array.from(pcm));
  });

  it('walks chunks: LIST before fmt, odd-sized chunk padding, fact chunk, trailing junk', () => {
    const data = Buffer.alloc(pcm.length * 2);
    pcm.forEach((s, i) => data.writeInt16LE(s, i * 2));
    const f = riff([chunk('LIST', Buffer.from('INFOabc', 'latin1')), chunk('fmt ', fmt(1, 1, 8000, 16)), chunk('fact', Buffer.alloc(4)), chunk('data', data), chunk('id3 ', Buffer.alloc(3))]);
    const w = parseWav(f);
    expect(w.kind === 'linear' && Array.from(w.samples)).toEqual(Array.from(pcm));
  });

  it('G.711 WAVs are kept byte for byte; WAVE_FORMAT_EXTENSIBLE is understood', () => {
    const mu = encode('PCMU', pcm);
    const w = parseWav(riff([chunk('fmt ', fmt(7, 1, 8000, 8, Buffer.from([0, 0]))), chunk('fact', Buffer.alloc(4)), chunk('data', mu)]));
    expect(w.kind === 'g711' && w.codec === 'PCMU' && w.data.equals(mu)).toBe(true);
    const ext = Buffer.alloc(24);
    ext.writeUInt16LE(22, 0);
    ext.writeUInt16LE(8, 2);
    ext.writeUInt16LE(6, 8); // SubFormat GUID starts with the format code: A-law
    const a = encode('PCMA', pcm);
    const w2 = parseWav(riff([chunk('fmt ', fmt(0xfffe, 1, 8000, 8, ext)), chunk('data', a)]));
    expect(w2.kind === 'g711' && w2.codec === 'PCMA' && w2.data.equals(a)).toBe(true);
  });

  it('reads what sox writes (mu-law with a 58-byte header, A-law, PCM16)', () => {
    const src = join(dir, 'src.wav');
    writeFileSync(src, writeWavPcm16(pcm));
    for (const [enc, kind] of [
      ['u-law', 'PCMU'],
      ['a-law', 'PCMA'],
    ] as const) {
      const out = join(dir, `${enc}.wav`);
      execFileSync(requireTool('sox'), [src, '-e', enc, '-b', '8', out]);
      const bytes = readFileSync(out);
      const w = parseWav(bytes);
      expect(w.kind).toBe('g711');
      if (w.kind !== 'g711') continue;
      expect(w.codec).toBe(kind);
      expect(w.data.length).toBe(pcm.length);
      // the prompt keeps sox's own bytes for its law
      expect(promptFromWav(bytes, enc)[kind].equals(w.data)).toBe(true);
    }
    const mu = readFileSync(join(dir, 'u-law.wav'));
    expect(mu.indexOf('data', 0, 'latin1')).toBe(50); // 58-byte header: data payload at 58
  });

  it.each([
    ['stereo', fmt(1, 2, 8000, 16), 'channels'],
    ['16 kHz', fmt(1, 1, 16000, 16), 'Hz'],
    ['8-bit PCM', fmt(1, 1, 8000, 8), '8-bit'],
    ['float', fmt(3, 1, 8000, 32), 'format'],
  ])('refuses %s with ERR_PROMPT_FORMAT', (_name, f, why) => {
    const bad = riff([chunk('fmt ', f), chunk('data', Buffer.alloc(16))]);
    try {
      parseWav(bad, 'x.wav');
      expect.unreachable();
    } catch (e) {
      expect(isPayIvrError(e, 'ERR_PROMPT_FORMAT')).toBe(true);
      expect((e as Error).message).toContain(why);
    }
  });

  it('refuses non-RIFF and chunk-less files', () => {
    expect(() => parseWav(Buffer.from('hello world, not a wav'))).toThrow(/RIFF/);
    expect(() => parseWav(riff([chunk('data', Buffer.alloc(4))]))).toThrow(/fmt/);
    expect(() => parseWav(riff([chunk('fmt ', fmt(1, 1, 8000, 16))]))).toThrow(/data/);
  });
});

describe('PromptLibrary', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'media-lib-'));
    mkdirSync(join(dir, 'en-US', 'digits'), { recursive: true });
    mkdirSync(join(dir, 'de-DE'));
    writeFileSync(join(dir, 'en-US', 'hello.wav'), writeWavPcm16(Int16Array.from({ length: 400 }, (_, i) => i * 10)));
    writeFileSync(join(dir, 'en-US', 'digits', '4.wav'), writeWavPcm16(new Int16Array(160)));
    writeFileSync(join(dir, 'en-US', 'readme.txt'), 'not audio');
    writeFileSync(join(dir, 'de-DE', 'x.wav'), writeWavPcm16(new Int16Array(10)));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads every pack with ids relative to the language folder, pre-encoded in both laws', async () => {
    const lib = await PromptLibrary.load(dir);
    expect(lib.languages.sort()).toEqual(['de-DE', 'en-US']);
    expect(lib.size).toBe(3);
    const p = lib.get('en-US', 'hello');
    expect(p?.samples).toBe(400);
    expect(p?.PCMU.equals(encode('PCMU', Int16Array.from({ length: 400 }, (_, i) => i * 10)))).toBe(true);
    expect(p?.PCMA.length).toBe(400);
    expect(lib.has('en-US', 'digits/4')).toBe(true);
    expect(lib.has('en-US', 'readme')).toBe(false);
    expect(lib.has('fr-FR', 'hello')).toBe(false);
  });

  it('fails start-up on a broken prompt, naming the file', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'media-bad-'));
    try {
      mkdirSync(join(bad, 'en-US'));
      writeFileSync(join(bad, 'en-US', 'broken.wav'), 'RIFF....WAVE');
      await expect(PromptLibrary.load(bad)).rejects.toThrow(/en-US\/broken\.wav/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  it('loads the shipped packs (en-US, fr-FR) without error', async () => {
    const lib = await PromptLibrary.load(join(import.meta.dirname, '..', 'prompts'));
    expect(lib.languages).toEqual(expect.arrayContaining(['en-US', 'fr-FR']));
    expect(lib.size).toBeGreaterThan(100);
  });
});
