import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { keySlot } from '../../src/cluster/key-slot.js';
import { connectRedis, mastersOf, quitRedis, redisUp } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import { LocalRedisCluster } from '../support/redis-cluster.js';
import { deleteKeys } from '../support/services.js';
import { describeBus, notification } from './bus.behaviour.js';
import { describeDirectory, TRICKY_SESSION_IDS } from './directory.behaviour.js';
import { describeRedisClient } from './redis-client.behaviour.js';
import { describeRedisNode } from './redis-node.behaviour.js';
import { RedisNodes } from './redis-nodes.js';

/**
 * The directory and bus suites, and the client's guarantees, on a Redis Cluster of three masters this
 * file starts and stops; clients reach it through proxies the client tests cut.
 */

const local = LocalRedisCluster.use({ proxied: true });
const redis = RedisNodes.useCluster(local);

describeDirectory('Redis Cluster', async (nodeId) => (await redis.startNode(nodeId)).directory);

describeBus('Redis Cluster', async (nodeId, options) => {
  const { bus, logs } = await redis.startNode(nodeId, options);
  return { bus, logs };
});

describeRedisNode('Redis Cluster', redis);

describeRedisClient('Redis Cluster', async () => {
  const { cluster } = local;
  // Straight to the masters, around the proxies: each answers for its own slots only.
  const masters = cluster.masterPorts.map((port) => new Redis({ port, host: '127.0.0.1' }));
  const onEach = async <T>(command: (master: Redis) => Promise<T>): Promise<T[]> =>
    (await Promise.allSettled(masters.map(command))).flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  return {
    url: cluster.url,
    cut: () => cluster.cut(),
    restore: () => cluster.restore(),
    muteAnswers: () => cluster.muteAnswers(),
    read: async (key) => (await onEach((master) => master.get(key)))[0] ?? null,
    spublish: async (channel, message) => (await onEach(async (master) => Number(await master.spublish(channel, message)))).reduce((sum, n) => sum + n, 0),
    async close(written) {
      await onEach((master) => Promise.all(written.map((key) => master.del(key))));
      await Promise.all(masters.map((master) => master.quit()));
    },
  };
});

describe('connecting to a Redis Cluster', () => {
  const logger = createLogger('silent', 'test', false);

  it('fails naming the nodes when none of them answers', async () => {
    await expect(connectRedis('redis+cluster://u:hunter2@127.0.0.1:1,127.0.0.1:2', 'nobody', logger, 3_000))
      .rejects.toThrow(/^cannot connect to REDIS_URL redis\+cluster:\/\/u:\*\*\*@127\.0\.0\.1:1,127\.0\.0\.1:2: /);
  });

  it('counts Redis as down while one master cannot be reached, and as up again once it is back', async () => {
    const { cluster } = local;
    const client = await connectRedis(cluster.url, 'up-test', logger);
    try {
      expect(redisUp(client)).toBe(true);
      cluster.cut(1);
      await vi.waitFor(() => expect(redisUp(client)).toBe(false), { timeout: 3_000, interval: 20 });
      // The cluster client itself still counts as ready: it reaches the other masters.
      expect(client.status).toBe('ready');
      cluster.restore(1);
      // At the next slot refresh, at most 5 s later.
      await vi.waitFor(() => expect(redisUp(client)).toBe(true), { timeout: 8_000, interval: 50 });
    } finally {
      cluster.restore(1);
      await quitRedis(client);
    }
  });

  it('gives up after the timeout, naming the nodes, when the cluster does not answer', async () => {
    const { cluster } = local;
    cluster.muteAnswers();
    try {
      const seeds = cluster.ports.map((port) => `127.0.0.1:${port}`).join(', ');
      await expect(connectRedis(cluster.url, 'muted', logger, 500)).rejects.toThrow(`the Redis Cluster at ${seeds} did not answer`);
    } finally {
      cluster.restore();
    }
  });
});

/** The master (`host:port`) serving the key's slot, as the cluster itself reports it. */
async function masterOf(key: string): Promise<string> {
  const slot = Number(await redis.admin.cluster('KEYSLOT', key));
  const ranges = (await redis.admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
  const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
  return `${range[2][0]}:${range[2][1]}`;
}

describe('the directory and bus on a Redis Cluster', () => {
  it('computes the hash slot of a key as the cluster does', async () => {
    const keys = [...TRICKY_SESSION_IDS, 'a{b}c', '{}x', 'x{}{y}', '{{z}}', 'ünï{cødé}', `${redis.prefix}{inbox:s1}:order`, `${redis.prefix}bus:A`];
    for (const key of keys) expect(keySlot(key), JSON.stringify(key)).toBe(Number(await redis.admin.cluster('KEYSLOT', key)));
  });

  it('listens on a sharded channel, on the master serving it, so a forward to a node that is not there fails at once', async () => {
    const [a] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    const channel = redis.busChannel('B');
    const owner = await masterOf(channel);
    for (const master of mastersOf(redis.admin)) {
      const here = `${master.options.host}:${master.options.port}`;
      expect(await master.pubsub('SHARDNUMSUB', channel), here).toEqual([channel, here === owner ? 1 : 0]);
      expect(await master.pubsub('NUMSUB', channel), here).toEqual([channel, 0]);
    }
    const started = Date.now();
    expect(await a.bus.forward('C', 's1', notification('to-nobody'))).toBe('not_delivered');
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('writes and removes a node\'s entries of sessions on every master in bulk', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    const sessions = Array.from({ length: 60 }, (_, i) => `bulk-${i}`);
    for (const session of sessions) await b.directory.setLocalSockets(session, 2);
    const masters = new Set(await Promise.all(sessions.map((session) => masterOf(redis.sessionKey(session)))));
    expect(masters.size).toBe(3);

    // As if B had stalled past its TTL and other nodes had tidied its entries away: its next heartbeat
    // writes them all again.
    await deleteKeys(redis.admin, sessions.map((session) => redis.sessionKey(session)));
    await redis.admin.del(redis.nodeKey('B'));
    await vi.waitFor(async () => {
      for (const session of sessions) expect(await a.directory.presence(session), session).toEqual({ nodes: ['B'], sockets: 2 });
    }, { timeout: 3_000, interval: 50 });

    await b.directory.close();
    expect((await redis.keysUnder(redis.prefix)).filter((key) => key.startsWith(`${redis.prefix}session:`))).toEqual([]);
  });
});
