import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { RedisBus } from '../../src/cluster/redis-bus.js';
import { connectRedis, duplicateForSubscriptions, mastersOf, quitRedis, type RedisClient } from '../../src/cluster/redis-client.js';
import { RedisDirectory, type RedisDirectoryOptions } from '../../src/cluster/redis-directory.js';
import { createLogger } from '../../src/observability/logger.js';
import type { LocalRedisCluster } from '../support/redis-cluster.js';
import { REDIS_URL, deleteKeys, keysUnder, requireService, uniqueName } from '../support/services.js';
import { captureLogs, type LogLine } from './bus.behaviour.js';

/** A node as the composition root builds it: a bus and a directory sharing one subscriber connection. */
export interface TestNode {
  directory: RedisDirectory;
  bus: RedisBus;
  redis: RedisClient;
  subscriber: RedisClient;
  logs: LogLine[];
  /** Stops the node the way a crash or a network cut would: no clean-up, its connections just go. */
  kill(): Promise<void>;
}

export type NodeOptions = Partial<Omit<RedisDirectoryOptions, 'listening'>> & { forwardTimeoutMs?: number };

/** How the clients of the test nodes are made: on the shared Redis, or on a Redis Cluster. */
interface Connections {
  /** Looks into Redis the way an operator would, and cleans up; not one of the nodes. */
  admin(): Promise<RedisClient>;
  /** A command client, named so a test can find its connections in CLIENT LIST. */
  client(connectionName?: string): Promise<RedisClient>;
  /** The subscriber connection a node's bus and directory share. */
  subscriber(client: RedisClient, connectionName?: string): Promise<RedisClient>;
}

/** On the shared Redis: commands fail at once while Redis is unreachable, as the composition root's do. */
const sharedRedis: Connections = {
  async admin() {
    await requireService('Redis', REDIS_URL);
    return new Redis(REDIS_URL);
  },
  async client(connectionName) {
    const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName });
    client.on('error', () => {});
    await client.connect();
    return client;
  },
  async subscriber(client) {
    const subscriber = (client as Redis).duplicate();
    subscriber.on('error', () => {});
    await subscriber.connect();
    return subscriber;
  },
};

/** On a Redis Cluster, with the clients push-center opens (`connectRedis`, `duplicateForSubscriptions`). */
function clusterConnections(local: { readonly cluster: LocalRedisCluster }): Connections {
  const logger = createLogger('silent', 'test', false);
  return {
    admin: () => connectRedis(local.cluster.url, 'test-admin', logger),
    client: (connectionName) => connectRedis(local.cluster.url, connectionName ?? 'test', logger),
    subscriber: (client, connectionName) => duplicateForSubscriptions(client, connectionName ?? 'test', logger),
  };
}

/**
 * Nodes of a cluster on the real Redis (`use`), or on the test file's Redis Cluster (`useCluster`), for
 * the running test file: the hooks give each test a key prefix of its own and remove the test's nodes,
 * connections and keys afterwards.
 */
export class RedisNodes {
  /** Looks into Redis the way an operator would, and cleans up; not one of the nodes. */
  admin!: RedisClient;
  /** Every key of the running test is under this prefix; a new one per test. */
  prefix = '';
  private readonly clients: RedisClient[] = [];
  private readonly nodes: TestNode[] = [];

  private constructor(private readonly connections: Connections) {}

  static use(): RedisNodes {
    return RedisNodes.install(sharedRedis);
  }

  static useCluster(local: { readonly cluster: LocalRedisCluster }): RedisNodes {
    return RedisNodes.install(clusterConnections(local));
  }

  private static install(connections: Connections): RedisNodes {
    const nodes = new RedisNodes(connections);
    beforeAll(async () => {
      nodes.admin = await connections.admin();
    });
    beforeEach(() => {
      nodes.prefix = `${uniqueName('test-cluster')}:`;
    });
    afterEach(() => nodes.cleanUp());
    afterAll(async () => {
      if (nodes.admin) await quitRedis(nodes.admin);
    });
    return nodes;
  }

  /** Clients as the composition root makes them: commands fail at once while Redis is unreachable. */
  async connectClient(connectionName?: string): Promise<RedisClient> {
    const client = await this.connections.client(connectionName);
    this.clients.push(client);
    return client;
  }

  /** A subscriber connection for the client, as the composition root makes it. */
  async connectSubscriber(client: RedisClient, connectionName?: string): Promise<RedisClient> {
    const subscriber = await this.connections.subscriber(client, connectionName);
    this.clients.push(subscriber);
    return subscriber;
  }

  /** Starts the bus, then the directory, as the composition root does. */
  async startNode(nodeId: string, options: NodeOptions = {}): Promise<TestNode> {
    // Named, so a test can find the node's connections in CLIENT LIST.
    const redis = await this.connectClient(`${this.prefix}${nodeId}`);
    const subscriber = await this.connectSubscriber(redis, `${this.prefix}${nodeId}`);
    const { logger, logs } = captureLogs();
    const { forwardTimeoutMs = 2000, ...directoryOptions } = options;
    const common = { nodeId, keyPrefix: this.prefix, logger };
    const bus = new RedisBus(redis, subscriber, { ...common, forwardTimeoutMs });
    const directory = new RedisDirectory(redis, subscriber, {
      ...common,
      // Short enough for the tests that wait for a node to count as gone, long enough to ride out a busy CI box.
      heartbeatMs: 100,
      nodeTtlMs: 1_000,
      ...directoryOptions,
      listening: () => bus.listening,
    });
    const node: TestNode = {
      directory,
      bus,
      redis,
      subscriber,
      logs,
      kill: () => Promise.all([cutOff(redis), cutOff(subscriber)]).then(() => {}),
    };
    this.nodes.push(node);
    await bus.start();
    await directory.start();
    return node;
  }

  keysUnder(keyPrefix: string): Promise<string[]> {
    return keysUnder(this.admin, keyPrefix);
  }

  sessionKey(id: string): string {
    return `${this.prefix}session:${id}`;
  }

  nodeKey(id: string): string {
    return `${this.prefix}node:${id}`;
  }

  busChannel(id: string): string {
    return `${this.prefix}bus:${id}`;
  }

  /**
   * Makes Redis (every master of a Cluster) drop every connection of the node, as a Redis restart or a
   * network blip would. A cluster client's connections carry the node's name after a prefix of their own.
   */
  async killConnectionsOf(nodeId: string): Promise<number> {
    const name = `${this.prefix}${nodeId}`;
    let killed = 0;
    for (const master of mastersOf(this.admin)) {
      const list = (await master.client('LIST')) as string;
      for (const line of list.split('\n')) {
        const connection = /(?:^| )name=(\S*)/.exec(line)?.[1];
        if (connection !== name && !connection?.endsWith(`:${name}`)) continue;
        await master.client('KILL', 'ID', /(?:^| )id=(\d+)/.exec(line)![1]!);
        killed += 1;
      }
    }
    return killed;
  }

  /** Messages published on a channel while the returned list listens. */
  async listenOn(channel: string): Promise<string[]> {
    const spy = await this.connectClient();
    const messages: string[] = [];
    spy.on('message', (_channel: string, message: string) => messages.push(message));
    await spy.subscribe(channel);
    return messages;
  }

  private async cleanUp(): Promise<void> {
    // Each node's directory before its bus, as the composition root closes them.
    await Promise.all(this.nodes.splice(0).map(async (node) => {
      await node.directory.close();
      await node.bus.close();
    }));
    await Promise.all(this.clients.splice(0).map(quitRedis));
    if (!this.admin) return;
    await deleteKeys(this.admin, await this.keysUnder(this.prefix));
  }
}

/** Drops the connection and resolves once the client knows it is gone. */
export async function cutOff(client: RedisClient): Promise<void> {
  const ended = new Promise((resolve) => client.once('end', resolve));
  client.disconnect();
  await ended;
}
