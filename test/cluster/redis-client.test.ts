import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { connectRedis, guardUnawaited, quitRedis } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import { TcpProxy } from '../support/proxy.js';
import { REDIS_URL, requireService } from '../support/services.js';
import { until } from '../support/harness.js';
import { describeRedisClient } from './redis-client.behaviour.js';

const logger = createLogger('silent', 'test', false);
let direct: Redis;

beforeAll(async () => {
  await requireService('Redis', REDIS_URL);
  direct = new Redis(REDIS_URL);
});

afterAll(() => {
  direct.disconnect();
});

describeRedisClient('Redis', async () => {
  const proxy = await TcpProxy.start(REDIS_URL);
  return {
    url: proxy.url(REDIS_URL),
    cut: () => proxy.cut(),
    restore: () => proxy.restore(),
    muteAnswers: () => proxy.muteAnswers(),
    read: (key) => direct.get(key),
    spublish: async (channel, message) => Number(await direct.spublish(channel, message)),
    async close(written) {
      if (written.length > 0) await direct.del(...written);
      await proxy.close();
    },
  };
});

describe('the view of a client the socket.io adapter gets', () => {
  it('logs what the adapter publishes, subscribes and unsubscribes without awaiting, when Redis is away, instead of leaving it unhandled', async () => {
    const proxy = await TcpProxy.start(REDIS_URL);
    const client = await connectRedis(proxy.url(REDIS_URL), 'guard-test', logger);
    const lines: string[] = [];
    const recording = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    try {
      const guarded = guardUnawaited(client, recording);
      proxy.cut();
      await until(() => client.status, (status) => status !== 'ready');
      // Called as the adapter calls them: the returned promise is dropped.
      void guarded.publish('channel', 'frame');
      void guarded.unsubscribe('channel');
      void guarded.punsubscribe('channel*');
      await until(() => lines.length, (n) => n === 3);
      expect(lines.map((line) => JSON.parse(line).command).sort()).toEqual(['publish', 'punsubscribe', 'unsubscribe']);
      // Everything else passes through untouched.
      expect(guarded.status).toBe(client.status);
      expect(guarded.constructor).toBe(client.constructor);
    } finally {
      await quitRedis(client);
      await proxy.close();
    }
  });
});
