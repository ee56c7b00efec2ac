import { describe, expect, it, vi } from 'vitest';
import { RedisBus } from '../../src/cluster/redis-bus.js';
import { RedisDirectory } from '../../src/cluster/redis-directory.js';
import { captureLogs, notification } from './bus.behaviour.js';
import { cutOff, type RedisNodes } from './redis-nodes.js';

/**
 * What a node's two Redis parts, the directory and the bus, do together when connections fail, on one
 * Redis and on a Redis Cluster alike.
 */
export function describeRedisNode(engine: string, redis: RedisNodes): void {
  describe(`${engine} directory and bus of one node`, () => {
    it('rejects at once while Redis is unreachable, and repairs the directory when it is back', async () => {
      const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
      await a.directory.setLocalSockets('s1', 1);
      await cutOff(a.redis);
      expect(a.directory.connected).toBe(false);
      expect(a.bus.connected).toBe(false);

      const started = Date.now();
      await expect(a.directory.setLocalSockets('s1', 2)).rejects.toThrow(/Redis is unavailable/);
      await expect(a.directory.remoteNodes('s1')).rejects.toThrow(/Redis is unavailable/);
      await expect(a.directory.presence('s1')).rejects.toThrow(/Redis is unavailable/);
      await expect(a.bus.forward('B', 's1', notification('m1'))).rejects.toThrow(/Redis is unavailable/);
      await expect(a.bus.requestReplay('B', 's1')).rejects.toThrow(/Redis is unavailable/);
      expect(Date.now() - started).toBeLessThan(200);

      await a.redis.connect();
      expect(a.directory.connected).toBe(true);
      expect(a.bus.connected).toBe(true);
      await vi.waitFor(async () => expect(await b.directory.presence('s1')).toEqual({ nodes: ['A'], sockets: 2 }), { timeout: 2_000, interval: 20 });
    });

    it('reports connected only while both of its Redis connections are ready', async () => {
      const a = await redis.startNode('A');
      expect(a.directory.connected).toBe(true);
      expect(a.bus.connected).toBe(true);
      await cutOff(a.subscriber);
      expect(a.directory.connected).toBe(false);
      expect(a.bus.connected).toBe(false);
      expect(a.bus.listening).toBe(false);
    });

    it('stops refreshing its liveness while the bus cannot hear, so other nodes stop counting it', async () => {
      const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B', { heartbeatMs: 50, nodeTtlMs: 250 })]);
      await b.directory.setLocalSockets('s1', 1);
      expect(await a.directory.remoteNodes('s1', { fresh: true })).toEqual(['B']);

      // B's command connection is fine; only its subscriber is gone.
      await cutOff(b.subscriber);
      expect(b.redis.status).toBe('ready');
      await vi.waitFor(async () => expect(await a.directory.remoteNodes('s1', { fresh: true })).toEqual([]), { timeout: 3_000, interval: 50 });
    });

    it('gets going again by itself after Redis dropped its connections', async () => {
      const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B', { forwardTimeoutMs: 300 })]);
      a.bus.onForward(async () => 'delivered');
      await a.directory.setLocalSockets('s1', 1);

      // Both connections on one Redis; a cluster client's several, on every master.
      expect(await redis.killConnectionsOf('A')).toBeGreaterThanOrEqual(2);
      const during = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => b.bus.forward('A', 's1', notification(`m-${i}`))));
      for (const result of during) if (result.status === 'fulfilled') expect(['delivered', 'not_delivered']).toContain(result.value);

      await vi.waitFor(async () => expect(await b.bus.forward('A', 's1', notification('after'))).toBe('delivered'), { timeout: 3_000, interval: 50 });
      expect(await b.directory.presence('s1')).toEqual({ nodes: ['A'], sockets: 1 });
      expect(a.directory.connected).toBe(true);
      expect(a.bus.connected).toBe(true);
    });

    it('announces a node alive only once its bus listens: the directory refuses to start first', async () => {
      const client = await redis.connectClient();
      const subscriber = await redis.connectSubscriber(client);
      const { logger } = captureLogs();
      const common = { nodeId: 'A', keyPrefix: redis.prefix, logger };
      const bus = new RedisBus(client, subscriber, { ...common, forwardTimeoutMs: 1000 });
      const directory = new RedisDirectory(client, subscriber, { ...common, listening: () => bus.listening });

      await expect(directory.start()).rejects.toThrow(/start the node bus before the session directory/);
      expect(await redis.admin.exists(redis.nodeKey('A'))).toBe(0);
      await bus.close();
    });
  });
}
