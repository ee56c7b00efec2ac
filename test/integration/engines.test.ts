import { describeNode } from '../e2e/node.behaviour.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, cleanupShardedEngines, realEngines, requireConsistentHashExchange, requireService, uniqueName } from '../support/services.js';

describeNode('node on RabbitMQ + Redis', async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  const name = uniqueName('test-node');
  return { env: realEngines(name), cleanup: () => cleanupRealEngines(name) };
});

// The HTTP API publishes through the consistent-hash exchange, and pausing cancels four consumers.
describeNode('node on four sharded RabbitMQ queues + Redis', async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  await requireConsistentHashExchange();
  const name = uniqueName('test-node-shards');
  return { env: realEngines(name, 4), cleanup: () => cleanupShardedEngines(name, 4) };
});

describeNode('node on RabbitMQ quorum queues + Redis', async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  const name = uniqueName('test-node-quorum');
  return { env: { ...realEngines(name), AMQP_QUEUE_TYPE: 'quorum' }, cleanup: () => cleanupRealEngines(name) };
});
