import { describe, expect, it } from 'vitest';
import { MemoryIdempotencyKeys, PENDING_MS, RedisIdempotencyKeys, scopedKey, type IdempotencyKeys } from '../../src/http/idempotency.js';
import { RedisTestNodes } from '../inbox/redis-test-nodes.js';

const redis = RedisTestNodes.use('test-idem');

function describeKeys(name: string, make: (ttlMs: number) => IdempotencyKeys): void {
  describe(name, () => {
    it('lets the first request take a key, tells a concurrent one it is under way, then answers the first result', async () => {
      const keys = make(60_000);
      const key = scopedKey('api-key-1', 'order-42');
      expect(await keys.begin(key, 'body-a')).toEqual({ kind: 'new' });
      expect(await keys.begin(key, 'body-a')).toEqual({ kind: 'pending' });
      await keys.finish(key, 'body-a', { status: 202, ids: ['x', 'y'] });
      expect(await keys.begin(key, 'body-a')).toEqual({ kind: 'done', result: { status: 202, ids: ['x', 'y'] } });
      expect(await keys.begin(key, 'body-b')).toEqual({ kind: 'mismatch' });
    });

    it('frees a key whose request enqueued nothing', async () => {
      const keys = make(60_000);
      const key = scopedKey('', 'retry-me');
      expect((await keys.begin(key, 'b')).kind).toBe('new');
      await keys.abandon(key, 'b');
      expect((await keys.begin(key, 'b')).kind).toBe('new');
    });

    it('scopes a key to the API key that sent it', async () => {
      const keys = make(60_000);
      expect((await keys.begin(scopedKey('one', 'k'), 'b')).kind).toBe('new');
      expect((await keys.begin(scopedKey('two', 'k'), 'b')).kind).toBe('new');
    });

    it('lets exactly one of many requests arriving at once take a key', async () => {
      const keys = make(60_000);
      const states = await Promise.all(Array.from({ length: 10 }, () => keys.begin(scopedKey('', 'race'), 'b')));
      expect(states.filter((s) => s.kind === 'new')).toHaveLength(1);
    });
  });
}

describeKeys('MemoryIdempotencyKeys', (ttlMs) => new MemoryIdempotencyKeys({ ttlMs, maxKeys: 100 }));
describeKeys('RedisIdempotencyKeys', (ttlMs) => new RedisIdempotencyKeys(redis.node1, { keyPrefix: redis.prefix, ttlMs }));

describe('the idempotency window', () => {
  it('frees a key once IDEMPOTENCY_TTL_MS ran out after its answer, and a request that never finished after PENDING_MS', async () => {
    let clock = 0;
    const keys = new MemoryIdempotencyKeys({ ttlMs: 86_400_000, maxKeys: 100, now: () => clock });
    await keys.begin('done', 'b');
    await keys.finish('done', 'b', { status: 202, ids: ['i'] });
    await keys.begin('stuck', 'b');
    clock = PENDING_MS;
    expect((await keys.begin('stuck', 'b')).kind).toBe('new');
    clock = 86_400_000 - 1;
    expect((await keys.begin('done', 'b')).kind).toBe('done');
    clock = 86_400_000;
    expect((await keys.begin('done', 'b')).kind).toBe('new');
  });

  it('sets the Redis key to expire with the window', async () => {
    const keys = new RedisIdempotencyKeys(redis.node1, { keyPrefix: redis.prefix, ttlMs: 86_400_000 });
    await keys.begin('k', 'b');
    const name = `${redis.prefix}idem:{k}`;
    expect(await redis.node1.pttl(name)).toBeLessThanOrEqual(PENDING_MS);
    await keys.finish('k', 'b', { status: 202, ids: [] });
    expect(await redis.node1.pttl(name)).toBeGreaterThan(86_400_000 - 5000);
  });
});
