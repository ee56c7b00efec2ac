import type { Counter, Registry } from 'prom-client';

/**
 * Metrics for the per-message path. prom-client hashes the label set into a string and builds a few
 * objects on every `inc` and `observe`, which adds up when it runs for every message. These keep plain
 * numbers per label set, chosen by index, and hand them over when the registry is scraped: what a
 * scrape shows is exact.
 */

/** Adds to a prom-client counter's label sets by index; the sums reach the counter when it is collected. */
export class CounterCells<L extends Record<string, string>> {
  private readonly pending: Float64Array;

  constructor(private readonly labelSets: readonly L[]) {
    this.pending = new Float64Array(labelSets.length);
  }

  add(index: number, value = 1): void {
    this.pending[index]! += value;
  }

  /** Call from the counter's `collect`: moves what was added since into it. */
  flushInto(counter: Counter<Extract<keyof L, string>>): void {
    for (let i = 0; i < this.pending.length; i++) {
      const value = this.pending[i]!;
      if (value === 0) continue;
      this.pending[i] = 0;
      counter.inc(this.labelSets[i]!, value);
    }
  }
}

/** What prom-client's registry reads from a metric when it is scraped (its own histograms give the same). */
interface Collected {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: Array<{ metricName: string; labels: Record<string, string | number>; value: number; exemplar?: null }>;
}

interface Series {
  readonly labels: Record<string, string>;
  /** Per bucket (the last one: +Inf), not cumulative. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram with one label whose values are known up front, registered on a prom-client registry
 * like prom-client's own: the same names (`_bucket` with `le`, `_sum`, `_count`) and text format.
 */
export class FastHistogram<V extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly bounds: number[];
  private readonly series: Series[];

  constructor(
    readonly name: string,
    readonly help: string,
    labelName: string,
    private readonly labelValues: readonly V[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.bounds = [...buckets].sort((a, b) => a - b);
    this.series = labelValues.map((value) => ({
      labels: { [labelName]: value },
      counts: new Float64Array(this.bounds.length + 1),
      sum: 0,
      count: 0,
    }));
    // The registry asks a metric only for its name, type, get() and reset().
    registry.registerMetric(this as never);
  }

  /** Index of a label value, for `observe`. */
  indexOf(value: V): number {
    return this.labelValues.indexOf(value);
  }

  observe(index: number, value: number): void {
    const series = this.series[index]!;
    const bounds = this.bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket += 1;
    series.counts[bucket]! += 1;
    series.sum += value;
    series.count += 1;
  }

  async get(): Promise<Collected> {
    const values: Collected['values'] = [];
    for (const series of this.series) {
      if (series.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += series.counts[i]!;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', ...series.labels },
          value: cumulative,
          exemplar: null,
        });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...series.labels }, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...series.labels }, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const series of this.series) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}
