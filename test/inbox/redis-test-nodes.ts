import { Redis, type Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { connectRedis, quitRedis, type RedisClient } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import type { LocalRedisCluster } from '../support/redis-cluster.js';
import { REDIS_URL, deleteKeys, keysUnder, requireService, uniqueName } from '../support/services.js';

/** The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. */
function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * Two clients, standing for two push-center nodes, for the running test file: on the shared Redis
 * (`use`) or on the file's own Redis Cluster (`useCluster`, clients as push-center opens them). The
 * hooks connect them (failing clearly when Redis is not there), give each test a key prefix of its own
 * and delete the test's keys afterwards.
 */
export class RedisTestNodes<C extends RedisClient = Redis> {
  node1!: C;
  node2!: C;
  /** Every key of the running test is under this prefix; a new one per test. */
  prefix = '';
  private readonly prefixesToClean = new Set<string>();

  static use(name: string): RedisTestNodes<Redis> {
    return RedisTestNodes.install(name, async () => {
      await requireService('Redis', REDIS_URL);
      return new Redis(REDIS_URL);
    });
  }

  static useCluster(name: string, local: { readonly cluster: LocalRedisCluster }): RedisTestNodes<Cluster> {
    const logger = createLogger('silent', name, false);
    return RedisTestNodes.install(name, async () => (await connectRedis(local.cluster.url, name, logger)) as Cluster);
  }

  private static install<C extends RedisClient>(name: string, connect: () => Promise<C>): RedisTestNodes<C> {
    const nodes = new RedisTestNodes<C>();
    beforeAll(async () => {
      nodes.node1 = await connect();
      nodes.node2 = await connect();
    });
    beforeEach(() => {
      nodes.prefix = `${uniqueName(name)}:`;
      nodes.prefixesToClean.add(nodes.prefix);
    });
    afterEach(async () => {
      if (!nodes.node1) return;
      await nodes.deleteKeysUnder(nodes.prefix);
      nodes.prefixesToClean.delete(nodes.prefix);
    });
    afterAll(async () => {
      if (nodes.node1) for (const leftover of nodes.prefixesToClean) await nodes.deleteKeysUnder(leftover);
      await Promise.all([nodes.node1, nodes.node2].filter(Boolean).map(quitRedis));
    });
    return nodes;
  }

  keysUnder(keyPrefix = this.prefix): Promise<string[]> {
    return keysUnder(this.node1, keyPrefix);
  }

  /** The keys of the running test, by the hash tag that decides their Redis Cluster slot. */
  async keysByHashTag(): Promise<Map<string, string[]>> {
    const keysByTag = new Map<string, string[]>();
    for (const key of await this.keysUnder()) keysByTag.set(hashTagOf(key), [...(keysByTag.get(hashTagOf(key)) ?? []), key]);
    return keysByTag;
  }

  private async deleteKeysUnder(keyPrefix: string): Promise<void> {
    await deleteKeys(this.node1, await this.keysUnder(keyPrefix));
  }
}
