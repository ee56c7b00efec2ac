import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface BackpressureOptions {
  /** Event-loop delay (p99 over one interval, ms) above which consumption pauses. */
  lagMs: number;
  /** Heap in use (bytes) above which consumption pauses. */
  heapBytes: number;
  intervalMs?: number;
  /** False while a dependency the dispatcher needs (Redis, RabbitMQ) is down: hold work until it is back. */
  dependenciesUp?: () => boolean;
}

/** What backpressure holds: the queue consumer. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export type PressureReason = 'event_loop_lag' | 'heap' | 'dependency_down';

/**
 * Checks in a row whose lag must be over the watermark before consumption pauses. One stall (a full
 * garbage collection, engine.io's pings falling due for a batch of sockets at once, other processes
 * taking the core) is over by the next check: a pause for it would hold the queue for a second or more
 * and add that to the latency of everything behind it, while the prefetch already bounds what the node
 * holds. A node that is really overloaded lags at every check.
 */
const LAG_CHECKS = 2;

/**
 * Watches the event loop and the heap; when either crosses its watermark (the lag at `LAG_CHECKS`
 * checks in a row) the consumer stops taking new work from the queue, and it resumes only once both are
 * back well below (lag under half, heap under 80 %), so it does not flap. The queue absorbs the excess
 * meanwhile (PROTOCOL §5). A dependency that is down (Redis: no inbox, no directory) holds consumption the
 * same way until it is back.
 */
export class BackpressureMonitor {
  private readonly delay: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;
  private pausedFor: PressureReason | undefined;
  /** Consecutive checks with the lag over the watermark, while not paused. */
  private lagging = 0;

  constructor(
    private readonly options: BackpressureOptions,
    private readonly consumer: Pausable,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly heapUsed: () => number = () => process.memoryUsage().heapUsed,
  ) {
    this.delay = monitorEventLoopDelay({ resolution: 10 });
    metrics.consumerPaused.set(0);
  }

  get paused(): boolean {
    return this.pausedFor !== undefined;
  }

  start(): void {
    this.delay.enable();
    this.timer = setInterval(() => this.check(), this.options.intervalMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.delay.disable();
  }

  /** One evaluation; `lagMs` and `heap` may be passed in (tests), else they are measured. */
  check(lagMs = this.delay.percentile(99) / 1e6, heap = this.heapUsed()): void {
    this.delay.reset();
    const { lagMs: maxLag, heapBytes } = this.options;
    const dependenciesUp = this.options.dependenciesUp?.() ?? true;
    if (!this.pausedFor) {
      this.lagging = lagMs > maxLag ? this.lagging + 1 : 0;
      const reason: PressureReason | undefined = !dependenciesUp
        ? 'dependency_down'
        : this.lagging >= LAG_CHECKS ? 'event_loop_lag' : heap > heapBytes ? 'heap' : undefined;
      if (!reason) {
        if (this.lagging > 0) this.logger.debug({ lagMs: Math.round(lagMs) }, 'event loop lagged once; not pausing for one stall');
        return;
      }
      this.pausedFor = reason;
      this.lagging = 0;
      this.consumer.pause();
      this.metrics.consumerPaused.set(1);
      this.metrics.backpressureEvents.inc({ reason });
      this.logger.warn({ reason, lagMs: Math.round(lagMs), heapMb: Math.round(heap / 2 ** 20) },
        'overloaded: consumption paused, the queue holds new work');
    } else if (dependenciesUp && lagMs < maxLag / 2 && heap < heapBytes * 0.8) {
      this.logger.info({ reason: this.pausedFor, lagMs: Math.round(lagMs), heapMb: Math.round(heap / 2 ** 20) },
        'recovered: consumption resumed');
      this.pausedFor = undefined;
      this.consumer.resume();
      this.metrics.consumerPaused.set(0);
    }
  }
}
