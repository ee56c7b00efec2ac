import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { connectRedis, guardUnawaited, quitRedis } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import { TcpProxy } from '../support/proxy.js';
import { REDIS_URL, requireService, uniqueName } from '../support/services.js';
import { sleep, until } from '../support/harness.js';

const logger = createLogger('silent', 'test', false);
let direct: Redis;
const keys: string[] = [];

beforeAll(async () => {
  await requireService('Redis', REDIS_URL);
  direct = new Redis(REDIS_URL);
});

afterAll(async () => {
  if (keys.length > 0) await direct.del(...keys);
  direct.disconnect();
});

describe('the Redis client push-center opens', () => {
  it('fails a command whose answer was lost with the connection, and does not send it again', async () => {
    const proxy = await TcpProxy.start(REDIS_URL);
    const client = await connectRedis(proxy.url(REDIS_URL), 'resend-test', logger);
    const key = uniqueName('test-resend');
    keys.push(key);
    try {
      // The server runs the command, the answer never arrives, the connection drops and comes back at once.
      proxy.muteAnswers();
      const incremented = client.incr(key).then(() => 'answered', (err: Error) => `failed: ${err.message}`);
      await until(() => direct.get(key), (value) => value === '1');
      proxy.cut();
      proxy.restore();
      expect(await incremented).toMatch(/^failed/);
      await until(() => client.status, (status) => status === 'ready', 5000);
      await sleep(100);
      // Sent again after the reconnect, a script that is not idempotent (a trim by count) would run twice.
      expect(await direct.get(key)).toBe('1');
    } finally {
      await quitRedis(client);
      await proxy.close();
    }
  });
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
