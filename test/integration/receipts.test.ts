import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeClients, collect, getJson, metric, session, sleep, startNode, until, type Running } from '../support/harness.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, deleteAmqp, realEngines, requireService, uniqueName } from '../support/services.js';

let amqp: ChannelModel;
let channel: ConfirmChannel;
const names: string[] = [];
const queues: string[] = [];
let node: Running | undefined;

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  amqp = await connect(AMQP_URL);
  channel = await amqp.createConfirmChannel();
});
afterEach(async () => {
  closeClients();
  await node?.close();
  node = undefined;
  await deleteAmqp({ queues: queues.splice(0) });
  await Promise.all(names.splice(0).map(cleanupRealEngines));
});
afterAll(async () => {
  await amqp?.close();
});

async function realNode(env: Record<string, string | number> = {}): Promise<{ node: Running; name: string }> {
  const name = uniqueName('test-receipts');
  names.push(name);
  node = await startNode({ ...realEngines(name), ...env });
  return { node, name };
}

async function publish(queue: string, bodies: unknown[], properties: Record<string, unknown> = {}): Promise<void> {
  for (const body of bodies) {
    channel.sendToQueue(queue, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
      { persistent: true, contentType: 'application/json', ...properties });
  }
  await channel.waitForConfirms();
}

/** A backend's queue bound to the receipts exchange: what it consumed, by routing key. */
async function bindReceipts(exchange: string, pattern: string): Promise<Array<{ routingKey: string; body: Record<string, unknown> }>> {
  const queue = uniqueName('test-receipts-consumer');
  queues.push(queue);
  await channel.assertQueue(queue, { durable: false });
  await channel.bindQueue(queue, exchange, pattern);
  const seen: Array<{ routingKey: string; body: Record<string, unknown> }> = [];
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    seen.push({ routingKey: msg.fields.routingKey, body: JSON.parse(msg.content.toString()) as Record<string, unknown> });
    channel.ack(msg);
  });
  return seen;
}

describe('the receipts stream', () => {
  it('brings a bound queue exactly one final receipt for each of 10,000 messages', async () => {
    const { node, name } = await realNode({ AMQP_PREFETCH: 400 });
    const seen = await bindReceipts(`${name}.receipts`, '#');
    const socket = await session(node.url, 'streamed');
    const received = collect(socket);
    const ids = Array.from({ length: 10_000 }, (_, i) => `st-${i}`);
    await publish(name, ids.map((id, i) => ({ id, session: 'streamed', data: i })));
    await until(() => received.length, (n) => n >= ids.length, 60_000);
    await until(() => seen.length, (n) => n >= ids.length, 15_000);
    await sleep(300);
    expect(seen).toHaveLength(ids.length);
    expect(new Set(seen.map((r) => r.body.id))).toEqual(new Set(ids));
    expect(new Set(seen.map((r) => r.routingKey))).toEqual(new Set(['delivered.session']));
    expect(seen[0]!.body).toEqual({
      id: expect.any(String), outcome: 'delivered', target: 'session', session: 'streamed', at: expect.any(Number), node: node.app.config.nodeId,
    });
    expect(await metric(node.url, 'pushcenter_receipts_lost_total', { where: 'stream' })).toBe(0);
  }, 90_000);

  it('routes by outcome and target: a queue bound to dead.# gets only what was dead-lettered, with the reason', async () => {
    const { node, name } = await realNode({ INBOX_MAX: 1 });
    const dead = await bindReceipts(`${name}.receipts`, 'dead.#');
    await publish(name, [{ id: 'away-1', session: 'away', data: 1 }, { id: 'away-2', session: 'away', data: 2 }]);
    await publish(name, ['not json'], { messageId: 'broken-1' });
    await until(() => dead.length, (n) => n >= 2, 10_000);
    await sleep(200);
    expect(dead.map((r) => `${r.routingKey} ${String(r.body.id)} ${String(r.body.reason)}`).sort()).toEqual([
      'dead.session away-1 inbox_full',
      'dead.unknown broken-1 not_json',
    ]);
    const receipt = (await getJson(node.url, '/v1/notifications/broken-1')).body;
    expect(receipt).toMatchObject({ status: 'dead', target: null, events: [{ outcome: 'dead', reason: 'not_json' }] });
  });

  it('is not there when AMQP_RECEIPTS_EXCHANGE is empty; receipts are still kept', async () => {
    const { node, name } = await realNode({ AMQP_RECEIPTS_EXCHANGE: '' });
    const probe = await amqp.createChannel();
    probe.on('error', () => undefined);
    await expect(probe.checkExchange(`${name}.receipts`)).rejects.toThrow(/NOT_FOUND/);
    await publish(name, [{ id: 'no-stream', session: 'nobody', data: 1, delivery: 'volatile' }]);
    await until(async () => (await getJson(node.url, '/v1/notifications/no-stream')).body.status, (s) => s === 'dropped');
  });
});

describe('a notification id is its identity', () => {
  it('delivers once what a backend published twice with one id (a republish after a lost confirm)', async () => {
    const { node, name } = await realNode();
    const socket = await session(node.url, 'twice');
    const received = collect(socket);
    await publish(name, [{ session: 'twice', data: 1 }], { messageId: 'republished' });
    await publish(name, [{ session: 'twice', data: 1 }], { messageId: 'republished' });
    await until(() => metric(node.url, 'pushcenter_duplicate_publishes_total'), (n) => n === 1);
    await sleep(100);
    expect(received.map((r) => r.envelope.id)).toEqual(['republished']);
    const receipt = (await getJson(node.url, '/v1/notifications/republished')).body;
    expect(receipt.events.map((e: { outcome: string }) => e.outcome)).toEqual(['accepted', 'delivered']);
  });

  it('delivers both with IDEMPOTENCY_TTL_MS=0 (the control)', async () => {
    const { node, name } = await realNode({ IDEMPOTENCY_TTL_MS: 0 });
    const socket = await session(node.url, 'twice-off');
    const received = collect(socket);
    await publish(name, [{ session: 'twice-off', data: 1 }, { session: 'twice-off', data: 1 }], { messageId: 'republished-off' });
    await until(() => received.length, (n) => n === 2);
  });
});
