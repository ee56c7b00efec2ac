import { Redis } from 'ioredis';
import { redact } from '../util/redact.js';
import { withTimeout } from '../util/timeout.js';
import type { Logger } from '../observability/logger.js';

/**
 * Opens an ioredis client for push-center's use of Redis and waits until it is ready.
 *
 * Commands fail at once while Redis is unreachable (no offline queue, one retry), so a dispatcher never
 * waits on a dead connection and nothing piles up in memory (FACTS: ioredis's offline queue is unbounded);
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
    maxRetriesPerRequest: 1,
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

/**
 * The socket.io Redis adapter publishes without awaiting; while Redis is down each publish rejects and,
 * unhandled, would kill the process (FACTS). This view of the client handles (logs) those rejections; the
 * dispatcher itself does not emit to groups while the cluster is disconnected.
 */
export function guardPublishes(client: Redis, logger: Logger): Redis {
  const log = logger.child({ component: 'redis', connection: 'adapter' });
  return new Proxy(client, {
    get(target, property) {
      if (property === 'publish' || property === 'spublish') {
        return (channel: string | Buffer, message: string | Buffer) => {
          const published: Promise<unknown> = target[property](channel, message);
          published.catch((err: Error) => log.warn({ err: err.message }, 'group emit to other nodes failed'));
          return published;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
