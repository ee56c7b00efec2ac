import { delta } from './metrics.js';
import type { Publisher } from './publishers.js';
import type { Delivery, NoisyResult, NoisyWindow, TargetResult, TimelinePoint } from './results.js';
import { cpuShare, fmt, MB, round, sleep, type CpuSample, type RunEnv, type TargetRun } from './runner.js';
import type { MaxTracker, Snapshot } from './stats.js';

/**
 * The noisy neighbour (scenario `noisy`): while the other sessions each receive a steady trickle of
 * reliable messages, one session is flooded with a burst of them, published as fast as the publisher
 * can. Measured: the others' latency before and during the flood (did the flood stall them?), the
 * flooded session's drain time, order and losses, and everyone's losses and duplicates.
 */

export interface NoisyPlan {
  /** Messages in the burst. */
  flood: number;
  /** Messages per second, in total across the other sessions. */
  rate: number;
  /** The flooded session (its client's arrivals are traced one by one). */
  floodSession: string;
  /** The other sessions. */
  others: number;
}

/** Once the burst is published and nothing more arrives for the flooded session for this long, it is over. */
export const FLOOD_QUIET_MS = 5000;
/**
 * The others' messages published before the flood's last arrival, queued behind it, still count as
 * "during": once the flood is complete, the window waits for them this long at most.
 */
export const CATCH_UP_MS = 10_000;
/** The others' drain once the steady publisher stops. */
const OTHERS_DRAIN_TIMEOUT_S = 60;
const OTHERS_QUIET_MS = 3000;

/** How long the flood may take to arrive: a minute, or 4 ms a message if longer (200 s for 50,000). */
export function floodTimeoutS(flood: number): number {
  return Math.max(60, Math.ceil(flood / 250));
}

/**
 * What a traced session's arrivals tell, counted as they come (records: flat [sequence number, received
 * at (ms), ...], growing): distinct messages, duplicates, and messages that arrived after one published
 * later than them (sequence numbers grow in publish order).
 */
export class ArrivalTally {
  received = 0;
  unique = 0;
  outOfOrder = 0;
  /** When the latest first arrival of a message came (ms). */
  lastAt: number | undefined;
  private readonly seen = new Set<number>();
  private highest = Number.NEGATIVE_INFINITY;
  private cursor = 0;

  /** Takes the records added since the previous call. */
  update(records: readonly number[]): this {
    for (; this.cursor + 1 < records.length; this.cursor += 2) {
      const seq = records[this.cursor]!;
      const at = records[this.cursor + 1]!;
      this.received += 1;
      if (this.seen.has(seq)) continue;
      this.seen.add(seq);
      this.unique += 1;
      if (seq < this.highest) this.outOfOrder += 1;
      else this.highest = seq;
      if (this.lastAt === undefined || at > this.lastAt) this.lastAt = at;
    }
    return this;
  }

  get duplicates(): number {
    return this.received - this.unique;
  }
}

/** Published against received: what never arrived (never below zero), and the duplicates. */
export function deliveryOf(published: number, publishFailures: number, received: number, unique: number): Delivery {
  return { published, publishFailures, received, unique, duplicates: received - unique, lost: Math.max(0, published - unique) };
}

/** Seconds from the burst's first publish to the last first arrival; undefined when nothing arrived. */
export function drainSeconds(startedAt: number, lastAt: number | undefined): number | undefined {
  return lastAt === undefined ? undefined : round((lastAt - startedAt) / 1000, 2);
}

/** Where the wait for the flood stands, every 100 ms. */
export interface FloodWatch {
  /** Every message of the burst is published (confirmed or refused by RabbitMQ). */
  published: boolean;
  floodUnique: number;
  floodPublished: number;
  /** The others' distinct messages, and the steady messages published until the flood's latest arrival. */
  othersUnique: number;
  othersTarget: number;
  /** Since the flood's latest arrival (since the burst began, before the first). */
  quietMs: number;
  elapsedMs: number;
  timeoutMs: number;
}

/**
 * Whether the wait is over, and why: the burst all received and the others caught up with what was
 * published meanwhile (or CATCH_UP_MS passed); nothing more arrived for FLOOD_QUIET_MS after the burst
 * was published; or the time is up.
 */
export function floodEnd(w: FloodWatch): 'complete' | 'quiet' | 'timeout' | undefined {
  if (w.published && w.floodUnique >= w.floodPublished) {
    if (w.othersUnique >= w.othersTarget || w.quietMs >= CATCH_UP_MS) return 'complete';
  } else if (w.published && w.quietMs >= FLOOD_QUIET_MS) {
    return 'quiet';
  }
  return w.elapsedMs >= w.timeoutMs ? 'timeout' : undefined;
}

interface WindowEdge {
  snap: Snapshot;
  cpu: CpuSample;
  published: number;
}

/** What a window tracks from its start: the largest latency and RSS seen since. */
interface Trackers {
  latency: MaxTracker;
  rss: { max: number };
}

/** A window's end: where it was, the largest values until then, and the trackers opened there. */
interface Mark {
  edge: WindowEdge;
  latencyMax: number;
  rssMax: number;
  since: Trackers;
}

/**
 * A window over the other sessions. `mark` moves its end to now; `close` measures it up to the last mark
 * (or now, if never marked); `closeAndFollow` also opens the next window where this one ended.
 */
export class OthersWindow {
  private readonly start: WindowEdge;
  /** The last mark, and what has been tracked since it (for the window that follows). */
  private end: Mark | undefined;

  constructor(private readonly run: TargetRun, private readonly trackers = track(run), start?: WindowEdge) {
    this.start = start ?? edge(run);
  }

  get startedAt(): number {
    return this.start.snap.at;
  }

  mark(): void {
    if (this.end) untrack(this.run, this.end.since);
    this.end = { edge: edge(this.run), latencyMax: this.trackers.latency.max, rssMax: this.trackers.rss.max, since: track(this.run) };
  }

  close(): NoisyWindow {
    const { window, end } = this.finish();
    untrack(this.run, end.since);
    return window;
  }

  closeAndFollow(): [NoisyWindow, OthersWindow] {
    const { window, end } = this.finish();
    return [window, new OthersWindow(this.run, end.since, end.edge)];
  }

  private finish(): { window: NoisyWindow; end: Mark } {
    if (!this.end) this.mark();
    const end = this.end!;
    untrack(this.run, this.trackers);
    const seconds = Math.max(0.001, (end.edge.snap.at - this.start.snap.at) / 1000);
    const window: NoisyWindow = {
      seconds: round(seconds, 2),
      publishedPerS: round((end.edge.published - this.start.published) / seconds),
      deliveredPerS: round((end.edge.snap.unique - this.start.snap.unique) / seconds),
      latency: end.edge.snap.hist.since(this.start.snap.hist, end.latencyMax).summary(),
      cpu: cpuShare(this.start.cpu, end.edge.cpu),
      rssMaxMB: end.rssMax ? round(end.rssMax / MB, 1) : undefined,
    };
    return { window, end };
  }
}

function edge(run: TargetRun): WindowEdge {
  return { snap: run.stats.snapshot(), cpu: run.cpuNow(), published: run.system.publisher.published() };
}

function track(run: TargetRun): Trackers {
  return { latency: run.stats.trackMax(), rss: run.trackRss() };
}

function untrack(run: TargetRun, trackers: Trackers): void {
  run.stats.untrack(trackers.latency);
  run.untrackRss(trackers.rss);
}

function latencyText(w: NoisyWindow): string {
  const l = w.latency;
  return `p50 ${l.p50} / p99 ${l.p99} / max ${l.max} ms`;
}

/**
 * Runs the scenario on a started push-center with its clients connected: the steady rate alone (warm-up,
 * then the baseline window), then the burst on top, until the flooded session has received it all (or
 * nothing more arrives, or the time is up), then the steady rate alone again (the after window); then
 * the steady publisher stops and the others drain.
 */
export async function runNoisy(env: RunEnv, plan: NoisyPlan, run: TargetRun, result: TargetResult): Promise<void> {
  const { system, stats, fleet, label } = run;
  if (!fleet || !system.anotherPublisher) throw new Error(`the noisy scenario needs push-center and clients, not ${system.name}`);
  if (result.connect?.failed) result.notes.push(`${result.connect.failed} clients failed to connect; the flooded session may be among them`);
  const timeline: TimelinePoint[] = [];
  const began = Date.now();
  const steady = system.publisher;
  const start = { published: steady.published(), failed: steady.failed(), skipped: steady.skipped(), snap: stats.snapshot() };
  let tick: { at: number; published: number; snap: Snapshot } = { at: Date.now(), published: start.published, snap: start.snap };
  const progress = (phase: string, second: number, of: number, extra?: string) => {
    tick = run.progress(phase, second, of, tick, timeline, began, extra);
    run.assertAlive();
  };
  const flood = await system.anotherPublisher(() => ({ session: plan.floodSession }));
  try {
    steady.start({ mode: 'rate', rate: plan.rate });
    env.print(`${label} baseline  publishing at ${fmt(plan.rate)}/s to ${fmt(plan.others)} sessions: ` +
      `${env.options.warmupS} s warm-up, ${env.options.durationS} s measured`);
    const everySecond = async (phase: string, seconds: number) => {
      for (let s = 1; s <= seconds && !env.aborted(); s++) {
        await sleep(tick.at + 1000 - Date.now());
        progress(phase, s, seconds);
      }
    };
    await everySecond('warmup', env.options.warmupS);
    const baselineWindow = new OthersWindow(run);
    await everySecond('baseline', env.options.durationS);
    const baseline = baselineWindow.close();
    env.print(`${label} baseline  done: the others got ${fmt(baseline.deliveredPerS)} msgs/s, latency ${latencyText(baseline)}`);

    const figuresBefore = await run.freshFigures();
    const tally = new ArrivalTally();
    const duringWindow = new OthersWindow(run);
    const floodStart = Date.now();
    flood.start({ mode: 'max', rate: 0, gate: () => plan.flood - flood.sent() });
    env.print(`${label} flood     ${fmt(plan.flood)} messages to ${plan.floodSession} as fast as the publisher can, ` +
      `the steady rate going on`);
    const end = await waitForFlood(env, {
      plan, flood, floodStart, window: duringWindow,
      arrivals: () => tally.update(fleet.arrivals.get(plan.floodSession) ?? []),
      steadyPublished: () => steady.published() - start.published,
      othersUnique: () => stats.totals.unique - start.snap.unique,
      progress: (second, extra) => progress('flood', second, 0, extra),
    });
    const [during, afterWindow] = duringWindow.closeAndFollow();
    await flood.stop();
    // The steady rate alone again: at least the baseline's length after the "during" window ended.
    const afterS = Math.max(0, Math.ceil((afterWindow.startedAt + env.options.durationS * 1000 - Date.now()) / 1000));
    await everySecond('after', afterS);
    const after = afterWindow.close();

    await steady.stop();
    await drainOthers(env, run, start, (second) => progress('drain', second, 0));
    const figuresAfter = await run.freshFigures();
    tally.update(fleet.arrivals.get(plan.floodSession) ?? []);
    const othersDelivery = deliveryOf(steady.published() - start.published, steady.failed() - start.failed,
      stats.totals.received - start.snap.received, stats.totals.unique - start.snap.unique);
    const inbox = figuresBefore && figuresAfter ? delta(figuresAfter.inbox, figuresBefore.inbox) : undefined;
    const deadLetters = figuresBefore && figuresAfter ? delta(figuresAfter.deadLetters, figuresBefore.deadLetters) : undefined;
    result.noisy = {
      floodSession: plan.floodSession,
      flood: plan.flood,
      others: plan.others,
      steadyRate: plan.rate,
      steadySkipped: steady.skipped() - start.skipped,
      baseline,
      during,
      after,
      flooded: {
        ...deliveryOf(flood.published(), flood.failed(), tally.received, tally.unique),
        publishS: end.publishS,
        drainS: drainSeconds(floodStart, tally.lastAt),
        complete: tally.unique >= flood.published(),
        end: end.reason,
        outOfOrder: tally.outOfOrder,
      },
      othersDelivery,
      inbox,
      deadLetters,
      timeline,
    };
    const f = result.noisy.flooded;
    env.print(`${label} flood     done (${end.reason}): published in ${f.publishS ?? '—'} s, ${fmt(f.unique)} of ${fmt(f.published)} received` +
      (f.drainS !== undefined ? `, the last ${f.drainS} s after the first publish` : '') +
      `, ${fmt(f.lost)} lost, ${fmt(f.duplicates)} duplicates, ${fmt(f.outOfOrder)} out of order` +
      (inbox ? `; push-center's inbox: ${counts(inbox) || 'not used'}` : '') +
      (deadLetters ? `; dead-lettered: ${counts(deadLetters) || 'none'}` : ''));
    env.print(`${label} others    before the flood ${latencyText(baseline)}; during it (${during.seconds} s) ${latencyText(during)}; ` +
      `after it (${after.seconds} s) ${latencyText(after)}; ` +
      `${fmt(othersDelivery.unique)} of ${fmt(othersDelivery.published)} received, ${fmt(othersDelivery.lost)} lost, ` +
      `${fmt(othersDelivery.duplicates)} duplicates`);
  } finally {
    await flood.close();
  }
}

/** `stored 2,000, replayed 1,900`. */
export function counts(record: Record<string, number>): string {
  return Object.entries(record).map(([key, n]) => `${key} ${fmt(n)}`).join(', ');
}

interface FloodWait {
  plan: NoisyPlan;
  flood: Publisher;
  floodStart: number;
  /** The "during" window: its end follows the flood (and the others catching up behind it). */
  window: OthersWindow;
  arrivals: () => ArrivalTally;
  steadyPublished: () => number;
  othersUnique: () => number;
  progress: (second: number, extra: string) => void;
}

/** Waits for the burst (see floodEnd), moving the window's end along while the flood goes on. */
async function waitForFlood(
  env: RunEnv,
  w: FloodWait,
): Promise<{ reason: NoisyResult['flooded']['end']; publishS: number | undefined }> {
  const { plan, flood, floodStart } = w;
  let publishedAt: number | undefined;
  let lastUnique = 0;
  let lastArrivalAt = floodStart;
  let othersTarget = w.steadyPublished();
  let second = 0;
  const publishS = () => (publishedAt === undefined ? undefined : round((publishedAt - floodStart) / 1000, 2));
  while (!env.aborted()) {
    await sleep(100);
    const tally = w.arrivals();
    const now = Date.now();
    if (publishedAt === undefined && flood.published() + flood.failed() >= plan.flood) publishedAt = now;
    if (now - floodStart >= (second + 1) * 1000) {
      w.progress(++second, `  flood ${fmt(tally.unique)}/${fmt(plan.flood)} received, ${fmt(flood.published())} published`);
    }
    const arrived = tally.unique !== lastUnique;
    if (arrived) {
      lastUnique = tally.unique;
      lastArrivalAt = now;
      othersTarget = w.steadyPublished();
    }
    const othersUnique = w.othersUnique();
    if (arrived || othersUnique < othersTarget) w.window.mark();
    const reason = floodEnd({
      published: publishedAt !== undefined, floodUnique: tally.unique, floodPublished: flood.published(),
      othersUnique, othersTarget, quietMs: now - lastArrivalAt, elapsedMs: now - floodStart, timeoutMs: floodTimeoutS(plan.flood) * 1000,
    });
    if (reason) return { reason, publishS: publishS() };
  }
  return { reason: 'aborted', publishS: publishS() };
}

/** Once the steady publisher stopped: until the others received all it published, or nothing more comes. */
async function drainOthers(
  env: RunEnv,
  run: TargetRun,
  start: { published: number; snap: Snapshot },
  progress: (second: number) => void,
): Promise<void> {
  const { stats, system } = run;
  const began = Date.now();
  let last = stats.totals.unique;
  let quietSince = Date.now();
  let second = 0;
  while (!env.aborted() && Date.now() - began < OTHERS_DRAIN_TIMEOUT_S * 1000) {
    await sleep(100);
    if (Date.now() - began >= (second + 1) * 1000) progress(++second);
    if (stats.totals.unique - start.snap.unique >= system.publisher.published() - start.published) return;
    if (stats.totals.unique !== last) {
      last = stats.totals.unique;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= OTHERS_QUIET_MS) {
      return;
    }
  }
}
