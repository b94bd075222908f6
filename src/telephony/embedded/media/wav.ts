import { PayIvrError } from '../../../errors.js';
import { type G711Codec } from './g711.js';

/** Audio from a WAV file: either 16-bit linear or G.711 bytes (kept as is, bit-exact). */
type WavAudio =
  | { kind: 'linear'; sampleRate: number; samples: Int16Array }
  | { kind: 'g711'; codec: G711Codec; sampleRate: number; data: Buffer };

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function formatError(name: string, why: string): PayIvrError {
  return new PayIvrError('ERR_PROMPT_FORMAT', `${name}: ${why}`);
}

/**
 * Parses a RIFF/WAVE file chunk by chunk (fmt and data may be preceded or followed by LIST,
 * fact, PEAK... chunks; sox writes a fact chunk and an 18-byte fmt for G.711, hence 58-byte
 * headers). Accepts mono PCM 16-bit, A-law and mu-law, including WAVE_FORMAT_EXTENSIBLE.
 * Only 8 kHz is accepted: prompts are sent as they are, never resampled.
 */
export function parseWav(buf: Buffer, name = 'wav'): WavAudio {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw formatError(name, 'not a RIFF/WAVE file');
  }
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined;
  let data: Buffer | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('latin1', off, off + 4);
    const declared = buf.readUInt32LE(off + 4);
    const start = off + 8;
    // Streaming writers leave 0xFFFFFFFF or a too-large size: clamp to what the file holds.
    const size = Math.min(declared, buf.length - start);
    if (id === 'fmt ') {
      if (size < 16) throw formatError(name, 'fmt chunk too short');
      let format = buf.readUInt16LE(start);
      const channels = buf.readUInt16LE(start + 2);
      const rate = buf.readUInt32LE(start + 4);
      const bits = buf.readUInt16LE(start + 14);
      if (format === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) throw formatError(name, 'extensible fmt chunk too short');
        format = buf.readUInt16LE(start + 24); // first two bytes of the SubFormat GUID
      }
      fmt = { format, channels, rate, bits };
    } else if (id === 'data') {
      data = buf.subarray(start, start + size);
    }
    off = start + size + (size & 1); // chunks are word aligned
  }
  if (fmt === undefined) throw formatError(name, 'no fmt chunk');
  if (data === undefined) throw formatError(name, 'no data chunk');
  if (fmt.channels !== 1) throw formatError(name, `${fmt.channels} channels, mono expected`);
  if (fmt.rate !== 8000) throw formatError(name, `${fmt.rate} Hz, 8000 Hz expected`);
  switch (fmt.format) {
    case WAVE_FORMAT_PCM: {
      if (fmt.bits !== 16) throw formatError(name, `${fmt.bits}-bit PCM, 16-bit expected`);
      const n = data.length >> 1;
      const samples = new Int16Array(n);
      for (let i = 0; i < n; i++) samples[i] = data.readInt16LE(i * 2);
      return { kind: 'linear', sampleRate: fmt.rate, samples };
    }
    case WAVE_FORMAT_MULAW:
    case WAVE_FORMAT_ALAW:
      if (fmt.bits !== 8) throw formatError(name, `${fmt.bits}-bit G.711, 8-bit expected`);
      return { kind: 'g711', codec: fmt.format === WAVE_FORMAT_MULAW ? 'PCMU' : 'PCMA', sampleRate: fmt.rate, data: Buffer.from(data) };
    default:
      throw formatError(name, `unsupported WAV format ${fmt.format}`);
  }
}

/** Writes a canonical 44-byte-header PCM16 mono WAV (tests and prompt tools). */
export function writeWavPcm16(samples: Int16Array, sampleRate = 8000): Buffer {
  const dataLen = samples.length * 2;
  const out = Buffer.alloc(44 + dataLen);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + dataLen, 4);
  out.write('WAVE', 8, 'latin1');
  out.write('fmt ', 12, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(WAVE_FORMAT_PCM, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(dataLen, 40);
  for (let i = 0; i < samples.length; i++) out.writeInt16LE(samples[i] as number, 44 + i * 2);
  return out;
}
