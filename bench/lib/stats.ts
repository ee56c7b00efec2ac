import { Histogram } from './histogram.js';
import type { StatsMessage } from './ipc.js';

export interface Counters {
  received: number;
  unique: number;
  acked: number;
  disconnects: number;
}

/** A point in time of the delivery counters, to measure a window between two of them. */
export interface Snapshot extends Counters {
  at: number;
  hist: Histogram;
}

/** A window being measured: the largest latency seen since it opened. */
export interface MaxTracker {
  max: number;
}

/**
 * Sums the delivery reports of several children (client workers, or the RabbitMQ consumer peer):
 * cumulative counters per child, one cumulative latency histogram.
 */
export class DeliveryStats {
  private readonly perSource = new Map<number, Counters>();
  readonly totals: Counters = { received: 0, unique: 0, acked: 0, disconnects: 0 };
  readonly latency = new Histogram();
  private readonly trackers = new Set<MaxTracker>();
  lastUpdate = Date.now();

  apply(source: number, message: StatsMessage): void {
    const previous = this.perSource.get(source) ?? { received: 0, unique: 0, acked: 0, disconnects: 0 };
    this.totals.received += message.received - previous.received;
    this.totals.unique += message.unique - previous.unique;
    this.totals.acked += message.acked - previous.acked;
    this.totals.disconnects += message.disconnects - previous.disconnects;
    this.perSource.set(source, {
      received: message.received,
      unique: message.unique,
      acked: message.acked,
      disconnects: message.disconnects,
    });
    this.latency.addDelta(message.hist, message.max);
    for (const tracker of this.trackers) if (message.max > tracker.max) tracker.max = message.max;
    this.lastUpdate = Date.now();
  }

  snapshot(): Snapshot {
    return { ...this.totals, at: Date.now(), hist: this.latency.clone() };
  }

  trackMax(): MaxTracker {
    const tracker = { max: 0 };
    this.trackers.add(tracker);
    return tracker;
  }

  untrack(tracker: MaxTracker): void {
    this.trackers.delete(tracker);
  }
}
