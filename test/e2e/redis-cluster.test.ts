import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, quitRedis } from '../../src/cluster/redis-client.js';
import { MemoryQueue } from '../../src/ingest/memory-queue.js';
import { createLogger } from '../../src/observability/logger.js';
import { closeClients, collect, getJson, nodeMetric, post, session, startNode, until, type Running } from '../support/harness.js';
import { LocalRedisCluster } from '../support/redis-cluster.js';
import { AMQP_URL, deleteAmqp, deleteKeys, keysUnder, realEngines, requireService, uniqueName } from '../support/services.js';

/** Two push-center nodes on RabbitMQ and a Redis Cluster of three masters this file starts and stops. */

const local = LocalRedisCluster.use();
let nodes: Running[] = [];
let name = '';

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
});

afterEach(async () => {
  closeClients();
  await Promise.all(nodes.splice(0).map((node) => node.close()));
  await deleteAmqp({ queues: [name, `${name}.dead`], exchanges: [`${name}.dlx`, `${name}.receipts`] });
  const admin = await connectRedis(local.cluster.url, 'test-admin', createLogger('silent', 'test', false));
  try {
    await deleteKeys(admin, await keysUnder(admin, `${name}:`));
  } finally {
    await quitRedis(admin);
  }
});

describe('push-center on a Redis Cluster', () => {
  it('delivers a session message forwarded between nodes, a group message across nodes, and an inbox replay', async () => {
    name = uniqueName('test-rcluster');
    const env = { ...realEngines(name), REDIS_URL: local.cluster.url, ACK_TIMEOUT_MS: 3000 };
    const a = await startNode({ ...env, NODE_ID: 'A' });
    nodes.push(a);
    // B takes no work from RabbitMQ: every message is consumed on A, so one for B's sessions crosses the bus.
    const b = await startNode({ ...env, NODE_ID: 'B' }, { queue: new MemoryQueue({ prefetch: 10, maxLength: 10 }) });
    nodes.push(b);
    expect(b.app.config.redis.adapter).toBe('sharded');

    const onB = await session(b.url, 'alice', ['team']);
    const onA = await session(a.url, 'bob', ['team']);
    const [aliceMessages, bobMessages] = [collect(onB), collect(onA)];
    expect((await post(a.url, [
      { id: 'to-alice', session: 'alice', data: 'forwarded' },
      { id: 'to-team', group: 'team', data: 'grouped' },
      { id: 'to-carol', session: 'carol', data: 'waits' },
    ])).status).toBe(202);

    await until(() => aliceMessages.map((m) => m.envelope.id).sort().join(), (seen) => seen === 'to-alice,to-team', 10_000);
    await until(() => bobMessages.map((m) => m.envelope.id).join(), (seen) => seen === 'to-team', 10_000);
    // A consumed it, B's socket acked it: B reported the outcome back over the bus.
    await until(() => nodeMetric(a, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'delivered' }), (n) => n === 1);
    await until(() => a.app.ackLog!.has('alice', 'to-alice'), Boolean);
    expect((await getJson(a.url, '/v1/sessions/alice')).body).toEqual({ online: true, sockets: 1, nodes: ['B'], inbox: 0 });
    // The receipts live on the cluster too: the same from either node, the group's sockets summed over both.
    const receipt = async (node: typeof a, id: string) => (await getJson(node.url, `/v1/notifications/${id}`)).body;
    const toAlice = await until(() => receipt(b, 'to-alice'), (r) => r.status === 'delivered' && r.target !== null, 5000);
    expect(toAlice.events.at(-1)).toMatchObject({ outcome: 'delivered', node: 'B' });
    expect(await receipt(a, 'to-alice')).toEqual(toAlice);
    expect(await until(() => receipt(b, 'to-team'), (r) => r.sockets === 2, 5000)).toMatchObject({ status: 'delivered' });

    await until(async () => (await getJson(b.url, '/v1/sessions/carol')).body.inbox, (waiting) => waiting === 1);
    const carol = collect(await session(b.url, 'carol'));
    await until(() => carol.map((m) => m.envelope.id).join(), (seen) => seen === 'to-carol', 10_000);
    await until(async () => (await getJson(a.url, '/v1/sessions/carol')).body, (body) => body.inbox === 0 && body.nodes[0] === 'B');
  });
});
