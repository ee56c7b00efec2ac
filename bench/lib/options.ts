import type { ClientKind } from './ipc.js';
import type { ScenarioName } from './results.js';

export const SCENARIOS: readonly ScenarioName[] = ['reliable', 'volatile', 'group', 'two-nodes', 'overload', 'noisy'];
export const PEERS = ['direct', 'rabbitmq', 'emitter', 'original'] as const;
export type PeerName = (typeof PEERS)[number];

export interface Options {
  scenarios: ScenarioName[];
  peers: PeerName[];
  clients: number;
  /** Which socket.io client the simulated browsers use. */
  client: ClientKind;
  workers: number;
  /** Seconds measured at the maximum rate. */
  durationS: number;
  /** Seconds measured at half the maximum rate (latency). */
  halfDurationS: number;
  overloadDurationS: number;
  warmupS: number;
  prefetch: number;
  quick: boolean;
  out: string;
  server: 'dist' | 'src';
  build: boolean;
  profile: boolean;
  serverEnv: Record<string, string>;
  /**
   * Scheduling policy of the load generator (client workers, and the bench process, which publishes):
   * `batch` (SCHED_BATCH) keeps it from preempting the servers each time a message wakes it.
   */
  loadSched: 'batch' | 'normal';
  /**
   * `own`: every server (push-center node, peer) starts in a session of its own, so the kernel's
   * autogroup scheduling weighs it as a group, as it does RabbitMQ and Redis; `shared`: in the bench's.
   */
  serverSession: 'own' | 'shared';
  /**
   * Also measure each queue-fed system draining a full queue (phase `backlog`): its consumers frozen while
   * the publisher fills the queue, then thawed, so the window holds no publishing (`--no-backlog`: skip).
   */
  backlog: boolean;
  /** Scenario `noisy`: reliable messages published in one burst to the flooded session. */
  flood: number;
  /** Scenario `noisy`: messages per second, in total, to the other sessions. */
  steadyRate: number;
  /** Scenario `noisy`: the other sessions (one client each); the flooded one comes on top. */
  others: number;
  /**
   * `AMQP_QUEUE_SHARDS` of the push-center nodes; above 1 the publisher publishes through the
   * consistent-hash exchange with the target as routing key, as a backend would.
   */
  shards: number;
}

/** How push-center nodes run unless --server-env NODE_OPTIONS says otherwise. */
export const SERVER_NODE_OPTIONS = '--max-old-space-size=256';

export const USAGE = `Usage: npm run bench -- [options]

Benchmarks push-center against its peers with simulated websocket clients on this machine
(RabbitMQ and Redis must run; BENCH_AMQP_URL / BENCH_REDIS_URL override the local defaults).

  --scenarios a,b,...  ${SCENARIOS.join(',')} (default: all)
  --peers a,b,...      ${PEERS.join(',')}, or none (default: all)
  --clients N          simulated websocket clients (default 10000; --quick 500)
  --duration S         seconds measured at the maximum rate per system (default 10; --quick 5),
                       then a third of it (at least 3 s) at half that rate for latency;
                       also the overload duration when given (default 60; --quick 8);
                       noisy: its baseline window, and the least of its after window
  --quick              a small, fast smoke run: 500 clients, 5 s phases, 8 s overload
  --client lean|socket.io
                       the simulated browsers' socket.io client: the bench's minimal one (default;
                       same frames on the wire, a fraction of the CPU) or socket.io-client itself
  --workers N          client worker processes (default 4)
  --prefetch N         AMQP prefetch of push-center and the RabbitMQ peer, window of the direct peer (default 400, push-center's own default)
  --out DIR            where results-<timestamp>.json/.md go (default bench/results)
  --server dist|src    run push-center from dist/ (built first, default) or from src/ with tsx
  --no-build           with --server dist: use dist/ as it is
  --server-env K=V     extra environment for push-center nodes (repeatable), e.g. SOCKET_MAX_PENDING=200;
                       NODE_OPTIONS defaults to ${SERVER_NODE_OPTIONS} (the heap limit README recommends)
  --load-sched normal|batch
                       scheduling policy of the client workers and the publishing bench process:
                       normal (default), or batch (SCHED_BATCH): they no longer preempt the servers at
                       every message that wakes them, as remote browsers and backends never would,
                       but a woken client may wait longer for a core, which adds to its latency
  --server-session own|shared
                       own (default): every server (push-center node, peer) starts in a session of
                       its own (setsid), as a service does and as RabbitMQ and Redis run here, so the
                       kernel's autogroup scheduling weighs it against the load generator as a group;
                       shared: in the bench's session, each server competing with every client worker
  --no-backlog         skip the backlog phase (reliable, volatile): each system that consumes from
                       RabbitMQ drains a full queue, filled while its consumers were frozen, so the
                       publisher takes no CPU in that window
  --flood N            noisy: reliable messages published in one burst to the flooded session
                       (default 50000; --quick 10000)
  --steady-rate N      noisy: messages per second, in total, to the other sessions (default 2000)
  --others N           noisy: the other sessions, one client each (default 1000; --quick 500);
                       noisy ignores --clients
  --shards N           push-center's AMQP_QUEUE_SHARDS (default 1): its ingest over N queues behind the
                       consistent-hash exchange, the publisher routing by session (or group) as a backend does
  --profile            write V8 CPU profiles of the push-center nodes, and all they print, to <out>/profiles
  --help               this text
`;

export class UsageError extends Error {}

export function parseOptions(argv: string[]): Options | 'help' {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (['quick', 'no-build', 'no-backlog', 'profile', 'help'].includes(name)) {
      flags.add(name);
      continue;
    }
    if (!['scenarios', 'peers', 'clients', 'client', 'duration', 'workers', 'prefetch', 'out', 'server', 'server-env', 'load-sched', 'server-session', 'shards',
      'flood', 'steady-rate', 'others'].includes(name)) {
      throw new UsageError(`unknown option --${name}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  if (flags.has('help')) return 'help';
  const last = (name: string) => values.get(name)?.at(-1);
  const quick = flags.has('quick');
  const int = (name: string, fallback: number, min: number, max: number) => {
    const text = last(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
    }
    return value;
  };
  const list = <T extends string>(name: string, allowed: readonly T[]): T[] => {
    const text = last(name);
    if (text === undefined || text === 'all') return [...allowed];
    if (text === 'none') return [];
    const items = text.split(',').map((item) => item.trim()).filter(Boolean);
    for (const item of items) {
      if (!allowed.includes(item as T)) throw new UsageError(`--${name}: ${item} is not one of ${allowed.join(', ')}`);
    }
    return allowed.filter((item) => items.includes(item));
  };
  const server = last('server') ?? 'dist';
  if (server !== 'dist' && server !== 'src') throw new UsageError('--server must be dist or src');
  const client = last('client') ?? 'lean';
  if (client !== 'lean' && client !== 'socket.io') throw new UsageError('--client must be lean or socket.io');
  const loadSched = last('load-sched') ?? 'normal';
  if (loadSched !== 'batch' && loadSched !== 'normal') throw new UsageError('--load-sched must be batch or normal');
  const serverSession = last('server-session') ?? 'own';
  if (serverSession !== 'own' && serverSession !== 'shared') throw new UsageError('--server-session must be own or shared');
  // The heap limit README (Operating, Memory) tells operators to set; --server-env NODE_OPTIONS=… replaces it.
  const serverEnv: Record<string, string> = { NODE_OPTIONS: SERVER_NODE_OPTIONS };
  for (const pair of values.get('server-env') ?? []) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/s.exec(pair);
    if (!match) throw new UsageError(`--server-env takes NAME=value, got ${JSON.stringify(pair)}`);
    serverEnv[match[1]!] = match[2]!;
  }
  const duration = last('duration') === undefined ? undefined : int('duration', 10, 1, 3600);
  const durationS = duration ?? (quick ? 5 : 10);
  const scenarios = list('scenarios', SCENARIOS);
  if (scenarios.length === 0) throw new UsageError('--scenarios: nothing to run');
  const workers = int('workers', 4, 1, 64);
  return {
    scenarios,
    peers: list('peers', PEERS),
    clients: int('clients', quick ? 500 : 10_000, workers, 100_000),
    client,
    workers,
    durationS,
    halfDurationS: Math.max(3, Math.round(durationS / 3)),
    overloadDurationS: duration ?? (quick ? 8 : 60),
    warmupS: quick ? 1 : 2,
    prefetch: int('prefetch', 400, 1, 65_535),
    quick,
    out: last('out') ?? 'bench/results',
    server,
    build: !flags.has('no-build'),
    profile: flags.has('profile'),
    serverEnv,
    loadSched,
    serverSession,
    backlog: !flags.has('no-backlog'),
    flood: int('flood', quick ? 10_000 : 50_000, 1, 1_000_000),
    steadyRate: int('steady-rate', 2000, 1, 100_000),
    others: int('others', quick ? 500 : 1000, workers, 100_000),
    shards: int('shards', 1, 1, 64),
  };
}
