import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { connectRedis, duplicateForSubscriptions, guardUnawaited, quitRedis, type RedisClient } from '../../src/cluster/redis-client.js';
import { createLogger } from '../../src/observability/logger.js';
import { sleep, until } from '../support/harness.js';
import { uniqueName } from '../support/services.js';

/** A Redis (one server, or a cluster) that a test reaches through connections it can cut. */
export interface CuttableRedis {
  /** The `REDIS_URL` that goes through the cuttable connections. */
  url: string;
  /** Drops every connection and refuses new ones. */
  cut(): void;
  restore(): void;
  /** Commands still arrive, their answers are lost. */
  muteAnswers(): void;
  /** Reads a key around the cut connections. */
  read(key: string): Promise<string | null>;
  /** Publishes on a sharded channel around the cut connections; resolves with the receivers. */
  spublish(channel: string, message: string): Promise<number>;
  /** Deletes what the test wrote, and what was made for it. */
  close(keys: string[]): Promise<void>;
}

const logger = createLogger('silent', 'test', false);

/**
 * What push-center's Redis clients guarantee when connections fail, on one Redis and on a Redis Cluster
 * alike. `connect` gives each test a Redis of its own to cut.
 */
export function describeRedisClient(engine: string, connect: () => Promise<CuttableRedis>): void {
  async function using(test: (redis: CuttableRedis, keys: string[], clients: RedisClient[]) => Promise<void>): Promise<void> {
    const redis = await connect();
    const keys: string[] = [];
    const clients: RedisClient[] = [];
    try {
      await test(redis, keys, clients);
    } finally {
      redis.restore();
      await Promise.all(clients.map(quitRedis));
      await redis.close(keys);
    }
  }

  describe(`the ${engine} client push-center opens`, () => {
    it('fails a command whose answer was lost with the connection, and does not send it again', () => using(async (redis, keys, clients) => {
      const client = await connectRedis(redis.url, 'resend-test', logger);
      clients.push(client);
      const key = uniqueName('test-resend');
      keys.push(key);
      // Connected to the key's server (a cluster client connects to a master at its first command there).
      expect(await client.exists(key)).toBe(0);
      // The server runs the command, the answer never arrives, the connection drops and comes back at once.
      redis.muteAnswers();
      const incremented = client.incr(key).then(() => 'answered', (err: Error) => `failed: ${err.message}`);
      await until(() => redis.read(key), (value) => value === '1');
      redis.cut();
      redis.restore();
      expect(await incremented).toMatch(/^failed/);
      await until(() => client.status, (status) => status === 'ready', 5000);
      await sleep(100);
      // Sent again after the reconnect, a script that is not idempotent (a trim by count) would run twice.
      expect(await redis.read(key)).toBe('1');
    }));

    it('takes the commands for keys all over Redis as soon as it is connected', () => using(async (redis, keys, clients) => {
      const client = await connectRedis(redis.url, 'burst-test', logger);
      clients.push(client);
      const sent: Array<Promise<unknown>> = [];
      // Transactions (a directory write is one), over several ticks, as a node's work comes.
      for (let tick = 0; tick < 10; tick += 1) {
        for (let i = 0; i < 30; i += 1) {
          const key = uniqueName('test-burst');
          keys.push(key);
          sent.push(client.multi().incr(key).exec());
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const outcomes = await Promise.allSettled(sent);
      expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    }));
  });

  describe(`the view of a ${engine} client the socket.io adapter gets`, () => {
    it('subscribes again to a group channel it could not subscribe to while Redis was away, once Redis is back', () => using(async (redis, _keys, clients) => {
      const client = await connectRedis(redis.url, 'resubscribe-test', logger);
      clients.push(client);
      const subscriber = await duplicateForSubscriptions(client, 'resubscribe-test', logger);
      clients.push(subscriber);
      const guarded = guardUnawaited(subscriber, logger);
      const heard: string[] = [];
      guarded.on('smessage', (channel: string) => heard.push(channel));
      const [namespace, room] = [uniqueName('test-namespace'), uniqueName('test-room')];
      // As the sharded adapter does: its namespace's channel at the start, a room's when the room is made.
      await guarded.ssubscribe(namespace);

      redis.cut();
      await until(() => subscriber.status, (status) => status !== 'ready');
      void guarded.ssubscribe(room);
      await sleep(50);
      redis.restore();

      await until(() => subscriber.status, (status) => status === 'ready', 10_000);
      for (const channel of [namespace, room]) {
        await until(async () => {
          await redis.spublish(channel, 'emit');
          return heard.includes(channel);
        }, Boolean, 10_000);
      }
    }));

    it('stops subscribing again to a channel the adapter left meanwhile', () => using(async (redis, _keys, clients) => {
      const client = await connectRedis(redis.url, 'resubscribe-test', logger);
      clients.push(client);
      const subscriber = await duplicateForSubscriptions(client, 'resubscribe-test', logger);
      clients.push(subscriber);
      const lines: string[] = [];
      const guarded = guardUnawaited(subscriber, pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }));
      const [namespace, room] = [uniqueName('test-namespace'), uniqueName('test-room')];
      await guarded.ssubscribe(namespace);

      redis.cut();
      await until(() => subscriber.status, (status) => status !== 'ready');
      void guarded.ssubscribe(room);
      await until(() => lines.length, (n) => n > 0);
      // The room emptied while Redis was away.
      void guarded.sunsubscribe(room);
      redis.restore();

      await until(() => subscriber.status, (status) => status === 'ready', 10_000);
      await until(() => redis.spublish(namespace, 'emit'), (receivers) => receivers === 1, 10_000);
      expect(await redis.spublish(room, 'emit')).toBe(0);
    }));
  });
}
