import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { REDIS_URL, keysUnder, requireService, uniqueName } from '../support/services.js';

/** The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. */
function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * Two clients on the real Redis, standing for two push-center nodes, for the running test file: `use()`
 * installs the hooks that connect them (failing clearly when Redis is not there), give each test a key
 * prefix of its own and delete the test's keys afterwards.
 */
export class RedisTestNodes {
  node1!: Redis;
  node2!: Redis;
  /** Every key of the running test is under this prefix; a new one per test. */
  prefix = '';
  private readonly prefixesToClean = new Set<string>();

  static use(name: string): RedisTestNodes {
    const nodes = new RedisTestNodes();
    beforeAll(async () => {
      await requireService('Redis', REDIS_URL);
      nodes.node1 = new Redis(REDIS_URL);
      nodes.node2 = new Redis(REDIS_URL);
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
      await Promise.all([nodes.node1?.quit(), nodes.node2?.quit()]);
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
    const keys = await this.keysUnder(keyPrefix);
    if (keys.length > 0) await this.node1.unlink(...keys);
  }
}
