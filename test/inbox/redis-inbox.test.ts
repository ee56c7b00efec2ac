import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { InboxEntry } from '../../src/inbox/inbox.js';
import { RedisInbox, type RedisInboxOptions } from '../../src/inbox/redis-inbox.js';
import { LuaScript } from '../../src/util/lua-script.js';
import { connectRedis, quitRedis, type RedisClient } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import { TcpProxy } from '../support/proxy.js';
import { REDIS_URL } from '../support/services.js';
import { describeInbox, ids, inboxEntry, recordEvents, TRICKY_SESSION_IDS, type RecordedEvents } from './inbox.behaviour.js';
import { RedisTestNodes } from './redis-test-nodes.js';

const redis = RedisTestNodes.use('test-inbox');

describeInbox('RedisInbox', (settings, events) => new RedisInbox(redis.node1, { keyPrefix: redis.prefix, ...settings }, events));

describe('RedisInbox shared by several nodes', () => {
  const start = 1_700_000_000_000;
  let clock = start;
  const opened: RedisInbox[] = [];

  beforeEach(() => {
    clock = start;
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((inbox) => inbox.close()));
  });

  function open(
    client: RedisClient,
    options: Partial<RedisInboxOptions> = {},
  ): { inbox: RedisInbox; events: RecordedEvents } {
    const events = recordEvents();
    const inbox = new RedisInbox(client, { keyPrefix: redis.prefix, maxPerSession: 100, now: () => clock, ...options }, events);
    opened.push(inbox);
    return { inbox, events };
  }

  const entry = (id: string, ttlMs?: number) => inboxEntry(id, clock, ttlMs);

  it('keeps the bound and counts every eviction when two nodes store into one session at once', async () => {
    const first = open(redis.node1, { maxPerSession: 50 });
    const second = open(redis.node2, { maxPerSession: 50 });
    const stored = new Map<string, InboxEntry>();
    const stores: Promise<void>[] = [];
    for (let i = 0; i < 100; i += 1) {
      for (const [node, { inbox }] of [['n1', first], ['n2', second]] as const) {
        const e = entry(`${node}-${String(i).padStart(3, '0')}`);
        stored.set(e.id, e);
        stores.push(inbox.store('busy', e));
      }
    }
    await Promise.all(stores);

    const survivors = await first.inbox.read('busy', 1000);
    expect(survivors).toHaveLength(50);
    expect(await second.inbox.size('busy')).toBe(50);
    expect(first.events.evictedTotal() + second.events.evictedTotal()).toBe(150);
    for (const survivor of survivors) expect(survivor).toEqual(stored.get(survivor.id));
    // Each node's stores reach Redis in the order it sent them, so only the newest of each can survive,
    // and they come out in that order.
    for (const node of ['n1', 'n2']) {
      const own = ids(survivors).filter((id) => id.startsWith(`${node}-`));
      const newest = Array.from({ length: own.length }, (_, k) => `${node}-${String(100 - own.length + k).padStart(3, '0')}`);
      expect(own).toEqual(newest);
    }
  });

  it('loses nothing when two nodes store into one session at once within the bound', async () => {
    const first = open(redis.node1, { maxPerSession: 50 });
    const second = open(redis.node2, { maxPerSession: 50 });
    const expected: string[] = [];
    const stores: Promise<void>[] = [];
    for (let i = 0; i < 25; i += 1) {
      for (const [node, { inbox }] of [['n1', first], ['n2', second]] as const) {
        expected.push(`${node}-${i}`);
        stores.push(inbox.store('busy', entry(`${node}-${i}`)));
      }
    }
    await Promise.all(stores);

    expect(ids(await first.inbox.read('busy', 1000)).sort()).toEqual(expected.sort());
    expect(first.events.evictedCalls).toEqual([]);
    expect(second.events.evictedCalls).toEqual([]);
  });

  it('stores a message once when two nodes store it at the same time', async () => {
    const first = open(redis.node1);
    const second = open(redis.node2);
    const messages = Array.from({ length: 100 }, (_, i) => entry(`m-${i}`));
    await Promise.all(messages.flatMap((m) => [first.inbox.store('s1', m), second.inbox.store('s1', m)]));

    expect(ids(await first.inbox.read('s1', 1000)).sort()).toEqual(ids(messages).sort());
    expect(await first.inbox.size('s1')).toBe(100);
  });

  it('counts each expired entry once when two nodes read the session at the same time', async () => {
    const first = open(redis.node1);
    const second = open(redis.node2);
    for (let i = 0; i < 100; i += 1) await first.inbox.store('s1', entry(`m-${i}`, 1_000));

    clock = start + 1_000;
    const [fromFirst, fromSecond] = await Promise.all([first.inbox.read('s1', 10), second.inbox.read('s1', 10)]);
    expect([...fromFirst, ...fromSecond]).toEqual([]);
    expect(first.events.expiredTotal() + second.events.expiredTotal()).toBe(100);
  });

  it('lets exactly one of two nodes remove the same acked entry', async () => {
    const first = open(redis.node1);
    const second = open(redis.node2);
    await first.inbox.store('s1', entry('acked'));

    const removed = await Promise.all([first.inbox.remove('s1', 'acked'), second.inbox.remove('s1', 'acked')]);
    expect(removed.sort()).toEqual([false, true]);
  });

  it('sets one key expiry on all keys of a session: its latest entry plus the grace period', async () => {
    const { inbox } = open(redis.node1, { keyExpiryGraceMs: 5_000 });
    const expectKeyTtl = async (ms: number) => {
      const keys = await redis.keysUnder();
      expect(keys).toHaveLength(3);
      for (const key of keys) {
        const pttl = await redis.node1.pttl(key);
        expect(pttl, key).toBeGreaterThan(ms - 1_000);
        expect(pttl, key).toBeLessThanOrEqual(ms);
      }
    };

    await inbox.store('s1', entry('a', 10_000));
    await expectKeyTtl(15_000);
    await inbox.store('s1', entry('b', 30_000));
    await expectKeyTtl(35_000);
    await inbox.store('s1', entry('c', 1_000));
    await expectKeyTtl(35_000);
  });

  it('keeps abandoned keys for 60 s past the latest expiry by default', async () => {
    const { inbox } = open(redis.node1);
    await inbox.store('s1', entry('a', 10_000));

    const keys = await redis.keysUnder();
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(await redis.node1.pttl(key)).toBeGreaterThan(69_000);
  });

  it('lets Redis delete an abandoned inbox by itself', async () => {
    const { inbox } = open(redis.node1, { now: Date.now, keyExpiryGraceMs: 0 });
    await inbox.store('gone', inboxEntry('a', Date.now(), 100));
    expect(await redis.keysUnder()).toHaveLength(3);

    await vi.waitFor(async () => expect(await redis.keysUnder()).toEqual([]), { timeout: 3_000, interval: 50 });
  });

  it('keeps the keys of a session in one Redis Cluster hash slot and apart from other sessions', async () => {
    const { inbox } = open(redis.node1);
    for (const session of TRICKY_SESSION_IDS) await inbox.store(session, entry('m'));

    const keysByTag = await redis.keysByHashTag();
    expect(keysByTag.size).toBe(TRICKY_SESSION_IDS.length);
    for (const keys of keysByTag.values()) expect(keys).toHaveLength(3);
  });

  it('rejects the operation when Redis cannot be reached, so the dispatcher can requeue', async () => {
    const closedClient = new Redis(REDIS_URL);
    await closedClient.quit();
    const { inbox } = open(closedClient);

    await expect(inbox.store('s1', entry('a'))).rejects.toThrow();
    await expect(inbox.read('s1', 10)).rejects.toThrow();
    await expect(inbox.remove('s1', 'a')).rejects.toThrow();
  });

  it('keeps working after Redis forgot its cached scripts', async () => {
    const { inbox } = open(redis.node1);
    await inbox.store('s1', entry('a'));
    await redis.node1.script('FLUSH');

    await inbox.store('s1', entry('b'));
    expect(ids(await inbox.read('s1', 10))).toEqual(['a', 'b']);
    expect(await inbox.remove('s1', 'a')).toBe(true);
  });

  it('sweeps and counts the expired entries of sessions nobody reads, under its own prefix only', async () => {
    const { inbox, events } = open(redis.node1);
    const neighbourPrefix = `${redis.prefix}neighbour:`;
    const neighbour = open(redis.node1, { keyPrefix: neighbourPrefix });
    for (const session of TRICKY_SESSION_IDS) await inbox.store(session, entry('stale', 1_000));
    await inbox.store('a:b', entry('alive', 5_000));
    await neighbour.inbox.store('a:b', entry('stale', 1_000));

    clock = start + 1_000;
    await inbox.sweep();

    expect(events.expiredTotal()).toBe(TRICKY_SESSION_IDS.length);
    expect(ids(await inbox.read('a:b', 10))).toEqual(['alive']);
    expect(await inbox.size('{x}')).toBe(0);
    expect(await neighbour.inbox.size('a:b')).toBe(1);
  });

  it('keeps what it gave up in Redis until the dead-letter queue took it, and the sweep hands it over then', async () => {
    const errors: string[] = [];
    const { inbox, events } = open(redis.node1, { maxPerSession: 1, onError: (_err, message) => void errors.push(message) });
    events.failWith = new Error('dead-letter queue down');
    for (const id of ['a', 'b', 'c']) await inbox.store('s:1', entry(id));

    expect(errors).toHaveLength(2);
    expect(await redis.node1.lrange(`${redis.prefix}{inbox:s%003a1}:dead`, 0, -1)).toHaveLength(2);
    expect(await inbox.takeMissed('s:1')).toBeUndefined();

    events.failWith = undefined;
    await inbox.sweep();
    expect(events.givenUp.map((g) => `${g.sessionId}/${g.reason}/${g.id}`)).toEqual(['s:1/inbox_full/a', 's:1/inbox_full/b']);
    expect(await redis.node1.exists(`${redis.prefix}{inbox:s%003a1}:dead`)).toBe(0);
    expect(await inbox.takeMissed('s:1')).toEqual({ count: 2, since: start });
  });

  it('tries a failed hand-over again by itself a second later, without waiting for a sweep', async () => {
    const { inbox, events } = open(redis.node1, { maxPerSession: 1, onError: () => {} });
    events.failWith = new Error('dead-letter queue down');
    await inbox.store('s1', entry('a'));
    await inbox.store('s1', entry('b'));
    expect(events.givenUp).toEqual([]);

    events.failWith = undefined;
    await vi.waitFor(() => expect(events.givenUp).toEqual([{ sessionId: 's1', reason: 'inbox_full', id: 'a' }]), { timeout: 3_000, interval: 50 });
    expect(await redis.node1.exists(`${redis.prefix}{inbox:s1}:dead`)).toBe(0);
  });

  it('takes a hand-over up again at the retry when Redis went away mid-way and the lock it held was left behind', async () => {
    const proxy = await TcpProxy.start(REDIS_URL);
    const client = await connectRedis(proxy.url(REDIS_URL), 'inbox-lock-test', createLogger('silent', 'test', false));
    try {
      const { inbox, events } = open(client, { maxPerSession: 1, onError: () => {} });
      const handOver = events.gaveUp;
      let cuts = 0;
      // The dead letter is sent; Redis goes away before the trim and the unlock, and is back at once.
      events.gaveUp = async (...args) => {
        await handOver(...args);
        if (cuts++ > 0) return;
        proxy.cut();
        setTimeout(() => proxy.restore(), 50);
      };
      await inbox.store('s1', entry('a'));
      await inbox.store('s1', entry('b'));
      expect(await redis.node1.get(`${redis.prefix}{inbox:s1}:dead-lock`)).not.toBeNull();

      // Not 30 s later, when the lock would have run out: the retry a second later holds the same token.
      // The list trimmed, then the lock released.
      await vi.waitFor(async () => expect(await redis.node1.exists(`${redis.prefix}{inbox:s1}:dead`, `${redis.prefix}{inbox:s1}:dead-lock`)).toBe(0),
        { timeout: 4_000, interval: 50 });
      expect(new Set(events.givenUp.map((g) => g.id))).toEqual(new Set(['a']));
      await inbox.close();
    } finally {
      await quitRedis(client);
      await proxy.close();
    }
  });

  it('leaves a dead list to the node that is handing it over, and takes it over when that node died', async () => {
    const { inbox, events } = open(redis.node1, { maxPerSession: 1 });
    const lock = `${redis.prefix}{inbox:s1}:dead-lock`;
    await redis.node1.set(lock, 'a node that died', 'PX', 300);
    await inbox.store('s1', entry('a'));
    await inbox.store('s1', entry('b'));
    expect(events.givenUp).toEqual([]);

    await vi.waitFor(async () => expect(await redis.node1.exists(lock)).toBe(0), { timeout: 3_000, interval: 25 });
    await inbox.sweep();
    expect(events.givenUp).toEqual([{ sessionId: 's1', reason: 'inbox_full', id: 'a' }]);
    expect(await redis.node1.exists(lock)).toBe(0);
  });

  it('sweeps on its own every sweepIntervalMs and stops when closed', async () => {
    const { inbox, events } = open(redis.node1, { sweepIntervalMs: 20 });
    await inbox.store('s1', entry('a', 1_000));

    clock = start + 1_000;
    await vi.waitFor(() => expect(events.expiredCalls).toEqual([1]), { timeout: 3_000, interval: 20 });

    await inbox.close();
    await inbox.store('s2', entry('b', 1_000));
    clock = start + 5_000;
    const scans = vi.spyOn(redis.node1, 'scan');
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(scans).not.toHaveBeenCalled();
    } finally {
      scans.mockRestore();
    }
    expect(await inbox.size('s2')).toBe(1);
    expect(events.expiredCalls).toEqual([1]);
  });
});

describe('the dead list trim (dead-letter.lua)', () => {
  const trimScript = LuaScript.load(new URL('../../src/inbox/dead-letter.lua', import.meta.url));

  it('trims a batch once, even when the script runs twice (its first answer lost and it was sent again)', async () => {
    const base = `${redis.prefix}{inbox:twice}`;
    const keys = [`${base}:dead`, `${base}:missed`, `${base}:dead-lock`];
    await redis.node1.rpush(keys[0]!, 'inbox_full\na', 'inbox_full\nb', 'inbox_full\nc');
    await redis.node1.set(keys[2]!, 'token', 'PX', 30_000);
    const args = ['token', 2, 1000, 60_000, 30_000, 'inbox_full\na'];
    expect(await trimScript.run(redis.node1, keys, args)).toBe(1);
    expect(await trimScript.run(redis.node1, keys, args)).toBe(2);
    expect(await redis.node1.lrange(keys[0]!, 0, -1)).toEqual(['inbox_full\nc']);
    expect(await redis.node1.hget(keys[1]!, 'count')).toBe('2');
    // Without the lock nothing is trimmed.
    expect(await trimScript.run(redis.node1, keys, ['other', 1, 1000, 60_000, 30_000, 'inbox_full\nc'])).toBe(0);
    expect(await redis.node1.llen(keys[0]!)).toBe(1);
  });
});
