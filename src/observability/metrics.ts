import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import { CounterCells, FastHistogram } from './hot-metrics.js';

export type Target = 'session' | 'group' | 'broadcast';
export type Mode = 'reliable' | 'volatile';
export type Outcome = 'delivered' | 'forwarded' | 'stored' | 'dropped' | 'expired' | 'failed';
export type Source = 'amqp' | 'http';
export type InboxOp = 'stored' | 'replayed' | 'expired' | 'evicted';
export type Dependency = 'amqp' | 'redis';

/**
 * Every metric of PROTOCOL §8, on a registry of its own so several nodes can live in one process (tests).
 * Labels never carry session ids or message ids.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly connectedSockets = new Gauge({
    name: 'pushcenter_connected_sockets',
    help: 'Sockets connected to this node',
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'pushcenter_sessions',
    help: 'Sessions with at least one socket on this node',
    registers: [this.registry],
  });
  /** Per message on the hot path: counted in `receivedCells`, handed over at scrape time. */
  private readonly receivedCells = new CounterCells(SOURCES.map((source) => ({ source })));
  readonly messagesReceived: Counter<'source'> = new Counter({
    name: 'pushcenter_messages_received_total',
    help: 'Notifications received, by where they came from',
    labelNames: ['source'] as const,
    registers: [this.registry],
    collect: (): void => this.receivedCells.flushInto(this.messagesReceived),
  });
  readonly messagesInvalid = new Counter({
    name: 'pushcenter_messages_invalid_total',
    help: 'Notifications refused as invalid, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly deliveryCells = new CounterCells(DELIVERY_LABELS);
  readonly deliveries: Counter<'target' | 'mode' | 'outcome'> = new Counter({
    name: 'pushcenter_deliveries_total',
    help: 'Outcomes per notification and target (one per session id, group, or broadcast)',
    labelNames: ['target', 'mode', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.deliveryCells.flushInto(this.deliveries),
  });
  readonly deliveryLatency = new FastHistogram(
    'pushcenter_delivery_latency_seconds',
    'Enqueue to emit (volatile) or to client ack (reliable)',
    'mode',
    MODES,
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    this.registry,
  );
  /** Read at scrape time from the queue (`trackInflight`). */
  private inflightSource: () => number = () => 0;
  readonly inflight: Gauge = new Gauge({
    name: 'pushcenter_inflight_messages',
    help: 'Broker messages taken by this node and not yet acked',
    registers: [this.registry],
    collect: (): void => this.inflight.set(this.inflightSource()),
  });
  /** Cumulative time the event loop ran callbacks (performance.eventLoopUtilization), read at scrape time. */
  private loopBusyMs = 0;
  readonly eventLoopBusy: Counter = new Counter({
    name: 'pushcenter_event_loop_busy_seconds_total',
    help: 'Time the event loop spent running callbacks rather than waiting; its rate is the loop utilization (1: saturated)',
    registers: [this.registry],
    collect: (): void => {
      const busyMs = performance.eventLoopUtilization().active;
      if (busyMs > this.loopBusyMs) this.eventLoopBusy.inc((busyMs - this.loopBusyMs) / 1000);
      this.loopBusyMs = busyMs;
    },
  });
  readonly consumerPaused = new Gauge({
    name: 'pushcenter_consumer_paused',
    help: '1 while backpressure holds consumption',
    registers: [this.registry],
  });
  readonly backpressureEvents = new Counter({
    name: 'pushcenter_backpressure_events_total',
    help: 'Times backpressure engaged, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly inbox = new Counter({
    name: 'pushcenter_inbox_total',
    help: 'Offline inbox operations',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'pushcenter_dead_letters_total',
    help: 'Messages dead-lettered, by reason: the invalid-message reasons (not_json, missing_data, …), inbox_full, inbox_expired',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly gapNotices = new Counter({
    name: 'pushcenter_gap_notices_total',
    help: 'Register answers that carried a gap notice (missed: messages dead-lettered since the session last received)',
    registers: [this.registry],
  });
  readonly duplicatesSuppressed = new Counter({
    name: 'pushcenter_duplicates_suppressed_total',
    help: 'Reliable messages RabbitMQ redelivered that their session had already acked: acked to the broker, not emitted again',
    registers: [this.registry],
  });
  readonly receipts = new Counter({
    name: 'pushcenter_receipts_total',
    help: 'Receipt events recorded, by outcome (accepted, delivered, stored, dead, dropped)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly receiptsLost = new Counter({
    name: 'pushcenter_receipts_lost_total',
    help: 'Receipt events not written (where = store: Redis failed; stream: RabbitMQ could not take it now)',
    labelNames: ['where'] as const,
    registers: [this.registry],
  });
  readonly duplicatePublishes = new Counter({
    name: 'pushcenter_duplicate_publishes_total',
    help: 'Messages with an id accepted within IDEMPOTENCY_TTL_MS already (a publisher sent it twice): acked, not delivered again',
    registers: [this.registry],
  });
  readonly socketRefusals = new Counter({
    name: 'pushcenter_socket_refusals_total',
    help: 'Socket connections and registrations refused, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly socketDisconnects = new Counter({
    name: 'pushcenter_socket_disconnects_total',
    help: 'Socket disconnections, by socket.io reason (e.g. transport_close, ping_timeout, transport_error for an oversized frame)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly httpRefusals = new Counter({
    name: 'pushcenter_http_refusals_total',
    help: 'HTTP requests refused before their content was looked at, by reason (unauthorized, forbidden, rate_limited, key_rate_limited, too_large, unsupported_media_type)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly fastPath = new Gauge({
    name: 'pushcenter_fast_path',
    help: 'Parts of the socket fast path in use (1) or not (0): event_writer, group_writer, ack_reader',
    labelNames: ['part'] as const,
    registers: [this.registry],
  });
  /** Read at scrape time (`trackDependencies`). */
  private dependencySource: () => Partial<Record<Dependency, boolean>> = () => ({});
  readonly dependencyUp: Gauge<'dependency'> = new Gauge({
    name: 'pushcenter_dependency_up',
    help: '1 while the dependency is connected (only configured dependencies are listed)',
    labelNames: ['dependency'] as const,
    registers: [this.registry],
    collect: (): void => {
      for (const [dependency, up] of Object.entries(this.dependencySource())) {
        this.dependencyUp.set({ dependency }, up ? 1 : 0);
      }
    },
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) registerProcessMetrics(this.registry);
  }

  trackDependencies(source: () => Partial<Record<Dependency, boolean>>): void {
    this.dependencySource = source;
  }

  trackInflight(source: () => number): void {
    this.inflightSource = source;
  }

  /** One notification received (these three run for every message). */
  received(source: Source, count = 1): void {
    this.receivedCells.add(SOURCE_INDEX[source], count);
  }

  delivery(target: Target, reliable: boolean, outcome: Outcome, count = 1): void {
    this.deliveryCells.add(deliveryIndex(target, reliable, outcome), count);
  }

  latency(reliable: boolean, enqueuedAt: number, now = Date.now()): void {
    this.deliveryLatency.observe(MODE_INDEX[modeOf(reliable)], Math.max(0, now - enqueuedAt) / 1000);
  }
}

const SOURCES: readonly Source[] = ['amqp', 'http'];
const MODES: readonly Mode[] = ['reliable', 'volatile'];
const TARGETS: readonly Target[] = ['session', 'group', 'broadcast'];
const OUTCOMES: readonly Outcome[] = ['delivered', 'forwarded', 'stored', 'dropped', 'expired', 'failed'];

/** Each value's position in its list: the lists above are the one place their order is written. */
function positions<T extends string>(list: readonly T[]): Record<T, number> {
  return Object.fromEntries(list.map((value, i) => [value, i])) as Record<T, number>;
}
const SOURCE_INDEX = positions(SOURCES);
const MODE_INDEX = positions(MODES);
const TARGET_INDEX = positions(TARGETS);
const OUTCOME_INDEX = positions(OUTCOMES);

/** Every label set of `pushcenter_deliveries_total`, in the order `deliveryIndex` numbers them. */
const DELIVERY_LABELS = TARGETS.flatMap((target) => MODES.flatMap((mode) => OUTCOMES.map((outcome) => ({ target, mode, outcome }))));

function modeOf(reliable: boolean): Mode {
  return reliable ? 'reliable' : 'volatile';
}

function deliveryIndex(target: Target, reliable: boolean, outcome: Outcome): number {
  return (TARGET_INDEX[target] * MODES.length + MODE_INDEX[modeOf(reliable)]) * OUTCOMES.length + OUTCOME_INDEX[outcome];
}

/**
 * prom-client's default Node.js process metrics, except three that walk every handle or file descriptor
 * on the event loop at each scrape, which blocks it longer the more sockets a node holds
 * (`process_open_fds` reads /proc/self/fd synchronously; `nodejs_active_handles` and
 * `nodejs_active_resources` list every handle). `process_open_fds` is kept, read asynchronously; the
 * socket counts are in `pushcenter_connected_sockets`.
 */
const CHEAP_DEFAULT_METRICS = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

function registerProcessMetrics(registry: Registry): void {
  const require = createRequire(import.meta.url);
  for (const name of CHEAP_DEFAULT_METRICS) {
    const register = require(`prom-client/lib/metrics/${name}`) as (registry: Registry, config: object) => void;
    register(registry, { eventLoopMonitoringPrecision: 10 });
  }
  if (process.platform !== 'linux') return;
  const openFds: Gauge = new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [registry],
    async collect(): Promise<void> {
      try {
        openFds.set((await readdir('/proc/self/fd')).length - 1);
      } catch {
        // Not readable here: the gauge keeps its last value.
      }
    },
  });
}
