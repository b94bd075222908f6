/**
 * A fixed-resolution histogram of millisecond values (by default 10 µs buckets up to 2 s, one
 * overflow bucket): constant memory and O(1) per sample, so the sink can record every packet gap of
 * 50,000 packets/s without allocating.
 */
export class Histogram {
  readonly #bucketMs: number;
  readonly #buckets: number;
  readonly #counts: Uint32Array;
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;

  /** Default: 10 µs buckets up to 2 s. */
  constructor(bucketMs = 0.01, maxMs = 2000) {
    this.#bucketMs = bucketMs;
    this.#buckets = Math.ceil(maxMs / bucketMs);
    this.#counts = new Uint32Array(this.#buckets + 1);
  }

  add(ms: number): void {
    const i = ms <= 0 ? 0 : Math.min(this.#buckets, Math.floor(ms / this.#bucketMs));
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** Raw state, to move a histogram between threads (structured clone) and merge it. */
  dump(): HistogramDump {
    return { bucketMs: this.#bucketMs, counts: this.#counts.slice(), count: this.count, sum: this.sum, min: this.min, max: this.max };
  }

  /** Adds another histogram's samples (same bucket layout). */
  merge(d: HistogramDump): void {
    if (d.bucketMs !== this.#bucketMs || d.counts.length !== this.#counts.length) throw new Error('histogram layouts differ');
    for (let i = 0; i < d.counts.length; i++) this.#counts[i] = (this.#counts[i] ?? 0) + (d.counts[i] ?? 0);
    this.count += d.count;
    this.sum += d.sum;
    if (d.min < this.min) this.min = d.min;
    if (d.max > this.max) this.max = d.max;
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
  }

  /** Value at quantile q (0..1), bucket midpoint, capped to the exact max. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const target = Math.max(1, Math.ceil(this.count * q));
    let acc = 0;
    for (let i = 0; i <= this.#buckets; i++) {
      acc += this.#counts[i] ?? 0;
      if (acc >= target) return Math.min(this.max, (i + 0.5) * this.#bucketMs);
    }
    return this.max;
  }

  /** Samples strictly above `ms` (bucket resolution). */
  countAbove(ms: number): number {
    const from = Math.min(this.#buckets, Math.floor(ms / this.#bucketMs) + 1);
    let n = 0;
    for (let i = from; i <= this.#buckets; i++) n += this.#counts[i] ?? 0;
    return n;
  }

  summary(): HistogramSummary {
    return {
      count: this.count,
      mean: this.count > 0 ? this.sum / this.count : Number.NaN,
      min: this.count > 0 ? this.min : Number.NaN,
      p50: this.quantile(0.5),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.count > 0 ? this.max : Number.NaN,
    };
  }
}

export interface HistogramDump {
  bucketMs: number;
  counts: Uint32Array;
  count: number;
  sum: number;
  min: number;
  max: number;
}

export interface HistogramSummary {
  count: number;
  mean: number;
  min: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Exact quantile of a small sorted array (nearest rank). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1));
  return sorted[i] as number;
}
