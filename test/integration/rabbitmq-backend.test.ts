import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  closeClients,
  collect,
  connectClient,
  getJson,
  metric,
  post,
  register,
  session,
  sleep,
  startNode,
  until,
  type Running,
} from '../support/harness.js';
import { loadConfig } from '../../src/config/config.js';
import { AmqpQueue } from '../../src/ingest/amqp/amqp-queue.js';
import type { Delivery, DeliveryHandler } from '../../src/ingest/queue.js';
import { createLogger } from '../../src/observability/logger.js';
import { balance, waitingIds, type DeadLetterSeen } from '../support/conservation.js';
import { TcpProxy } from '../support/proxy.js';
import {
  AMQP_URL,
  REDIS_URL,
  cleanupRealEngines,
  realEngines,
  requireService,
  uniqueName,
} from '../support/services.js';

/** A business backend: publishes to the queue with publisher confirms, as the original system's did. */
class Backend {
  private constructor(private readonly connection: ChannelModel, private readonly channel: ConfirmChannel) {}

  static async open(): Promise<Backend> {
    const connection = await connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    return new Backend(connection, channel);
  }

  async publish(queue: string, bodies: Array<unknown>, properties: Record<string, unknown> = {}): Promise<void> {
    for (const body of bodies) {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      this.channel.sendToQueue(queue, content, { persistent: true, contentType: 'application/json', ...properties });
    }
    await this.channel.waitForConfirms();
  }

  /** Takes every message of the queue (the dead letters), with their headers. */
  async drain(queue: string): Promise<Array<{ body: string; reason: unknown; detail: unknown }>> {
    const letters = [];
    for (;;) {
      const message = await this.channel.get(queue, { noAck: true });
      if (!message) return letters;
      const headers = message.properties.headers ?? {};
      letters.push({ body: message.content.toString(), reason: headers['x-pushcenter-error'], detail: headers['x-pushcenter-error-detail'] });
    }
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

let backend: Backend;
const names: string[] = [];
const nodes: Running[] = [];
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  backend = await Backend.open();
});
afterEach(async () => {
  closeClients();
  await Promise.all(nodes.splice(0).map((node) => node.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await Promise.all(names.splice(0).map(cleanupRealEngines));
});
afterAll(async () => {
  await backend?.close();
});

async function realNode(env: Record<string, string | number> = {}): Promise<{ node: Running; queue: string; deadLetters: string }> {
  const name = uniqueName('test-backend');
  names.push(name);
  const node = await startNode({ ...realEngines(name), ACK_TIMEOUT_MS: 500, ...env });
  nodes.push(node);
  return { node, queue: name, deadLetters: `${name}.dead` };
}

describe('a business backend publishing to RabbitMQ', () => {
  it('reaches a browser session, in the new format and in the original message center format', async () => {
    const { node, queue } = await realNode();
    const socket = await session(node.url, 'shop-user-1', ['vip']);
    const received = collect(socket);
    await backend.publish(queue, [{ id: 'new-1', session: 'shop-user-1', data: { order: 42 } }]);
    await backend.publish(queue, [{ socketSessionId: 'shop-user-1', isVolatile: false, data: '{"legacy":true}' }],
      { messageId: 'amqp-id', timestamp: Math.floor(Date.now() / 1000) });
    await until(() => received.length, (n) => n === 2);
    // Volatile group messages are dropped by socket.io while the socket is busy writing: send it alone.
    await backend.publish(queue, [{ socketGroupFlag: 'vip', isVolatile: true, data: 'sale' }]);
    await until(() => received.length, (n) => n === 3);
    const byData = received.map((r) => r.envelope);
    expect(byData).toEqual(expect.arrayContaining([
      expect.objectContaining({ id: 'new-1', data: { order: 42 }, reliable: true }),
      expect.objectContaining({ id: 'amqp-id', data: { legacy: true }, reliable: true }),
      expect.objectContaining({ data: 'sale', reliable: false, group: 'vip' }),
    ]));
    expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'amqp' })).toBe(3);
  });

  it('acks RabbitMQ only after the client acked: until then the message stays in flight', async () => {
    const { node, queue } = await realNode({ ACK_TIMEOUT_MS: 5000 });
    const socket = await session(node.url, 'holder');
    const received = collect(socket, 'message', { ack: false });
    await backend.publish(queue, [{ id: 'held', session: 'holder', data: 1 }]);
    await until(() => received.length, (n) => n === 1);
    await sleep(200);
    expect(node.app.queue.inflight).toBe(1);
    expect(await metric(node.url, 'pushcenter_inflight_messages')).toBe(1);
    received[0]!.ack!();
    await until(() => node.app.queue.inflight, (n) => n === 0);
    expect((await getJson(node.url, '/v1/sessions/holder')).body.inbox).toBe(0);
  });

  it('a client that never acks leaves the message in the Redis inbox, acked to RabbitMQ only after the write', async () => {
    const { node, queue } = await realNode({ ACK_TIMEOUT_MS: 400 });
    const socket = await session(node.url, 'never-acks');
    const received = collect(socket, 'message', { ack: false });
    await backend.publish(queue, [{ id: 'kept', session: 'never-acks', data: 'keep me' }]);
    await until(() => received.length, (n) => n === 1);
    expect(node.app.queue.inflight).toBe(1);
    await until(async () => (await getJson(node.url, '/v1/sessions/never-acks')).body.inbox, (n) => n === 1);
    await until(() => node.app.queue.inflight, (n) => n === 0);

    // A new node (the first one is gone) still finds it in Redis and replays it.
    const name = names[0]!;
    await node.close();
    const second = await startNode({ ...realEngines(name) });
    nodes.push(second);
    const again = await connectClient(second.url);
    const replayed = collect(again);
    await register(again, { sessionId: 'never-acks' });
    await until(() => replayed.length, (n) => n === 1);
    expect(replayed[0]!.envelope).toMatchObject({ id: 'kept', data: 'keep me' });
  });

  it('dead-letters each invalid body with its reason; the valid ones around them are all delivered', async () => {
    const { node, queue, deadLetters } = await realNode({ MAX_MESSAGE_BYTES: 1024 });
    const socket = await session(node.url, 'dl-user');
    const received = collect(socket);
    const valid = (i: number) => ({ id: `ok-${i}`, session: 'dl-user', data: i });
    const invalid: Array<[unknown, string]> = [
      ['{"session": "dl-user", data', 'not_json'],
      [{ session: 42, data: 1 }, 'invalid_session'],
      [{ data: 'nobody' }, 'no_target'],
      [{ session: 'dl-user', data: 'x'.repeat(2000) }, 'too_large'],
      [{ session: 'dl-user', event: 'disconnect', data: 1 }, 'reserved_event'],
      [{ session: 'dl-user' }, 'missing_data'],
      [[1, 2, 3], 'not_object'],
    ];
    const bodies: unknown[] = [];
    invalid.forEach(([body], i) => bodies.push(valid(i), body));
    bodies.push(valid(invalid.length));
    await backend.publish(queue, bodies);

    await until(() => received.length, (n) => n === invalid.length + 1);
    expect(received.map((r) => r.envelope.id).sort()).toEqual(
      Array.from({ length: invalid.length + 1 }, (_, i) => `ok-${i}`).sort(),
    );
    const letters: Awaited<ReturnType<Backend['drain']>> = [];
    await until(async () => letters.push(...(await backend.drain(deadLetters))), () => letters.length >= invalid.length);
    expect(letters.map((l) => l.reason).sort()).toEqual(invalid.map(([, reason]) => reason).sort());
    expect(letters.every((l) => typeof l.detail === 'string' && l.detail.length > 0)).toBe(true);
    for (const [, reason] of invalid) {
      expect(await metric(node.url, 'pushcenter_messages_invalid_total', { reason })).toBe(1);
    }
    // Never retried: nothing comes back to the queue or the consumer.
    await sleep(300);
    expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'amqp' })).toBe(bodies.length);
  });

  it('expires a message whose ttl ran out while it waited in the queue, and counts it', async () => {
    const { node, queue } = await realNode();
    await node.app.queue.pause();
    // The enqueue time is the AMQP timestamp (whole seconds); without one it would be the arrival time.
    await backend.publish(queue, [{ id: 'stale', session: 'late', data: 1, ttl: 50 }], { timestamp: Math.floor(Date.now() / 1000) });
    await sleep(200);
    node.app.queue.resume();
    await until(
      () => metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'expired' }),
      (n) => n === 1,
    );
    expect((await getJson(node.url, '/v1/sessions/late')).body.inbox).toBe(0);
  });
});

describe('losing a dependency', () => {
  it('RabbitMQ connection lost mid-stream: every confirmed reliable message is delivered at least once', async () => {
    const proxy = await TcpProxy.start(AMQP_URL);
    proxies.push(proxy);
    const { node, queue } = await realNode({ AMQP_URL: proxy.url(AMQP_URL), AMQP_PREFETCH: 20 });
    const socket = await session(node.url, 'streamer');
    const seen = new Map<string, number>();
    socket.on('message', (envelope: { id: string }, ack?: () => void) => {
      seen.set(envelope.id, (seen.get(envelope.id) ?? 0) + 1);
      // A slow client, so that messages are in flight when the connection drops.
      setTimeout(() => ack?.(), 5);
    });
    const total = 600;
    const publishing = (async () => {
      for (let i = 0; i < total; i += 50) {
        await backend.publish(queue, Array.from({ length: 50 }, (_, j) => ({ id: `s-${i + j}`, session: 'streamer', data: i + j })));
      }
    })();
    await until(() => seen.size, (n) => n >= 100, 10_000);
    proxy.cut();
    await until(async () => (await getJson(node.url, '/readyz')).status, (status) => status === 503);
    await sleep(300);
    proxy.restore();
    await publishing;
    await until(() => seen.size, (n) => n === total, 30_000);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    // At-least-once: duplicates are allowed (and expected for what was in flight), losses are not.
    expect(seen.size).toBe(total);
    expect(duplicates).toBeLessThanOrEqual(total);
    await until(async () => (await getJson(node.url, '/readyz')).status, (status) => status === 200);
  });

  it('RabbitMQ down: not ready, HTTP publishes answer 503 with Retry-After, nothing is lost once it is back', async () => {
    const proxy = await TcpProxy.start(AMQP_URL);
    proxies.push(proxy);
    const { node } = await realNode({ AMQP_URL: proxy.url(AMQP_URL) });
    proxy.cut();
    const ready = await until(() => getJson(node.url, '/readyz'), (r) => r.status === 503);
    expect(ready.body.notReady).toContain('amqp');
    expect(await metric(node.url, 'pushcenter_dependency_up', { dependency: 'amqp' })).toBe(0);
    expect((await getJson(node.url, '/healthz')).status).toBe(200);
    const refused = await post(node.url, { session: 'later', data: 1 });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);

    proxy.restore();
    await until(async () => (await getJson(node.url, '/readyz')).status, (status) => status === 200, 15_000);
    expect(await metric(node.url, 'pushcenter_dependency_up', { dependency: 'amqp' })).toBe(1);
    expect((await post(node.url, { id: 'after', session: 'later', data: 1 })).status).toBe(202);
    await until(async () => (await getJson(node.url, '/v1/sessions/later')).body.inbox, (n) => n === 1);
  });

  it.each([
    ['acks a redelivery its session already acked instead of emitting it again', '180000', 1],
    ['emits it again with DUPLICATE_WINDOW_MS=0 (the control)', '0', 2],
  ])('%s', async (_name, window, arrivals) => {
    const name = uniqueName('test-backend');
    names.push(name);
    const env = { ...realEngines(name), ACK_TIMEOUT_MS: 500, DUPLICATE_WINDOW_MS: window };
    const config = loadConfig({ PORT: 0, HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env });
    const real = await AmqpQueue.connect({ ...config.amqp, url: config.amqp.url!, logger: createLogger('silent', 'test', false) });
    // The broker never hears the first ack of 'twice': as if the node died before it reached RabbitMQ.
    let lost = false;
    const queue = Object.assign(Object.create(real) as AmqpQueue, {
      consume: (handler: DeliveryHandler) => real.consume((delivery) => {
        if (lost || delivery.message.messageId !== 'twice') return handler(delivery);
        lost = true;
        const losesItsAck: Delivery = {
          get message() {
            return delivery.message;
          },
          redelivered: delivery.redelivered,
          ack: () => delivery.requeue(),
          deadLetter: (reason, detail) => delivery.deadLetter(reason, detail),
          requeue: () => delivery.requeue(),
          release: () => delivery.release(),
        };
        handler(losesItsAck);
      }),
    });
    const node = await startNode(env, { queue });
    nodes.push(node);
    const socket = await session(node.url, 'acks-once');
    const received = collect(socket);
    await backend.publish(name, [{ id: 'twice', session: 'acks-once', data: 1 }], { messageId: 'twice' });

    await until(async () => (await metric(node.url, 'pushcenter_duplicates_suppressed_total')) + received.length, (n) => n >= 2, 10_000);
    await sleep(300);
    expect(received.map((r) => r.envelope.id)).toEqual(Array(arrivals).fill('twice'));
    expect(await metric(node.url, 'pushcenter_duplicates_suppressed_total')).toBe(2 - arrivals);
    expect(lost).toBe(true);
    expect((await getJson(node.url, '/v1/sessions/acks-once')).body.inbox).toBe(0);
  });

  it('Redis down during a burst, then back: every message delivered, waiting or dead-lettered, none lost', async () => {
    const proxy = await TcpProxy.start(REDIS_URL);
    proxies.push(proxy);
    const { node, queue, deadLetters } = await realNode({
      REDIS_URL: proxy.url(REDIS_URL), SOCKET_MAX_PENDING: 5, INBOX_MAX: 50, AMQP_PREFETCH: 50,
    });
    const live = await session(node.url, 'burst-live');
    const received = collect(live);
    const toLive = Array.from({ length: 600 }, (_, i) => `live-${String(i).padStart(4, '0')}`);
    const toAway = Array.from({ length: 100 }, (_, i) => `away-${String(i).padStart(4, '0')}`);
    const bodies = toLive.map((id, i) => ({ id, session: 'burst-live', data: i }));
    toAway.forEach((id, i) => bodies.splice(i * 6, 0, { id, session: 'burst-away', data: i }));
    await backend.publish(queue, bodies, {});
    await until(() => received.length, (n) => n >= 60, 15_000);
    proxy.cut();
    await sleep(1500);
    proxy.restore();
    await until(async () => (await getJson(node.url, '/readyz')).status, (status) => status === 200, 15_000);

    const ids = (arrived: typeof received) => arrived.map((r) => r.envelope.id);
    const letters: DeadLetterSeen[] = [];
    const account = async () => {
      for (const letter of await backend.drain(deadLetters)) letters.push({ id: JSON.parse(letter.body).id, reason: String(letter.reason) });
      return balance([...toLive, ...toAway], {
        delivered: ids(received),
        waiting: await waitingIds(node.app, 'burst-away'),
        deadLettered: letters,
      });
    };
    // Settled: the live session has everything; the away one holds its bound and the rest was given up.
    const settled = await until(account, (b) => b.missing.length === 0 && b.waiting === 50, 30_000).catch(account);
    expect(settled.missing).toEqual([]);
    expect(settled).toMatchObject({ waiting: 50, dead: { inbox_full: 50 } });
    expect(new Set(ids(received))).toEqual(new Set(toLive));
  }, 60_000);

  it('Redis down: not ready, consumption held; once it is back the held message is stored, none lost', async () => {
    const proxy = await TcpProxy.start(REDIS_URL);
    proxies.push(proxy);
    const { node, queue } = await realNode({ REDIS_URL: proxy.url(REDIS_URL) });
    proxy.cut();
    const ready = await until(() => getJson(node.url, '/readyz'), (r) => r.status === 503);
    expect(ready.body.notReady).toContain('redis');
    expect(await metric(node.url, 'pushcenter_dependency_up', { dependency: 'redis' })).toBe(0);
    await until(() => metric(node.url, 'pushcenter_consumer_paused'), (v) => v === 1);
    expect(await metric(node.url, 'pushcenter_backpressure_events_total', { reason: 'dependency_down' })).toBe(1);

    await backend.publish(queue, [{ id: 'during-outage', session: 'offline-during-outage', data: 1 }]);
    await sleep(300);
    proxy.restore();
    await until(async () => (await getJson(node.url, '/readyz')).status, (status) => status === 200, 15_000);
    await until(async () => (await getJson(node.url, '/v1/sessions/offline-during-outage')).body.inbox, (n) => n === 1, 10_000);
    expect(await metric(node.url, 'pushcenter_consumer_paused')).toBe(0);
  });
});
