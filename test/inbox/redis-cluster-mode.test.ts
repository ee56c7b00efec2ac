import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { RedisClient } from '../../src/cluster/redis-client.js';
import { ackShardKey, RedisAckLog, type RedisAckLogOptions } from '../../src/inbox/redis-ack-log.js';
import { RedisInbox, type RedisInboxOptions } from '../../src/inbox/redis-inbox.js';
import { LocalRedisCluster } from '../support/redis-cluster.js';
import { describeAckLog } from './ack-log.behaviour.js';
import { describeInbox, ids, inboxEntry, recordEvents, TRICKY_SESSION_IDS, type RecordedEvents } from './inbox.behaviour.js';
import { RedisTestNodes } from './redis-test-nodes.js';
import { RedisIdempotencyKeys } from '../../src/http/idempotency.js';
import { RedisIdClaims, RedisReceipts } from '../../src/receipts/redis-receipts.js';
import { describeIdClaims, describeReceiptStore } from '../receipts/receipts.behaviour.js';

/** The inbox and acked-id log suites on a Redis Cluster of three masters this file starts and stops. */

const local = LocalRedisCluster.use();
const redis = RedisTestNodes.useCluster('test-inbox-cluster', local);

describeInbox('RedisInbox on a Redis Cluster', (settings, events) => new RedisInbox(redis.node1, { keyPrefix: redis.prefix, ...settings }, events));

describeAckLog('RedisAckLog on a Redis Cluster', (settings) => new RedisAckLog(redis.node1, { keyPrefix: redis.prefix, ...settings }));

/** The masters (by port) serving the keys, as the cluster itself reports it. */
async function mastersServing(keys: string[]): Promise<Set<number>> {
  const ranges = (await redis.node1.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
  const masters = new Set<number>();
  for (const key of keys) {
    const slot = Number(await redis.node1.cluster('KEYSLOT', key));
    masters.add(ranges.find(([from, to]) => slot >= from && slot <= to)![2][1]);
  }
  return masters;
}

describe('RedisInbox on a Redis Cluster', () => {
  const start = 1_700_000_000_000;
  let clock = start;

  /** An inbox on the test's clock, which starts at `start`; closed when the test ends. */
  function open(options: Partial<RedisInboxOptions> = {}): { inbox: RedisInbox; events: RecordedEvents } {
    clock = start;
    const events = recordEvents();
    const inbox = new RedisInbox(redis.node1, { keyPrefix: redis.prefix, maxPerSession: 1, now: () => clock, ...options }, events);
    onTestFinished(() => inbox.close());
    return { inbox, events };
  }

  it('keeps every key of a session in one hash slot, dead list, lock and missed record included', async () => {
    const { inbox, events } = open();
    for (const session of TRICKY_SESSION_IDS) {
      await inbox.store(session, inboxEntry('evicted', clock));
      await inbox.store(session, inboxEntry('kept', clock));
    }
    expect(events.evictedTotal()).toBe(TRICKY_SESSION_IDS.length);

    const keysByTag = await redis.keysByHashTag();
    expect(keysByTag.size).toBe(TRICKY_SESSION_IDS.length);
    for (const keys of keysByTag.values()) {
      // order, expiry, data and the missed record the hand-over of the evicted entry left.
      expect(keys).toHaveLength(4);
      const slots = new Set(await Promise.all(keys.map((key) => redis.node1.cluster('KEYSLOT', key))));
      expect(slots.size, keys.join()).toBe(1);
    }
    expect((await mastersServing([...keysByTag.values()].map((keys) => keys[0]!))).size).toBe(3);
    for (const session of TRICKY_SESSION_IDS) expect(await inbox.takeMissed(session)).toEqual({ count: 1, since: start });
  });

  it('sweeps the sessions on every master: their expired entries, and dead lists a node left behind', async () => {
    const { inbox, events } = open({ maxPerSession: 10 });
    const sessions = Array.from({ length: 30 }, (_, i) => `swept-${i}`);
    for (const session of sessions) await inbox.store(session, inboxEntry('stale', clock, 1_000));
    // Given up by a node that died before it handed them over.
    const orphans = Array.from({ length: 30 }, (_, i) => `orphan-${i}`);
    for (const session of orphans) {
      await redis.node2.rpush(`${redis.prefix}{inbox:${session}}:dead`, `inbox_full\n${JSON.stringify(inboxEntry('left', clock))}`);
    }
    expect((await mastersServing(sessions.map((session) => `${redis.prefix}{inbox:${session}}:order`))).size).toBe(3);
    expect((await mastersServing(orphans.map((session) => `${redis.prefix}{inbox:${session}}:dead`))).size).toBe(3);

    clock = start + 1_000;
    await inbox.sweep();

    expect(events.givenUp.filter((g) => g.reason === 'inbox_expired').map((g) => g.sessionId).sort()).toEqual([...sessions].sort());
    expect(events.givenUp.filter((g) => g.reason === 'inbox_full').map((g) => g.sessionId).sort()).toEqual([...orphans].sort());
    expect((await redis.keysUnder()).filter((key) => !key.endsWith(':missed'))).toEqual([]);
    expect(ids(await inbox.read('swept-0', 10))).toEqual([]);
  });

  it('refuses a key prefix with a brace, which could split a session\'s keys over slots', () => {
    expect(() => new RedisInbox(redis.node1, { keyPrefix: 'app{}:', maxPerSession: 1 }, recordEvents())).toThrow(/must not contain \{ or \}/);
    expect(() => new RedisAckLog(redis.node1, { keyPrefix: '{app}:' })).toThrow(/must not contain \{ or \}/);
  });
});

describe('RedisAckLog on a Redis Cluster', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** A log on the test's client, closed when the test ends. */
  function open(client: RedisClient, options: Partial<RedisAckLogOptions> = {}): RedisAckLog {
    const log = new RedisAckLog(client, { keyPrefix: redis.prefix, ...options });
    onTestFinished(() => log.close());
    return log;
  }

  /** A batch window no test outlasts: a batch goes out only when closed. */
  const openBatching = () => open(redis.node1, { batchWindowMs: 60_000, maxBatch: 10_000 });

  it('sends a batch as one script call per shard, since a script\'s keys must share a slot', async () => {
    const calls = vi.spyOn(redis.node1, 'evalsha');
    const log = openBatching();
    const sessions = Array.from({ length: 40 }, (_, i) => `acker-${i}`);
    const records = sessions.map((session) => log.record(session, 'm-1'));
    await log.close();
    await Promise.all(records);

    const shards = new Set(sessions.map((session) => ackShardKey(redis.prefix, session)));
    expect((await mastersServing([...shards])).size).toBe(3);
    expect(calls).toHaveBeenCalledTimes(shards.size);
    for (const call of calls.mock.calls) expect(call[1]).toBe(1);
    expect(new Set(calls.mock.calls.map((call) => call[2]))).toEqual(shards);
    const reader = open(redis.node2);
    for (const session of sessions) expect(await reader.has(session, 'm-1'), session).toBe(true);
  });

  it('rejects every record of a batch one of whose shards failed, once each shard has answered', async () => {
    const [broken, fine] = ['s-broken', 's-fine'];
    expect(ackShardKey(redis.prefix, broken)).not.toBe(ackShardKey(redis.prefix, fine));
    await redis.node2.set(ackShardKey(redis.prefix, broken), 'not a sorted set');
    const log = openBatching();

    const records = [log.record(broken, 'a'), log.record(fine, 'b')];
    await log.close();
    const outcomes = await Promise.allSettled(records);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    // The other shard's call ran: the session's ack is there.
    expect(await log.has(fine, 'b')).toBe(true);
  });
});

describeReceiptStore('RedisReceipts on a Redis Cluster', ({ now, ttlMs, max }) => {
  const engine = new RedisReceipts(redis.node1, { keyPrefix: redis.prefix, now, ttlMs, maxReceipts: max });
  return { engine, settle: () => engine.close() };
});

describeIdClaims('RedisIdClaims on a Redis Cluster', ({ now, ttlMs, max }) => ({
  engine: new RedisIdClaims(redis.node1, { keyPrefix: redis.prefix, now, windowMs: ttlMs, maxIds: max }),
  settle: async () => {},
}));

describe('receipts and idempotency keys on a Redis Cluster', () => {
  it('writes a batch of receipts spread over many shards, and claims ids over them (a call per shard: one call over several slots is refused)', async () => {
    const receipts = new RedisReceipts(redis.node1, { keyPrefix: redis.prefix, ttlMs: 60_000, maxReceipts: 100_000 });
    const claims = new RedisIdClaims(redis.node1, { keyPrefix: redis.prefix, windowMs: 60_000, maxIds: 100_000 });
    const many = Array.from({ length: 300 }, (_, i) => `spread-${i}`);
    for (const id of many) receipts.add(id, { at: 1, outcome: 'accepted' });
    await receipts.close();
    for (const id of many) expect((await receipts.get(id))?.status).toBe('accepted');
    expect(await Promise.all(many.map((id) => claims.claim(id)))).toEqual(many.map(() => true));
    expect(await Promise.all(many.map((id) => claims.claim(id)))).toEqual(many.map(() => false));
    const keys = await redis.keysUnder();
    expect((await mastersServing(keys.filter((key) => key.includes('{receipts:')))).size).toBe(3);
  });

  it('takes an Idempotency-Key once', async () => {
    const keys = new RedisIdempotencyKeys(redis.node1, { keyPrefix: redis.prefix, ttlMs: 60_000 });
    const states = await Promise.all(Array.from({ length: 5 }, () => keys.begin('cluster-key', 'body')));
    expect(states.filter((s) => s.kind === 'new')).toHaveLength(1);
    await keys.finish('cluster-key', 'body', { status: 202, ids: ['x'] });
    expect(await keys.begin('cluster-key', 'body')).toEqual({ kind: 'done', result: { status: 202, ids: ['x'] } });
  });
});
