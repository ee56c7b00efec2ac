import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { connect as connectAmqp } from 'amqplib';
import type { Child, Children } from './children.js';
import { AMQP_URL, REDIS_URL, deleteAmqp, deleteRedisKeys, watchForwards } from './infra.js';
import type { PeerCommand, PeerReport } from './ipc.js';
import { GROUP, notificationBody, sessionFor, type Target } from './payload.js';
import { AmqpPublisher, EmitterPublisher, PeerGenerator, type Publisher, type ShardedRoute } from './publishers.js';
import { workQueues } from '../../src/config/config.js';
import { DeliveryStats } from './stats.js';

/**
 * The systems under test: push-center (one or two nodes) and the four peers, each started fresh for a
 * scenario with names of its own (queues, Redis keys and channels), and torn down afterwards.
 */

export type SystemKind = 'push-center' | 'two-nodes' | 'direct' | 'rabbitmq' | 'emitter' | 'original';

/** The kinds whose systems consume from the RabbitMQ queue (their `consumers`), known before one starts. */
export function consumesFromQueue(kind: SystemKind): boolean {
  return kind === 'push-center' || kind === 'two-nodes' || kind === 'rabbitmq' || kind === 'original';
}

export interface SystemContext {
  children: Children;
  /** The project root. */
  root: string;
  /** Where the bench's child processes were compiled to. */
  buildDir: string;
  runId: string;
  resources: Resources;
  prefetch: number;
  serverMode: 'dist' | 'src';
  serverEnv: Record<string, string>;
  /** push-center's AMQP_QUEUE_SHARDS. */
  shards: number;
  /** Write V8 CPU profiles of push-center nodes here. */
  profileDir: string | undefined;
}

export interface SystemSpec {
  /** Unique within the run: names the queue, keys and channels. */
  key: string;
  target: 'session' | 'group';
  reliable: boolean;
  /** Sessions `s0` … `s<sessions-1>` exist (one per client). */
  sessions: number;
}

export interface System {
  readonly kind: SystemKind;
  readonly name: string;
  readonly description: string;
  /** The processes holding the client sockets (their RSS is the server RSS). */
  readonly servers: Child[];
  /** Other processes of the system (consumers). */
  readonly helpers: Child[];
  /**
   * The processes that take messages from the system's RabbitMQ queue: frozen (SIGSTOP) while the
   * backlog phase fills the queue. Empty for a system without a queue.
   */
  readonly consumers: Child[];
  /** Where clients connect; workers alternate over them. */
  readonly urls: string[];
  readonly publisher: Publisher;
  /** Set when the publisher goes through a RabbitMQ queue: its depth. */
  readonly queue: AmqpPublisher | undefined;
  /** push-center nodes' base URLs (metrics, sessions API). */
  readonly nodeUrls: string[];
  /** Delivery counters of a system without clients (the RabbitMQ consumer). */
  readonly ownStats: DeliveryStats | undefined;
  /** Messages the emitter's socket.io server has taken from Redis. */
  processed(): number | undefined;
  /** Two nodes: messages forwarded from one node to the other so far. */
  forwarded(): number | undefined;
  /**
   * push-center: another backend publishing to the same queue, to targets of its own (the noisy
   * scenario's flood); the caller closes it before the system.
   */
  anotherPublisher?: (target: (seq: number) => Target) => Promise<AmqpPublisher>;
  close(): Promise<void>;
}

/** Queues, exchanges and Redis prefixes the run created; all are deleted at the end. */
export class Resources {
  readonly queues = new Set<string>();
  readonly exchanges = new Set<string>();
  readonly prefixes = new Set<string>();

  async release(names: { queues?: string[]; exchanges?: string[]; prefixes?: string[] }): Promise<void> {
    const queues = names.queues ?? [];
    const exchanges = names.exchanges ?? [];
    await deleteAmqp({ queues, exchanges });
    for (const prefix of names.prefixes ?? []) await deleteRedisKeys(prefix);
    for (const q of queues) this.queues.delete(q);
    for (const e of exchanges) this.exchanges.delete(e);
    for (const p of names.prefixes ?? []) this.prefixes.delete(p);
  }

  releaseAll(): Promise<void> {
    return this.release({ queues: [...this.queues], exchanges: [...this.exchanges], prefixes: [...this.prefixes] });
  }
}

function names(ctx: SystemContext, spec: SystemSpec) {
  return {
    queue: `pcbench.${ctx.runId}.${spec.key}`,
    prefix: `pcbench:${ctx.runId}:${spec.key}:`,
  };
}

function targetOf(spec: SystemSpec): (seq: number) => Target {
  return spec.target === 'group'
    ? () => ({ group: GROUP })
    : (seq) => ({ session: sessionFor(seq, spec.sessions) });
}

/**
 * Unconfirmed publishes at most: a group message is a fan-out to every member, so the publisher keeps
 * few of them in flight (the backlog gate reads the queue depth only every 100 ms).
 */
function confirmWindow(spec: SystemSpec): number {
  return spec.target === 'group' ? 50 : 1000;
}

function bodyOf(spec: SystemSpec, target = targetOf(spec)): (seq: number, now: number) => Buffer {
  return (seq, now) => notificationBody(seq, target(seq), spec.reliable, now);
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

// ---- push-center ------------------------------------------------------------------------------------

/** One push-center node or two sharing the queue and the Redis prefix (clients alternate between them). */
export async function startPushCenter(ctx: SystemContext, spec: SystemSpec, nodes: 1 | 2): Promise<System> {
  const { queue, prefix } = names(ctx, spec);
  const workQueueNames = workQueues({ queue, queueShards: ctx.shards });
  const exchanges = [`${queue}.dlx`, `${queue}.receipts`, ...(ctx.shards > 1 ? [queue] : [])];
  for (const name of [...workQueueNames, `${queue}.dead`]) ctx.resources.queues.add(name);
  for (const name of exchanges) ctx.resources.exchanges.add(name);
  const target = targetOf(spec);
  const route = (t: (seq: number) => Target): ShardedRoute | undefined => (ctx.shards > 1
    ? { exchange: queue, queues: workQueueNames, key: (seq) => { const to = t(seq); return 'session' in to ? to.session : to.group; } }
    : undefined);
  ctx.resources.prefixes.add(prefix);
  const servers: Child[] = [];
  const urls: string[] = [];
  let publisher: AmqpPublisher | undefined;
  let bus: Awaited<ReturnType<typeof watchForwards>> | undefined;
  try {
    if (nodes > 1) bus = await watchForwards(prefix);
    for (let n = 1; n <= nodes; n++) {
      const port = await freePort();
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        NODE_ENV: 'production',
        AUTH_MODE: 'none',
        HOST: '127.0.0.1',
        PORT: String(port),
        NODE_ID: `bench-${ctx.runId}-${spec.key}-${n}`,
        LOG_LEVEL: 'warn',
        AMQP_URL,
        REDIS_URL,
        AMQP_QUEUE: queue,
        AMQP_QUEUE_SHARDS: String(ctx.shards),
        AMQP_DEAD_LETTER_QUEUE: `${queue}.dead`,
        AMQP_DEAD_LETTER_EXCHANGE: `${queue}.dlx`,
        AMQP_RECEIPTS_EXCHANGE: `${queue}.receipts`,
        AMQP_PREFETCH: String(ctx.prefetch),
        REDIS_KEY_PREFIX: prefix,
        SHUTDOWN_TIMEOUT_MS: '5000',
        // Every simulated client comes from 127.0.0.1: per-address rate limits would refuse them.
        RATE_LIMIT_CONNECTS_PER_10S: '0',
        RATE_LIMIT_REGISTERS_PER_10S: '0',
        RATE_LIMIT_HTTP_PER_MIN: '0',
        ...ctx.serverEnv,
      };
      const profile = ctx.profileDir ? ['--cpu-prof', '--cpu-prof-dir', ctx.profileDir, '--cpu-prof-name', `${ctx.runId}-${spec.key}-node${n}.cpuprofile`] : [];
      const entry = ctx.serverMode === 'dist' ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
      const child = ctx.children.spawnNode(`push-center ${spec.key} node ${n}`, [...profile, ...entry], env, ctx.root);
      if (ctx.profileDir) {
        // Beside the profile, all the node wrote (its warnings, a crash).
        const log = createWriteStream(path.join(ctx.profileDir, `${ctx.runId}-${spec.key}-node${n}.log`));
        log.on('error', () => undefined);
        child.process.stdout?.pipe(log, { end: false });
        child.process.stderr?.pipe(log, { end: false });
        void child.exited.then(() => log.end());
      }
      servers.push(child);
      const url = `http://127.0.0.1:${port}`;
      await waitReady(child, url);
      urls.push(url);
    }
    publisher = await AmqpPublisher.open(AMQP_URL, queue, bodyOf(spec), confirmWindow(spec), route(target));
  } catch (err) {
    bus?.close();
    await publisher?.close();
    await Promise.all(servers.map((child) => ctx.children.stop(child, 1000)));
    throw err;
  }
  const pub = publisher;
  const watch = bus;
  return {
    kind: nodes === 1 ? 'push-center' : 'two-nodes',
    name: nodes === 1 ? 'push-center' : 'push-center ×2',
    description: nodes === 1
      ? `push-center (${ctx.serverMode}) on RabbitMQ + Redis, prefetch ${ctx.prefetch}${ctx.shards > 1 ? `, ${ctx.shards} shards` : ''}`
      : `two push-center nodes on ${ctx.shards > 1 ? `${ctx.shards} shards` : 'one queue'} and one Redis, clients split between them`,
    servers,
    helpers: [],
    consumers: servers,
    urls,
    publisher: pub,
    queue: pub,
    nodeUrls: urls,
    ownStats: undefined,
    processed: () => undefined,
    forwarded: () => watch?.count(),
    anotherPublisher: (other) => AmqpPublisher.open(AMQP_URL, queue, bodyOf(spec, other), confirmWindow(spec), route(other)),
    close: async () => {
      watch?.close();
      await pub.close();
      // SIGTERM: push-center drains and exits; SIGKILL if it does not within its shutdown timeout.
      await Promise.all(servers.map((child) => ctx.children.stop(child, 8000)));
      await ctx.resources.release({ queues: [...workQueueNames, `${queue}.dead`], exchanges, prefixes: [prefix] });
    },
  };
}

/** Waits until GET /readyz answers 200; fails with the node's output when it exits or takes too long. */
async function waitReady(child: Child, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.alive()) throw new Error(`${child.name} exited during start-up:\n${child.output()}`);
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.output()}`);
}

// ---- peers ------------------------------------------------------------------------------------------

interface Peer {
  child: Child;
  port: number;
  stop(): Promise<void>;
}

/** Forks a compiled peer and waits for it to report `listening`; heartbeats keep it alive. */
async function startPeer(ctx: SystemContext, name: string, module: string, env: Record<string, string>): Promise<Peer> {
  const child = ctx.children.fork(name, path.join(ctx.buildDir, 'peers', `${module}.js`), { ...process.env, ...env }, ctx.root);
  const heartbeat = setInterval(() => send(child, { type: 'heartbeat' }), 1000);
  void child.exited.then(() => clearInterval(heartbeat));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s:\n${child.output()}`)), 20_000);
    child.process.on('message', (report: PeerReport) => {
      if (report.type === 'listening') {
        clearTimeout(timer);
        resolve(report.port);
      } else if (report.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${name} failed to start: ${report.error}`));
      }
    });
    void child.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited during start-up:\n${child.output()}`));
    });
  });
  return {
    child,
    port,
    stop: async () => {
      send(child, { type: 'stop' });
      await ctx.children.stop(child, 3000, 3000);
    },
  };
}

function send(child: Child, command: PeerCommand): void {
  if (child.alive() && child.process.connected) child.process.send(command);
}

/** Declares a work queue like push-center's (durable, same TTL), which disappears if the run dies. */
async function declareQueue(ctx: SystemContext, queue: string): Promise<void> {
  ctx.resources.queues.add(queue);
  const connection = await connectAmqp(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-message-ttl': 600_000, 'x-expires': 3_600_000 } });
  } finally {
    await connection.close();
  }
}

function peerSystem(parts: Omit<System, 'nodeUrls' | 'ownStats' | 'processed' | 'forwarded' | 'queue' | 'consumers'> & Partial<System>): System {
  return {
    nodeUrls: [], ownStats: undefined, processed: () => undefined, forwarded: () => undefined, queue: undefined, consumers: [], ...parts,
  };
}

/** Peer 1: socket.io emitting directly (see peers/direct-socketio.ts). */
export async function startDirect(ctx: SystemContext, spec: SystemSpec): Promise<System> {
  const peer = await startPeer(ctx, `direct socket.io ${spec.key}`, 'direct-socketio', {});
  // The same bound on un-acked messages as push-center's prefetch: reliable throughput is window / ack round trip.
  const publisher = new PeerGenerator(peer.child, { target: spec.target, reliable: spec.reliable, sessions: spec.sessions, window: ctx.prefetch });
  return peerSystem({
    kind: 'direct',
    name: 'socket.io direct',
    description: `socket.io server emitting straight to the sockets, no broker; reliable: at most ${ctx.prefetch} un-acked (ceiling for the sockets)`,
    servers: [peer.child],
    helpers: [],
    urls: [`http://127.0.0.1:${peer.port}`],
    publisher,
    close: async () => {
      await publisher.close();
      await peer.stop();
    },
  });
}

/** Peer 2: RabbitMQ consume + ack alone (see peers/rabbitmq-consumer.ts). */
export async function startRabbitOnly(ctx: SystemContext, spec: SystemSpec): Promise<System> {
  const { queue } = names(ctx, spec);
  await declareQueue(ctx, queue);
  const stats = new DeliveryStats();
  const peer = await startPeer(ctx, `rabbitmq consumer ${spec.key}`, 'rabbitmq-consumer', {
    BENCH_AMQP_URL: AMQP_URL,
    BENCH_QUEUE: queue,
    BENCH_PREFETCH: String(ctx.prefetch),
  });
  peer.child.process.on('message', (report: PeerReport) => {
    if (report.type === 'stats') stats.apply(0, report);
  });
  const publisher = await AmqpPublisher.open(AMQP_URL, queue, bodyOf(spec), confirmWindow(spec));
  return peerSystem({
    kind: 'rabbitmq',
    name: 'RabbitMQ consume+ack',
    description: `RabbitMQ alone: consume (prefetch ${ctx.prefetch}), parse, ack each message (ceiling for the broker)`,
    servers: [peer.child],
    helpers: [],
    consumers: [peer.child],
    urls: [],
    publisher,
    queue: publisher,
    ownStats: stats,
    close: async () => {
      await publisher.close();
      await peer.stop();
      await ctx.resources.release({ queues: [queue] });
    },
  });
}

/** Peer 3: @socket.io/redis-emitter into a @socket.io/redis-adapter server (see peers/redis-adapter-server.ts). */
export async function startEmitter(ctx: SystemContext, spec: SystemSpec): Promise<System> {
  const { prefix } = names(ctx, spec);
  const key = `${prefix}socket.io`;
  const peer = await startPeer(ctx, `redis-adapter server ${spec.key}`, 'redis-adapter-server', {
    BENCH_REDIS_URL: REDIS_URL,
    BENCH_ADAPTER_KEY: key,
  });
  let processed = 0;
  peer.child.process.on('message', (report: PeerReport) => {
    if (report.type === 'progress') processed = report.processed;
  });
  const publisher = await EmitterPublisher.open(REDIS_URL, key, targetOf(spec), spec.reliable);
  return peerSystem({
    kind: 'emitter',
    name: 'redis-emitter',
    description: '@socket.io/redis-emitter → Redis → socket.io with @socket.io/redis-adapter; no acks, not durable',
    servers: [peer.child],
    helpers: [],
    urls: [`http://127.0.0.1:${peer.port}`],
    publisher,
    processed: () => processed,
    close: async () => {
      await publisher.close();
      await peer.stop();
    },
  });
}

/** Peer 4: the original message center's design (see peers/original-consumer.ts, original-server.ts). */
export async function startOriginal(ctx: SystemContext, spec: SystemSpec): Promise<System> {
  const { queue, prefix } = names(ctx, spec);
  await declareQueue(ctx, queue);
  const env = { BENCH_AMQP_URL: AMQP_URL, BENCH_REDIS_URL: REDIS_URL, BENCH_QUEUE: queue, BENCH_CHANNEL_PREFIX: prefix };
  const server = await startPeer(ctx, `original socket server ${spec.key}`, 'original-server', env);
  let consumer: Peer;
  try {
    consumer = await startPeer(ctx, `original consumer ${spec.key}`, 'original-consumer', env);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const publisher = await AmqpPublisher.open(AMQP_URL, queue, bodyOf(spec), confirmWindow(spec));
  return peerSystem({
    kind: 'original',
    name: 'original design',
    description: 'prefetch 1, ack before delivery, one Redis pub/sub channel per session (the old message center)',
    servers: [server.child],
    helpers: [consumer.child],
    consumers: [consumer.child],
    urls: [`http://127.0.0.1:${server.port}`],
    publisher,
    queue: publisher,
    close: async () => {
      await publisher.close();
      await consumer.stop();
      await server.stop();
      await ctx.resources.release({ queues: [queue] });
    },
  });
}
