import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DtmfDigit } from '../../src/domain/dtmf.js';
import { decode, encode, type G711Codec } from '../../src/telephony/embedded/media/g711.js';
import { InbandDtmfDetector } from '../../src/telephony/embedded/media/goertzel-dtmf.js';
import { parseWav } from '../../src/telephony/embedded/media/wav.js';
import type { Packet } from './dtmf-pcap.js';
import { prng } from './rtp-peer.js';
import { requireTool } from './tools.js';

/**
 * What a conference mix sounds like to pay-ivr: the caller's key tones summed with the agent's
 * speech and the conference's comfort noise, at stated levels, through G.711. Shared by the
 * in-band unit test (test/media-inband-mix.test.ts), the bench (bench/inband-mix.ts) and the
 * conference end-to-end pcap (test/e2e-conference.test.ts).
 *
 * Levels are dBm0: the RMS of a sine at 0 dBm0 in 16-bit linear G.711 samples is ~16,100 (the
 * G.711 full-scale sine is +3.17 dBm0). A DTMF key is one tone of each group; each tone's level
 * is given (ITU-T Q.24: a sender puts each between about -4 and -20 dBm0; the high group usually a
 * little louder, "twist").
 */

const RATE = 8000;
const DBM0_RMS = 16_100;
const ROWS = [697, 770, 852, 941] as const;
const COLS = [1209, 1336, 1477, 1633] as const;
const KEYPAD = '123A456B789C*0#D';

/** RMS in linear units of a level in dBm0. */
export function rmsOf(dbm0: number): number {
  return DBM0_RMS * 10 ** (dbm0 / 20);
}

/** One key press as a tone pair: each tone at its level, with short ramps (a real keypad clicks less than a hard cut). */
export function keyTone(digit: DtmfDigit, ms: number, lowDbm0: number, highDbm0: number): Float64Array {
  const k = KEYPAD.indexOf(digit);
  const fr = ROWS[k >> 2] as number;
  const fc = COLS[k & 3] as number;
  const aLow = rmsOf(lowDbm0) * Math.SQRT2;
  const aHigh = rmsOf(highDbm0) * Math.SQRT2;
  const n = Math.round((ms * RATE) / 1000);
  const ramp = Math.min(24, n >> 2);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.min(1, (i + 1) / ramp, (n - i) / ramp);
    out[i] = g * (aLow * Math.sin((2 * Math.PI * fr * i) / RATE) + aHigh * Math.sin((2 * Math.PI * fc * i) / RATE + 1.1));
  }
  return out;
}

/**
 * Comfort noise as a conference bridge adds it: white noise through a gentle low-pass (most
 * comfort-noise generators shape it like a quiet room), at `dbm0`.
 */
export function comfortNoise(samples: number, dbm0: number, seed = 99): Float64Array {
  const rand = prng(seed);
  const out = new Float64Array(samples);
  let y = 0;
  let sum = 0;
  for (let i = 0; i < samples; i++) {
    const x = Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
    y = 0.6 * y + 0.4 * x;
    out[i] = y;
    sum += y * y;
  }
  const scale = rmsOf(dbm0) / Math.sqrt(sum / Math.max(1, samples));
  for (let i = 0; i < samples; i++) out[i] = (out[i] as number) * scale;
  return out;
}

/** Sentences an agent says while the caller keys (spoken digits included: the hardest talk-off). */
export const AGENT_SPEECH: readonly { voice: string; text: string }[] = [
  { voice: 'en-us', text: 'Okay, so go ahead and type in the card number now, take your time, I will stay on the line with you.' },
  { voice: 'en-us+f3', text: 'Right, the amount is one hundred and twenty four dollars and ninety nine cents, that is correct, yes.' },
  { voice: 'en-gb+m7', text: 'Four two four two, then the expiry, twelve thirty four, and the three digits on the back of the card.' },
  { voice: 'fr+f2', text: 'Alors, vous pouvez taper le numéro de la carte maintenant, je reste en ligne avec vous, prenez votre temps.' },
  { voice: 'en-us+m3', text: 'Hmm, I can hear the tones on my side, that is normal, nine eight seven six five, we are nearly done.' },
];

/**
 * The agent's speech as 8 kHz linear samples (espeak-ng, resampled by sox), one per entry of
 * AGENT_SPEECH, scaled so the ACTIVE speech (frames above -50 dBm0) is at `dbm0`. Cached in a
 * temporary folder for the life of the process.
 */
export function agentSpeech(dbm0: number): Float64Array[] {
  const dir = join(tmpdir(), `payivr-agent-speech-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  return AGENT_SPEECH.map(({ voice, text }, i) => {
    const wav = join(dir, `speech${i}.wav`);
    if (!existsSync(wav)) {
      const raw = join(dir, `raw${i}.wav`);
      execFileSync(requireTool('espeak-ng'), ['-v', voice, '-s', '165', '-w', raw, text]);
      execFileSync(requireTool('sox'), [raw, '-r', String(RATE), '-c', '1', '-b', '16', wav]);
      rmSync(raw);
    }
    const w = parseWav(readFileSync(wav), wav);
    const pcm = w.kind === 'linear' ? w.samples : decode(w.codec, w.data);
    return scaleActive(Float64Array.from(pcm), dbm0);
  });
}

/** Removes the cached speech files (call once at the end of a process that used agentSpeech). */
export function removeAgentSpeech(): void {
  rmSync(join(tmpdir(), `payivr-agent-speech-${process.pid}`), { recursive: true, force: true });
}

function scaleActive(x: Float64Array, dbm0: number): Float64Array {
  const frame = 160;
  const floor = rmsOf(-50);
  let sum = 0;
  let n = 0;
  const rough = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / Math.max(1, x.length));
  for (let f = 0; f + frame <= x.length; f += frame) {
    let e = 0;
    for (let i = f; i < f + frame; i++) e += (x[i] as number) ** 2;
    // Active frames: above -50 dBm0 once the whole is brought to a nominal level.
    if (Math.sqrt(e / frame) * (rmsOf(-20) / Math.max(1, rough)) > floor) {
      sum += e;
      n += frame;
    }
  }
  const scale = rmsOf(dbm0) / Math.sqrt(sum / Math.max(1, n));
  return x.map((v) => v * scale);
}

export interface KeyPlan {
  keys: string;
  toneMs: number;
  gapMs: number;
  /** Each tone's level, dBm0. */
  lowDbm0: number;
  highDbm0: number;
  /** Silence (noise only) before the first key. */
  leadMs?: number;
}

/** Key tones laid out in time: the samples and where each key starts. */
export function keyTrack(plan: KeyPlan): { samples: Float64Array; starts: number[] } {
  const lead = Math.round(((plan.leadMs ?? 200) * RATE) / 1000);
  const gap = Math.round((plan.gapMs * RATE) / 1000);
  const parts: Float64Array[] = [new Float64Array(lead)];
  const starts: number[] = [];
  let at = lead;
  for (const k of plan.keys) {
    const t = keyTone(k as DtmfDigit, plan.toneMs, plan.lowDbm0, plan.highDbm0);
    starts.push(at);
    parts.push(t, new Float64Array(gap));
    at += t.length + gap;
  }
  parts.push(new Float64Array(gap * 2));
  return { samples: concatF(parts), starts };
}

export function concatF(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Sums tracks sample by sample (a conference bridge's mix), each looped or cut to the first's length. */
export function mix(base: Float64Array, ...others: Float64Array[]): Float64Array {
  const out = Float64Array.from(base);
  for (const o of others) {
    if (o.length === 0) continue;
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (o[i % o.length] as number);
  }
  return out;
}

/** Float samples to 16-bit, clipped as a mixer would. */
export function toPcm16(x: Float64Array): Int16Array {
  return Int16Array.from(x, (v) => Math.max(-32768, Math.min(32767, Math.round(v))));
}

/** Through G.711 as on the wire, fed to the detector 160 samples (one packet) at a time. Returns the digits and the sample index of each. */
export function detect(samples: Int16Array, codec: G711Codec = 'PCMU', det = new InbandDtmfDetector()): { digits: string; at: number[] } {
  const wire = decode(codec, encode(codec, samples));
  let digits = '';
  const at: number[] = [];
  for (let off = 0; off < wire.length; off += 160) {
    const frame = wire.subarray(off, Math.min(off + 160, wire.length));
    det.process(frame, frame.length, (d) => {
      digits += d;
      at.push(off + frame.length);
    });
  }
  return { digits, at };
}

/** Sent keys against detected ones, by time: a detection counts for the key whose tone it falls in (up to 100 ms after its end). */
export interface Score {
  sent: number;
  detected: number;
  missed: number;
  /** Detections of a wrong key, or with no key sounding. */
  falseKeys: number;
}

export function score(plan: KeyPlan, starts: readonly number[], got: { digits: string; at: number[] }): Score {
  const toneLen = Math.round((plan.toneMs * RATE) / 1000);
  const slack = 100 * (RATE / 1000);
  const matched = new Array<boolean>(starts.length).fill(false);
  let falseKeys = 0;
  for (let i = 0; i < got.digits.length; i++) {
    const at = got.at[i] as number;
    const d = got.digits[i];
    const k = starts.findIndex((s, j) => !matched[j] && at >= s && at <= s + toneLen + slack && plan.keys[j] === d);
    if (k < 0) falseKeys++;
    else matched[k] = true;
  }
  const detected = matched.filter(Boolean).length;
  return { sent: starts.length, detected, missed: starts.length - detected, falseKeys };
}

/** One mix condition: how the keys are pressed and what sounds under them. */
export interface MixCondition {
  name: string;
  plan: Omit<KeyPlan, 'keys'>;
  /** The agent's active speech level, dBm0; undefined = no speech. */
  speechDbm0?: number;
  /** Comfort noise level, dBm0. */
  noiseDbm0: number;
}

/** Every keypad key twice, in an order that repeats none back to back. */
export const MIX_KEYS = '0123456789*#5*0#71939428';

/**
 * The conditions the unit test holds the detector to (every key found, no false one): keys at
 * the speech's level or above it, realistic twist, a loud noise floor. Keys 90 ms with 110 ms
 * between them unless said (a person keys slower).
 */
export const MIX_CONDITIONS: readonly MixCondition[] = [
  { name: 'keys over comfort noise (-12/-10 dBm0, noise -55)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -12, highDbm0: -10 }, noiseDbm0: -55 },
  { name: 'keys as loud as the speech, 120 ms (-16/-14, speech -16)', plan: { toneMs: 120, gapMs: 130, lowDbm0: -16, highDbm0: -14 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'keys 2 dB above the speech (-13/-11, speech -15)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -13, highDbm0: -11 }, speechDbm0: -15, noiseDbm0: -55 },
  { name: 'keys over quieter speech (-15/-13, speech -17)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -15, highDbm0: -13 }, speechDbm0: -17, noiseDbm0: -55 },
  { name: 'normal twist 3 dB, 100 ms (-13/-16, speech -16)', plan: { toneMs: 100, gapMs: 120, lowDbm0: -13, highDbm0: -16 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'loud keys, loud speech (-10/-8, speech -12)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -10, highDbm0: -8 }, speechDbm0: -12, noiseDbm0: -55 },
  { name: 'loud noise floor (-12/-10, speech -15, noise -40)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -12, highDbm0: -10 }, speechDbm0: -15, noiseDbm0: -40 },
];

/** Harder conditions the bench also reports (what the detector misses, said in figures). */
export const STRESS_CONDITIONS: readonly MixCondition[] = [
  { name: 'hard: as loud as the speech, 100 ms (-16/-14, speech -16)', plan: { toneMs: 100, gapMs: 120, lowDbm0: -16, highDbm0: -14 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'hard: same level, 90 ms keys (-15/-13, speech -15)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -15, highDbm0: -13 }, speechDbm0: -15, noiseDbm0: -55 },
  { name: 'hard: normal twist 4 dB (-14/-18, speech -16)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -14, highDbm0: -18 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'hard: reverse twist 3 dB (-19/-16, speech -16)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -19, highDbm0: -16 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'hard: speech 5 dB above each tone (-20/-18, speech -15)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -20, highDbm0: -18 }, speechDbm0: -15, noiseDbm0: -55 },
  { name: 'hard: short keys 60 ms / 60 ms (-14/-12, speech -16)', plan: { toneMs: 60, gapMs: 60, lowDbm0: -14, highDbm0: -12 }, speechDbm0: -16, noiseDbm0: -55 },
  { name: 'stress: speech 10 dB above each tone (-20/-20, speech -10)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -20, highDbm0: -20 }, speechDbm0: -10, noiseDbm0: -55 },
  { name: 'stress: 45 ms keys (-15/-13, speech -15)', plan: { toneMs: 45, gapMs: 60, lowDbm0: -15, highDbm0: -13 }, speechDbm0: -15, noiseDbm0: -55 },
  { name: 'stress: quiet keys (-25/-23, speech -20)', plan: { toneMs: 90, gapMs: 110, lowDbm0: -25, highDbm0: -23 }, speechDbm0: -20, noiseDbm0: -55 },
];

/** Speech-only levels for the talk-off count (no key sounding: every detection is false). */
export const TALK_OFF_DBM0: readonly number[] = [-25, -15, -8, -3];

/**
 * The mixes of one condition: one per agent speech clip (each shifted so keys fall on different
 * syllables), with the key start times. `speech` from agentSpeech() at the condition's level.
 */
export function conditionMixes(c: MixCondition, speech: readonly Float64Array[] | undefined): { samples: Int16Array; plan: KeyPlan; starts: number[] }[] {
  const count = speech?.length ?? 3;
  const out: { samples: Int16Array; plan: KeyPlan; starts: number[] }[] = [];
  for (let i = 0; i < count; i++) {
    const keys = MIX_KEYS.slice(i % 4) + MIX_KEYS.slice(0, i % 4);
    const plan: KeyPlan = { ...c.plan, keys };
    const { samples, starts } = keyTrack(plan);
    const s = speech?.[i];
    const shifted = s === undefined ? new Float64Array(0) : concatF([s.subarray((i * 1777) % s.length), s.subarray(0, (i * 1777) % s.length)]);
    const noise = comfortNoise(samples.length, c.noiseDbm0, 17 + i);
    out.push({ samples: toPcm16(mix(samples, shifted, noise)), plan, starts });
  }
  return out;
}

/**
 * The caller's side of a conference leg as RTP: PCMU audio only (no telephone-event packet) in
 * which each key of `steps` sounds as tones at the plan's levels, mixed with the agent's speech
 * (looped) at `speechDbm0` and comfort noise, one packet per 20 ms. For writeRtpPcap.
 */
export function buildInbandRtp(
  steps: readonly ({ keys: string } | { pauseMs: number })[],
  o: { toneMs: number; gapMs: number; lowDbm0: number; highDbm0: number; speechDbm0: number; noiseDbm0: number; leadMs?: number; tailMs?: number },
): Packet[] {
  const ms = (n: number): number => Math.round((n * RATE) / 1000);
  const parts: Float64Array[] = [new Float64Array(ms(o.leadMs ?? 400))];
  for (const s of steps) {
    if ('pauseMs' in s) {
      parts.push(new Float64Array(ms(s.pauseMs)));
      continue;
    }
    for (const k of s.keys) parts.push(keyTone(k as DtmfDigit, o.toneMs, o.lowDbm0, o.highDbm0), new Float64Array(ms(o.gapMs)));
  }
  parts.push(new Float64Array(ms(o.tailMs ?? 400)));
  const keys = concatF(parts);
  const speech = concatF(agentSpeech(o.speechDbm0));
  const pcm = toPcm16(mix(keys, speech, comfortNoise(keys.length, o.noiseDbm0)));
  const payload = encode('PCMU', pcm);
  const packets: Packet[] = [];
  const ssrc = 0x2c0f3e11;
  for (let i = 0, f = 0; i + 160 <= payload.length; i += 160, f++) {
    const h = Buffer.alloc(12);
    h[0] = 0x80;
    h[1] = f === 0 ? 0x80 : 0; // marker on the first packet; PT 0 (PCMU)
    h.writeUInt16BE((3000 + f) & 0xffff, 2);
    h.writeUInt32BE((48_000 + f * 160) >>> 0, 4);
    h.writeUInt32BE(ssrc, 8);
    packets.push({ timeUs: f * 20_000, rtp: Buffer.concat([h, payload.subarray(i, i + 160)]) });
  }
  return packets;
}
