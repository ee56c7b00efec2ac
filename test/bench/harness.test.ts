import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Children, type Child } from '../../bench/lib/children.js';
import { parseOptions, UsageError, type Options } from '../../bench/lib/options.js';
import { Pacer } from '../../bench/lib/pacer.js';
import { cpuTable, markdown } from '../../bench/lib/report.js';
import { bucketOf } from '../../bench/lib/histogram.js';
import { nodeFigures, parsePrometheus, sumFigures } from '../../bench/lib/metrics.js';
import {
  ArrivalTally, CATCH_UP_MS, deliveryOf, drainSeconds, FLOOD_QUIET_MS, floodEnd, floodTimeoutS, OthersWindow, type FloodWatch,
} from '../../bench/lib/noisy.js';
import { backlogApplies, backlogSize, signalAll, type TargetRun } from '../../bench/lib/runner.js';
import { DeliveryStats } from '../../bench/lib/stats.js';
import type { NoisyResult, NoisyWindow, RunResults } from '../../bench/lib/results.js';

/**
 * The bench's own machinery where a mistake would silently change what is measured: the scheduling
 * policy of the load generator and of the systems under test, and the CPU budget it reports.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** The session id (field 6 of /proc/<pid>/stat; the command name before it may hold spaces). */
function sessionOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

function policyOf(pid: number | 'self'): number {
  const match = /^policy\s*:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/sched`, 'utf8'));
  if (!match) throw new Error(`no policy line in /proc/${pid}/sched`);
  return Number(match[1]);
}

function options(argv: string[]): Options {
  const parsed = parseOptions(argv);
  if (parsed === 'help') throw new Error('unexpected help');
  return parsed;
}

describe('--load-sched', () => {
  it('defaults to normal, takes batch, and refuses anything else by name', () => {
    expect(options([]).loadSched).toBe('normal');
    expect(options(['--load-sched', 'normal']).loadSched).toBe('normal');
    expect(options(['--load-sched=batch']).loadSched).toBe('batch');
    expect(() => options(['--load-sched', 'fifo'])).toThrow(UsageError);
    expect(() => options(['--load-sched', 'fifo'])).toThrow('--load-sched must be batch or normal');
  });
});

describe('--server-session', () => {
  it('defaults to own, takes shared, and refuses anything else by name', () => {
    expect(options([]).serverSession).toBe('own');
    expect(options(['--server-session', 'shared']).serverSession).toBe('shared');
    expect(() => options(['--server-session', 'none'])).toThrow('--server-session must be own or shared');
  });
});

describe('scheduling policy of the bench children', () => {
  const children = new Children();
  const dirs: string[] = [];
  afterEach(async () => {
    children.killAll();
    await children.allExited();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A child that says `ready` (IPC, or a line on stdout) and then waits to be killed. */
  function script(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-sched-'));
    dirs.push(dir);
    const file = path.join(dir, 'child.mjs');
    writeFileSync(file, "if (process.send) process.send('ready'); else console.log('ready');\nsetInterval(() => {}, 1000);\n");
    return file;
  }

  function ready(child: Child): Promise<void> {
    return new Promise((resolve, reject) => {
      child.process.once('message', () => resolve());
      child.process.stdout?.once('data', () => resolve());
      void child.exited.then(() => reject(new Error(`${child.name} exited: ${child.output()}`)));
    });
  }

  it('runs the load generator under SCHED_BATCH and the servers under the normal policy once asked', async () => {
    const file = script();
    children.scheduleLoadAsBatch();
    const load = children.fork('load', file, process.env, ROOT, 'load');
    const forkedServer = children.fork('peer', file, process.env, ROOT);
    const server = children.spawnNode('server', [file], process.env, ROOT);
    await Promise.all([ready(load), ready(forkedServer), ready(server)]);
    expect(policyOf(load.pid)).toBe(SCHED_BATCH);
    expect(policyOf(forkedServer.pid)).toBe(SCHED_OTHER);
    expect(policyOf(server.pid)).toBe(SCHED_OTHER);
  });

  it('leaves every child with the parent policy when not asked (--load-sched normal)', async () => {
    const file = script();
    const load = new Children().fork('load', file, process.env, ROOT, 'load');
    try {
      await ready(load);
      expect(policyOf(load.pid)).toBe(policyOf('self'));
    } finally {
      process.kill(load.pid, 'SIGKILL');
      await load.exited;
    }
  });

  it('starts every server in a session (autogroup) of its own and the load generator in the bench\'s', async () => {
    const file = script();
    const load = children.fork('load', file, process.env, ROOT, 'load');
    const forkedServer = children.fork('peer', file, process.env, ROOT);
    const server = children.spawnNode('server', [file], process.env, ROOT);
    await Promise.all([ready(load), ready(forkedServer), ready(server)]);
    const own = sessionOf('self');
    expect(sessionOf(load.pid)).toBe(own);
    expect(sessionOf(forkedServer.pid)).toBe(forkedServer.pid);
    expect(sessionOf(server.pid)).toBe(server.pid);
    expect(readFileSync(`/proc/${server.pid}/autogroup`, 'utf8')).not.toBe(readFileSync('/proc/self/autogroup', 'utf8'));
  });

  it('keeps servers in the bench\'s session when told so (--server-session shared)', async () => {
    const file = script();
    const shared = new Children();
    shared.serversOwnSession = false;
    const server = shared.spawnNode('server', [file], process.env, ROOT);
    try {
      await ready(server);
      expect(sessionOf(server.pid)).toBe(sessionOf('self'));
    } finally {
      shared.killAll();
      await shared.allExited();
    }
  });

  it('puts every thread of the calling process under SCHED_BATCH', () => {
    const code = [
      "import { readdirSync, readFileSync } from 'node:fs';",
      "import { scheduleSelfAsBatch } from './bench/lib/children.ts';",
      'const why = scheduleSelfAsBatch();',
      "const policies = readdirSync('/proc/self/task').map((tid) => /^policy\\s*:\\s*(\\d+)$/m.exec(readFileSync(`/proc/self/task/${tid}/sched`, 'utf8'))[1]);",
      'console.log(JSON.stringify({ why: why ?? null, policies }));',
    ].join('\n');
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const { why, policies } = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { why: string | null; policies: string[] };
    expect(why).toBeNull();
    expect(policies.length).toBeGreaterThan(1);
    expect(new Set(policies)).toEqual(new Set([String(SCHED_BATCH)]));
  });
});

describe('--shards', () => {
  it('is 1 by default, takes 1 to 64, and refuses anything else', () => {
    expect(options([]).shards).toBe(1);
    expect(options(['--shards', '4']).shards).toBe(4);
    expect(() => options(['--shards', '0'])).toThrow(/--shards/);
    expect(() => options(['--shards', 'four'])).toThrow(/--shards/);
  });
});

describe('backlog phase', () => {
  it('is on by default and --no-backlog turns it off', () => {
    expect(options([]).backlog).toBe(true);
    expect(options(['--no-backlog']).backlog).toBe(false);
  });

  it('applies to session scenarios of systems that consume from a queue, and to nothing else', () => {
    const queued = { consumers: [{} as Child], queue: {} as never };
    expect(backlogApplies({ scenario: 'reliable' }, queued)).toBe(true);
    expect(backlogApplies({ scenario: 'volatile' }, queued)).toBe(true);
    expect(backlogApplies({ scenario: 'group' }, queued)).toBe(false);
    expect(backlogApplies({ scenario: 'two-nodes' }, queued)).toBe(false);
    expect(backlogApplies({ scenario: 'reliable' }, { consumers: [], queue: {} as never })).toBe(false);
    expect(backlogApplies({ scenario: 'reliable' }, { consumers: [{} as Child], queue: undefined })).toBe(false);
  });

  it('publishes twice the rate measured with the publisher over warm-up, window and a second, bounded', () => {
    // 2 × 7,000/s × (2 + 10 + 1) s
    expect(backlogSize(7000, 2, 10)).toBe(182_000);
    expect(backlogSize(1e6, 2, 10)).toBe(400_000);
  });

  const children = new Children();
  afterEach(async () => {
    children.killAll();
    await children.allExited();
  });

  it('freezes a consumer process (it stops counting) and thaws it again', async () => {
    const child = children.spawnNode('counter', ['-e', 'let n = 0; setInterval(() => console.log(++n), 20);'], process.env, ROOT);
    const last = () => Number(child.output().trim().split('\n').at(-1) ?? 0);
    await vi.waitFor(() => expect(last()).toBeGreaterThan(2), { timeout: 5000 });
    signalAll([child], 'SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const frozenAt = last();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(last()).toBe(frozenAt);
    signalAll([child], 'SIGCONT');
    await vi.waitFor(() => expect(last()).toBeGreaterThan(frozenAt + 2), { timeout: 5000 });
  });

  it('tells how a child ended: its exit code, or the signal that killed it', async () => {
    const failing = children.spawnNode('failing', ['-e', 'process.exit(3)'], process.env, ROOT);
    const killed = children.spawnNode('killed', ['-e', 'setInterval(() => {}, 1000)'], process.env, ROOT);
    expect(killed.exitStatus()).toBeUndefined();
    await failing.exited;
    expect(failing.exitStatus()).toBe('exit code 3');
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    expect(killed.exitStatus()).toBe('signal SIGKILL');
  });

  it('reports the full-queue rate beside the one with the publisher, and says when the queue ran dry', () => {
    const phase = (name: string, deliveredPerS: number, backlog?: object) => ({
      name, deliveredPerS, deliveriesPerS: deliveredPerS, latency: { p50: 1, p99: 2, max: 3 }, published: 0, duplicates: 0,
      notDelivered: 0, clientDisconnects: 0, cpu: { server: 50, helpers: 0, clients: 20, rabbitmq: 30, redis: 0, bench: 0 }, backlog,
    });
    const results = {
      startedAt: '2026-12-01T08:00:00Z', aborted: false, command: 'npm run bench', git: { commit: 'abc', dirty: false },
      machine: { cpuModel: 'cpu', cores: 2, memoryGiB: 24, os: 'linux', loadAverageAtStart: [0], loadAverageAtEnd: [0] },
      versions: { node: 'v20', rabbitmq: '3', redis: '7' },
      settings: { clients: 10_000, workers: 4, durationS: 10, halfRateDurationS: 3, overloadDurationS: 60, prefetch: 200, payloadBytes: 200, persistent: true, server: 'dist', quick: false, serverEnv: {} },
      targets: [
        { scenario: 'reliable', kind: 'push-center', system: 'push-center', notes: [], phases: [phase('max', 7000), phase('backlog', 16_000, { messages: 1, fillS: 1, ranOutAfterS: undefined })] },
        { scenario: 'reliable', kind: 'rabbitmq', system: 'RabbitMQ consume+ack', notes: [], phases: [phase('max', 18_000), phase('backlog', 26_000, { messages: 1, fillS: 1, ranOutAfterS: 6.5 })] },
      ],
    } as unknown as RunResults;
    const text = markdown(results);
    expect(text).toMatch(/\| push-center +\| +7,000 \| +16,000 \|/);
    expect(text).toContain('26,000 (dry after 6.5 s)');
    expect(text).toContain('| push-center, full queue');
    expect(text).toContain('Reliable 7,000 msgs/s with the publisher running: bar 15,000 ❌, goal 20,000 ❌; ' +
      '16,000 msgs/s from a full queue: bar 15,000 ✅, goal 20,000 ❌');
  });
});

describe('CPU budget table', () => {
  it('gives each party its share and its µs of CPU per delivered message, and their sum', () => {
    const phase = { name: 'max', deliveredPerS: 5_000, cpu: { server: 60, helpers: 5, clients: 30, rabbitmq: 70, redis: 1, bench: 12, steal: 9 } };
    const results = {
      targets: [
        { scenario: 'reliable', system: 'push-center', phases: [phase] },
        { scenario: 'reliable', system: 'no cpu', phases: [{ name: 'max', deliveredPerS: 100, cpu: undefined }] },
        { scenario: 'reliable', system: 'older results', phases: [{ ...phase, cpu: { ...phase.cpu, steal: undefined } }] },
        { scenario: 'volatile', system: 'elsewhere', phases: [phase] },
      ],
    } as unknown as RunResults;
    const rows = cpuTable(results, 'reliable');
    expect(rows).toHaveLength(4);
    const cells = (row: string) => row.split('|').slice(1, -1).map((cell) => cell.trim());
    // 65 % of a core over 5,000 messages a second is 130 µs each; all parties: 178 % → 356 µs; the
    // hypervisor's share is machine-wide, not a party's.
    expect(cells(rows[2]!)).toEqual(['push-center', '5,000', '65 % · 130', '30 % · 60', '70 % · 140', '1 % · 2', '12 % · 24', '178 % · 356', '9 %']);
    expect(cells(rows[3]!).at(-1)).toBe('');
    expect(cpuTable(results, 'group')).toEqual([]);
  });
});

describe('Pacer at a fixed rate', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function paced(): { pacer: Pacer; sent: number[] } {
    const sent: number[] = [];
    const pacer = new Pacer({ hasRoom: () => true, sendNext: () => sent.push(Date.now()) });
    return { pacer, sent };
  }

  it('keeps to the rate while its process runs on time', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { pacer, sent } = paced();
    pacer.start({ mode: 'rate', rate: 1000 });
    await vi.advanceTimersByTimeAsync(500);
    pacer.stop();
    expect(sent.length).toBeGreaterThanOrEqual(498);
    expect(sent.length).toBeLessThanOrEqual(500);
    expect(pacer.skipped).toBe(0);
  });

  it('skips what a stall of its process left undone instead of sending it as one burst, and counts it', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { pacer, sent } = paced();
    pacer.start({ mode: 'rate', rate: 1000 });
    await vi.advanceTimersByTimeAsync(100);
    const before = sent.length;
    // 300 ms in which no timer of the process ran.
    vi.setSystemTime(Date.now() + 300);
    await vi.advanceTimersByTimeAsync(2);
    // At most 20 ms worth (20 messages) is caught up; the rest of the 300 is skipped.
    expect(sent.length - before).toBeLessThanOrEqual(22);
    expect(pacer.skipped).toBeGreaterThanOrEqual(280);
    await vi.advanceTimersByTimeAsync(100);
    pacer.stop();
    // Then the rate again, from the new schedule: about 100 in 100 ms.
    const after = sent.filter((at) => at > 1_000_000 + 402).length;
    expect(after).toBeGreaterThanOrEqual(98);
    expect(after).toBeLessThanOrEqual(101);
  });
});

describe('noisy neighbour', () => {
  it('has options for the flood, the steady rate and the other sessions, and is one of the scenarios', () => {
    const defaults = options([]);
    expect(defaults.scenarios).toContain('noisy');
    expect([defaults.flood, defaults.steadyRate, defaults.others]).toEqual([50_000, 2000, 1000]);
    expect(options(['--quick'])).toMatchObject({ flood: 10_000, others: 500 });
    const set = options(['--scenarios', 'noisy', '--flood', '5000', '--steady-rate=300', '--others', '100']);
    expect(set).toMatchObject({ scenarios: ['noisy'], flood: 5000, steadyRate: 300, others: 100 });
    expect(() => options(['--flood', '0'])).toThrow('--flood must be a whole number');
    expect(() => options(['--others', '2'])).toThrow('--others must be a whole number from 4');
  });

  it('counts distinct arrivals, duplicates, and messages that came after one published later', () => {
    // [sequence number, received at]: 5 came before 4 (one out of order), 6 twice, 3 after 7.
    const records = [1, 100, 2, 101, 5, 102, 4, 103, 6, 104, 6, 105, 7, 106, 3, 107];
    const tally = new ArrivalTally().update(records);
    expect(tally).toMatchObject({ received: 8, unique: 7, outOfOrder: 2, lastAt: 107 });
    expect(tally.duplicates).toBe(1);
  });

  it('takes only what was added since the previous update, and a duplicate is neither new nor late', () => {
    const records = [10, 1000, 11, 1001];
    const tally = new ArrivalTally().update(records);
    expect(tally).toMatchObject({ received: 2, unique: 2, outOfOrder: 0, lastAt: 1001 });
    records.push(10, 1500, 12, 1200);
    tally.update(records);
    // The duplicate of 10 (at 1500) does not move the last arrival, and is not out of order.
    expect(tally).toMatchObject({ received: 4, unique: 3, outOfOrder: 0, lastAt: 1200 });
    expect(tally.update(records).received).toBe(4);
    expect(new ArrivalTally().update([])).toMatchObject({ received: 0, unique: 0, lastAt: undefined });
  });

  it('loses what was published and never received, distinct messages only, never less than nothing', () => {
    expect(deliveryOf(50_000, 0, 2_100, 2_000)).toEqual({ published: 50_000, publishFailures: 0, received: 2_100, unique: 2_000, duplicates: 100, lost: 48_000 });
    expect(deliveryOf(10, 1, 11, 11).lost).toBe(0);
  });

  it('times the drain from the first publish to the last first arrival', () => {
    expect(drainSeconds(1_000_000, 1_012_345)).toBe(12.35);
    expect(drainSeconds(1_000_000, undefined)).toBeUndefined();
    expect(floodTimeoutS(5000)).toBe(60);
    expect(floodTimeoutS(50_000)).toBe(200);
  });

  it('waits for the whole flood and the others behind it, gives up once nothing arrives, and times out', () => {
    const going: FloodWatch = {
      published: true, floodUnique: 3000, floodPublished: 5000, othersUnique: 900, othersTarget: 1000, quietMs: 100, elapsedMs: 2000, timeoutMs: 60_000,
    };
    expect(floodEnd(going)).toBeUndefined();
    // Complete once the others have what was published until the flood's last arrival, or waited long enough.
    expect(floodEnd({ ...going, floodUnique: 5000 })).toBeUndefined();
    expect(floodEnd({ ...going, floodUnique: 5000, othersUnique: 1000 })).toBe('complete');
    expect(floodEnd({ ...going, floodUnique: 5000, quietMs: CATCH_UP_MS })).toBe('complete');
    // Messages missing: over once nothing arrived for a while after the burst was published, not before.
    expect(floodEnd({ ...going, quietMs: FLOOD_QUIET_MS })).toBe('quiet');
    expect(floodEnd({ ...going, quietMs: FLOOD_QUIET_MS, published: false })).toBeUndefined();
    expect(floodEnd({ ...going, elapsedMs: 60_000 })).toBe('timeout');
    expect(floodEnd({ ...going, published: false, floodUnique: 0, floodPublished: 0 })).toBeUndefined();
  });

  it('ends the "during" window at its last mark, and the next one starts there with what came after', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const stats = new DeliveryStats();
      let unique = 0;
      let published = 0;
      let serverCpu = 0;
      // Cumulative counters, as a client worker reports them; `count` messages of `ms` latency each.
      const arrive = (count: number, ms: number) => {
        unique += count;
        published += count;
        stats.apply(0, { type: 'stats', received: unique, unique, acked: unique, disconnects: 0, hist: [bucketOf(ms), count], max: ms });
      };
      const rss = new Set<{ max: number }>();
      const run = {
        stats,
        system: { publisher: { published: () => published } },
        cpuNow: () => ({ at: Date.now(), server: serverCpu, helpers: 0, clients: 0, rabbitmq: 0, redis: 0, bench: 0, steal: undefined }),
        trackRss: () => {
          const tracker = { max: 0 };
          rss.add(tracker);
          return tracker;
        },
        untrackRss: (tracker: { max: number }) => rss.delete(tracker),
      } as unknown as TargetRun;
      const during = new OthersWindow(run);
      vi.advanceTimersByTime(1000);
      serverCpu += 0.5;
      arrive(100, 300);
      during.mark();
      // After the mark: not the flood's any more.
      vi.advanceTimersByTime(1000);
      serverCpu += 0.1;
      arrive(50, 4);
      const [window, after] = during.closeAndFollow();
      expect(window).toMatchObject({ seconds: 1, publishedPerS: 100, deliveredPerS: 100, cpu: { server: 50 } });
      expect(window.latency).toMatchObject({ count: 100, max: 300 });
      vi.advanceTimersByTime(1000);
      arrive(50, 6);
      const next = after.close();
      expect(next).toMatchObject({ seconds: 2, deliveredPerS: 50, cpu: { server: 5 } });
      expect(next.latency).toMatchObject({ count: 100, max: 6 });
      // Every tracker opened by the windows is closed again.
      expect(rss.size).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('reads push-center\'s dead letters by reason, summed over nodes; none from a server without the counter', () => {
    const node = nodeFigures(parsePrometheus('pushcenter_dead_letters_total{reason="inbox_full"} 3\npushcenter_dead_letters_total{reason="not_json"} 1\n'));
    expect(node.deadLetters).toEqual({ inbox_full: 3, not_json: 1 });
    expect(sumFigures([node, node]).deadLetters).toEqual({ inbox_full: 6, not_json: 2 });
    expect(nodeFigures(parsePrometheus('pushcenter_inbox_total{op="stored"} 5\n')).deadLetters).toEqual({});
  });

  it('reports the others before and during the flood, and the flood\'s drain, order and losses', () => {
    const window = (p99: number, server: number, rssMaxMB = 120.4): NoisyWindow => ({
      seconds: 10, publishedPerS: 2000, deliveredPerS: 1990, latency: { count: 1, p50: 3, p90: 5, p99, p999: p99, max: p99 + 40 },
      cpu: { server, helpers: 0, clients: 20, rabbitmq: 30, redis: 5, bench: 10 }, rssMaxMB,
    });
    const noisy: NoisyResult = {
      floodSession: 's1000', flood: 50_000, others: 1000, steadyRate: 2000, steadySkipped: 0,
      baseline: window(9, 30), during: window(850, 95, 140), after: window(120, 60),
      flooded: { ...deliveryOf(50_000, 0, 2_000, 2_000), publishS: 4.2, drainS: 6.5, complete: false, end: 'quiet', outOfOrder: 17 },
      othersDelivery: deliveryOf(30_000, 0, 30_000, 30_000),
      inbox: { stored: 49_000, evicted: 48_000, replayed: 1_000 },
      deadLetters: {},
      timeline: [],
    };
    const results = {
      startedAt: '2026-12-01T08:00:00Z', aborted: false, command: 'npm run bench -- --scenarios noisy', git: { commit: 'abc', dirty: false },
      machine: { cpuModel: 'cpu', cores: 2, memoryGiB: 24, os: 'linux', loadAverageAtStart: [0], loadAverageAtEnd: [0] },
      versions: { node: 'v20', rabbitmq: '3', redis: '7' },
      settings: { clients: 10_000, workers: 4, durationS: 10, halfRateDurationS: 3, overloadDurationS: 60, prefetch: 400, payloadBytes: 200,
        persistent: true, server: 'dist', quick: false, serverEnv: {}, noisy: { flood: 50_000, others: 1000, steadyRate: 2000 } },
      targets: [{ scenario: 'noisy', kind: 'push-center', system: 'push-center', notes: [], phases: [], noisy }],
    } as unknown as RunResults;
    const text = markdown(results);
    expect(text).toContain('#### Noisy neighbour');
    expect(text).toContain('noisy: a burst of 50,000 reliable messages to one session, 1,000 other sessions at 2,000 msgs/s in total');
    const row = text.split('\n').find((line) => line.startsWith('| push-center'))!;
    expect(row.split('|').slice(1, -1).map((cell) => cell.trim())).toEqual([
      'push-center', '1,990 / 1,990 / 1,990', '3 / 9 / 49', '3 / 850 / 890', '3 / 120 / 160', '2,000 / 50,000', '6.5 (incomplete)', '17',
      '48,000 / 0', '0 / 0', '30 / 95 / 60', '120 / 140 / 120',
    ]);
    expect(text).toContain('session s1000 got 50,000 messages in one burst, published in 4.2 s; the wait for them ended: ' +
      'nothing more arrived for 5 s; push-center\'s inbox from the flood to the end: stored 49,000, evicted 48,000, replayed 1,000; ' +
      'dead-lettered: none');
  });
});
