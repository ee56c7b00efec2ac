import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { RedisBus } from '../../src/cluster/redis-bus.js';
import { RedisDirectory, type RedisDirectoryOptions } from '../../src/cluster/redis-directory.js';
import { REDIS_URL, keysUnder, requireService, uniqueName } from '../support/services.js';
import { captureLogs, type LogLine } from './bus.behaviour.js';

/** A node as the composition root builds it: a bus and a directory sharing one subscriber connection. */
export interface TestNode {
  directory: RedisDirectory;
  bus: RedisBus;
  redis: Redis;
  subscriber: Redis;
  logs: LogLine[];
  /** Stops the node the way a crash or a network cut would: no clean-up, its connections just go. */
  kill(): Promise<void>;
}

export type NodeOptions = Partial<Omit<RedisDirectoryOptions, 'listening'>> & { forwardTimeoutMs?: number };

/**
 * Nodes of a cluster on the real Redis, for the running test file: `use()` installs the hooks that give
 * each test a key prefix of its own and remove the test's nodes, connections and keys afterwards.
 */
export class RedisNodes {
  /** Looks into Redis the way an operator would, and cleans up; not one of the nodes. */
  admin!: Redis;
  /** Every key of the running test is under this prefix; a new one per test. */
  prefix = '';
  private readonly clients: Redis[] = [];
  private readonly nodes: TestNode[] = [];

  static use(): RedisNodes {
    const nodes = new RedisNodes();
    beforeAll(async () => {
      await requireService('Redis', REDIS_URL);
      nodes.admin = new Redis(REDIS_URL);
    });
    beforeEach(() => {
      nodes.prefix = `${uniqueName('test-cluster')}:`;
    });
    afterEach(() => nodes.cleanUp());
    afterAll(async () => {
      await nodes.admin?.quit();
    });
    return nodes;
  }

  /** Clients as the composition root makes them: commands fail at once while Redis is unreachable. */
  async connectClient(connectionName?: string): Promise<Redis> {
    const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName });
    client.on('error', () => {});
    this.clients.push(client);
    await client.connect();
    return client;
  }

  /** Starts the bus, then the directory, as the composition root does. */
  async startNode(nodeId: string, options: NodeOptions = {}): Promise<TestNode> {
    // Named, so a test can find the node's connections in CLIENT LIST.
    const redis = await this.connectClient(`${this.prefix}${nodeId}`);
    const subscriber = redis.duplicate();
    subscriber.on('error', () => {});
    this.clients.push(subscriber);
    await subscriber.connect();
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

  /** Makes Redis drop every connection of the node, as a Redis restart or a network blip would. */
  async killConnectionsOf(nodeId: string): Promise<number> {
    const list = (await this.admin.client('LIST')) as string;
    const ids = list.split('\n').filter((line) => line.includes(` name=${this.prefix}${nodeId} `)).map((line) => /(?:^| )id=(\d+)/.exec(line)?.[1]);
    for (const id of ids) await this.admin.client('KILL', 'ID', id!);
    return ids.length;
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
    await Promise.all(this.clients.splice(0).map((client) => client.quit().catch(() => client.disconnect())));
    if (!this.admin) return;
    const keys = await this.keysUnder(this.prefix);
    if (keys.length > 0) await this.admin.del(...keys);
  }
}

/** Drops the connection and resolves once the client knows it is gone. */
export async function cutOff(client: Redis): Promise<void> {
  const ended = new Promise((resolve) => client.once('end', resolve));
  client.disconnect();
  await ended;
}
