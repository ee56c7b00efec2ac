import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { isCluster, mastersOf, type RedisClient } from '../../src/cluster/redis-client.js';
import { workQueues } from '../../src/config/config.js';
import { CONSISTENT_HASH_EXCHANGE } from '../../src/ingest/amqp/topology.js';

/** The real services the integration tests use; CI runs them on this machine. */
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A name no other test (or test run) uses: queues, exchanges, Redis key prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${process.pid}.${randomBytes(4).toString('hex')}`;
}

/**
 * Fails (never skips) with a message that says what is missing and how to start it, when a service
 * the test needs is not reachable.
 */
export async function requireService(name: 'RabbitMQ' | 'Redis', url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
  if (!reachable) {
    const start = name === 'RabbitMQ' ? 'rabbitmq-server -detached' : 'redis-server --daemonize yes';
    throw new Error(`${name} is not reachable at ${hostname}:${port}; these tests need it running (e.g. \`${start}\`)`);
  }
}

/**
 * Fails with the fix when the broker lacks the consistent-hash exchange that AMQP_QUEUE_SHARDS > 1
 * needs: declares one of that type under a name of its own, and removes it again.
 */
export async function requireConsistentHashExchange(): Promise<void> {
  const { connect: connectAmqp } = await import('amqplib');
  const connection = await connectAmqp(AMQP_URL);
  // The broker refuses an unknown exchange type by closing the connection.
  connection.on('error', () => undefined);
  const name = uniqueName('test-plugin-check');
  try {
    const channel = await connection.createChannel();
    await channel.assertExchange(name, CONSISTENT_HASH_EXCHANGE, { durable: false, autoDelete: true });
    await channel.deleteExchange(name);
  } catch (err) {
    throw new Error(`RabbitMQ at ${AMQP_URL} has no ${CONSISTENT_HASH_EXCHANGE} exchange, which the sharded tests need: ` +
      `run \`rabbitmq-plugins enable rabbitmq_consistent_hash_exchange\` (${(err as Error).message})`);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Removes queues and exchanges a test declared (missing ones are fine). */
export async function deleteAmqp(names: { queues?: string[]; exchanges?: string[] }): Promise<void> {
  const { connect: connectAmqp } = await import('amqplib');
  const connection = await connectAmqp(AMQP_URL);
  try {
    for (const queue of names.queues ?? []) {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
    }
    for (const exchange of names.exchanges ?? []) {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await channel.close().catch(() => undefined);
    }
  } finally {
    await connection.close();
  }
}

/** Every Redis key under the prefix (SCAN, with the prefix's glob characters escaped; on a Cluster, of every master). */
export async function keysUnder(redis: RedisClient, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const master of mastersOf(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await master.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** Deletes the keys: at once on one Redis; on a Cluster, where one command takes keys of one slot, each by itself. */
export async function deleteKeys(redis: RedisClient, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(redis)) return redis.unlink(...keys);
  return (await Promise.all(keys.map((key) => redis.unlink(key)))).reduce((sum, n) => sum + n, 0);
}

/** Removes every Redis key under the prefix. */
/** The keys under `prefix` now (for tests that check what a process left behind). */
export async function redisKeys(prefix: string): Promise<string[]> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL);
  try {
    return await keysUnder(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

export async function deleteRedisKeys(prefix: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await keysUnder(redis, prefix);
    return keys.length > 0 ? await redis.del(...keys) : 0;
  } finally {
    redis.disconnect();
  }
}

/** Settings for a node on the real engines, with names of its own; the ingest over `shards` queues. */
export function realEngines(name: string, shards = 1): Record<string, string> {
  return {
    AMQP_URL,
    REDIS_URL,
    AMQP_QUEUE: name,
    AMQP_QUEUE_SHARDS: String(shards),
    AMQP_DEAD_LETTER_QUEUE: `${name}.dead`,
    AMQP_DEAD_LETTER_EXCHANGE: `${name}.dlx`,
    AMQP_RECEIPTS_EXCHANGE: `${name}.receipts`,
    REDIS_KEY_PREFIX: `${name}:`,
  };
}

/** Removes everything `realEngines(name)` made (one argument: it is handed to `map` as is). */
export function cleanupRealEngines(name: string): Promise<void> {
  return cleanupShardedEngines(name, 1);
}

/** Removes everything `realEngines(name, shards)` made: with shards, their queues and exchange too. */
export async function cleanupShardedEngines(name: string, shards: number): Promise<void> {
  await deleteAmqp({
    queues: [...workQueues({ queue: name, queueShards: shards }), `${name}.dead`],
    exchanges: [`${name}.dlx`, `${name}.receipts`, ...(shards > 1 ? [name] : [])],
  });
  await deleteRedisKeys(`${name}:`);
}
