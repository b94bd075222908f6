import type { DtmfDigit } from '../../../domain/dtmf.js';

const ROWS = [697, 770, 852, 941] as const;
const COLS = [1209, 1336, 1477, 1633] as const;
const KEYS: readonly (readonly DtmfDigit[])[] = [
  ['1', '2', '3', 'A'],
  ['4', '5', '6', 'B'],
  ['7', '8', '9', 'C'],
  ['*', '0', '#', 'D'],
];

interface InbandDtmfOptions {
  sampleRate?: number;
  /** Analysis window in samples (205 at 8 kHz puts the 8 DTMF tones near DFT bins). */
  window?: number;
  /** Samples between two analyses; windows overlap so short tones still fill whole windows. */
  hop?: number;
  /** Consecutive valid windows before a digit is reported (minimum tone duration). */
  minWindows?: number;
  /** Consecutive windows without a tone before the next digit may be reported (minimum gap). */
  gapWindows?: number;
  /** Minimum amplitude of each tone, in 16-bit linear units (~ -33 dBm0 for 500). */
  minAmplitude?: number;
}

function db(x: number): number {
  return 10 ** (x / 10);
}

// Power ratios; twist limits follow the usual receiver practice (ITU-T Q.24 tolerances):
// the high group may be up to 8 dB below the low group, or 4 dB above it.
const NORMAL_TWIST = db(8);
const REVERSE_TWIST = db(4);
/** Every other tone of the same group must be this much weaker than the strongest. */
const RELATIVE_PEAK = db(8);
/** The two tones must carry this share of the window's power: speech and noise spread theirs. */
const TONE_SHARE = 0.8;

/**
 * In-band DTMF detector (Goertzel over overlapping windows) for calls where telephone-event was
 * not negotiated. Checks: both tones above a floor, twist, relative peak within each group, the
 * share of total power held by the two tones (speech spreads its power over formants and
 * harmonics, so it never concentrates 80% in one row and one column tone), a minimum duration
 * and a gap before the next digit. One key press gives one digit however long it is held.
 */
export class InbandDtmfDetector {
  readonly #n: number;
  readonly #hop: number;
  readonly #minWindows: number;
  readonly #gapWindows: number;
  readonly #minTonePower: number;
  readonly #coeffs: Float64Array;
  readonly #ring: Float64Array;
  #pos = 0;
  #filled = 0;
  #sinceAnalysis = 0;
  #candidate: DtmfDigit | undefined;
  #candidateRun = 0;
  #silentRun = 0;
  #reported = false;
  readonly #powers = new Float64Array(8);

  constructor(opts: InbandDtmfOptions = {}) {
    const rate = opts.sampleRate ?? 8000;
    this.#n = opts.window ?? 205;
    this.#hop = opts.hop ?? 40;
    this.#minWindows = opts.minWindows ?? 3;
    this.#gapWindows = opts.gapWindows ?? 2;
    const a = opts.minAmplitude ?? 500;
    this.#minTonePower = (a * a) / 2;
    const freqs = [...ROWS, ...COLS];
    this.#coeffs = new Float64Array(8);
    freqs.forEach((f, i) => {
      this.#coeffs[i] = 2 * Math.cos((2 * Math.PI * f) / rate);
    });
    this.#ring = new Float64Array(this.#n);
    // The gap state starts satisfied so the very first tone is reported.
    this.#silentRun = this.#gapWindows;
  }

  reset(): void {
    this.#pos = 0;
    this.#filled = 0;
    this.#sinceAnalysis = 0;
    this.#candidate = undefined;
    this.#candidateRun = 0;
    this.#silentRun = this.#gapWindows;
    this.#reported = false;
  }

  /** Feeds `length` linear samples; calls `onDigit` for each key press detected. */
  process(samples: Int16Array, length: number, onDigit: (digit: DtmfDigit) => void): void {
    const n = this.#n;
    for (let i = 0; i < length; i++) {
      this.#ring[this.#pos] = samples[i] as number;
      this.#pos = this.#pos + 1 === n ? 0 : this.#pos + 1;
      if (this.#filled < n) this.#filled++;
      if (++this.#sinceAnalysis >= this.#hop && this.#filled === n) {
        this.#sinceAnalysis = 0;
        this.#step(this.#analyse(), onDigit);
      }
    }
  }

  #step(d: DtmfDigit | undefined, onDigit: (digit: DtmfDigit) => void): void {
    if (d === undefined) {
      this.#candidate = undefined;
      this.#candidateRun = 0;
      this.#silentRun++;
      if (this.#silentRun >= this.#gapWindows) this.#reported = false;
      return;
    }
    if (d === this.#candidate) this.#candidateRun++;
    else {
      this.#candidate = d;
      this.#candidateRun = 1;
    }
    if (this.#candidateRun >= this.#minWindows && !this.#reported && this.#silentRun >= this.#gapWindows) {
      this.#reported = true;
      this.#silentRun = 0;
      onDigit(d);
    } else if (this.#reported) {
      this.#silentRun = 0;
    }
  }

  /** Goertzel over the current window; returns the digit when every check passes. */
  #analyse(): DtmfDigit | undefined {
    const n = this.#n;
    const ring = this.#ring;
    let energy = 0;
    for (let k = 0; k < 8; k++) {
      const c = this.#coeffs[k] as number;
      let s1 = 0;
      let s2 = 0;
      let idx = this.#pos; // oldest sample
      for (let i = 0; i < n; i++) {
        const x = ring[idx] as number;
        if (k === 0) energy += x * x;
        const s0 = x + c * s1 - s2;
        s2 = s1;
        s1 = s0;
        idx = idx + 1 === n ? 0 : idx + 1;
      }
      // Mean power of a sinusoid at this frequency: 2|X|^2 / N^2.
      this.#powers[k] = (2 * (s1 * s1 + s2 * s2 - c * s1 * s2)) / (n * n);
    }
    const p = this.#powers;
    let row = 0;
    let col = 4;
    for (let k = 1; k < 4; k++) if ((p[k] as number) > (p[row] as number)) row = k;
    for (let k = 5; k < 8; k++) if ((p[k] as number) > (p[col] as number)) col = k;
    const rowP = p[row] as number;
    const colP = p[col] as number;
    if (rowP < this.#minTonePower || colP < this.#minTonePower) return undefined;
    if (colP * NORMAL_TWIST < rowP || rowP * REVERSE_TWIST < colP) return undefined;
    for (let k = 0; k < 4; k++) if (k !== row && (p[k] as number) * RELATIVE_PEAK > rowP) return undefined;
    for (let k = 4; k < 8; k++) if (k !== col && (p[k] as number) * RELATIVE_PEAK > colP) return undefined;
    if (rowP + colP < TONE_SHARE * (energy / n)) return undefined;
    return KEYS[row]?.[col - 4];
  }
}
