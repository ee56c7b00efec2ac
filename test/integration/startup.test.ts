import { connect } from 'amqplib';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runMain, startProcess, type NodeProcess } from '../support/process.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, redisKeys, requireService, uniqueName } from '../support/services.js';

const names: string[] = [];
let running: NodeProcess | undefined;

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
});
afterEach(async () => {
  await running?.stop('SIGKILL');
  running = undefined;
  await Promise.all(names.splice(0).map(cleanupRealEngines));
});

describe('start-up on RabbitMQ and Redis', () => {
  it('connects, says so, and is ready', async () => {
    const name = uniqueName('test-start');
    names.push(name);
    running = await startProcess(realEngines(name));
    expect(running.output()).toMatch(/connected to RabbitMQ/);
    expect(running.output()).not.toMatch(/NOT durable/);
    const ready = await fetch(`${running.url}/readyz`);
    expect(await ready.json()).toEqual({ ready: true, checks: { amqp: true, redis: true, consuming: true } });
    expect(await running.stop('SIGTERM')).toBe(0);
  });

  it('stops with a message naming the argument when the queue exists with another TTL', async () => {
    const name = uniqueName('test-mismatch');
    names.push(name);
    const connection = await connect(AMQP_URL);
    const channel = await connection.createChannel();
    await channel.assertQueue(name, { durable: true, arguments: { 'x-message-ttl': 1000 } });
    await connection.close();

    const { output, exited } = runMain(realEngines(name));
    expect(await exited).toBe(1);
    expect(output()).toMatch(/x-message-ttl/);
    expect(output()).toMatch(/AMQP_QUEUE_TTL_MS/);
    expect(output()).toContain(name);
    // It had joined the cluster before the queue was refused: it left it again (no liveness key is
    // left to expire, during which other nodes would count it as alive).
    expect(output()).toMatch(/joined the cluster/);
    expect(await redisKeys(`${name}:`)).toEqual([]);
  });

  it('stops with a clear message when RabbitMQ cannot be reached', async () => {
    const name = uniqueName('test-unreachable');
    const { output, exited } = runMain({ ...realEngines(name), AMQP_URL: 'amqp://guest:secret@127.0.0.1:1' });
    expect(await exited).toBe(1);
    expect(output()).toMatch(/start-up failed/);
    expect(output()).toMatch(/127\.0\.0\.1:1/);
    expect(output()).not.toContain('secret');
  });
});
