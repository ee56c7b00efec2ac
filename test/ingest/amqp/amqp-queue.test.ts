import { execFile } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { promisify } from 'node:util';
import { connect, type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AmqpQueue, type AmqpQueueOptions } from '../../../src/ingest/amqp/amqp-queue.js';
import { ERROR_DETAIL_HEADER, ERROR_HEADER, ORIGINAL_QUEUE_HEADER } from '../../../src/ingest/amqp/headers.js';
import { workQueues } from '../../../src/config/config.js';
import { splitPrefetch } from '../../../src/ingest/amqp/consumer.js';
import { ShardExchangePluginError, TopologyMismatchError } from '../../../src/ingest/amqp/topology.js';
import { QueueUnavailableError, type Delivery, type QueueMessage } from '../../../src/ingest/queue.js';
import { AMQP_URL, requireConsistentHashExchange, requireService, uniqueName } from '../../support/services.js';
import { describeQueue } from '../queue.behaviour.js';

const run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let admin: ChannelModel;
const engines: AmqpQueue[] = [];
const queues: string[] = [];
const exchanges: string[] = [];

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  admin = await connect(AMQP_URL, { clientProperties: { connection_name: uniqueName('pc-test-admin') } });
  admin.on('error', () => undefined);
});

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
  for (const queue of queues.splice(0)) await onChannel((ch) => ch.deleteQueue(queue));
  for (const exchange of exchanges.splice(0)) await onChannel((ch) => ch.deleteExchange(exchange));
});

afterAll(async () => {
  await admin?.close();
});

/** Runs one operation on a fresh admin channel (a refused operation closes its channel). */
async function onChannel<T>(operation: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await admin.createChannel();
  ch.on('error', () => undefined);
  try {
    return await operation(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** Names no other test uses, deleted after the test. */
function names() {
  const base = uniqueName('pc.test');
  const n = {
    queue: `${base}.work`,
    deadLetterQueue: `${base}.dead`,
    deadLetterExchange: `${base}.dlx`,
    connectionName: base,
  };
  queues.push(n.queue, n.deadLetterQueue);
  exchanges.push(n.deadLetterExchange);
  return n;
}

function options(overrides: Partial<AmqpQueueOptions> = {}): AmqpQueueOptions {
  return {
    url: AMQP_URL,
    ...names(),
    prefetch: 10,
    queueShards: 1,
    queueTtlMs: 60_000,
    queueType: 'classic',
    logger,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    ...overrides,
  };
}

async function start(opts: AmqpQueueOptions): Promise<AmqpQueue> {
  const engine = await AmqpQueue.connect(opts);
  engines.push(engine);
  return engine;
}

function message(id: string, extra: Partial<QueueMessage> = {}): QueueMessage {
  return { body: Buffer.from(JSON.stringify({ id, session: 's1', data: { id } })), messageId: id, ...extra };
}

function ids(count: number, prefix = 'm'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Retries `attempt` until it resolves. */
async function eventually<T>(what: string, attempt: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: err });
      await sleep(50);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readyCount(queue: string): Promise<number> {
  return (await onChannel((ch) => ch.checkQueue(queue))).messageCount;
}

/** Consumes into an array, holding every delivery until the test settles it. */
async function hold(engine: AmqpQueue): Promise<Delivery[]> {
  const received: Delivery[] = [];
  await engine.consume((delivery) => received.push(delivery));
  return received;
}

/** Closes, from the broker side, this test's connections whose client-provided name is `name`. */
async function closeConnectionsNamed(name: string): Promise<number> {
  const { stdout } = await run('rabbitmqctl', ['list_connections', '-q', '--no-table-headers', 'pid', 'client_properties']);
  const pids = stdout.split('\n')
    .filter((line) => line.includes(`{"connection_name","${name}"}`))
    .map((line) => line.split('\t')[0] ?? '');
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'test: simulated connection loss']);
  return pids.length;
}

/** Declaring with other arguments must be refused: the arguments in place are exactly these. */
async function expectQueueArguments(queue: string, args: Record<string, unknown>): Promise<void> {
  await onChannel((ch) => ch.assertQueue(queue, { durable: true, arguments: args }));
  const [first] = Object.keys(args);
  const other = { ...args, [first!]: typeof args[first!] === 'number' ? (args[first!] as number) + 1 : 'other' };
  await expect(onChannel((ch) => ch.assertQueue(queue, { durable: true, arguments: other })))
    .rejects.toThrow(/PRECONDITION_FAILED/);
}

/** Acks what the engine hands out until `total` came; resolves with the most it held unsettled meanwhile. */
async function ackAsTheyCome(engine: AmqpQueue, received: Delivery[], total: number): Promise<number> {
  let maxInflight = 0;
  let next = 0;
  while (next < total) {
    await waitFor('more deliveries', () => received.length > next);
    maxInflight = Math.max(maxInflight, engine.inflight);
    for (const delivery of received.slice(next)) delivery.ack();
    next = received.length;
  }
  return maxInflight;
}

/**
 * Publishes 200 messages and settles each after a random delay, one in ten requeued once, so that
 * requeues interleave with batched acks; checks that every one was acked and that the channel never
 * closed (a double or unknown ack would have made the engine reconnect). Closes the engine.
 */
async function settleRandomlyWithRequeues(
  opts: AmqpQueueOptions, build: (id: string) => QueueMessage, published: () => Promise<void> = async () => undefined,
): Promise<void> {
  const statuses: boolean[] = [];
  const engine = await start({ ...opts, onStatus: (up) => statuses.push(up) });
  const total = 200;
  await engine.publish(ids(total).map(build));
  await published();
  const acked = new Set<string>();
  let requeued = 0;
  await engine.consume((delivery) => {
    const id = delivery.message.messageId!;
    setTimeout(() => {
      if (!delivery.redelivered && Number(id.slice(1)) % 10 === 3) {
        requeued += 1;
        delivery.requeue();
      } else {
        acked.add(id);
        delivery.ack();
      }
    }, Math.random() * 20);
  });
  await waitFor(`${total} acks`, () => acked.size === total, 15_000);
  expect(requeued).toBe(20);
  await waitFor('no delivery in flight', () => engine.inflight === 0);
  await sleep(200);
  expect(statuses).toEqual([true]);
  expect(engine.connected).toBe(true);
  await engine.close();
}

describe('AmqpQueue (RabbitMQ)', () => {
  it('declares the work queue with the TTL, type and dead-letter exchange, and a bounded dead-letter queue', async () => {
    const opts = options({ queueTtlMs: 123_000, deadLetterMaxLength: 500, deadLetterTtlMs: 3_600_000 });
    const engine = await start(opts);
    expect(engine.engine).toBe('amqp');
    expect(engine.connected).toBe(true);

    await expectQueueArguments(opts.queue, {
      'x-message-ttl': 123_000, 'x-queue-type': 'classic', 'x-dead-letter-exchange': opts.deadLetterExchange,
    });
    await expectQueueArguments(opts.deadLetterQueue, {
      'x-max-length': 500, 'x-queue-type': 'classic', 'x-message-ttl': 3_600_000,
    });
    await onChannel((ch) => ch.checkExchange(opts.deadLetterExchange));
    await expect(onChannel((ch) => ch.assertExchange(opts.deadLetterExchange, 'direct', { durable: true })))
      .rejects.toThrow(/inequivalent arg 'type'/);
  });


  it('moves messages that expire in the queue to the dead-letter queue with x-death reason expired', async () => {
    const opts = options({ queueTtlMs: 100 });
    const engine = await start(opts);
    await engine.publish([message('expiring')]);
    let dead: GetMessage | false = false;
    const until = Date.now() + 3000;
    while (dead === false && Date.now() < until) {
      await sleep(50);
      dead = await onChannel((ch) => ch.get(opts.deadLetterQueue, { noAck: true }));
    }
    expect(await readyCount(opts.queue)).toBe(0);
    expect(dead).not.toBe(false);
    if (dead === false) return;
    expect(dead.properties.messageId).toBe('expiring');
    expect(dead.properties.headers?.['x-death']?.[0]?.reason).toBe('expired');
  });

  it('resolves publish after the confirm; the message arrives with its id, enqueue time and source', async () => {
    const opts = options();
    const engine = await start(opts);
    const enqueuedAt = Date.now() - 1234;
    await engine.publish([message('from-http', { timestamp: enqueuedAt, source: 'http' }), message('from-api')]);
    // Confirmed means the broker has them: they are in the queue before anyone consumes.
    expect(await readyCount(opts.queue)).toBe(2);

    const received = await hold(engine);
    await waitFor('2 deliveries', () => received.length === 2);
    const [first, second] = received;
    expect(first!.message.messageId).toBe('from-http');
    expect(first!.message.timestamp).toBe(enqueuedAt);
    expect(first!.message.source).toBe('http');
    expect(first!.redelivered).toBe(false);
    expect(JSON.parse(first!.message.body.toString())).toEqual({ id: 'from-http', session: 's1', data: { id: 'from-http' } });
    expect(second!.message.messageId).toBe('from-api');
    expect(second!.message.source).toBeUndefined();
    expect(Math.abs(second!.message.timestamp! - Date.now())).toBeLessThan(5000);
    for (const delivery of received) delivery.ack();
  });

  it('reads AMQP timestamps of other publishers in seconds, or in ms when they are that large', async () => {
    const opts = options();
    const engine = await start(opts);
    await onChannel(async (ch) => {
      ch.sendToQueue(opts.queue, Buffer.from('{}'), { messageId: 'seconds', timestamp: 1_700_000_000 });
      ch.sendToQueue(opts.queue, Buffer.from('{}'), { messageId: 'millis', timestamp: 1_700_000_000_123 });
      ch.sendToQueue(opts.queue, Buffer.from('{}'), { messageId: 'none' });
    });
    const received = await hold(engine);
    await waitFor('3 deliveries', () => received.length === 3);
    const byId = new Map(received.map((d) => [d.message.messageId, d.message]));
    expect(byId.get('seconds')?.timestamp).toBe(1_700_000_000_000);
    expect(byId.get('millis')?.timestamp).toBe(1_700_000_000_123);
    expect(byId.get('none')?.timestamp).toBeUndefined();
    expect(byId.get('none')?.source).toBeUndefined();
    for (const delivery of received) delivery.ack();
  });

  it('holds at most prefetch unsettled deliveries', async () => {
    const opts = options({ prefetch: 5 });
    const engine = await start(opts);
    await engine.publish(ids(50).map((id) => message(id)));
    const received = await hold(engine);
    await waitFor('5 deliveries', () => received.length === 5);
    await sleep(300);
    expect(received).toHaveLength(5);
    expect(engine.inflight).toBe(5);

    expect(await ackAsTheyCome(engine, received, 50)).toBeLessThanOrEqual(5);
    expect(new Set(received.map((d) => d.message.messageId)).size).toBe(50);
  });

  it('forgets acked messages: the queue is empty after the engine closes', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish(ids(3).map((id) => message(id)));
    const received = await hold(engine);
    await waitFor('3 deliveries', () => received.length === 3);
    for (const delivery of received) delivery.ack();
    expect(engine.inflight).toBe(0);
    await engine.close();
    // Had an ack not reached the broker, closing would have put the message back.
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('redelivers a requeued message flagged as redelivered', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish([message('again')]);
    const received = await hold(engine);
    await waitFor('the first delivery', () => received.length === 1);
    expect(received[0]!.redelivered).toBe(false);
    received[0]!.requeue();
    await waitFor('the redelivery', () => received.length === 2);
    expect(received[1]!.message.messageId).toBe('again');
    expect(received[1]!.redelivered).toBe(true);
    received[1]!.ack();
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('acks and requeues a released delivery by its tag alone; the redelivery has the whole message', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish([message('kept'), message('back')]);
    const received = await hold(engine);
    await waitFor('both deliveries', () => received.length === 2);
    for (const delivery of received) delivery.release();
    expect(received.map((d) => d.message.body.length)).toEqual([0, 0]);
    await expect(received[0]!.deadLetter('not_json', 'too late')).rejects.toThrow(/after release/);
    received[0]!.ack();
    received[1]!.requeue();
    await waitFor('the redelivery', () => received.length === 3);
    expect(received[2]!.message.messageId).toBe('back');
    expect(JSON.parse(received[2]!.message.body.toString())).toEqual(JSON.parse(message('back').body.toString()));
    received[2]!.ack();
    await engine.close();
    // Had an ack not reached the broker (or reached it for the wrong tag), closing would have put a message back.
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('dead-letters a copy with the reason headers and removes the original', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish([message('bad', { source: 'http' })]);
    const received = await hold(engine);
    await waitFor('the delivery', () => received.length === 1);
    await received[0]!.deadLetter('not_json', 'body is not JSON: Unexpected token');
    expect(engine.inflight).toBe(0);

    const dead = await onChannel((ch) => ch.get(opts.deadLetterQueue, { noAck: true }));
    expect(dead).not.toBe(false);
    if (dead === false) return;
    expect(dead.content.equals(received[0]!.message.body)).toBe(true);
    expect(dead.properties.messageId).toBe('bad');
    expect(dead.properties.contentType).toBe('application/json');
    expect(dead.properties.headers?.[ERROR_HEADER]).toBe('not_json');
    expect(dead.properties.headers?.[ERROR_DETAIL_HEADER]).toBe('body is not JSON: Unexpected token');
    expect(dead.properties.headers?.[ORIGINAL_QUEUE_HEADER]).toBe(opts.queue);
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('acks settlements made in random order, mixed with requeues, without closing the channel', async () => {
    const opts = options({ prefetch: 20 });
    await settleRandomlyWithRequeues(opts, (id) => message(id));
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('does not let one unfinished delivery keep finished ones behind it from being acked', async () => {
    const opts = options({ prefetch: 4 });
    const statuses: boolean[] = [];
    const engine = await start({ ...opts, onStatus: (up) => statuses.push(up) });
    await engine.publish(ids(7).map((id) => message(id)));
    const received = await hold(engine);
    await waitFor('4 deliveries', () => received.length === 4);
    for (const delivery of received.slice(1)) delivery.ack();
    // The first one is still held, so the three behind it are not a prefix; they are acked one by one.
    await waitFor('3 more deliveries', () => received.length === 7, 2000);
    expect(engine.inflight).toBe(4);
    for (const delivery of received) delivery.ack();
    await sleep(100);
    expect(statuses).toEqual([true]);
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('requeues a message whose dead-lettering failed, and dead-letters it on redelivery', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish([message('poison')]);
    // Without its exchange the dead-letter publish fails (404 closes the publish channel).
    await onChannel((ch) => ch.deleteExchange(opts.deadLetterExchange));
    const received = await hold(engine);
    await waitFor('the delivery', () => received.length === 1);
    await received[0]!.deadLetter('not_json', 'first try');
    await waitFor('the redelivery', () => received.length === 2, 5000);
    expect(received[1]!.redelivered).toBe(true);
    await waitFor('the publisher to reconnect', () => engine.connected, 5000);
    await received[1]!.deadLetter('not_json', 'second try');

    const dead = await onChannel((ch) => ch.get(opts.deadLetterQueue, { noAck: true }));
    expect(dead && dead.properties.headers?.[ERROR_DETAIL_HEADER]).toBe('second try');
    expect(await onChannel((ch) => ch.get(opts.deadLetterQueue, { noAck: true }))).toBe(false);
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('fails a publish to a deleted queue instead of losing it, and declares the queue again', async () => {
    const opts = options();
    const engine = await start(opts);
    await onChannel((ch) => ch.deleteQueue(opts.queue));
    await expect(engine.publish([message('unroutable')])).rejects.toBeInstanceOf(QueueUnavailableError);
    await eventually('the queue declared again', () => onChannel((ch) => ch.checkQueue(opts.queue)));
    await engine.publish([message('routed')]);
    expect(await readyCount(opts.queue)).toBe(1);
  });

  it('consumes again after its queue was deleted and declared anew', async () => {
    const opts = options();
    const engine = await start(opts);
    const received = await hold(engine);
    await onChannel((ch) => ch.deleteQueue(opts.queue));
    // The server cancels the consumer; consuming again fails, and the reconnection declares the queue.
    // Until then a publish is returned as unroutable and fails.
    await eventually('a publish to the queue declared again', () => engine.publish([message('back')]));
    await waitFor('the delivery', () => received.length === 1, 5000);
    expect(received[0]!.message.messageId).toBe('back');
    received[0]!.ack();
  });

  it('takes no new deliveries while paused, keeps the held ones valid, and continues on resume', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish(ids(3, 'a').map((id) => message(id)));
    const received = await hold(engine);
    await waitFor('3 deliveries', () => received.length === 3);

    await engine.pause();
    await engine.publish(ids(4, 'b').map((id) => message(id)));
    await sleep(300);
    expect(received).toHaveLength(3);
    expect(await readyCount(opts.queue)).toBe(4);
    expect(engine.consuming).toBe(true);
    for (const delivery of received) delivery.ack();

    engine.resume();
    await waitFor('the 4 new deliveries', () => received.length === 7);
    expect(received.slice(3).map((d) => d.message.messageId)).toEqual(ids(4, 'b'));
    for (const delivery of received.slice(3)) delivery.ack();
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('stops consuming for good; deliveries in flight can still be settled', async () => {
    const opts = options();
    const engine = await start(opts);
    await engine.publish([message('held')]);
    const received = await hold(engine);
    await waitFor('the delivery', () => received.length === 1);
    await engine.stopConsuming();
    expect(engine.consuming).toBe(false);
    await engine.publish([message('later')]);
    await sleep(200);
    expect(received).toHaveLength(1);
    received[0]!.ack();
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(1);
  });

  it('refuses to start when the queue exists with another TTL, naming the argument and the fix', async () => {
    const opts = options({ queueTtlMs: 600_000 });
    await onChannel((ch) => ch.assertQueue(opts.queue, { durable: true, arguments: { 'x-message-ttl': 1000 } }));
    const error = await AmqpQueue.connect(opts).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(TopologyMismatchError);
    const message = (error as Error).message;
    expect(message).toContain(`queue '${opts.queue}'`);
    expect(message).toContain('x-message-ttl');
    expect(message).toContain('600000');
    expect(message).toContain('AMQP_QUEUE_TTL_MS=1000');
    expect(message).toContain('delete the queue');
  });

  it('refuses to start when the queue exists with another type, naming AMQP_QUEUE_TYPE', async () => {
    const opts = options({ queueType: 'quorum' });
    await onChannel((ch) => ch.assertQueue(opts.queue, {
      durable: true,
      arguments: { 'x-message-ttl': opts.queueTtlMs, 'x-dead-letter-exchange': opts.deadLetterExchange },
    }));
    await expect(AmqpQueue.connect(opts)).rejects.toThrow(/x-queue-type.*AMQP_QUEUE_TYPE=classic/s);
  });

  it('refuses to start when the queue exists with an argument push-center does not declare, naming it', async () => {
    const opts = options();
    await onChannel((ch) => ch.assertQueue(opts.queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'classic', 'x-message-ttl': opts.queueTtlMs, 'x-dead-letter-exchange': opts.deadLetterExchange,
        'x-max-length': 1000,
      },
    }));
    const error = await AmqpQueue.connect(opts).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(TopologyMismatchError);
    expect((error as TopologyMismatchError).argument).toBe('x-max-length');
    expect((error as TopologyMismatchError).declared).toBeUndefined();
    expect((error as TopologyMismatchError).existing).toBe('1000');
    const text = (error as Error).message;
    expect(text).toContain(`queue '${opts.queue}'`);
    expect(text).toContain('it already exists with x-max-length = 1000, but push-center declares it without x-max-length');
    expect(text).toContain('delete the queue');
  });

  it('fails to start with the broker address (without the password) when it cannot connect', async () => {
    const opts = options({ url: 'amqp://guest:secret@127.0.0.1:1' });
    const error = await AmqpQueue.connect(opts).then(() => undefined, (err: unknown) => err as Error);
    expect(error?.message).toMatch(/cannot connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1/);
    expect(error?.message).not.toContain('secret');
  });

  it('reconnects by itself after losing the consumer connection; unacked messages are redelivered', async () => {
    const opts = options();
    const statuses: boolean[] = [];
    const engine = await start({ ...opts, onStatus: (up) => statuses.push(up) });
    await engine.publish(ids(3).map((id) => message(id)));
    const received = await hold(engine);
    await waitFor('3 deliveries', () => received.length === 3);

    expect(await closeConnectionsNamed(`${opts.connectionName}:consume`)).toBe(1);
    await waitFor('the redeliveries', () => received.length === 6);
    expect(statuses).toEqual([true, false, true]);
    expect(engine.connected).toBe(true);
    expect(engine.consuming).toBe(true);
    const redelivered = received.slice(3);
    expect(redelivered.map((d) => d.message.messageId).sort()).toEqual(ids(3));
    expect(redelivered.every((d) => d.redelivered)).toBe(true);
    expect(engine.inflight).toBe(3);

    // Settling the deliveries of the lost channel is a no-op: no ack may cross a reconnect.
    for (const delivery of received.slice(0, 3)) delivery.ack();
    expect(engine.inflight).toBe(3);
    for (const delivery of redelivered) delivery.ack();
    await engine.publish([message('after')]);
    await waitFor('a new delivery', () => received.length === 7);
    received[6]!.ack();
    await sleep(100);
    expect(statuses).toEqual([true, false, true]);
    await engine.close();
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('fails a publish with QueueUnavailableError while RabbitMQ blocks publishers', async () => {
    const engine = await start(options());
    // A real memory or disk alarm would block every publisher on the broker, other tests' too, so this
    // test plays the broker's connection.blocked / unblocked notifications on the publish connection.
    const publishConnection =
      (engine as unknown as { publishLink: { current: { connection: EventEmitter } } }).publishLink.current.connection;
    publishConnection.emit('blocked', 'low on memory');
    const error = await engine.publish([message('blocked')]).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(QueueUnavailableError);
    expect((error as Error).message).toContain('low on memory');
    expect((error as QueueUnavailableError).retryAfterSeconds).toBeGreaterThanOrEqual(5);
    publishConnection.emit('unblocked');
    await engine.publish([message('unblocked')]);
  });

  it('fails a publish with QueueUnavailableError while not connected, and publishes again once reconnected', async () => {
    const opts = options({ reconnect: { initialDelayMs: 1500, maxDelayMs: 3000 } });
    const statuses: boolean[] = [];
    const engine = await start({ ...opts, onStatus: (up) => statuses.push(up) });

    expect(await closeConnectionsNamed(`${opts.connectionName}:publish`)).toBe(1);
    await waitFor('the connection loss', () => statuses.at(-1) === false);
    expect(statuses).toEqual([true, false]);
    expect(engine.connected).toBe(false);
    const error = await engine.publish([message('lost')]).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(QueueUnavailableError);
    expect((error as QueueUnavailableError).retryAfterSeconds).toBeGreaterThanOrEqual(1);

    await waitFor('the reconnection', () => engine.connected, 5000);
    await engine.publish([message('found')]);
    expect(await readyCount(opts.queue)).toBe(1);
    await engine.close();
    await expect(engine.publish([message('closed')])).rejects.toBeInstanceOf(QueueUnavailableError);
  });
});

/**
 * Where quorum queues (AMQP_QUEUE_TYPE=quorum) behave otherwise than classic ones, what push-center
 * relies on, as RabbitMQ 3.10+ does it (PROTOCOL §4.1, "Order"; README, "On RabbitMQ").
 */
describe('AmqpQueue on quorum queues', () => {
  const quorum = (overrides: Partial<AmqpQueueOptions> = {}) => options({ queueType: 'quorum', ...overrides });

  it('declares the work queue and the bounded dead-letter queue as quorum queues', async () => {
    const opts = quorum({ queueTtlMs: 30_000, deadLetterMaxLength: 500, deadLetterTtlMs: 3_600_000 });
    await start(opts);
    await expectQueueArguments(opts.queue, {
      'x-message-ttl': 30_000, 'x-queue-type': 'quorum', 'x-dead-letter-exchange': opts.deadLetterExchange,
    });
    await expectQueueArguments(opts.deadLetterQueue, {
      'x-max-length': 500, 'x-queue-type': 'quorum', 'x-message-ttl': 3_600_000,
    });
  });

  it('dead-letters what outlives the queue TTL or its own expiration, with x-death reason expired', async () => {
    const opts = quorum({ queueTtlMs: 1000 });
    const engine = await start(opts);
    await engine.publish([message('queue-ttl')]);
    await onChannel(async (ch) => {
      ch.sendToQueue(opts.queue, message('own-expiration').body, { messageId: 'own-expiration', expiration: '50' });
    });
    const dead = await eventually('both dead letters', async () => {
      const found = await onChannel(async (ch) => {
        const letters: GetMessage[] = [];
        for (let msg = await ch.get(opts.deadLetterQueue, { noAck: false }); msg; msg = await ch.get(opts.deadLetterQueue, { noAck: false })) {
          letters.push(msg);
        }
        return letters;
      });
      if (found.length < 2) throw new Error(`${found.length} dead letters so far`);
      return found;
    }, 5000);
    expect(dead.map((msg) => msg.properties.messageId).sort()).toEqual(['own-expiration', 'queue-ttl']);
    for (const msg of dead) {
      const [death] = msg.properties.headers?.['x-death'] as Array<{ reason: string; queue: string }>;
      expect(death).toMatchObject({ reason: 'expired', queue: opts.queue });
    }
    expect(await readyCount(opts.queue)).toBe(0);
  });

  it('flags a requeued message as redelivered, and puts it behind the messages waiting', async () => {
    const opts = quorum();
    const engine = await start(opts);
    await engine.publish(['a', 'b', 'c'].map((id) => message(id)));
    await onChannel(async (ch) => {
      const first = await ch.get(opts.queue, { noAck: false });
      expect(first && first.properties.messageId).toBe('a');
      ch.nack(first as GetMessage, false, true);
    });
    const received: Delivery[] = [];
    await engine.consume((delivery) => {
      received.push(delivery);
      delivery.ack();
    });
    await waitFor('3 deliveries', () => received.length === 3);
    // A classic queue puts it back in its place instead: a*, b, c (the ordering note in PROTOCOL §4.1).
    expect(received.map((d) => `${d.message.messageId}${d.redelivered ? '*' : ''}`)).toEqual(['b', 'c', 'a*']);
  });

  it('returns what a lost connection held to its place: redelivered first, in order', async () => {
    const opts = quorum({ prefetch: 2 });
    const engine = await start(opts);
    await engine.publish(ids(5).map((id) => message(id)));
    const received: Delivery[] = [];
    let ackAtOnce = false;
    await engine.consume((delivery) => {
      received.push(delivery);
      if (ackAtOnce) delivery.ack();
    });
    await waitFor('2 deliveries', () => received.length === 2);
    ackAtOnce = true;
    expect(await closeConnectionsNamed(`${opts.connectionName}:consume`)).toBe(1);
    await waitFor('the redeliveries and the rest', () => received.length === 7);
    expect(received.slice(2).map((d) => `${d.message.messageId}${d.redelivered ? '*' : ''}`))
      .toEqual(['m0*', 'm1*', 'm2', 'm3', 'm4']);
  });
});

describe('AmqpQueue on shards (AMQP_QUEUE_SHARDS > 1)', () => {
  beforeAll(async () => {
    await requireConsistentHashExchange();
  });

  /** Options for `shards` shard queues; the shard queues and the exchange are deleted after the test. */
  function sharded(shards: number, overrides: Partial<AmqpQueueOptions> = {}): AmqpQueueOptions & { shards: string[] } {
    const opts = options({ queueShards: shards, ...overrides });
    const shardQueues = workQueues(opts);
    queues.push(...shardQueues);
    exchanges.push(opts.queue);
    return { ...opts, shards: shardQueues };
  }

  /** How many messages wait in each shard queue. */
  function depths(shardQueues: string[]): Promise<number[]> {
    return Promise.all(shardQueues.map(readyCount));
  }

  /** Bindings to the exchange `exchange`, as `queue:routing key`. */
  async function bindingsOf(exchange: string): Promise<string[]> {
    const { stdout } = await run('rabbitmqctl', ['list_bindings', '-q', '--no-table-headers', 'source_name', 'destination_name', 'routing_key']);
    return stdout.split('\n').map((line) => line.split('\t')).filter(([source]) => source === exchange)
      .map(([, destination, key]) => `${destination}:${key}`).sort();
  }

  it('declares the shard queues with the work queue arguments, bound with weight 1 behind a consistent-hash exchange', async () => {
    const opts = sharded(3, { queueTtlMs: 45_000 });
    await start(opts);
    expect(opts.shards).toEqual([0, 1, 2].map((i) => `${opts.queue}.shard-${i}`));
    for (const shard of opts.shards) {
      await expectQueueArguments(shard, {
        'x-message-ttl': 45_000, 'x-queue-type': 'classic', 'x-dead-letter-exchange': opts.deadLetterExchange,
      });
    }
    expect(await bindingsOf(opts.queue)).toEqual(opts.shards.map((shard) => `${shard}:1`));
    await expect(onChannel((ch) => ch.assertExchange(opts.queue, 'direct', { durable: true })))
      .rejects.toThrow(/inequivalent arg 'type'.*current is '+x-consistent-hash'/);
    // No queue under the name itself: backends publish to the exchange.
    await expect(onChannel((ch) => ch.checkQueue(opts.queue))).rejects.toThrow(/NOT_FOUND/);
  });

  it('publishes through the exchange: one shard key always to one shard, many keys over every shard', async () => {
    const opts = sharded(4);
    const engine = await start(opts);
    const before = await depths(opts.shards);
    expect(before).toEqual([0, 0, 0, 0]);
    await engine.publish(ids(5, 'alice-').map((id) => message(id, { shardKey: 'alice' })));
    const alice = await depths(opts.shards);
    expect([...alice].sort()).toEqual([0, 0, 0, 5]);

    await engine.publish(ids(200, 'k').map((id) => message(id, { shardKey: `session-${id}` })));
    const spread = (await depths(opts.shards)).map((depth, i) => depth - alice[i]!);
    expect(spread.reduce((a, b) => a + b, 0)).toBe(200);
    // 200 keys on a ring of four equal weights: each shard gets some (all in one would be chance of 4^-199).
    expect(spread.every((n) => n > 0), JSON.stringify(spread)).toBe(true);

    // Without a key, a message goes with the broadcasts' key: to the shard `broadcast` hashes to.
    const base = await depths(opts.shards);
    await engine.publish([message('keyless'), message('keyed', { shardKey: 'broadcast' })]);
    const added = (await depths(opts.shards)).map((depth, i) => depth - base[i]!);
    expect([...added].sort()).toEqual([0, 0, 0, 2]);
  });

  it('consumes every shard, each with its part of the prefetch: the node never holds more than the prefetch', async () => {
    expect(splitPrefetch(10, 4)).toEqual([3, 3, 2, 2]);
    expect(splitPrefetch(400, 4)).toEqual([100, 100, 100, 100]);
    expect(() => splitPrefetch(3, 4)).toThrow(RangeError);
    const opts = sharded(4, { prefetch: 10 });
    const engine = await start(opts);
    // Straight into each shard, 20 each, so that every shard has more than its window.
    await onChannel(async (ch) => {
      for (const shard of opts.shards) {
        for (const id of ids(20, `${shard}/`)) ch.sendToQueue(shard, message(id).body, { messageId: id });
      }
    });
    const received = await hold(engine);
    await waitFor('10 deliveries', () => received.length === 10);
    await sleep(300);
    expect(received).toHaveLength(10);
    expect(engine.inflight).toBe(10);
    const perShard = (deliveries: Delivery[]) =>
      opts.shards.map((shard) => deliveries.filter((d) => d.message.messageId!.startsWith(`${shard}/`)).length);
    expect(perShard(received)).toEqual([3, 3, 2, 2]);
    for (const shard of opts.shards) expect((await onChannel((ch) => ch.checkQueue(shard))).consumerCount).toBe(1);

    expect(await ackAsTheyCome(engine, received, 80)).toBeLessThanOrEqual(10);
    expect(perShard(received)).toEqual([20, 20, 20, 20]);
    await engine.close();
    expect(await depths(opts.shards)).toEqual([0, 0, 0, 0]);
  });

  it('settles deliveries of all shards in random order, mixed with requeues, on one channel without an error', async () => {
    const opts = sharded(4, { prefetch: 20 });
    // A multiple-ack over another consumer's unsettled tag would close the channel as a double ack does.
    await settleRandomlyWithRequeues(opts, (id) => message(id, { shardKey: id }),
      async () => expect((await depths(opts.shards)).every((n) => n > 0)).toBe(true));
    expect(await depths(opts.shards)).toEqual([0, 0, 0, 0]);
  });

  it('pause cancels the consumer of every shard, resume registers them all again', async () => {
    const opts = sharded(3);
    const engine = await start(opts);
    const received: Delivery[] = [];
    await engine.consume((delivery) => {
      received.push(delivery);
      delivery.ack();
    });
    const consumers = () => Promise.all(opts.shards.map(async (shard) => (await onChannel((ch) => ch.checkQueue(shard))).consumerCount));
    expect(await consumers()).toEqual([1, 1, 1]);
    await engine.pause();
    expect(await consumers()).toEqual([0, 0, 0]);
    expect(engine.consuming).toBe(true);
    await engine.publish(ids(30).map((id) => message(id, { shardKey: id })));
    await sleep(200);
    expect(received).toHaveLength(0);
    engine.resume();
    await waitFor('30 deliveries', () => received.length === 30);
    expect(await consumers()).toEqual([1, 1, 1]);
  });

  it('dead-letters an invalid message naming the shard it came from, and consumes every shard again after a reconnection', async () => {
    const opts = sharded(2);
    const engine = await start(opts);
    await engine.publish([message('bad', { shardKey: 'bad-target' })]);
    const holding = opts.shards[(await depths(opts.shards)).indexOf(1)];
    expect(holding).toBeDefined();
    const received = await hold(engine);
    await waitFor('the delivery', () => received.length === 1);
    await received[0]!.deadLetter('not_json', 'bad body');
    const dead = await onChannel((ch) => ch.get(opts.deadLetterQueue, { noAck: true }));
    expect(dead && dead.properties.headers?.[ORIGINAL_QUEUE_HEADER]).toBe(holding);

    expect(await closeConnectionsNamed(`${opts.connectionName}:consume`)).toBe(1);
    await waitFor('consuming again', () => engine.consuming && engine.connected, 5000);
    for (const queue of opts.shards) expect((await onChannel((ch) => ch.checkQueue(queue))).consumerCount).toBe(1);
    // Fewer than a shard's window (5), wherever they hash to: all come without an ack in between.
    await engine.publish(ids(4).map((id) => message(id, { shardKey: id })));
    await waitFor('4 deliveries', () => received.length === 5);
    for (const delivery of received.slice(1)) delivery.ack();
  });

  it('refuses to start without the consistent-hash exchange plugin, naming the command that enables it', async () => {
    // Disabling the plugin would take it from everyone sharing the broker: a type no plugin provides
    // gets the same answer from RabbitMQ (the connection closed with "unknown exchange type").
    const opts = sharded(2, { shardExchangeType: 'x-pushcenter-no-such-plugin' });
    const error = await AmqpQueue.connect(opts).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(ShardExchangePluginError);
    const text = (error as Error).message;
    expect(text).toContain('rabbitmq-plugins enable rabbitmq_consistent_hash_exchange');
    expect(text).toContain(`exchange '${opts.queue}'`);
    expect(text).toContain('AMQP_QUEUE_SHARDS');
    expect(String((error as Error).cause)).toMatch(/COMMAND_INVALID - unknown exchange type 'x-pushcenter-no-such-plugin'/);
  });

  it('refuses to start when an exchange of another type holds the name, naming AMQP_QUEUE', async () => {
    const opts = sharded(2);
    await onChannel((ch) => ch.assertExchange(opts.queue, 'direct', { durable: true }));
    const error = await AmqpQueue.connect(opts).then(() => undefined, (err: unknown) => err);
    expect(error).toBeInstanceOf(TopologyMismatchError);
    expect((error as Error).message).toContain(`exchange '${opts.queue}'`);
    expect((error as Error).message).toContain('set AMQP_QUEUE to another name');
  });
});

// The queue port's contract on both queue types.
for (const [name, queueType] of [['RabbitMQ', 'classic'], ['RabbitMQ quorum', 'quorum']] as const) {
  describeQueue(name, async ({ prefetch }) => {
    const opts = options({ prefetch, queueType });
    const queue = await start(opts);
    return {
      queue,
      deadLetters: async () => {
        const letters: Array<{ body: string; reason: string }> = [];
        await onChannel(async (ch) => {
          for (;;) {
            const got = await ch.get(opts.deadLetterQueue, { noAck: false });
            if (!got) break;
            letters.push({ body: got.content.toString(), reason: String(got.properties.headers?.[ERROR_HEADER]) });
          }
          // Left unacked: closing the channel puts them back, so the next look sees them again.
        });
        return letters;
      },
      cleanup: async () => undefined,
    };
  });
}
