/**
 * A latency histogram in milliseconds with ~2 % relative resolution from 1 ms to 10 minutes (0.05 ms steps
 * below 1 ms), small enough to ship over IPC as a sparse delta every 100 ms.
 */

const SUB_MS_STEPS = 20;
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
const MAX_MS = 600_000;
export const BUCKETS = SUB_MS_STEPS + Math.ceil(Math.log(MAX_MS) / LOG_GROWTH) + 1;

export function bucketOf(ms: number): number {
  if (!(ms > 0)) return 0;
  if (ms < 1) return Math.floor(ms * SUB_MS_STEPS);
  return Math.min(BUCKETS - 1, SUB_MS_STEPS + Math.floor(Math.log(ms) / LOG_GROWTH));
}

/** The lower edge of a bucket: a reported percentile is at most 2 % below the true value. */
export function bucketLow(index: number): number {
  if (index < SUB_MS_STEPS) return index / SUB_MS_STEPS;
  return GROWTH ** (index - SUB_MS_STEPS);
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  total = 0;
  max = 0;
  /** Buckets touched since the last `takeDelta`, for sparse shipping. */
  private readonly pending = new Map<number, number>();

  record(ms: number): void {
    const index = bucketOf(ms);
    this.counts[index]! += 1;
    this.total += 1;
    if (ms > this.max) this.max = ms;
    this.pending.set(index, (this.pending.get(index) ?? 0) + 1);
  }

  /** What was recorded since the last call, as flat [bucket, count, bucket, count, ...]. */
  takeDelta(): number[] {
    const flat: number[] = [];
    for (const [index, count] of this.pending) flat.push(index, count);
    this.pending.clear();
    return flat;
  }

  addDelta(flat: readonly number[], max = 0): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const count = flat[i + 1]!;
      this.counts[flat[i]!]! += count;
      this.total += count;
    }
    if (max > this.max) this.max = max;
  }

  clone(): Histogram {
    const copy = new Histogram();
    copy.counts.set(this.counts);
    copy.total = this.total;
    copy.max = this.max;
    return copy;
  }

  /** The samples recorded after `earlier` (a clone of this histogram taken before); `max` must come separately. */
  since(earlier: Histogram, max: number): Histogram {
    const delta = new Histogram();
    for (let i = 0; i < BUCKETS; i++) delta.counts[i] = this.counts[i]! - earlier.counts[i]!;
    delta.total = this.total - earlier.total;
    delta.max = max;
    return delta;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.max = 0;
    this.pending.clear();
  }

  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(this.total * p));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      // The bucket's lower edge, but never above the largest value seen (when it is known).
      if (seen >= rank) return this.max > 0 ? Math.min(bucketLow(i), this.max) : bucketLow(i);
    }
    return this.max;
  }

  summary(): LatencySummary {
    return {
      count: this.total,
      p50: round(this.percentile(0.5)),
      p90: round(this.percentile(0.9)),
      p99: round(this.percentile(0.99)),
      p999: round(this.percentile(0.999)),
      max: round(this.total > 0 ? this.max : NaN),
    };
  }
}

/**
 * Latencies come from `Date.now()` differences, whole milliseconds: a bucket's lower edge rounds up to
 * the whole millisecond it holds (0 means under a millisecond).
 */
function round(ms: number): number {
  if (!Number.isFinite(ms)) return NaN;
  return ms >= 1 ? Math.ceil(ms - 1e-9) : Math.round(ms * 100) / 100;
}
