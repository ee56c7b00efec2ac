import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { RedisDirectory } from '../../src/cluster/redis-directory.js';
import { TRICKY_SESSION_IDS } from './directory.behaviour.js';
import { RedisNodes } from './redis-nodes.js';

/** What the session directory does in Redis: its keys, their expiry, liveness and incarnations. */

const redis = RedisNodes.use();

describe('RedisDirectory in Redis', () => {
  it('deletes the session\'s hash when no node is left in it', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    await b.directory.setLocalSockets('s1', 3);
    await b.directory.setLocalSockets('s1', 1);
    expect(await a.directory.presence('s1')).toEqual({ nodes: ['B'], sockets: 1 });

    await b.directory.setLocalSockets('s1', 0);
    expect(await a.directory.remoteNodes('s1')).toEqual([]);
    expect(await a.directory.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    expect(await redis.admin.exists(redis.sessionKey('s1'))).toBe(0);
  });

  it('serves lookups from a cache that every change of an entry, on any node, invalidates at once', async () => {
    const { admin } = redis;
    const [a, b, c] = await Promise.all([redis.startNode('A'), redis.startNode('B'), redis.startNode('C')]);
    expect(await a.directory.remoteNodes('moving')).toEqual([]);
    // The cache answers without Redis: an entry written behind the nodes' backs is not seen...
    await admin.hset(redis.sessionKey('moving'), 'C', `1:${await admin.get(redis.nodeKey('C'))}`);
    expect(await a.directory.remoteNodes('moving')).toEqual([]);
    expect(a.directory.knownRemoteNodes('moving')).toEqual([]);
    expect(await a.directory.remoteNodes('moving', { fresh: true })).toEqual(['C']);
    await admin.hdel(redis.sessionKey('moving'), 'C');
    expect(await a.directory.remoteNodes('moving')).toEqual(['C']);
    // ...but a node's own change is announced, and every cache drops the session.
    await b.directory.setLocalSockets('moving', 1);
    await vi.waitFor(async () => expect(await a.directory.remoteNodes('moving')).toEqual(['B']), { timeout: 1_000, interval: 10 });
    await b.directory.setLocalSockets('moving', 0);
    await c.directory.setLocalSockets('moving', 2);
    await vi.waitFor(async () => expect(await a.directory.remoteNodes('moving')).toEqual(['C']), { timeout: 1_000, interval: 10 });
    await c.directory.setLocalSockets('moving', 0);
    await vi.waitFor(async () => expect(await a.directory.remoteNodes('moving')).toEqual([]), { timeout: 1_000, interval: 10 });
  });

  it('gives each of the sessions whose ids differ only in special characters a hash of its own', async () => {
    const b = await redis.startNode('B');
    for (const [i, id] of TRICKY_SESSION_IDS.entries()) await b.directory.setLocalSockets(id, i + 1);

    const sessionKeys = (await redis.keysUnder(redis.prefix)).filter((key) => key.startsWith(`${redis.prefix}session:`));
    expect(sessionKeys).toHaveLength(TRICKY_SESSION_IDS.length);
  });

  it('gives the directory hash a key expiry, renewed by every write', async () => {
    const a = await redis.startNode('A', { directoryTtlMs: 60_000 });
    await a.directory.setLocalSockets('s1', 1);
    await redis.admin.pexpire(redis.sessionKey('s1'), 5_000);

    await a.directory.setLocalSockets('s1', 2);
    const ttl = await redis.admin.pttl(redis.sessionKey('s1'));
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('stops counting the sockets of a node whose heartbeat stopped, and tidies its entry away', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B', { heartbeatMs: 50, nodeTtlMs: 250 })]);
    await b.directory.setLocalSockets('s1', 1);
    expect(await a.directory.remoteNodes('s1')).toEqual(['B']);

    await b.kill();
    await vi.waitFor(async () => expect(await a.directory.remoteNodes('s1', { fresh: true })).toEqual([]), { timeout: 3_000, interval: 50 });
    expect(await a.directory.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    await vi.waitFor(async () => expect(await redis.admin.hget(redis.sessionKey('s1'), 'B')).toBeNull(), { timeout: 1_000, interval: 20 });
  });

  it('stops listing a node whose heartbeat stopped in the cluster view, and tidies its status away', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B', { heartbeatMs: 50, nodeTtlMs: 250 })]);
    const status = { startedAt: 1, sockets: 2, sessions: 1, inflight: 0, paused: false, version: 'x' };
    b.directory.reportStatus(() => status);
    await vi.waitFor(async () => expect(await a.directory.nodes()).toEqual([{ id: 'B', ...status }]), { timeout: 1_000, interval: 20 });

    await b.kill();
    await vi.waitFor(async () => expect(await a.directory.nodes()).toEqual([]), { timeout: 3_000, interval: 50 });
    await vi.waitFor(async () => expect(await redis.admin.hget(`${redis.prefix}nodes`, 'B')).toBeNull(), { timeout: 1_000, interval: 20 });
  });

  it('ignores the entries of an earlier process with the same node id at once', async () => {
    const a = await redis.startNode('A');
    const first = await redis.startNode('B', { nodeTtlMs: 60_000 });
    await first.directory.setLocalSockets('s1', 1);
    await first.directory.setLocalSockets('s2', 1);
    await first.kill();
    // Redis has noticed the first process is gone (a restart takes longer than this anyway).
    const channel = redis.busChannel('B');
    await vi.waitFor(async () => expect(await redis.admin.pubsub('NUMSUB', channel)).toEqual([channel, 0]));

    const second = await redis.startNode('B', { nodeTtlMs: 60_000 });
    expect(await a.directory.remoteNodes('s1')).toEqual([]);
    await second.directory.setLocalSockets('s2', 4);
    expect(await a.directory.presence('s2')).toEqual({ nodes: ['B'], sockets: 4 });
  });

  it('writes its entries again after other nodes counted it as gone', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    await b.directory.setLocalSockets('s1', 2);
    // As if B stalled past its TTL: its liveness key expires, and A tidies B's entry away.
    await redis.admin.del(redis.nodeKey('B'));
    expect(await a.directory.remoteNodes('s1')).toEqual([]);
    await vi.waitFor(async () => expect(await redis.admin.hget(redis.sessionKey('s1'), 'B')).toBeNull(), { timeout: 1_000, interval: 10 });

    await vi.waitFor(async () => expect(await a.directory.presence('s1')).toEqual({ nodes: ['B'], sockets: 2 }), { timeout: 2_000, interval: 20 });
  });

  it('leaves the cluster on close: liveness key and own entries removed, other nodes\' entries kept', async () => {
    const { admin } = redis;
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    await a.directory.setLocalSockets('s1', 1);
    await a.directory.setLocalSockets('s2', 1);
    await b.directory.setLocalSockets('s1', 1);
    expect(await admin.exists(redis.nodeKey('A'))).toBe(1);

    await a.directory.close();
    expect(await admin.exists(redis.nodeKey('A'))).toBe(0);
    expect(await admin.hget(redis.sessionKey('s1'), 'A')).toBeNull();
    expect(await admin.hget(redis.sessionKey('s1'), 'B')).not.toBeNull();
    expect(await admin.exists(redis.sessionKey('s2'))).toBe(0);
    expect(await b.directory.remoteNodes('s1')).toEqual([]);
    // A socket leaving during shutdown does not bring the node back.
    await a.directory.setLocalSockets('s1', 0);
    await a.directory.setLocalSockets('s3', 1);
    expect(await admin.exists(redis.sessionKey('s3'))).toBe(0);

    await b.directory.close();
    expect(await redis.keysUnder(redis.prefix)).toEqual([]);
  });

  it('rejects invalid settings with a reason', async () => {
    const [client, subscriber] = [await redis.connectClient(), await redis.connectClient()];
    const options = { nodeId: 'A', keyPrefix: redis.prefix, logger: pino({ level: 'silent' }), listening: () => true };
    expect(() => new RedisDirectory(client, subscriber, { ...options, heartbeatMs: 100, nodeTtlMs: 100 })).toThrow(/nodeTtlMs \(100\) must exceed heartbeatMs/);
    expect(() => new RedisDirectory(client, subscriber, { ...options, nodeTtlMs: 5_000, directoryTtlMs: 5_000 })).toThrow(/directoryTtlMs \(5000\) must exceed nodeTtlMs/);
    expect(() => new RedisDirectory(client, subscriber, { ...options, nodeId: '' })).toThrow(/nodeId/);
  });
});
