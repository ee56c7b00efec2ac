import type { Child, Children } from './children.js';
import { ClientFleet, type ConnectResult } from './fleet.js';
import { Histogram } from './histogram.js';
import { rssOf } from './infra.js';
import { cpuSeconds, stolenSeconds, delta, outcomes, scrapeNode, sumFigures, type NodeFigures } from './metrics.js';
import type { Options } from './options.js';
import { GROUP } from './payload.js';
import type { CpuShare, OverloadResult, PhaseResult, ScenarioName, TargetResult, TimelinePoint } from './results.js';
import { runNoisy, type NoisyPlan } from './noisy.js';
import type { DeliveryStats, Snapshot } from './stats.js';
import type { System, SystemKind, SystemSpec } from './systems.js';

/** What a target run needs from the bench. */
export interface RunEnv {
  options: Options;
  children: Children;
  workerModule: string;
  root: string;
  print: (line: string) => void;
  aborted: () => boolean;
  /** Pids of the shared services, for CPU shares. */
  servicePids: { rabbitmq: number[]; redis: number[] };
}

/** One system in one scenario. */
export interface TargetPlan {
  scenario: ScenarioName;
  kind: SystemKind;
  spec: SystemSpec;
  /** Simulated clients (0: a system without sockets, the RabbitMQ peer). */
  clients: number;
  /** Socket deliveries per message: 1 for a session, the members for the group. */
  fanout: number;
  start: () => Promise<System>;
  /** Overload: publish at twice this (messages/s); undefined: measure it first. */
  capacity?: () => { value: number; source: string } | undefined;
  /** Scenario `noisy`: the flood, its session, and the steady rate to the others. */
  noisy?: NoisyPlan;
}

interface PhasePlan {
  name: string;
  /** `backlog`: fill the queue with the consumers frozen, then measure them draining it (no publishing). */
  mode: 'max' | 'rate' | 'backlog';
  rate: number;
  warmupS: number;
  measureS: number;
  drainTimeoutS: number;
  /** Drained once nothing arrived for this long (and the queue is empty). */
  quietMs: number;
}

/**
 * The backlog bound in mode `max` (messages in the queue, or sent and not yet accounted for): about half
 * a second of what the system delivers, so that it never starves (the counters it is checked against are
 * up to 100 ms old) while the drain stays short. Sessions: 1,000 to 10,000 messages. Group: from 3
 * messages up to 200,000 deliveries buffered.
 */
const BACKLOG_S = 0.5;
const SESSION_BACKLOG = { min: 1000, max: 10_000 };
const GROUP_BACKLOG_MIN = 3;
const GROUP_BACKLOG_DELIVERIES = 200_000;

export const MB = 2 ** 20;

/**
 * The backlog phase: the consumers stay frozen at most this long while the queue fills. Below socket.io's
 * ping timeout (20 s: a ping sent just before the freeze must get its pong read in time) and the peers'
 * heartbeat timeout (30 s).
 */
const BACKLOG_FILL_MAX_S = 12;
/** It aims at enough messages for twice the maximum rate measured with the publisher, over its phase. */
const BACKLOG_RATE_FACTOR = 2;
const BACKLOG_MAX_MESSAGES = 400_000;

/**
 * Runs one target: starts the system, measures its idle memory, connects the clients, runs the phases
 * (max rate, then half of it for latency; or the overload), tears everything down, and never throws:
 * a failure becomes the result's `error`.
 */
export async function runTarget(env: RunEnv, plan: TargetPlan, label: string): Promise<TargetResult> {
  const started = Date.now();
  const result: TargetResult = {
    scenario: plan.scenario,
    kind: plan.kind,
    system: plan.kind,
    description: '',
    clients: plan.clients,
    connect: undefined,
    idle: undefined,
    phases: [],
    overload: undefined,
    serverAlive: true,
    error: undefined,
    notes: [],
    seconds: 0,
  };
  let system: System | undefined;
  let fleet: ClientFleet | undefined;
  let run: TargetRun | undefined;
  try {
    env.print(`${label} starting`);
    // The client workers load while the system starts; they connect once it is up.
    if (plan.clients > 0) {
      fleet = ClientFleet.start(env.children, {
        clients: plan.clients,
        client: env.options.client,
        workers: env.options.workers,
        urlForWorker: (w) => system!.urls[w % system!.urls.length]!,
        groups: plan.spec.target === 'group' ? [GROUP] : [],
        traced: plan.noisy ? [plan.noisy.floodSession] : [],
        workerModule: env.workerModule,
        cwd: env.root,
      });
    }
    system = await plan.start();
    result.system = system.name;
    result.description = system.description;
    await sleep(1000);
    const rss0 = sumRss(system);
    if (fleet) {
      let lastPrint = 0;
      const connect: ConnectResult = await fleet.connect((connected, failed) => {
        if (Date.now() - lastPrint < 1000) return;
        lastPrint = Date.now();
        env.print(`${label} connect   ${fmt(connected)}/${fmt(plan.clients)} clients${failed ? `, ${failed} failed` : ''}`);
      });
      result.connect = { ...connect, errors: connect.errors };
      env.print(`${label} connected ${fmt(connect.connected)} clients in ${connect.seconds.toFixed(1)} s` +
        (connect.failed ? ` (${connect.failed} failed: ${connect.errors[0] ?? ''})` : ''));
      if (connect.connected < plan.clients * 0.99) {
        throw new Error(`only ${connect.connected} of ${plan.clients} clients connected: ${connect.errors.join('; ')}`);
      }
      await sleep(2000);
      const rssN = sumRss(system);
      if (rss0 !== undefined && rssN !== undefined) {
        result.idle = {
          rss0MB: round(rss0 / MB, 1),
          rssNMB: round(rssN / MB, 1),
          perConnectionKB: round((rssN - rss0) / 1024 / connect.connected, 1),
        };
        env.print(`${label} idle      RSS ${round(rss0 / MB)} MB → ${round(rssN / MB)} MB with ${fmt(connect.connected)} clients: ` +
          `${result.idle.perConnectionKB} KB per connection`);
      }
    }
    const stats = fleet?.stats ?? system.ownStats;
    if (!stats) throw new Error(`${system.name} has neither clients nor delivery counters`);
    run = new TargetRun(env, plan, system, stats, fleet, label);
    run.startSampling();
    if (plan.scenario === 'overload') {
      await runOverload(env, plan, run, result);
    } else if (plan.noisy) {
      await runNoisy(env, plan.noisy, run, result);
    } else {
      const max = await run.phase({
        name: 'max', mode: 'max', rate: 0, warmupS: env.options.warmupS, measureS: env.options.durationS,
        drainTimeoutS: 30, quietMs: 1000,
      });
      result.phases.push(max);
      if (max.deliveredPerS > 0 && !env.aborted()) {
        result.phases.push(await run.phase({
          name: 'half', mode: 'rate', rate: max.deliveredPerS / 2, warmupS: halfRateWarmupS(env.options), measureS: env.options.halfDurationS,
          drainTimeoutS: 30, quietMs: 1000,
        }));
      }
      if (env.options.backlog && backlogApplies(plan, system) && max.deliveredPerS > 0 && !env.aborted()) {
        result.phases.push(await run.phase({
          name: 'backlog', mode: 'backlog', rate: max.deliveredPerS, warmupS: env.options.warmupS, measureS: env.options.durationS,
          drainTimeoutS: 60, quietMs: 1000,
        }));
      }
    }
    result.serverAlive = system.servers.every((child) => child.alive());
    if (fleet?.crashed().length) result.notes.push(`${fleet.crashed().length} client worker(s) exited early`);
  } catch (err) {
    result.error = env.aborted() ? 'aborted' : err instanceof Error ? err.message : String(err);
    if (system) result.serverAlive = system.servers.every((child) => child.alive());
    const dead = system?.servers.concat(system.helpers).find((child) => !child.alive());
    if (dead && !env.aborted()) result.error += `\n${dead.name} exited; its last output:\n${dead.output().split('\n').slice(-15).join('\n')}`;
    if (!env.aborted()) env.print(`${label} FAILED: ${result.error}`);
  } finally {
    run?.stopSampling();
    // In parallel: the clients do not reconnect, and the measurements are done.
    await Promise.all([
      fleet?.stop().catch(() => undefined),
      system?.close().catch((err: unknown) => env.print(`${label} teardown: ${(err as Error).message}`)),
    ]);
    result.seconds = round((Date.now() - started) / 1000, 1);
  }
  return result;
}

/**
 * Overload: publish at twice the capacity for the overload duration, stop, drain; then make every
 * client register again so push-center replays the inboxes, and count what is neither delivered nor
 * waiting in an inbox: lost.
 */
async function runOverload(env: RunEnv, plan: TargetPlan, run: TargetRun, result: TargetResult): Promise<void> {
  let capacity = plan.capacity?.();
  if (!capacity || !(capacity.value > 0)) {
    const probe = await run.phase({
      name: 'capacity', mode: 'max', rate: 0, warmupS: env.options.warmupS, measureS: Math.min(env.options.durationS, 10),
      drainTimeoutS: 30, quietMs: 1000,
    });
    result.phases.push(probe);
    capacity = { value: probe.deliveredPerS, source: 'measured by this scenario (capacity phase)' };
  }
  if (!(capacity.value > 0)) throw new Error('capacity could not be measured');
  const T = env.options.overloadDurationS;
  const before = await run.figures();
  const overload = await run.phase({
    name: 'overload', mode: 'rate', rate: 2 * capacity.value, warmupS: 0, measureS: T,
    drainTimeoutS: 3 * T + 60, quietMs: 3000,
  });
  result.phases.push(overload);
  let reregistered: { ok: number; failed: number } | undefined;
  let after = await run.figures();
  // Resumed: the queue is drained; give the monitor (it checks every 500 ms) a moment to say so too.
  for (let i = 0; i < 20 && after?.paused; i++) {
    await sleep(250);
    after = await run.figures();
  }
  const waiting = (f: NodeFigures | undefined) =>
    f ? (f.inbox.stored ?? 0) - (f.inbox.replayed ?? 0) - (f.inbox.expired ?? 0) - (f.inbox.evicted ?? 0) : 0;
  const startWaiting = waiting(before);
  if (run.fleet && after && waiting(after) - startWaiting > 0) {
    env.print(`${run.label} replay    ${fmt(waiting(after) - startWaiting)} messages wait in inboxes: every client registers again`);
    reregistered = await run.fleet.reregister();
    await run.settle(60, 3000);
    after = await run.figures();
  }
  const uniqueAfter = run.stats.totals.unique;
  const published = overload.published;
  const uniqueDelivered = uniqueAfter - (run.phaseStartUnique ?? uniqueAfter);
  const inboxRemaining = after ? waiting(after) - startWaiting : 0;
  const d = (key: string) => (after?.inbox[key] ?? 0) - (before?.inbox[key] ?? 0);
  result.overload = {
    capacity: round(capacity.value),
    capacitySource: capacity.source,
    offeredRate: round(2 * capacity.value),
    publishedPerS: overload.publishedPerS,
    deliveredPerS: overload.deliveredPerS,
    throughputRatio: round(overload.deliveredPerS / capacity.value, 3),
    // Over the overload and its drain.
    rssMaxMB: overload.whole.rssMaxMB,
    pausedS: overload.whole.pausedS,
    backpressureEvents: overload.whole.backpressureEvents,
    pausedAndResumed: Object.values(overload.whole.backpressureEvents ?? {}).some((n) => n > 0) && (after?.paused ?? 1) === 0,
    published,
    uniqueDelivered,
    stored: d('stored'),
    replayed: d('replayed'),
    inboxRemaining,
    lost: published - uniqueDelivered - inboxRemaining,
    drainS: overload.drainS,
    nodeAlive: run.system.servers.every((child) => child.alive()),
    reregistered,
  };
  const o = result.overload;
  env.print(`${run.label} overload  offered ${fmt(o.offeredRate)}/s, published ${fmt(o.publishedPerS)}/s, delivered ` +
    `${fmt(o.deliveredPerS)}/s (${Math.round(o.throughputRatio * 100)} % of ${fmt(o.capacity)}/s), RSS max ${o.rssMaxMB} MB, ` +
    `paused ${o.pausedS ?? 'n/a'} s, lost ${o.lost} (published ${fmt(published)}, delivered ${fmt(uniqueDelivered)}, in inboxes ${inboxRemaining})`);
}

/** Session scenarios of systems fed from a RabbitMQ queue whose consumers can be frozen. */
export function backlogApplies(plan: Pick<TargetPlan, 'scenario'>, system: Pick<System, 'consumers' | 'queue'>): boolean {
  return backlogScenario(plan.scenario) && system.consumers.length > 0 && system.queue !== undefined;
}

/** The scenarios with a backlog phase (for the systems that consume from a queue). */
export function backlogScenario(scenario: ScenarioName): boolean {
  return scenario === 'reliable' || scenario === 'volatile';
}

/** How many messages the backlog phase publishes: twice the rate measured with the publisher, over the phase. */
export function backlogSize(maxRate: number, warmupS: number, measureS: number): number {
  return Math.min(BACKLOG_MAX_MESSAGES, Math.ceil(BACKLOG_RATE_FACTOR * maxRate * (warmupS + measureS + 1)));
}

/** Stops (SIGSTOP) or continues (SIGCONT) processes; one already gone is skipped. */
export function signalAll(children: readonly Child[], sig: 'SIGSTOP' | 'SIGCONT'): void {
  for (const child of children) {
    if (!child.alive()) continue;
    try {
      process.kill(child.pid, sig);
    } catch {
      // It exited meanwhile: the run's liveness checks report it.
    }
  }
}

/**
 * Seconds at half rate before its window opens. The maximum rate leaves work behind that is not the
 * half rate's: a full garbage collection of what it promoted, which holds push-center's event loop in
 * the first seconds at half rate (docs/BENCHMARKS.md, "Method").
 */
export function halfRateWarmupS(options: Pick<Options, 'quick'>): number {
  return options.quick ? 1 : 4;
}

/** The measuring side of one target: samplers, phases, drains. */
export class TargetRun {
  private sampler: NodeJS.Timeout | undefined;
  private scraper: NodeJS.Timeout | undefined;
  private latest: NodeFigures | undefined;
  private scraping = false;
  private rssNow: number | undefined;
  /** Largest RSS since the measured window opened, and since the phase started (drain included). */
  private rssMax = 0;
  private rssMaxPhase = 0;
  private pausedSeconds = 0;
  /** When `latest` was scraped. */
  private latestAt = 0;
  /** When the scrape that gave `latest` was sent. */
  private latestAskedAt = 0;
  private lastPausedAt = 0;
  /** Unique deliveries at the start of the current phase. */
  phaseStartUnique: number | undefined;
  /** Messages delivered per second over the last progress second. */
  private recentRate = 0;
  private pausedAtPhaseStart = 0;
  /** Longest event-loop delay the scrapes reported since the measured window opened (seconds). */
  private lagMax = 0;
  /** Windows measured outside `phase` (see trackRss): the largest RSS each saw. */
  private readonly rssTrackers = new Set<{ max: number }>();

  constructor(
    private readonly env: RunEnv,
    readonly plan: TargetPlan,
    readonly system: System,
    readonly stats: DeliveryStats,
    readonly fleet: ClientFleet | undefined,
    readonly label: string,
  ) {}

  startSampling(): void {
    this.sampler = setInterval(() => {
      this.rssNow = sumRss(this.system);
      if (this.rssNow !== undefined && this.rssNow > this.rssMax) this.rssMax = this.rssNow;
      if (this.rssNow !== undefined && this.rssNow > this.rssMaxPhase) this.rssMaxPhase = this.rssNow;
      for (const tracker of this.rssTrackers) if (this.rssNow !== undefined && this.rssNow > tracker.max) tracker.max = this.rssNow;
    }, 250);
    if (this.system.nodeUrls.length > 0) {
      this.lastPausedAt = Date.now();
      // Once a second: each scrape costs a node with thousands of sockets some event-loop time, and the
      // measurement should not cost it much more than Prometheus's far rarer scrapes do.
      this.scraper = setInterval(() => void this.scrape(), 1000);
    }
  }

  stopSampling(): void {
    clearInterval(this.sampler);
    clearInterval(this.scraper);
  }

  /** The largest RSS of the servers from now until `untrackRss` (bytes; sampled every 250 ms). */
  trackRss(): { max: number } {
    const tracker = { max: this.rssNow ?? 0 };
    this.rssTrackers.add(tracker);
    return tracker;
  }

  untrackRss(tracker: { max: number }): void {
    this.rssTrackers.delete(tracker);
  }

  /** The latest push-center figures, fresh. */
  async figures(): Promise<NodeFigures | undefined> {
    if (this.system.nodeUrls.length === 0) return undefined;
    await this.scrape();
    return this.latest;
  }

  /**
   * push-center's figures from a scrape sent after this call (`figures` may return the previous one while
   * a scrape is in flight); undefined without push-center or when none succeeds within 5 s.
   */
  async freshFigures(): Promise<NodeFigures | undefined> {
    if (this.system.nodeUrls.length === 0) return undefined;
    const asked = Date.now();
    while (Date.now() - asked < 5000) {
      await this.scrape();
      if (this.latestAskedAt >= asked) return this.latest;
      await sleep(20);
    }
    return undefined;
  }

  private async scrape(): Promise<void> {
    if (this.scraping) return;
    this.scraping = true;
    try {
      const askedAt = Date.now();
      const list = await Promise.all(this.system.nodeUrls.map(scrapeNode));
      const now = Date.now();
      this.latestAskedAt = askedAt;
      const figures = sumFigures(list);
      // Paused time: the gauge integrated over time, one sample per scrape.
      if (this.latest?.paused) this.pausedSeconds += (now - this.lastPausedAt) / 1000;
      this.lastPausedAt = now;
      this.latest = figures;
      this.latestAt = now;
      this.lagMax = Math.max(this.lagMax, figures.loopLagMaxSeconds);
    } catch {
      // A node busy or gone: the next scrape tells.
    } finally {
      this.scraping = false;
    }
  }

  /** Deliveries push-center accounted for otherwise (stored, dropped, expired, failed), cumulative. */
  private accountedElsewhere(): number {
    if (!this.latest) return 0;
    const d = this.latest.deliveries;
    return ['stored', 'dropped', 'expired', 'failed'].reduce((sum, outcome) => sum + outcomes(d, { target: 'session', outcome }), 0);
  }

  /**
   * In mode `max`, holds the publisher while the backlog is at its bound (so drains stay short): how many
   * more messages may be sent now, the tightest of the checks; undefined: nothing to bound.
   */
  private gate(phaseStart: { sent: number; unique: number; accounted: number }): (() => number) | undefined {
    const { system, plan, stats } = this;
    const group = plan.spec.target === 'group';
    const limits = group
      ? { min: GROUP_BACKLOG_MIN, max: Math.max(GROUP_BACKLOG_MIN, GROUP_BACKLOG_DELIVERIES / plan.fanout) }
      : SESSION_BACKLOG;
    const bound = () => Math.min(limits.max, Math.max(limits.min, this.recentRate * BACKLOG_S));
    // Each check: room left, in messages.
    const checks: Array<() => number> = [];
    const queue = system.queue;
    if (queue) checks.push(() => bound() - queue.depth);
    if (plan.spec.reliable && plan.clients > 0) {
      checks.push(() => bound() - ((system.publisher.sent() - phaseStart.sent) * plan.fanout -
        (stats.totals.unique - phaseStart.unique) - (this.accountedElsewhere() - phaseStart.accounted)) / plan.fanout);
    }
    if (system.processed() !== undefined) {
      checks.push(() => bound() - (system.publisher.sent() - (system.processed() ?? 0)));
    }
    return checks.length === 0 ? undefined : () => Math.min(...checks.map((check) => check()));
  }

  async phase(p: PhasePlan): Promise<PhaseResult> {
    const { system, stats, plan, env } = this;
    const fanout = plan.fanout;
    const figuresStart = await this.figures();
    const forwardedStart = system.forwarded();
    const start = {
      published: system.publisher.published(),
      failed: system.publisher.failed(),
      skipped: system.publisher.skipped(),
      snap: stats.snapshot(),
      accounted: this.accountedElsewhere(),
    };
    this.phaseStartUnique = start.snap.unique;
    this.pausedAtPhaseStart = this.pausedSeconds;
    this.rssMaxPhase = this.rssNow ?? 0;
    const timeline: TimelinePoint[] = [];
    const began = Date.now();
    system.queue?.resetMaxDepth();
    let tick = { at: Date.now(), published: start.published, snap: start.snap };
    let backlog: PhaseResult['backlog'];
    if (p.mode === 'backlog') {
      const filled = await this.fillBacklog(p, (label, s) => (tick = this.progress(label, s, 0, tick, timeline, began)));
      backlog = { ...filled, ranOutAfterS: undefined };
      env.print(`${this.label} ${p.name.padEnd(9)} ${fmt(filled.messages)} messages in the queue (${filled.fillS} s to publish): ` +
        `consumers thawed; ${p.warmupS} s warm-up, ${p.measureS} s measured while the queue lasts`);
    } else {
      system.publisher.start({
        mode: p.mode,
        rate: p.rate,
        gate: this.gate({ sent: system.publisher.sent(), unique: start.snap.unique, accounted: start.accounted }),
      });
      const rateText = p.mode === 'rate' ? ` at ${fmt(p.rate)}/s` : ' as fast as possible';
      env.print(`${this.label} ${p.name.padEnd(9)} publishing${rateText}: ${p.warmupS} s warm-up, ${p.measureS} s measured`);
    }
    // A backlog phase's window closes early once the queue has run dry: from then on the consumers wait.
    const ranDry = () => p.mode === 'backlog' && system.queue !== undefined && system.queue.depth === 0;
    let windowOpenedAt = 0;
    const everySecond = async (phaseLabel: string, seconds: number) => {
      for (let s = 1; s <= seconds && !env.aborted(); s++) {
        while (Date.now() < tick.at + 1000) {
          await sleep(Math.min(100, tick.at + 1000 - Date.now()));
          if (ranDry()) break;
        }
        if (ranDry()) {
          if (backlog) backlog.ranOutAfterS = windowOpenedAt > 0 ? round((Date.now() - windowOpenedAt) / 1000, 1) : 0;
          break;
        }
        tick = this.progress(phaseLabel, s, seconds, tick, timeline, began);
        this.assertAlive();
      }
    };
    await everySecond('warmup', p.warmupS);
    // The measured window.
    const m0 = { at: Date.now(), published: system.publisher.published(), snap: stats.snapshot(), paused: this.pausedSeconds };
    windowOpenedAt = m0.at;
    const maxTracker = stats.trackMax();
    const cpu0 = this.cpuNow();
    this.rssMax = this.rssNow ?? 0;
    const figuresM0 = this.latest;
    const figuresM0At = this.latestAt;
    this.lagMax = 0;
    await everySecond(p.name, p.measureS);
    const lagMax = this.lagMax;
    const m1 = { at: Date.now(), published: system.publisher.published(), snap: stats.snapshot(), paused: this.pausedSeconds };
    const cpu1 = this.cpuNow();
    const figuresM1 = this.latest;
    const figuresM1At = this.latestAt;
    stats.untrack(maxTracker);
    const rssMaxMeasured = this.rssMax;
    // Stop and drain.
    await system.publisher.stop();
    const drainStart = Date.now();
    const drained = await this.drain(p, start, tick, timeline, began);
    const drainS = round((Date.now() - drainStart) / 1000, 1);
    const end = stats.snapshot();
    const figuresEnd = await this.figures();
    const forwardedEnd = system.forwarded();

    const seconds = (m1.at - m0.at) / 1000;
    // A window under a second (a backlog that ran dry in the warm-up) measures nothing.
    const deliveries = seconds >= 1 ? (m1.snap.unique - m0.snap.unique) / seconds : NaN;
    const published = system.publisher.published() - start.published;
    const expectedDeliveries = published * fanout;
    const unique = end.unique - start.snap.unique;
    const pcDeliveries = figuresStart && figuresEnd ? delta(figuresEnd.deliveries, figuresStart.deliveries) : undefined;
    // A push-center counter of seconds over the scrapes around the window: the share of time, per node.
    const share = figuresM0 && figuresM1 && figuresM1At > figuresM0At
      ? (key: 'loopBusySeconds' | 'gcSeconds') =>
        round((figuresM1[key] - figuresM0[key]) / ((figuresM1At - figuresM0At) / 1000) / system.nodeUrls.length, 2)
      : undefined;
    const result: PhaseResult = {
      name: p.name,
      mode: p.mode,
      targetRate: p.mode === 'rate' ? round(p.rate) : undefined,
      warmupS: p.warmupS,
      measureS: round(seconds, 2),
      publishedPerS: round((m1.published - m0.published) / seconds),
      deliveredPerS: round(deliveries / fanout, fanout > 1 ? 2 : 0),
      deliveriesPerS: round(deliveries),
      latency: m1.snap.hist.since(m0.snap.hist, maxTracker.max).summary(),
      published,
      publishFailures: system.publisher.failed() - start.failed,
      publisherSkipped: system.publisher.skipped() - start.skipped,
      expectedDeliveries,
      received: end.received - start.snap.received,
      unique,
      duplicates: end.received - start.snap.received - unique,
      acked: end.acked - start.snap.acked,
      notDelivered: expectedDeliveries - unique,
      drainS,
      drained,
      rssMaxMB: rssMaxMeasured ? round(rssMaxMeasured / MB, 1) : undefined,
      rssEndMB: this.rssNow ? round(this.rssNow / MB, 1) : undefined,
      pausedS: system.nodeUrls.length > 0 ? round(m1.paused - m0.paused, 1) : undefined,
      backpressureEvents: figuresM0 && figuresM1 ? delta(figuresM1.backpressure, figuresM0.backpressure) : undefined,
      whole: {
        rssMaxMB: this.rssMaxPhase ? round(this.rssMaxPhase / MB, 1) : undefined,
        pausedS: system.nodeUrls.length > 0 ? round(this.pausedSeconds - this.pausedAtPhaseStart, 1) : undefined,
        backpressureEvents: figuresStart && figuresEnd ? delta(figuresEnd.backpressure, figuresStart.backpressure) : undefined,
      },
      queueDepthMax: system.queue?.maxDepth,
      clientDisconnects: end.disconnects - start.snap.disconnects,
      cpu: cpuShare(cpu0, cpu1),
      loopBusy: share?.('loopBusySeconds'),
      gc: share && figuresM0 && figuresM1 ? {
        share: share('gcSeconds'),
        over100ms: figuresM1.gcOver100ms - figuresM0.gcOver100ms,
      } : undefined,
      loopLagMaxMs: system.nodeUrls.length > 0 ? round(lagMax * 1000) : undefined,
      backlog,
      pushCenter: pcDeliveries && figuresStart && figuresEnd ? {
        deliveries: pcDeliveries,
        inbox: delta(figuresEnd.inbox, figuresStart.inbox),
        stored: outcomes(pcDeliveries, { outcome: 'stored' }),
        forwarded: forwardedStart !== undefined && forwardedEnd !== undefined
          ? forwardedEnd - forwardedStart
          : outcomes(pcDeliveries, { outcome: 'forwarded' }),
      } : undefined,
      timeline,
    };
    const l = result.latency;
    const cpuText = (result.cpu ? `, CPU server ${result.cpu.server} % clients ${result.cpu.clients} % rabbitmq ${result.cpu.rabbitmq} %` +
      (result.cpu.steal ? `, stolen by the hypervisor ${result.cpu.steal} %` : '') : '') +
      (result.loopBusy !== undefined ? `, push-center event loop busy ${Math.round(result.loopBusy * 100)} %` : '') +
      (result.gc ? `, GC ${Math.round(result.gc.share * 100)} % (${result.gc.over100ms} over 100 ms)` : '') +
      (result.loopLagMaxMs !== undefined ? `, longest loop delay ${result.loopLagMaxMs} ms` : '');
    env.print(`${this.label} ${p.name.padEnd(9)} done: ${fmt(result.deliveredPerS)} msgs/s` +
      (fanout > 1 ? ` (${fmt(result.deliveriesPerS)} deliveries/s)` : '') +
      `, latency p50 ${l.p50} / p99 ${l.p99} / max ${l.max} ms, ${fmt(published)} published, ${fmt(unique)} delivered` +
      (result.notDelivered ? `, ${fmt(result.notDelivered)} not delivered` : '') +
      (result.duplicates ? `, ${fmt(result.duplicates)} duplicates` : '') +
      (result.publisherSkipped ? `, the publisher fell behind and skipped ${fmt(result.publisherSkipped)} sends` : '') +
      (backlog?.ranOutAfterS !== undefined ? `, the queue ran dry ${backlog.ranOutAfterS} s into the window` : '') +
      `, drained in ${drainS} s${drained ? '' : ' (timed out)'}${cpuText}`);
    return result;
  }

  /**
   * The backlog phase's start: freezes the consumers (SIGSTOP), publishes as fast as the publisher can
   * until the queue holds `backlogSize` messages or BACKLOG_FILL_MAX_S have passed, then thaws them. The
   * consumers are thawed however the fill ends (an error, Ctrl-C); only a bench killed with SIGKILL
   * meanwhile leaves them stopped, since a stopped process cannot notice that its parent is gone.
   */
  private async fillBacklog(p: PhasePlan, tick: (label: string, second: number) => void): Promise<{ messages: number; fillS: number }> {
    const { system, env } = this;
    const wanted = backlogSize(p.rate, p.warmupS, p.measureS);
    const sent0 = system.publisher.sent();
    const published0 = system.publisher.published();
    const began = Date.now();
    env.print(`${this.label} ${p.name.padEnd(9)} consumers frozen (SIGSTOP); filling the queue with up to ${fmt(wanted)} messages`);
    signalAll(system.consumers, 'SIGSTOP');
    try {
      system.publisher.start({ mode: 'max', rate: 0, gate: () => wanted - (system.publisher.sent() - sent0) });
      let second = 0;
      while (!env.aborted() && system.publisher.published() - published0 < wanted && Date.now() - began < BACKLOG_FILL_MAX_S * 1000) {
        await sleep(100);
        if (Date.now() - began >= (second + 1) * 1000) tick('fill', ++second);
      }
      await system.publisher.stop();
      // The queue's depth is polled every 100 ms: let it see the last confirms.
      await sleep(250);
    } finally {
      signalAll(system.consumers, 'SIGCONT');
    }
    return { messages: system.publisher.published() - published0, fillS: round((Date.now() - began) / 1000, 1) };
  }

  /** After an overload: wait until deliveries stop. */
  async settle(timeoutS: number, quietMs: number): Promise<void> {
    const deadline = Date.now() + timeoutS * 1000;
    let last = this.stats.totals.received;
    let quietSince = Date.now();
    while (Date.now() < deadline && !this.env.aborted()) {
      await sleep(200);
      if (this.stats.totals.received !== last) {
        last = this.stats.totals.received;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= quietMs) {
        return;
      }
    }
  }

  private async drain(
    p: PhasePlan,
    start: { published: number; snap: Snapshot; accounted: number },
    firstTick: { at: number; published: number; snap: Snapshot },
    timeline: TimelinePoint[],
    began: number,
  ): Promise<boolean> {
    const { system, stats, plan } = this;
    const deadline = Date.now() + p.drainTimeoutS * 1000;
    const complete = plan.spec.reliable && plan.spec.target === 'session';
    let lastReceived = stats.totals.received;
    let quietSince = Date.now();
    let tick = firstTick;
    let second = 0;
    while (!this.env.aborted()) {
      await sleep(100);
      if (Date.now() - tick.at >= 1000) tick = this.progress('drain', ++second, 0, tick, timeline, began);
      this.assertAlive();
      if (stats.totals.received !== lastReceived) {
        lastReceived = stats.totals.received;
        quietSince = Date.now();
      }
      if (system.nodeUrls.length > 0) await this.scrape();
      const queueEmpty = !system.queue || system.queue.depth === 0;
      const idle = system.nodeUrls.length === 0 || this.latest?.inflight === 0;
      const expected = (system.publisher.published() - start.published) * plan.fanout;
      const accounted = stats.totals.unique - start.snap.unique + this.accountedElsewhere() - start.accounted;
      if (queueEmpty && idle && complete && accounted >= expected) return true;
      if (queueEmpty && idle && Date.now() - quietSince >= p.quietMs) return true;
      if (Date.now() > deadline) return false;
    }
    return false;
  }

  /** One progress line (`extra` at its end); returns the new reference point. */
  progress(
    phase: string,
    second: number,
    of: number,
    previous: { at: number; published: number; snap: Snapshot },
    timeline: TimelinePoint[],
    began: number,
    extra = '',
  ): { at: number; published: number; snap: Snapshot } {
    const now = { at: Date.now(), published: this.system.publisher.published(), snap: this.stats.snapshot() };
    const seconds = Math.max(0.001, (now.at - previous.at) / 1000);
    const published = (now.published - previous.published) / seconds;
    const delivered = (now.snap.unique - previous.snap.unique) / seconds / this.plan.fanout;
    this.recentRate = delivered;
    const recent: Histogram = now.snap.hist.since(previous.snap.hist, 0);
    const p99 = recent.percentile(0.99);
    const rss = this.rssNow === undefined ? NaN : this.rssNow / MB;
    const queue = this.system.queue?.depth;
    const paused = this.system.nodeUrls.length > 0 ? this.pausedSeconds - this.pausedAtPhaseStart : undefined;
    const inflight = this.system.nodeUrls.length > 0 ? this.latest?.inflight : undefined;
    const lagMs = this.system.nodeUrls.length > 0 && this.latest ? round(this.latest.loopLagMaxSeconds * 1000) : undefined;
    timeline.push({
      t: round((now.at - began) / 1000, 1), phase, publishedPerS: round(published), deliveredPerS: round(delivered, 1),
      p99: round(p99, 1), rssMB: round(rss, 1), queue: queue ?? 0, inflight, paused: round(paused ?? 0, 1), loopLagMaxMs: lagMs,
    });
    const clock = of > 0 ? `${second}/${of}s` : `${second}s`;
    this.env.print(`${this.label} ${phase.padEnd(9)} ${clock.padStart(7)}  pub ${fmt(published).padStart(7)}/s  ` +
      `deliv ${fmt(delivered).padStart(7)}/s  total ${fmt(now.snap.unique).padStart(9)}  ` +
      `p99 ${Number.isFinite(p99) ? `${Math.ceil(p99)} ms` : '—'}  RSS ${Number.isFinite(rss) ? Math.round(rss) : '—'} MB` +
      (queue !== undefined ? `  queue ${fmt(queue)}` : '') +
      (inflight !== undefined ? `  inflight ${fmt(inflight)}` : '') +
      (paused !== undefined ? `  paused ${paused.toFixed(1)} s` : '') +
      (lagMs !== undefined ? `  loop delay ${lagMs} ms` : '') +
      (this.plan.clients > 0 && now.snap.disconnects > 0 ? `  disconnects ${fmt(now.snap.disconnects)}` : '') + extra);
    return now;
  }

  assertAlive(): void {
    const dead = [...this.system.servers, ...this.system.helpers].find((child) => !child.alive());
    if (dead) throw new Error(`${dead.name} exited during the run (${dead.exitStatus() ?? 'status unknown'})`);
  }

  cpuNow(): CpuSample {
    const sum = (pids: number[]) => pids.reduce((total, pid) => total + (cpuSeconds(pid) ?? 0), 0);
    const usage = process.cpuUsage();
    return {
      at: Date.now(),
      server: sum(this.system.servers.map((child) => child.pid)),
      helpers: sum(this.system.helpers.map((child) => child.pid)),
      clients: sum(this.fleet?.pids() ?? []),
      rabbitmq: sum(this.env.servicePids.rabbitmq),
      redis: sum(this.env.servicePids.redis),
      bench: (usage.user + usage.system) / 1e6,
      steal: stolenSeconds(),
    };
  }
}

/** CPU seconds so far of each party, at a moment (ms since epoch). */
export interface CpuSample extends Required<Omit<CpuShare, 'steal'>> {
  at: number;
  steal: number | undefined;
}

export function cpuShare(a: CpuSample, b: CpuSample): CpuShare {
  const seconds = (b.at - a.at) / 1000;
  // A process that exited meanwhile drops out of the sum: never report less than nothing.
  const share = (from: number, to: number) => Math.max(0, round(((to - from) / seconds) * 100));
  const pct = (key: Exclude<keyof CpuSample, 'at' | 'steal'>) => share(a[key], b[key]);
  const shares: CpuShare = { server: pct('server'), helpers: pct('helpers'), clients: pct('clients'), rabbitmq: pct('rabbitmq'), redis: pct('redis'), bench: pct('bench') };
  if (a.steal !== undefined && b.steal !== undefined) shares.steal = share(a.steal, b.steal);
  return shares;
}

function sumRss(system: System): number | undefined {
  let total = 0;
  for (const child of system.servers) {
    const rss = rssOf(child.pid);
    if (rss === undefined) return undefined;
    total += rss;
  }
  return total;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

export function round(value: number, digits = 0): number {
  if (!Number.isFinite(value)) return NaN;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function fmt(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return Math.round(value).toLocaleString('en-US');
}
