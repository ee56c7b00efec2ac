import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BackpressureMonitor } from '../../src/dispatch/backpressure.js';
import { Metrics } from '../../src/observability/metrics.js';

function setup() {
  const calls: string[] = [];
  const metrics = new Metrics({ defaultMetrics: false });
  const monitor = new BackpressureMonitor(
    { lagMs: 100, heapBytes: 1000 },
    { pause: () => calls.push('pause'), resume: () => calls.push('resume') },
    metrics,
    pino({ level: 'silent' }),
  );
  const paused = async () => (await metrics.consumerPaused.get()).values[0]?.value;
  const events = async () => (await metrics.backpressureEvents.get()).values.map((v) => [v.labels.reason, v.value]);
  return { monitor, calls, paused, events };
}

describe('backpressure', () => {
  it('pauses consumption when the event loop lags at two checks in a row, and counts it', async () => {
    const { monitor, calls, paused, events } = setup();
    monitor.check(20, 100);
    monitor.check(150, 100);
    expect(calls).toEqual([]);
    monitor.check(150, 100);
    expect(calls).toEqual(['pause']);
    expect(await paused()).toBe(1);
    expect(await events()).toEqual([['event_loop_lag', 1]]);
  });

  it('does not pause for one stall between checks without lag', async () => {
    const { monitor, calls, events } = setup();
    for (const lag of [150, 20, 300, 20, 150]) monitor.check(lag, 100);
    expect(calls).toEqual([]);
    expect(await events()).toEqual([]);
  });

  it('pauses when the heap passes its watermark', async () => {
    const { monitor, calls, events } = setup();
    monitor.check(10, 2000);
    expect(calls).toEqual(['pause']);
    expect(await events()).toEqual([['heap', 1]]);
  });

  it('resumes only once lag is under half and heap under 80 % of the watermarks (hysteresis)', async () => {
    const { monitor, calls, paused } = setup();
    monitor.check(150, 100);
    monitor.check(150, 100);
    monitor.check(80, 100); // below the watermark, not below half of it
    monitor.check(30, 900); // lag fine, heap above 80 %
    expect(calls).toEqual(['pause']);
    monitor.check(30, 500);
    expect(calls).toEqual(['pause', 'resume']);
    expect(await paused()).toBe(0);
    expect(monitor.paused).toBe(false);
  });

  it('does not pause twice while already paused', () => {
    const { monitor, calls } = setup();
    monitor.check(500, 5000);
    monitor.check(500, 5000);
    expect(calls).toEqual(['pause']);
  });

  it('counts the time the event loop was busy, so its rate is the loop utilization', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const busy = async () => (await metrics.eventLoopBusy.get()).values[0]?.value ?? 0;
    const before = await busy();
    const until = Date.now() + 120;
    while (Date.now() < until) {
      // keep the loop busy for 120 ms
    }
    await new Promise((resolve) => setImmediate(resolve));
    const spent = (await busy()) - before;
    expect(spent).toBeGreaterThanOrEqual(0.1);
    expect(spent).toBeLessThan(5);
    const idleBefore = await busy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await busy()) - idleBefore).toBeLessThan(0.1);
  });
});
