import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ackShardKey, RedisAckLog, type RedisAckLogOptions } from '../../src/inbox/redis-ack-log.js';
import { REDIS_URL } from '../support/services.js';
import { describeAckLog } from './ack-log.behaviour.js';
import { RedisTestNodes } from './redis-test-nodes.js';

const redis = RedisTestNodes.use('test-ack-log');

describeAckLog('RedisAckLog', (settings) => new RedisAckLog(redis.node1, { keyPrefix: redis.prefix, ...settings }));

describe('RedisAckLog on Redis', () => {
  const start = 1_700_000_000_000;
  let clock = start;
  const opened: RedisAckLog[] = [];

  beforeEach(() => {
    clock = start;
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((log) => log.close()));
    vi.restoreAllMocks();
  });

  function open(client: Redis, options: Partial<RedisAckLogOptions> = {}): RedisAckLog {
    const log = new RedisAckLog(client, { keyPrefix: redis.prefix, now: () => clock, ...options });
    opened.push(log);
    return log;
  }

  /** A batch window no test outlasts: a batch goes out only when full or closed. */
  const NEVER = 60_000;
  const shardOf = (sessionId: string) => ackShardKey(redis.prefix, sessionId);

  it('keeps the ids in sorted sets shared by sessions, stamped with the time their batch went out', async () => {
    const log = open(redis.node1);
    await log.record('s1', 'm:1');
    clock += 5;
    await log.record('s1', 'm-2');

    expect(await redis.keysUnder()).toEqual([shardOf('s1')]);
    expect(await redis.node1.zrange(shardOf('s1'), '0', '-1', 'WITHSCORES')).toEqual([
      '["s1","m:1"]',
      String(start),
      '["s1","m-2"]',
      String(start + 5),
    ]);
  });

  it('spreads sessions over 16 shards, each in a Redis Cluster hash slot of its own', async () => {
    const log = open(redis.node1);
    await Promise.all(Array.from({ length: 400 }, (_, i) => log.record(`session-${i}`, 'm')));

    const keysByTag = await redis.keysByHashTag();
    expect(keysByTag.size).toBe(16);
    for (const keys of keysByTag.values()) expect(keys).toHaveLength(1);
  });

  it('keeps the newest maxIds, all sessions together', async () => {
    const log = open(redis.node1, { maxIds: 16 });
    for (let i = 0; i < 40; i += 1) {
      clock += 1;
      await log.record('one-session', `m-${i}`);
    }
    expect(await log.has('one-session', 'm-39')).toBe(true);
    expect(await log.has('one-session', 'm-38')).toBe(false);
    expect(await redis.node1.zcard(shardOf('one-session'))).toBe(1);
  });

  it('drops the ids older than ttlMs when it writes, and sets the key to expire ttlMs later, 3 minutes by default', async () => {
    const key = shardOf('s1');
    await open(redis.node1).record('s1', 'm');
    expect(await redis.node1.pttl(key)).toBeGreaterThan(180_000 - 5_000);
    expect(await redis.node1.pttl(key)).toBeLessThanOrEqual(180_000);

    clock += 30_000;
    await open(redis.node1, { ttlMs: 30_000 }).record('s1', 'n');
    expect(await redis.node1.zrange(key, '0', '-1')).toEqual(['["s1","n"]']);
    expect(await redis.node1.pttl(key)).toBeGreaterThan(30_000 - 5_000);
    expect(await redis.node1.pttl(key)).toBeLessThanOrEqual(30_000);
  });

  it('lets Redis delete the ids of sessions that stopped acking', async () => {
    const log = open(redis.node1, { now: Date.now, ttlMs: 200 });
    await log.record('gone', 'm');
    expect(await redis.keysUnder()).toHaveLength(1);

    await vi.waitFor(async () => expect(await redis.keysUnder()).toEqual([]), { timeout: 3_000, interval: 50 });
    expect(await log.has('gone', 'm')).toBe(false);
  });

  it('shows what one node recorded to another', async () => {
    await open(redis.node1).record('s1', 'm');

    expect(await open(redis.node2).has('s1', 'm')).toBe(true);
  });

  it('sends the records of one tick in one script call, at most maxBatch records each', async () => {
    const calls = vi.spyOn(redis.node1, 'evalsha');
    const log = open(redis.node1, { maxBatch: 500 });
    const records: Promise<void>[] = [];
    for (let i = 0; i < 1_200; i += 1) records.push(log.record(`s-${i % 10}`, `m-${i}`));
    await Promise.all(records);

    expect(calls).toHaveBeenCalledTimes(3);
    expect(await log.has('s-3', 'm-1193')).toBe(true);
  });

  it('lets records made within batchWindowMs share the round trip of the first', async () => {
    const calls = vi.spyOn(redis.node1, 'evalsha');
    const log = open(redis.node1, { batchWindowMs: NEVER });
    const first = log.record('s1', 'm-1');
    await new Promise((resolve) => setImmediate(resolve));
    const second = log.record('s2', 'm-2');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).not.toHaveBeenCalled();

    await log.close();
    await Promise.all([first, second]);
    expect(calls).toHaveBeenCalledTimes(1);
    expect(await open(redis.node2).has('s2', 'm-2')).toBe(true);
  });

  it('sends a batch as soon as it holds maxBatch records', async () => {
    const calls = vi.spyOn(redis.node1, 'evalsha');
    const log = open(redis.node1, { batchWindowMs: NEVER, maxBatch: 3 });
    await Promise.all([log.record('s1', 'a'), log.record('s1', 'b'), log.record('s2', 'c')]);
    expect(calls).toHaveBeenCalledTimes(1);

    const fourth = log.record('s1', 'd');
    expect(await open(redis.node2).has('s1', 'd')).toBe(false);
    await log.close();
    await fourth;
    expect(await open(redis.node2).has('s1', 'd')).toBe(true);
  });

  it('has an id recorded on this node before its batch is sent', async () => {
    const log = open(redis.node1, { batchWindowMs: NEVER });
    const recorded = log.record('s1', 'm');

    expect(await log.has('s1', 'm')).toBe(true);
    expect(await log.has('s1', 'other')).toBe(false);
    await log.close();
    await recorded;
  });

  it('rejects every record of a batch Redis could not take, and records again once Redis is back', async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      const log = open(client);
      const failed = await Promise.allSettled([log.record('s1', 'a'), log.record('s2', 'b'), log.record('s1', 'c')]);
      expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);

      await client.connect().catch(() => undefined);
      await vi.waitFor(() => expect(client.status).toBe('ready'), { timeout: 3_000, interval: 10 });
      await Promise.all([log.record('s1', 'a'), log.record('s2', 'b')]);
      expect(await log.has('s1', 'a')).toBe(true);
      expect(await log.has('s2', 'b')).toBe(true);
    } finally {
      client.disconnect();
    }
  });

  it('rejects the records of a batch in which a command failed', async () => {
    await redis.node1.set(shardOf('broken'), 'not a sorted set');
    const log = open(redis.node1);

    const outcomes = await Promise.allSettled([log.record('broken', 'a'), log.record('fine', 'b')]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
  });

  it('rejects has when Redis cannot be reached', async () => {
    const closedClient = new Redis(REDIS_URL);
    await closedClient.quit();

    await expect(open(closedClient).has('s1', 'm')).rejects.toThrow();
  });

  it('refuses records after close', async () => {
    const log = open(redis.node1);
    await log.close();

    await expect(log.record('s1', 'm')).rejects.toThrow(/closed/);
    expect(await redis.keysUnder()).toEqual([]);
  });
});
