import { Cluster, Redis, type ChainableCommander, type ClusterOptions, type RedisOptions } from 'ioredis';
import { allSettledOrFirstError } from '../util/all-settled.js';
import { redact } from '../util/redact.js';
import { withTimeout } from '../util/timeout.js';
import type { Logger } from '../observability/logger.js';
import { keySlot } from './key-slot.js';
import { parseRedisUrl, seedList, type RedisClusterSeeds } from './redis-url.js';

/**
 * A connection to push-center's Redis: one server (`Redis`), or a Redis Cluster through ioredis's cluster
 * client (`Cluster`), which sends each command to the master serving its key's slot.
 */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/** How often a cluster client reads the slot layout again, besides when a command is redirected. */
const SLOTS_REFRESH_MS = 5000;

/** Reconnection back-off: capped, jittered, the same for one Redis and for a Cluster. */
function reconnectDelay(attempt: number): number {
  return Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2);
}

/**
 * Opens an ioredis client for push-center's use of Redis (`REDIS_URL`: one server, or a Redis Cluster
 * with `redis+cluster://`) and waits until it is ready.
 *
 * Commands fail at once while Redis is unreachable (no offline queue, no retry), so a dispatcher never
 * waits on a dead connection and nothing piles up in memory (ioredis's offline queue is unbounded);
 * the client keeps reconnecting with capped, jittered back-off, and every error is logged, never thrown
 * at the process. A command in flight when its connection drops fails: it is never sent again, on a
 * Cluster neither (no retry on a closed connection, nor on CLUSTERDOWN; only redirections, which Redis
 * answers without running the command, are followed).
 */
export async function connectRedis(url: string, name: string, logger: Logger, timeoutMs = 10_000): Promise<RedisClient> {
  const log = logger.child({ component: 'redis', connection: name });
  const target = parseRedisUrl(url);
  const connection = {
    connectionName: `push-center:${name}`,
    // A command in flight when the connection drops fails: ioredis would otherwise send it again after
    // the reconnect, and a script that already ran (a trim by count, a counter) would run twice.
    maxRetriesPerRequest: 0,
    connectTimeout: 5000,
  } satisfies RedisOptions;
  const client: RedisClient = target.cluster
    ? new Cluster(target.nodes, clusterOptions(target, connection))
    : new Redis(url, {
      ...connection,
      lazyConnect: true,
      enableOfflineQueue: false,
      // Commands issued in the same tick (e.g. lookups for many messages) travel in one write.
      enableAutoPipelining: true,
      retryStrategy: reconnectDelay,
    });
  let wasReady = false;
  logErrors(client, log);
  client.on('ready', () => {
    if (wasReady) log.info('redis reconnected');
    wasReady = true;
  });
  client.on('close', () => {
    if (wasReady) log.warn('redis connection lost; reconnecting');
  });
  if (isCluster(client)) connectEachNode(client);
  const silent = target.cluster
    ? `the Redis Cluster at ${seedList(target)} did not answer, or did not report cluster_state:ok, within ${timeoutMs} ms`
    : `Redis at ${redact(url)} did not answer within ${timeoutMs} ms`;
  const ready = async (): Promise<void> => {
    await client.connect();
    if (isCluster(client)) await Promise.all(client.nodes('master').map(nodeReady));
  };
  try {
    await withTimeout(ready(), timeoutMs, () => new Error(silent));
  } catch (err) {
    client.disconnect();
    throw new Error(`cannot connect to REDIS_URL ${redact(url)}: ${(err as Error).message}`);
  }
  return client;
}

function clusterOptions(target: RedisClusterSeeds, connection: RedisOptions): ClusterOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    // Per node: commands to the same master in one tick share a write.
    enableAutoPipelining: true,
    clusterRetryStrategy: reconnectDelay,
    // Learns a failover, or a master that is back, also while no command is redirected (see `redisUp`).
    slotsRefreshInterval: SLOTS_REFRESH_MS,
    // ioredis sends a command again when its connection closed, and after a CLUSTERDOWN answer; either
    // may run a script twice, or keep a caller waiting on a cluster that is down.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    redisOptions: {
      ...connection,
      username: target.username,
      password: target.password,
      ...(target.tls ? { tls: {} } : {}),
    },
  };
}

/**
 * ioredis opens the connection to a cluster node at the first command for it and, without an offline
 * queue, fails a transaction or pipeline for that node while that connection is opening: right after a
 * start, a reconnect or a topology change, directory writes would fail. So each node is connected once
 * the cluster is ready, and each node learned of later, a tick after (a command redirected to a node
 * just learned of opens the connection itself). Not while the client connects: its readiness check, sent
 * to any node, would fail on a node whose connection is opening.
 */
function connectEachNode(cluster: Cluster): void {
  const open = (node: Redis): void => {
    if (node.status === 'wait') node.connect().catch(() => undefined);
  };
  cluster.on('ready', () => cluster.nodes('all').forEach(open));
  cluster.on('+node', (node: Redis) => {
    if (cluster.status === 'ready') setImmediate(() => open(node));
  });
}

/** Resolves once the node's connection is ready, opening it if nobody has yet. */
async function nodeReady(node: Redis): Promise<void> {
  if (node.status === 'ready') return;
  if (node.status === 'wait') {
    await node.connect();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const onEnd = (): void => reject(new Error(`the connection to ${node.options.host}:${node.options.port} closed before it got ready`));
    node.once('ready', () => {
      node.off('end', onEnd);
      resolve();
    });
    node.once('end', onEnd);
  });
}

/** Every error of the client logged, so none goes unhandled; a Cluster also reports each node's errors. */
function logErrors(client: RedisClient, log: Logger): void {
  client.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  if (isCluster(client)) client.on('node error', (err: Error, node: string) => log.warn({ err: err.message, node }, 'redis cluster node error'));
}

/**
 * A second connection for subscriptions (a subscribed connection can run no other command). On a Cluster
 * it is a second cluster client with sharded subscribers: a connection to each master that serves a
 * sharded channel this node listens to, besides one for classic channels.
 */
export async function duplicateForSubscriptions(client: RedisClient, name: string, logger: Logger): Promise<RedisClient> {
  const log = logger.child({ component: 'redis', connection: name });
  const connectionName = `push-center:${name}`;
  const subscriber: RedisClient = isCluster(client)
    ? client.duplicate([], { lazyConnect: true, shardedSubscribers: true, redisOptions: { connectionName } })
    : client.duplicate({ connectionName, lazyConnect: true });
  logErrors(subscriber, log);
  await subscriber.connect();
  return subscriber;
}

/** Quits gracefully, or drops the connection when Redis is not there to answer. */
export async function quitRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else {
    client.disconnect();
  }
}

/**
 * Whether the client can serve commands for every key now: connected to Redis; on a Cluster, also to
 * each master serving slots. ioredis counts a cluster ready while it still reaches some node, and lets
 * commands for an unreachable master's slots fail one by one; taken for up, a node would go on taking
 * messages only to hand them back. A master that is back is connected again at the next slot refresh.
 */
export function redisUp(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  if (!isCluster(client)) return true;
  const ready = new Set(client.nodes('master').filter((node) => node.status === 'ready').map((node) => `${node.options.host}:${node.options.port}`));
  const serving = new Set<string>();
  for (const nodes of client.slots) if (nodes?.[0] !== undefined) serving.add(nodes[0]);
  if (serving.size === 0) return false;
  for (const master of serving) if (!ready.has(master)) return false;
  return true;
}

/**
 * How a batch over several hash-tagged shards goes out as script calls: all in one call on a single
 * Redis, one call per shard on a cluster (a script's keys must share a slot there).
 */
export function scriptCalls<T>(client: RedisClient, shards: T[]): T[][] {
  return isCluster(client) ? shards.map((shard) => [shard]) : [shards];
}

/** The masters to ask for what each holds itself (SCAN, PUBSUB SHARDNUMSUB): the client itself on one Redis. */
export function mastersOf(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** GET of many keys: one MGET on one Redis; on a Cluster, where MGET takes keys of one slot only, a GET each. */
export function getAll(client: RedisClient, keys: readonly string[]): Promise<Array<string | null>> {
  if (keys.length === 0) return Promise.resolve([]);
  return isCluster(client) ? Promise.all(keys.map((key) => client.get(key))) : client.mget(...keys);
}

/**
 * Queues writes to many keys in pipelines and runs them, in the order queued: one pipeline on one Redis;
 * on a Cluster one per master serving the keys, since ioredis takes a pipeline only when one node serves
 * all its keys. Each pipeline is written as it is executed, so a command sent on the client afterwards
 * lands after these. Rejects with the first failed command, once every pipeline has answered.
 */
export async function pipelined<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string, queue: (pipeline: ChainableCommander, item: T) => void): Promise<void> {
  const pipelines = new Map<string, ChainableCommander>();
  for (const item of items) {
    const node = isCluster(client) ? nodeServing(client, keyOf(item)) : '';
    let pipeline = pipelines.get(node);
    if (!pipeline) pipelines.set(node, (pipeline = client.pipeline()));
    queue(pipeline, item);
  }
  await allSettledOrFirstError([...pipelines.values()].map(async (pipeline) => failOnCommandError(await pipeline.exec())));
}

/** The master serving the key's slot as the client last heard, or the slot itself while it knows none. */
function nodeServing(cluster: Cluster, key: string): string {
  const slot = keySlot(key);
  return cluster.slots[slot]?.[0] ?? `slot ${slot}`;
}

/** What the socket.io Redis adapter calls without awaiting, on its publishing and its subscribing client. */
const UNAWAITED = new Set(['publish', 'spublish']);
/** Its subscriptions, each with the command that ends it. */
const SUBSCRIBE = { subscribe: 'unsubscribe', psubscribe: 'punsubscribe', ssubscribe: 'sunsubscribe' } as const;
type SubscribeCommand = keyof typeof SUBSCRIBE;
const UNSUBSCRIBE = new Map<string, SubscribeCommand>(Object.entries(SUBSCRIBE).map(([subscribe, unsubscribe]) => [unsubscribe, subscribe as SubscribeCommand]));
/** The first retry of a subscription that failed while the client was ready; each next one waits twice as long. */
const RESUBSCRIBE_MS = 1000;
const RESUBSCRIBE_MAX_MS = 30_000;

/**
 * The socket.io Redis adapter publishes, subscribes and unsubscribes without awaiting; while Redis is
 * down each of those rejects and, unhandled, would end the Node 20 process. This view of the client
 * handles (logs) those rejections; the dispatcher itself does not emit to groups while the cluster is
 * disconnected. It also keeps the adapter's subscriptions (see `Subscriptions`).
 */
export function guardUnawaited<T extends RedisClient>(client: T, logger: Logger): T {
  const log = logger.child({ component: 'redis', connection: 'adapter' });
  let subscriptions: Subscriptions | undefined;
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      // `constructor` stays unbound: the adapter tells a Cluster client by its constructor's name.
      if (typeof value !== 'function' || property === 'constructor' || typeof property !== 'string') return value;
      if (property in SUBSCRIBE || UNSUBSCRIBE.has(property)) {
        subscriptions ??= new Subscriptions(target, log);
        const kept = subscriptions;
        return property in SUBSCRIBE
          ? (...channels: unknown[]) => kept.subscribe(property as SubscribeCommand, channels)
          : (...channels: unknown[]) => kept.unsubscribe(UNSUBSCRIBE.get(property)!, channels);
      }
      if (!UNAWAITED.has(property)) return value.bind(target);
      return (...args: unknown[]) => {
        const sent: unknown = value.apply(target, args);
        if (sent instanceof Promise) sent.catch((err: Error) => log.warn({ err: err.message, command: property }, 'group messaging command to Redis failed'));
        return sent;
      };
    },
  });
}

/**
 * The channels the adapter subscribed to and has not left. The sharded adapter subscribes to a group's
 * channel once, when the group's room is created on this node, without awaiting; ioredis subscribes again
 * after a reconnect only to the channels Redis had confirmed. So a subscription that failed (Redis down,
 * or the connection lost before the answer) would leave the group deaf here to the other nodes' emits for
 * as long as the room exists. This sends each failed one again: when the client is ready again, or, when
 * it failed while the client was ready (a Cluster's shard subscriber connection), after a back-off.
 */
class Subscriptions {
  private readonly wanted = new Map<SubscribeCommand, Set<string>>();
  /** Wanted, but the latest attempt failed. */
  private readonly failed = new Map<SubscribeCommand, Set<string>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = RESUBSCRIBE_MS;

  constructor(private readonly client: RedisClient, private readonly log: Logger) {
    for (const command of Object.keys(SUBSCRIBE) as SubscribeCommand[]) {
      this.wanted.set(command, new Set());
      this.failed.set(command, new Set());
    }
    client.on('ready', () => this.retry());
  }

  subscribe(command: SubscribeCommand, args: unknown[]): Promise<unknown> {
    const channels = channelsOf(args);
    for (const channel of channels) {
      this.wanted.get(command)!.add(channel);
      this.failed.get(command)!.delete(channel);
    }
    return this.send(command, args, channels);
  }

  unsubscribe(command: SubscribeCommand, args: unknown[]): Promise<unknown> {
    const channels = channelsOf(args);
    // Without channels: all of this kind.
    for (const channel of channels.length > 0 ? channels : [...this.wanted.get(command)!]) {
      this.wanted.get(command)!.delete(channel);
      this.failed.get(command)!.delete(channel);
    }
    const unsubscribe = SUBSCRIBE[command];
    const sent = (this.client[unsubscribe] as (...a: unknown[]) => Promise<unknown>)(...args);
    return sent.catch((err: Error) => this.log.warn({ err: err.message, command: unsubscribe }, 'group messaging command to Redis failed'));
  }

  private send(command: SubscribeCommand, args: unknown[], channels: string[]): Promise<unknown> {
    const sent = (this.client[command] as (...a: unknown[]) => Promise<unknown>)(...args);
    return sent.then(
      (answer) => {
        this.retryDelayMs = RESUBSCRIBE_MS;
        return answer;
      },
      (err: Error) => {
        const lost = channels.filter((channel) => this.wanted.get(command)!.has(channel));
        if (lost.length === 0) return;
        for (const channel of lost) this.failed.get(command)!.add(channel);
        const ready = this.client.status === 'ready';
        this.log.warn({ err: err.message, command, channels: lost.length },
          ready ? `group subscription failed; trying again in ${this.retryDelayMs} ms` : 'group subscription failed; trying again once Redis is back');
        if (ready) this.retryLater();
      },
    );
  }

  private retryLater(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retry();
    }, this.retryDelayMs);
    this.retryTimer.unref();
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, RESUBSCRIBE_MAX_MS);
  }

  private retry(): void {
    for (const [command, failed] of this.failed) {
      const channels = [...failed];
      failed.clear();
      // One channel per command: on a Cluster the channels of one SSUBSCRIBE must share a slot.
      for (const channel of channels) void this.send(command, [channel], [channel]);
    }
  }
}

function channelsOf(args: unknown[]): string[] {
  return args.flat().filter((arg): arg is string => typeof arg === 'string');
}

/** What a node's `RedisDirectory` and `RedisBus` both take; the same on both parts of a node. */
export interface RedisNodeOptions {
  /** This node's id (`NODE_ID`); unique among the running nodes, the bus's `start()` refuses a duplicate. */
  nodeId: string;
  /** Namespace of every key and channel, e.g. `pushcenter:`; the same on every node of a cluster. */
  keyPrefix: string;
  /** How long `start()` waits for both clients to be ready. Default 10 000 ms. */
  startTimeoutMs?: number;
  logger: Logger;
}

export const DEFAULT_START_TIMEOUT_MS = 10_000;

/** Fails fast instead of queueing a command behind a connection that is down. */
export function requireReady(client: RedisClient): void {
  if (client.status !== 'ready') {
    throw new Error(`Redis is unavailable (connection ${client.status}); the session directory and node bus cannot be used`);
  }
}

/** A pipeline or transaction resolves even when single commands failed; turn the first failure into a rejection. */
export function failOnCommandError(results: Array<[Error | null, unknown]> | null): void {
  if (results === null) throw new Error('Redis discarded the transaction');
  for (const [err] of results) if (err) throw err;
}

/**
 * Hands `onMessage` what the subscriber receives on classic channels (`message`) or on sharded ones
 * (`smessage`), and logs the errors of both connections at debug level (the composition root logs them
 * too), so an error event never goes unhandled whoever else listens. Returns what removes these
 * listeners again.
 */
export function listenTo(
  redis: RedisClient,
  subscriber: RedisClient,
  logger: Logger,
  onMessage: (channel: string, message: string) => void,
  event: 'message' | 'smessage' = 'message',
): () => void {
  const onCommandError = (err: Error): void => logger.debug({ err: err.message }, 'redis command connection error');
  const onSubscriberError = (err: Error): void => logger.debug({ err: err.message }, 'redis subscriber connection error');
  redis.on('error', onCommandError);
  subscriber.on('error', onSubscriberError);
  subscriber.on(event, onMessage);
  return () => {
    redis.off('error', onCommandError);
    subscriber.off('error', onSubscriberError);
    subscriber.off(event, onMessage);
  };
}

/** Resolves when both clients are ready; rejects when one was closed or did not get ready in time. */
export async function clientsReady(redis: RedisClient, subscriber: RedisClient, timeoutMs: number): Promise<void> {
  await Promise.all([whenReady(redis, 'command', timeoutMs), whenReady(subscriber, 'subscriber', timeoutMs)]);
}

function whenReady(client: RedisClient, name: string, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end' || client.status === 'wait') {
    return Promise.reject(new Error(`the ${name} Redis client is not connecting (status ${client.status}); connect it before start()`));
  }
  let stopWaiting = (): void => {};
  const ready = new Promise<void>((resolve, reject) => {
    const onReady = (): void => resolve();
    const onEnd = (): void => reject(new Error(`the ${name} Redis client was closed before it got ready`));
    client.on('ready', onReady);
    client.on('end', onEnd);
    stopWaiting = () => {
      client.off('ready', onReady);
      client.off('end', onEnd);
    };
  });
  return withTimeout(ready, timeoutMs, () => new Error(`the ${name} Redis client was not ready within ${timeoutMs} ms`)).finally(stopWaiting);
}
