import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CounterCells, FastHistogram } from '../../src/observability/hot-metrics.js';
import { Metrics } from '../../src/observability/metrics.js';

/** The per-message metrics must scrape exactly as prom-client's own would. */

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('FastHistogram', () => {
  it('scrapes the same text as a prom-client histogram given the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram('lat_seconds', 'latency', 'mode', ['reliable', 'volatile'] as const, BUCKETS, ours);
    const reference = new Histogram({ name: 'lat_seconds', help: 'latency', labelNames: ['mode'], buckets: BUCKETS, registers: [theirs] });
    // On a bound, below the first, between, above the last.
    for (const value of [0, 0.001, 0.0011, 0.05, 0.1, 0.7, 1, 3, 120]) {
      fast.observe(fast.indexOf('reliable'), value);
      reference.labels('reliable').observe(value);
    }
    fast.observe(fast.indexOf('volatile'), 0.02);
    reference.labels('volatile').observe(0.02);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(JSON.parse(JSON.stringify(await theirs.getMetricsAsJSON())));
  });

  it('lists no series before its first observation, and starts again from zero after a reset', async () => {
    const registry = new Registry();
    const fast = new FastHistogram('lat_seconds', 'latency', 'mode', ['reliable'] as const, BUCKETS, registry);
    expect(await registry.metrics()).not.toContain('lat_seconds_count');
    fast.observe(0, 0.5);
    expect(await registry.metrics()).toContain('lat_seconds_count{mode="reliable"} 1');
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('lat_seconds_count');
  });
});

describe('CounterCells', () => {
  it('hands what was added to the counter when it is scraped, and nothing twice', async () => {
    const registry = new Registry();
    const cells = new CounterCells([{ source: 'amqp' }, { source: 'http' }]);
    const counter: Counter<'source'> = new Counter({
      name: 'received_total', help: 'received', labelNames: ['source'], registers: [registry],
      collect: () => cells.flushInto(counter),
    });
    cells.add(0);
    cells.add(0, 2);
    expect(await registry.metrics()).toContain('received_total{source="amqp"} 3');
    expect(await registry.metrics()).toContain('received_total{source="amqp"} 3');
    cells.add(1, 5);
    cells.add(0);
    const text = await registry.metrics();
    expect(text).toContain('received_total{source="amqp"} 4');
    expect(text).toContain('received_total{source="http"} 5');
  });
});

describe('Metrics on the per-message path', () => {
  it('counts every target, mode and outcome under its own labels', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.delivery('session', true, 'delivered');
    metrics.delivery('session', true, 'delivered');
    metrics.delivery('session', false, 'dropped');
    metrics.delivery('group', true, 'failed', 3);
    metrics.delivery('broadcast', false, 'expired');
    metrics.received('amqp');
    metrics.received('http', 4);
    metrics.latency(true, 1_000, 1_250);
    const text = await metrics.registry.metrics();
    expect(text).toContain('pushcenter_deliveries_total{target="session",mode="reliable",outcome="delivered"} 2');
    expect(text).toContain('pushcenter_deliveries_total{target="session",mode="volatile",outcome="dropped"} 1');
    expect(text).toContain('pushcenter_deliveries_total{target="group",mode="reliable",outcome="failed"} 3');
    expect(text).toContain('pushcenter_deliveries_total{target="broadcast",mode="volatile",outcome="expired"} 1');
    expect(text.match(/^pushcenter_deliveries_total\{/gm)).toHaveLength(4);
    expect(text).toContain('pushcenter_messages_received_total{source="amqp"} 1');
    expect(text).toContain('pushcenter_messages_received_total{source="http"} 4');
    expect(text).toContain('pushcenter_delivery_latency_seconds_bucket{le="0.25",mode="reliable"} 1');
    expect(text).toContain('pushcenter_delivery_latency_seconds_bucket{le="0.1",mode="reliable"} 0');
    expect(text).toContain('pushcenter_delivery_latency_seconds_sum{mode="reliable"} 0.25');
  });
});
