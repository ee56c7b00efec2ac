import type { LatencySummary } from './histogram.js';
import type { GitFacts, MachineFacts, ServiceVersions } from './infra.js';
import type { SystemKind } from './systems.js';

/** The machine-readable results (`results-<timestamp>.json`). */

export type ScenarioName = 'reliable' | 'volatile' | 'group' | 'two-nodes' | 'overload' | 'noisy';

export interface CpuShare {
  /** Percent of one core over the measured window (200 = both cores of this machine). */
  server: number;
  helpers: number;
  clients: number;
  rabbitmq: number;
  redis: number;
  bench: number;
  /**
   * Machine-wide: CPU the hypervisor gave to other guests while this one had work to run (`steal` in
   * /proc/stat). Not in the other figures; the cores were that much smaller in the window. Absent in
   * older results.
   */
  steal?: number;
}

export interface TimelinePoint {
  t: number;
  phase: string;
  publishedPerS: number;
  deliveredPerS: number;
  p99: number;
  rssMB: number;
  queue: number;
  /** push-center: deliveries taken from RabbitMQ and not yet settled by the dispatcher. */
  inflight: number | undefined;
  /** Seconds the consumer was paused since the phase started. */
  paused: number;
  /** push-center: the longest event-loop delay in its last scrape's interval (ms). */
  loopLagMaxMs?: number | undefined;
}

export interface PhaseResult {
  name: string;
  /** `backlog`: the consumers drained a queue filled while they were frozen; nothing was published in the window. */
  mode: 'max' | 'rate' | 'backlog';
  /** Messages per second asked for (mode `rate`). */
  targetRate: number | undefined;
  warmupS: number;
  measureS: number;
  /** Over the measured window. */
  publishedPerS: number;
  /** Messages fully delivered per second (group: deliveries / members). */
  deliveredPerS: number;
  /** Socket deliveries per second (distinct per client). */
  deliveriesPerS: number;
  latency: LatencySummary;
  /** Over the whole phase, including warm-up and drain. */
  published: number;
  publishFailures: number;
  /**
   * Fixed-rate phases: sends the publisher skipped because its process had fallen more than 20 ms
   * behind the schedule (instead of sending them as one burst). Absent in older results.
   */
  publisherSkipped?: number;
  expectedDeliveries: number;
  received: number;
  unique: number;
  duplicates: number;
  acked: number;
  /** Expected deliveries that did not arrive (session: messages; group: member deliveries). */
  notDelivered: number;
  drainS: number;
  drained: boolean;
  /** Over the measured window. */
  rssMaxMB: number | undefined;
  rssEndMB: number | undefined;
  pausedS: number | undefined;
  backpressureEvents: Record<string, number> | undefined;
  /** Over the whole phase: warm-up, measured window and drain. */
  whole: {
    rssMaxMB: number | undefined;
    pausedS: number | undefined;
    backpressureEvents: Record<string, number> | undefined;
  };
  queueDepthMax: number | undefined;
  clientDisconnects: number;
  cpu: CpuShare | undefined;
  /**
   * push-center's event-loop utilization over the measured window (0–1, mean over its nodes), from
   * `pushcenter_event_loop_busy_seconds_total`: 1 means the loop never waited, so push-center set the pace.
   */
  loopBusy?: number | undefined;
  /** push-center's garbage collection in the measured window: share of the time, and pauses over 100 ms. */
  gc?: { share: number; over100ms: number } | undefined;
  /** The longest event-loop delay push-center reported in the measured window (ms). */
  loopLagMaxMs?: number | undefined;
  /** push-center's own counters over the phase (deltas). */
  pushCenter: {
    deliveries: Record<string, number>;
    inbox: Record<string, number>;
    stored: number;
    /**
     * Two nodes: messages sent from one node to the other, counted on their Redis bus (the metrics count
     * forwards of volatile messages only); one node: the `forwarded` outcomes of the metrics.
     */
    forwarded: number;
  } | undefined;
  timeline: TimelinePoint[];
  /**
   * Phase `backlog`: messages published while the consumers were frozen, how long that took, and when
   * the queue ran dry within the window (undefined: it lasted the whole window).
   */
  backlog?: { messages: number; fillS: number; ranOutAfterS: number | undefined } | undefined;
}

export interface OverloadResult {
  capacity: number;
  capacitySource: string;
  offeredRate: number;
  publishedPerS: number;
  deliveredPerS: number;
  /** deliveredPerS / capacity. */
  throughputRatio: number;
  rssMaxMB: number | undefined;
  pausedS: number | undefined;
  backpressureEvents: Record<string, number> | undefined;
  pausedAndResumed: boolean;
  published: number;
  uniqueDelivered: number;
  stored: number;
  replayed: number;
  inboxRemaining: number;
  lost: number;
  drainS: number;
  nodeAlive: boolean;
  reregistered: { ok: number; failed: number } | undefined;
}

/** A window of the noisy scenario, measured on the other (steadily fed) sessions. */
export interface NoisyWindow {
  seconds: number;
  /** Steady messages published per second (the flood not included). */
  publishedPerS: number;
  /** Distinct messages the other sessions received per second. */
  deliveredPerS: number;
  /** Their publish → client latency (messages received in the window). */
  latency: LatencySummary;
  cpu: CpuShare | undefined;
  /** The push-center node's largest RSS in the window. */
  rssMaxMB: number | undefined;
}

/** Published against received, by distinct message. */
export interface Delivery {
  published: number;
  publishFailures: number;
  /** Envelopes received, duplicates included. */
  received: number;
  /** Distinct messages received. */
  unique: number;
  duplicates: number;
  /** Published and never received (distinct): published − unique. */
  lost: number;
}

/**
 * The noisy neighbour: one session flooded with a burst of reliable messages while the others each
 * receive a steady rate; how the others fared before and during the flood, and the flood's own drain.
 */
export interface NoisyResult {
  /** The flooded session's id. */
  floodSession: string;
  /** Messages in the burst. */
  flood: number;
  /** The other sessions. */
  others: number;
  /** Messages per second asked for, in total across the others. */
  steadyRate: number;
  /** Steady sends the publisher skipped because its process had fallen behind the schedule (see Pacer). */
  steadySkipped: number;
  /** Before the flood: the others alone. */
  baseline: NoisyWindow;
  /**
   * From the burst's first publish until its last message arrived, or later while the others had not yet
   * received every steady message published until then (queued behind the flood; at most 10 s more once
   * the flood was complete).
   */
  during: NoisyWindow;
  /**
   * From the end of `during`, the steady rate alone again: until the wait for the flood ended, and at
   * least the baseline's length.
   */
  after: NoisyWindow;
  flooded: Delivery & {
    /** Seconds from the burst's first publish until its last publish was confirmed by RabbitMQ. */
    publishS: number | undefined;
    /** Seconds from the burst's first publish until the last of its distinct messages was received. */
    drainS: number | undefined;
    /** Every published message was received. */
    complete: boolean;
    /**
     * Why the wait ended: every message received, nothing more arrived for 5 s after the burst was
     * published, the time was up, or the run was interrupted.
     */
    end: 'complete' | 'quiet' | 'timeout' | 'aborted';
    /** Arrivals of a message published before one that had already arrived. */
    outOfOrder: number;
  };
  othersDelivery: Delivery;
  /** push-center's inbox counters from the flood to the end (stored, replayed, evicted, expired). */
  inbox: Record<string, number> | undefined;
  /** Messages push-center dead-lettered from the flood to the end, by reason (servers that count them). */
  deadLetters: Record<string, number> | undefined;
  timeline: TimelinePoint[];
}

export interface TargetResult {
  scenario: ScenarioName;
  kind: SystemKind;
  system: string;
  description: string;
  clients: number;
  connect: { connected: number; failed: number; seconds: number; errors: string[] } | undefined;
  idle: { rss0MB: number; rssNMB: number; perConnectionKB: number } | undefined;
  phases: PhaseResult[];
  overload: OverloadResult | undefined;
  /** Scenario `noisy` (absent in older results). */
  noisy?: NoisyResult | undefined;
  serverAlive: boolean;
  error: string | undefined;
  notes: string[];
  seconds: number;
}

export interface RunResults {
  tool: 'push-center bench';
  runId: string;
  startedAt: string;
  finishedAt: string;
  aborted: boolean;
  command: string;
  args: string[];
  machine: MachineFacts & { loadAverageAtEnd: number[] };
  versions: ServiceVersions & { node: string };
  git: GitFacts;
  settings: {
    clients: number;
    /** The simulated browsers' socket.io client (runs before it was recorded used socket.io-client). */
    client?: string;
    workers: number;
    durationS: number;
    halfRateDurationS: number;
    overloadDurationS: number;
    prefetch: number;
    payloadBytes: number;
    persistent: boolean;
    server: string;
    quick: boolean;
    serverEnv: Record<string, string>;
    /** push-center's AMQP_QUEUE_SHARDS (absent in results from before the option). */
    shards?: number;
    /** The client workers' and the publishing bench process's scheduling policy (absent: older runs, normal). */
    loadSched?: 'SCHED_BATCH' | 'normal';
    /** Whether each server ran in a session (autogroup) of its own (absent: older runs, shared). */
    serverSession?: 'own' | 'shared';
    /** Scenario `noisy`: the burst, the other sessions and their steady rate (messages/s in total). */
    noisy?: { flood: number; others: number; steadyRate: number };
  };
  targets: TargetResult[];
}
