import { describeBus } from './bus.behaviour.js';
import { describeDirectory } from './directory.behaviour.js';
import { describeRedisNode } from './redis-node.behaviour.js';
import { RedisNodes } from './redis-nodes.js';

/** The behaviour suites on Redis, and what a node's two Redis parts do together. */

const redis = RedisNodes.use();

describeDirectory('Redis', async (nodeId) => (await redis.startNode(nodeId)).directory);

describeBus('Redis', async (nodeId, options) => {
  const { bus, logs } = await redis.startNode(nodeId, options);
  return { bus, logs };
});

describeRedisNode('Redis', redis);
