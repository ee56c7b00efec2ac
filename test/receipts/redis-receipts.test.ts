import { describe, expect, it } from 'vitest';
import { RedisIdClaims, RedisReceipts } from '../../src/receipts/redis-receipts.js';
import { RedisTestNodes } from '../inbox/redis-test-nodes.js';
import { describeIdClaims, describeReceiptStore } from './receipts.behaviour.js';

const redis = RedisTestNodes.use('test-receipts');

describeReceiptStore('RedisReceipts', ({ now, ttlMs, max }) => {
  const engine = new RedisReceipts(redis.node1, { keyPrefix: redis.prefix, now, ttlMs, maxReceipts: max });
  return { engine, settle: () => engine.close() };
});

describeIdClaims('RedisIdClaims', ({ now, ttlMs, max }) => ({
  engine: new RedisIdClaims(redis.node1, { keyPrefix: redis.prefix, now, windowMs: ttlMs, maxIds: max }),
  settle: async () => {},
}));

describe('RedisReceipts shared by several nodes', () => {
  it('reads the same receipt from either node whichever node wrote which event', async () => {
    const a = new RedisReceipts(redis.node1, { keyPrefix: redis.prefix, ttlMs: 60_000, maxReceipts: 1000 });
    const b = new RedisReceipts(redis.node2, { keyPrefix: redis.prefix, ttlMs: 60_000, maxReceipts: 1000 });
    a.add('both', { at: 1, outcome: 'accepted', node: 'a', target: { session: ['s'] } });
    a.add('both', { at: 2, outcome: 'stored', node: 'a' });
    await a.close();
    b.add('both', { at: 3, outcome: 'delivered', node: 'b' });
    await b.close();
    const fromA = await a.get('both');
    expect(fromA?.events.map((e) => `${e.outcome}@${e.node}`)).toEqual(['accepted@a', 'stored@a', 'delivered@b']);
    expect(await b.get('both')).toEqual(fromA);
  });

  it('writes a batch of events in one script call, and keeps at most maxReceipts, the oldest forgotten first', async () => {
    let clock = 1_000;
    const store = new RedisReceipts(redis.node1, { keyPrefix: redis.prefix, ttlMs: 60_000, maxReceipts: 64, now: () => clock });
    // 64 shards of one receipt each at most: a shard over its share forgets its oldest.
    for (let i = 0; i < 2000; i += 1) {
      clock += 1;
      store.add(`id-${i}`, { at: clock, outcome: 'accepted' });
      if (i % 500 === 499) await store.close();
    }
    await store.close();
    const kept = (await Promise.all(Array.from({ length: 2000 }, (_, i) => store.get(`id-${i}`)))).filter(Boolean);
    expect(kept.length).toBeLessThanOrEqual(64);
    expect(kept.length).toBeGreaterThan(0);
    expect(await store.get('id-1999')).toBeDefined();
  });

  it('loses no delivery when Redis fails: the write is reported, add does not throw', async () => {
    const { Redis } = await import('ioredis');
    const closed = new Redis({ lazyConnect: true, enableOfflineQueue: false });
    const failures: number[] = [];
    const store = new RedisReceipts(closed, { keyPrefix: redis.prefix, ttlMs: 60_000, maxReceipts: 10, onError: (_err, n) => void failures.push(n) });
    store.add('x', { at: 1, outcome: 'accepted' });
    store.add('y', { at: 1, outcome: 'accepted' });
    await store.close();
    expect(failures).toEqual([2]);
    closed.disconnect();
  });
});
