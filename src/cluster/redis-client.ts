import { Redis } from 'ioredis';
import { redact } from '../util/redact.js';
import { withTimeout } from '../util/timeout.js';
import type { Logger } from '../observability/logger.js';

/**
 * Opens an ioredis client for push-center's use of Redis and waits until it is ready.
 *
 * Commands fail at once while Redis is unreachable (no offline queue, no retry), so a dispatcher never
 * waits on a dead connection and nothing piles up in memory (ioredis's offline queue is unbounded);
 * the client keeps reconnecting with capped, jittered back-off, and every error is logged, never thrown
 * at the process.
 */
export async function connectRedis(url: string, name: string, logger: Logger, timeoutMs = 10_000): Promise<Redis> {
  const log = logger.child({ component: 'redis', connection: name });
  const client = new Redis(url, {
    connectionName: `push-center:${name}`,
    lazyConnect: true,
    enableOfflineQueue: false,
    // Commands issued in the same tick (e.g. lookups for many messages) travel in one write.
    enableAutoPipelining: true,
    // A command in flight when the connection drops fails: ioredis would otherwise send it again after
    // the reconnect, and a script that already ran (a trim by count, a counter) would run twice.
    maxRetriesPerRequest: 0,
    connectTimeout: 5000,
    retryStrategy: (attempt) => Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2),
  });
  let wasReady = false;
  client.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  client.on('ready', () => {
    if (wasReady) log.info('redis reconnected');
    wasReady = true;
  });
  client.on('close', () => {
    if (wasReady) log.warn('redis connection lost; reconnecting');
  });
  try {
    await withTimeout(client.connect(), timeoutMs, () => new Error(`Redis at ${redact(url)} did not answer within ${timeoutMs} ms`));
  } catch (err) {
    client.disconnect();
    throw new Error(`cannot connect to REDIS_URL ${redact(url)}: ${(err as Error).message}`);
  }
  return client;
}

/** A second connection for subscriptions (a subscribed connection can run no other command). */
export async function duplicateForSubscriptions(client: Redis, name: string, logger: Logger): Promise<Redis> {
  const log = logger.child({ component: 'redis', connection: name });
  const subscriber = client.duplicate({ connectionName: `push-center:${name}`, lazyConnect: true });
  subscriber.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  await subscriber.connect();
  return subscriber;
}

/** Quits gracefully, or drops the connection when Redis is not there to answer. */
export async function quitRedis(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else {
    client.disconnect();
  }
}

/** What the socket.io Redis adapter calls without awaiting, on its publishing and its subscribing client. */
const UNAWAITED = new Set(['publish', 'spublish', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe']);

/**
 * The socket.io Redis adapter publishes, subscribes and unsubscribes (at close) without awaiting; while
 * Redis is down each of those rejects and, unhandled, would end the Node 20 process. This view of the
 * client handles (logs) those rejections; the dispatcher itself does not emit to groups while the
 * cluster is disconnected.
 */
export function guardUnawaited(client: Redis, logger: Logger): Redis {
  const log = logger.child({ component: 'redis', connection: 'adapter' });
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      // `constructor` stays unbound: the adapter tells a Cluster client by its constructor's name.
      if (typeof value !== 'function' || property === 'constructor') return value;
      if (typeof property !== 'string' || !UNAWAITED.has(property)) return value.bind(target);
      return (...args: unknown[]) => {
        const sent: unknown = value.apply(target, args);
        if (sent instanceof Promise) sent.catch((err: Error) => log.warn({ err: err.message, command: property }, 'group messaging command to Redis failed'));
        return sent;
      };
    },
  });
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
export function requireReady(client: Redis): void {
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
 * Hands `onMessage` what the subscriber receives, and logs the errors of both connections at debug level
 * (the composition root logs them too), so an error event never goes unhandled whoever else listens.
 * Returns what removes these listeners again.
 */
export function listenTo(redis: Redis, subscriber: Redis, logger: Logger, onMessage: (channel: string, message: string) => void): () => void {
  const onCommandError = (err: Error): void => logger.debug({ err: err.message }, 'redis command connection error');
  const onSubscriberError = (err: Error): void => logger.debug({ err: err.message }, 'redis subscriber connection error');
  redis.on('error', onCommandError);
  subscriber.on('error', onSubscriberError);
  subscriber.on('message', onMessage);
  return () => {
    redis.off('error', onCommandError);
    subscriber.off('error', onSubscriberError);
    subscriber.off('message', onMessage);
  };
}

/** Resolves when both clients are ready; rejects when one was closed or did not get ready in time. */
export async function clientsReady(redis: Redis, subscriber: Redis, timeoutMs: number): Promise<void> {
  await Promise.all([whenReady(redis, 'command', timeoutMs), whenReady(subscriber, 'subscriber', timeoutMs)]);
}

function whenReady(client: Redis, name: string, timeoutMs: number): Promise<void> {
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
