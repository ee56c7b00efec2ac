import { describeNode } from '../e2e/node.behaviour.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, requireService, uniqueName } from '../support/services.js';

describeNode('node on RabbitMQ + Redis', async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  const name = uniqueName('test-node');
  return { env: realEngines(name), cleanup: () => cleanupRealEngines(name) };
});
