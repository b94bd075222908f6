import type { DtmfDigit } from '../../../domain/dtmf.js';

const ROWS = [697, 770, 852, 941] as const;
const COLS = [1209, 1336, 1477, 1633] as const;
const FREQS: readonly number[] = [...ROWS, ...COLS];
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
  /** Share of the window's power the two tones must hold for a clean window. */
  toneShare?: number;
  /** Least share of the high-passed power for a mixed window (speech in a conference mix). */
  mixedShare?: number;
  /** Windows of one digit needed when some pass only the mixed checks; a huge value turns mixed keys off. */
  mixedWindows?: number;
  /** Invalid windows tolerated inside such a key (not counted). */
  mixedHoles?: number;
  /** Windows without the digit after which the same digit again is a new key press. */
  sameKeyGapWindows?: number;
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
/** 2nd-order Butterworth high-pass at 600 Hz (8 kHz rate), flat over the DTMF tones. */
const HP_W = Math.tan((Math.PI * 600) / 8000);
const HP_NORM = 1 / (1 + Math.SQRT2 * HP_W + HP_W * HP_W);
const HP_B0 = HP_NORM;
const HP_B1 = -2 * HP_NORM;
const HP_A1 = 2 * (HP_W * HP_W - 1) * HP_NORM;
const HP_A2 = (1 - Math.SQRT2 * HP_W + HP_W * HP_W) * HP_NORM;

// Under speech (a conference mix) a window may pass looser checks; it then only counts toward a
// key held MIXED_WINDOWS windows. Figures: bench/inband-mix.ts.
/** The least share of the high-passed window power the two tones must hold (speech keeps most of its power below the rows). */
const MIXED_SHARE = 0.3;
/** Valid windows of one digit (hop 5 ms: ~56 ms of tone with the 25.6 ms window) for a key under speech. */
const MIXED_WINDOWS = 7;
/**
 * The least MEAN share over those windows: a key under speech holds most of the high-passed power
 * on average (~0.7) with dips when a syllable is loud; a speech harmonic pair that passes the
 * other checks holds ~0.4 at best.
 */
const MIXED_MEAN_SHARE = 0.6;
/** Windows a syllable may spoil inside a key under speech without ending it (they do not count). */
const MIXED_HOLES = 3;
/** Every other tone of the group at least this much weaker (a speech harmonic on another row). */
const RELATIVE_PEAK_MIXED = db(4);
const REVERSE_TWIST_MIXED = db(6);
/** Largest deviation of a tone from its nominal frequency (Q.24 senders stay within 1.5%). */
const MAX_DEVIATION = 0.015;

/**
 * In-band DTMF detector (Goertzel over overlapping windows): calls without telephone-event, and
 * conference legs, where the caller's keys reach us as tones inside the conference mix, under the
 * agent's speech. A window names a digit when both tones are above a floor and it passes one of
 * two sets of checks:
 * - clean: twist (8 dB normal, 4 dB reverse), every other tone of each group 8 dB down, and the two
 *   tones holding TONE_SHARE (80%) of the window's power. 3 clean windows in a row (~36 ms of
 *   tone) make a key: unchanged from the detector's first version, proven against the prompt packs.
 * - mixed (a key under speech): looser twist and relative peak, the tones holding MIXED_SHARE of
 *   the power above 600 Hz (speech keeps most of its power below the rows), both tones within
 *   1.5% of their frequency (a speech harmonic lands anywhere in the filter's 40 Hz main lobe), and
 *   no A-D (no phone has them). Such windows make a key only when MIXED_WINDOWS of them (~56 ms)
 *   agree, with at most MIXED_HOLES spoiled windows between them, and their MEAN share reaches
 *   MIXED_MEAN_SHARE: a key holds its tones steady, speech lines two harmonics up for moments.
 * One key press gives one digit however long it is held; the same digit again needs a gap of
 * sameKeyGapWindows (a short dropout inside a noisy key is not a second press), another digit
 * only gapWindows.
 */
export class InbandDtmfDetector {
  readonly #n: number;
  readonly #rate: number;
  readonly #hop: number;
  readonly #minWindows: number;
  readonly #gapWindows: number;
  readonly #sameKeyGapWindows: number;
  readonly #mixedWindows: number;
  readonly #mixedHoles: number;
  readonly #toneShare: number;
  readonly #mixedShare: number;
  readonly #minTonePower: number;
  readonly #coeffs: Float64Array;
  readonly #ring: Float64Array;
  /** The same samples high-passed: the power the tones' share is measured against (speech's is mostly below the rows). */
  readonly #hpRing: Float64Array;
  #x1 = 0;
  #x2 = 0;
  #y1 = 0;
  #y2 = 0;
  #pos = 0;
  #filled = 0;
  #sinceAnalysis = 0;
  #candidate: DtmfDigit | undefined;
  #candidateRun = 0;
  /** Windows without the candidate since its last valid one (a word of speech over the key). */
  #holes = 0;
  /** Clean windows (every strict check and share >= toneShare) in the current run. */
  #cleanRun = 0;
  #silentRun = 0;
  #reported = false;
  #lastReported: DtmfDigit | undefined;
  readonly #powers = new Float64Array(8);
  /** Result of the last analysis: the digit passed the clean-window checks. */
  #clean = false;
  /** Result of the last analysis: the tones' share of the high-passed power. */
  #hpShare = 0;
  /** Sum of #hpShare over the current run's windows. */
  #shareSum = 0;

  constructor(opts: InbandDtmfOptions = {}) {
    const rate = opts.sampleRate ?? 8000;
    this.#n = opts.window ?? 205;
    this.#rate = rate;
    this.#hop = opts.hop ?? 40;
    this.#minWindows = opts.minWindows ?? 3;
    this.#gapWindows = opts.gapWindows ?? 2;
    this.#sameKeyGapWindows = Math.max(this.#gapWindows, opts.sameKeyGapWindows ?? 4);
    this.#mixedWindows = Math.max(this.#minWindows, opts.mixedWindows ?? MIXED_WINDOWS);
    this.#mixedHoles = Math.max(0, opts.mixedHoles ?? MIXED_HOLES);
    this.#toneShare = opts.toneShare ?? TONE_SHARE;
    this.#mixedShare = Math.min(this.#toneShare, opts.mixedShare ?? MIXED_SHARE);
    const a = opts.minAmplitude ?? 500;
    this.#minTonePower = (a * a) / 2;
    const freqs = FREQS;
    this.#coeffs = new Float64Array(8);
    freqs.forEach((f, i) => {
      this.#coeffs[i] = 2 * Math.cos((2 * Math.PI * f) / rate);
    });
    this.#ring = new Float64Array(this.#n);
    this.#hpRing = new Float64Array(this.#n);
    // The gap state starts satisfied so the very first tone is reported.
    this.#silentRun = this.#sameKeyGapWindows;
  }

  reset(): void {
    this.#pos = 0;
    this.#filled = 0;
    this.#sinceAnalysis = 0;
    this.#candidate = undefined;
    this.#candidateRun = 0;
    this.#cleanRun = 0;
    this.#silentRun = this.#sameKeyGapWindows;
    this.#reported = false;
    this.#lastReported = undefined;
  }

  /** Feeds `length` linear samples; calls `onDigit` for each key press detected. */
  process(samples: Int16Array, length: number, onDigit: (digit: DtmfDigit) => void): void {
    const n = this.#n;
    for (let i = 0; i < length; i++) {
      const x = samples[i] as number;
      this.#ring[this.#pos] = x;
      const y = HP_B0 * x + HP_B1 * this.#x1 + HP_B0 * this.#x2 - HP_A1 * this.#y1 - HP_A2 * this.#y2;
      this.#x2 = this.#x1;
      this.#x1 = x;
      this.#y2 = this.#y1;
      this.#y1 = y;
      this.#hpRing[this.#pos] = y;
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
      this.#silentRun++;
      if (this.#candidate !== undefined && this.#holes < this.#mixedHoles) {
        this.#holes++;
        return;
      }
      this.#candidate = undefined;
      this.#candidateRun = 0;
      this.#cleanRun = 0;
      if (this.#silentRun >= this.#gapWindows) this.#reported = false;
      return;
    }
    this.#holes = 0;
    if (d === this.#candidate) this.#candidateRun++;
    else {
      this.#candidate = d;
      this.#candidateRun = 1;
      this.#cleanRun = 0;
      this.#shareSum = 0;
    }
    this.#shareSum += Math.min(1, this.#hpShare);
    if (this.#clean) this.#cleanRun++;
    const mixedKey = this.#candidateRun >= this.#mixedWindows && this.#shareSum >= MIXED_MEAN_SHARE * this.#candidateRun;
    const long = this.#cleanRun >= this.#minWindows || mixedKey;
    const gap = d === this.#lastReported ? this.#sameKeyGapWindows : this.#gapWindows;
    if (long && !this.#reported && this.#silentRun >= gap) {
      this.#reported = true;
      this.#lastReported = d;
      this.#silentRun = 0;
      onDigit(d);
    } else if (this.#reported) {
      this.#silentRun = 0;
    }
  }

  /** Power at frequency `f` over the current window. */
  #powerAt(f: number): number {
    const n = this.#n;
    const ring = this.#ring;
    const c = 2 * Math.cos((2 * Math.PI * f) / this.#rate);
    let s1 = 0;
    let s2 = 0;
    let idx = this.#pos;
    for (let i = 0; i < n; i++) {
      const s0 = (ring[idx] as number) + c * s1 - s2;
      s2 = s1;
      s1 = s0;
      idx = idx + 1 === n ? 0 : idx + 1;
    }
    return (2 * (s1 * s1 + s2 * s2 - c * s1 * s2)) / (n * n);
  }

  /**
   * The peak near tone `k` is within FDEV of its nominal frequency (parabolic fit of the power in
   * dB at f - d, f, f + d). A key's tones are exact (Q.24 senders: within 1.5%); a speech harmonic
   * lands anywhere in the filter's 40 Hz main lobe.
   */
  #onFrequency(k: number): boolean {
    const f = FREQS[k] as number;
    const d = f * 0.03;
    const a = 10 * Math.log10(this.#powerAt(f - d) + 1e-9);
    const b = 10 * Math.log10((this.#powers[k] as number) + 1e-9);
    const c = 10 * Math.log10(this.#powerAt(f + d) + 1e-9);
    const den = a - 2 * b + c;
    if (den >= 0) return false; // not a peak
    const off = (0.5 * (a - c)) / den; // in units of d
    return Math.abs(off * 0.03) <= MAX_DEVIATION;
  }

  /** Goertzel over the current window; returns the digit when every check passes (its share in #share). */
  #analyse(): DtmfDigit | undefined {
    const n = this.#n;
    const ring = this.#ring;
    let energy = 0;
    let hpEnergy = 0;
    for (let k = 0; k < 8; k++) {
      const c = this.#coeffs[k] as number;
      let s1 = 0;
      let s2 = 0;
      let idx = this.#pos; // oldest sample
      for (let i = 0; i < n; i++) {
        const x = ring[idx] as number;
        if (k === 0) {
          const h = this.#hpRing[idx] as number;
          energy += x * x;
          hpEnergy += h * h;
        }
        const s0 = x + c * s1 - s2;
        s2 = s1;
        s1 = s0;
        idx = idx + 1 === n ? 0 : idx + 1;
      }
      // Mean power of a sinusoid at this frequency: 2|X|^2 / N^2.
      this.#powers[k] = (2 * (s1 * s1 + s2 * s2 - c * s1 * s2)) / (n * n);
    }
    this.#clean = false;
    this.#hpShare = 1;
    const p = this.#powers;
    let row = 0;
    let col = 4;
    for (let k = 1; k < 4; k++) if ((p[k] as number) > (p[row] as number)) row = k;
    for (let k = 5; k < 8; k++) if ((p[k] as number) > (p[col] as number)) col = k;
    const rowP = p[row] as number;
    const colP = p[col] as number;
    if (rowP < this.#minTonePower || colP < this.#minTonePower) return undefined;
    if (colP * NORMAL_TWIST < rowP || rowP * REVERSE_TWIST_MIXED < colP) return undefined;
    let strict = rowP * REVERSE_TWIST >= colP;
    for (let k = 0; k < 4; k++) {
      if (k === row) continue;
      const q = p[k] as number;
      if (q * RELATIVE_PEAK_MIXED > rowP) return undefined;
      if (q * RELATIVE_PEAK > rowP) strict = false;
    }
    for (let k = 4; k < 8; k++) {
      if (k === col) continue;
      const q = p[k] as number;
      if (q * RELATIVE_PEAK_MIXED > colP) return undefined;
      if (q * RELATIVE_PEAK > colP) strict = false;
    }
    const tones = rowP + colP;
    if (strict && tones >= this.#toneShare * (energy / n)) {
      this.#clean = true;
      return KEYS[row]?.[col - 4];
    }
    // Looser checks: the share against the high-passed power, both tones on their frequency, and
    // no A-D (no phone keypad has them: under speech they could only be talk-off).
    this.#clean = false;
    if (tones < this.#mixedShare * (hpEnergy / n) || col === 3 + 4) return undefined;
    if (!this.#onFrequency(row) || !this.#onFrequency(col)) return undefined;
    this.#hpShare = tones / Math.max(1e-9, hpEnergy / n);
    return KEYS[row]?.[col - 4];
  }
}
