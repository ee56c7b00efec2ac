import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { connect as connectAmqp } from 'amqplib';
import { Redis } from 'ioredis';
import { redact } from '../../src/util/redact.js';

/** RabbitMQ and Redis the bench uses: the local ones unless BENCH_AMQP_URL / BENCH_REDIS_URL say otherwise. */
export const AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ServiceVersions {
  rabbitmq: string;
  redis: string;
}

/** Connects to both services once; throws a message that says which one is missing and how to fix it. */
export async function checkServices(): Promise<ServiceVersions> {
  let rabbitmq: string;
  try {
    const connection = await connectAmqp(AMQP_URL, { timeout: 5000 });
    rabbitmq = String(connection.connection.serverProperties.version ?? 'unknown');
    await connection.close();
  } catch (err) {
    throw new Error(`RabbitMQ is not reachable at ${redact(AMQP_URL)}: ${message(err)}. ` +
      'Start it (e.g. `rabbitmq-server -detached`) or point BENCH_AMQP_URL at one.');
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 5000 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const info = await redis.info('server');
    return { rabbitmq, redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' };
  } catch (err) {
    throw new Error(`Redis is not reachable at ${redact(REDIS_URL)}: ${message(err)}. ` +
      'Start it (e.g. `redis-server --daemonize yes`) or point BENCH_REDIS_URL at one.');
  } finally {
    redis.disconnect();
  }
}

/** Deletes queues and exchanges (missing ones are fine); each on its own channel, as a failure closes it. */
export async function deleteAmqp(names: { queues: string[]; exchanges: string[] }): Promise<void> {
  if (names.queues.length + names.exchanges.length === 0) return;
  const connection = await connectAmqp(AMQP_URL, { timeout: 5000 });
  connection.on('error', () => undefined);
  try {
    for (const [kind, list] of [['queue', names.queues], ['exchange', names.exchanges]] as const) {
      for (const name of list) {
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await (kind === 'queue' ? channel.deleteQueue(name) : channel.deleteExchange(name)).catch(() => undefined);
        await channel.close().catch(() => undefined);
      }
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Deletes every Redis key under the prefix; returns how many. */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/**
 * Counts the messages push-center nodes forward to each other: subscribes to their node bus
 * (`<prefix>bus:<node>`, see src/cluster/redis-keys.ts) and counts `deliver` frames. A pattern
 * subscription: it adds one receiver to each PUBLISH, which only matters for a node that is gone (not
 * the case here), and does not count in the nodes' NUMSUB check of their own channel.
 */
export async function watchForwards(prefix: string): Promise<{ count(): number; close(): void }> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectionName: 'push-center-bench:bus-watch' });
  redis.on('error', () => undefined);
  await redis.connect();
  let count = 0;
  redis.on('pmessage', (_pattern: string, _channel: string, message: string) => {
    if (message.includes('"type":"deliver"')) count += 1;
  });
  await redis.psubscribe(`${prefix.replace(/[*?[\]\\]/g, '\\$&')}bus:*`);
  return { count: () => count, close: () => redis.disconnect() };
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  loadAverageAtStart: number[];
  openFilesLimit: number | undefined;
}

export function machineFacts(): MachineFacts {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((load) => Math.round(load * 100) / 100),
    openFilesLimit: openFilesLimit(),
  };
}

/** `ulimit -n` as children inherit it (Node.js has no getrlimit). */
export function openFilesLimit(): number | undefined {
  try {
    const text = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text);
  } catch {
    return undefined;
  }
}

export interface GitFacts {
  commit: string;
  dirty: boolean;
}

export function gitFacts(cwd: string): GitFacts {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8' });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

/** Resident set size of a process (VmRSS), bytes; undefined once it has exited. */
export function rssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\.+$/, '');
}
