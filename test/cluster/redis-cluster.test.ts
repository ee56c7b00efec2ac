import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ForwardHandler, ForwardOutcome } from '../../src/cluster/cluster.js';
import { RedisCluster, type RedisClusterOptions } from '../../src/cluster/redis-cluster.js';
import type { Notification } from '../../src/notification/schema.js';
import { REDIS_URL, keysUnder as keysUnderPrefix, requireService, uniqueName } from '../support/services.js';

/** Looks into Redis the way an operator would, and cleans up; not one of the nodes. */
let admin: Redis | undefined;
/** Every key of the running test is under this prefix; a new one per test. */
let prefix = '';
const clients: Redis[] = [];
const nodes: TestNode[] = [];

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

interface TestNode {
  cluster: RedisCluster;
  redis: Redis;
  subscriber: Redis;
  logs: LogLine[];
  /** Stops the node the way a crash or a network cut would: no clean-up, its connections just go. */
  kill(): Promise<void>;
}

const WARN = 40;

/** Clients as the composition root makes them: commands fail at once while Redis is unreachable. */
async function connectClient(connectionName?: string): Promise<Redis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName });
  client.on('error', () => {});
  clients.push(client);
  await client.connect();
  return client;
}

async function startNode(nodeId: string, options: Partial<RedisClusterOptions> = {}): Promise<TestNode> {
  // Named, so a test can find the node's connections in CLIENT LIST.
  const redis = await connectClient(`${prefix}${nodeId}`);
  const subscriber = redis.duplicate();
  subscriber.on('error', () => {});
  clients.push(subscriber);
  await subscriber.connect();
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const cluster = new RedisCluster(redis, subscriber, {
    nodeId,
    keyPrefix: prefix,
    // Short enough for the tests that wait for a node to count as gone, long enough to ride out a busy CI box.
    heartbeatMs: 100,
    nodeTtlMs: 1_000,
    forwardTimeoutMs: 2000,
    logger,
    ...options,
  });
  const node: TestNode = {
    cluster,
    redis,
    subscriber,
    logs,
    kill: () => Promise.all([cutOff(redis), cutOff(subscriber)]).then(() => {}),
  };
  nodes.push(node);
  await cluster.start();
  return node;
}

/** Drops the connection and resolves once the client knows it is gone. */
async function cutOff(client: Redis): Promise<void> {
  const ended = new Promise((resolve) => client.once('end', resolve));
  client.disconnect();
  await ended;
}

function notification(id: string, reliable = true): Notification {
  const now = Date.now();
  return {
    id,
    sessions: ['s1'],
    groups: [],
    broadcast: false,
    event: 'message',
    data: { text: `hello ${id}` },
    reliable,
    enqueuedAt: now,
    expiresAt: now + 60_000,
  };
}

/** A forward handler that records its calls and answers with `answer`. */
function recordingHandler(answer: (sessionId: string, n: Notification) => Promise<ForwardOutcome> = async () => 'delivered') {
  const calls: Array<{ sessionId: string; notification: Notification }> = [];
  const handler: ForwardHandler = (sessionId, n) => {
    calls.push({ sessionId, notification: n });
    return answer(sessionId, n);
  };
  return { handler, calls };
}

const never = () => new Promise<ForwardOutcome>(() => {});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function keysUnder(keyPrefix: string): Promise<string[]> {
  return keysUnderPrefix(admin!, keyPrefix);
}

const sessionKey = (id: string) => `${prefix}session:${id}`;
const nodeKey = (id: string) => `${prefix}node:${id}`;
const busChannel = (id: string) => `${prefix}bus:${id}`;

/** Makes Redis drop every connection of the node, as a Redis restart or a network blip would. */
async function killConnectionsOf(nodeId: string): Promise<number> {
  const list = (await admin!.client('LIST')) as string;
  const ids = list.split('\n').filter((line) => line.includes(` name=${prefix}${nodeId} `)).map((line) => /(?:^| )id=(\d+)/.exec(line)?.[1]);
  for (const id of ids) await admin!.client('KILL', 'ID', id!);
  return ids.length;
}

/** Messages published on a channel while the returned spy listens. */
async function listenOn(channel: string): Promise<string[]> {
  const spy = await connectClient();
  const messages: string[] = [];
  spy.on('message', (_channel: string, message: string) => messages.push(message));
  await spy.subscribe(channel);
  return messages;
}

beforeAll(async () => {
  await requireService('Redis', REDIS_URL);
  admin = new Redis(REDIS_URL);
});

beforeEach(() => {
  prefix = `${uniqueName('test-cluster')}:`;
});

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.cluster.close()));
  await Promise.all(clients.splice(0).map((client) => client.quit().catch(() => client.disconnect())));
  if (!admin) return;
  const keys = await keysUnder(prefix);
  if (keys.length > 0) await admin.del(...keys);
});

afterAll(async () => {
  await admin?.quit();
});

describe('RedisCluster session directory', () => {
  it('shows a session on every node that holds sockets of it, with the socket count', async () => {
    const [a, b, c] = await Promise.all([startNode('A'), startNode('B'), startNode('C')]);
    await a.cluster.setLocalSockets('s1', 2);
    await b.cluster.setLocalSockets('s1', 1);

    for (const node of [a, b, c]) {
      const presence = await node.cluster.presence('s1');
      expect(presence.nodes.sort()).toEqual(['A', 'B']);
      expect(presence.sockets).toBe(3);
    }
    expect(await a.cluster.remoteNodes('s1')).toEqual(['B']);
    expect(await b.cluster.remoteNodes('s1')).toEqual(['A']);
    expect((await c.cluster.remoteNodes('s1')).sort()).toEqual(['A', 'B']);
    expect(await c.cluster.presence('nobody')).toEqual({ nodes: [], sockets: 0 });
  });

  it('removes a node from the session when its last socket is gone, and the hash when no node is left', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    await b.cluster.setLocalSockets('s1', 3);
    await b.cluster.setLocalSockets('s1', 1);
    expect(await a.cluster.presence('s1')).toEqual({ nodes: ['B'], sockets: 1 });

    await b.cluster.setLocalSockets('s1', 0);
    expect(await a.cluster.remoteNodes('s1')).toEqual([]);
    expect(await a.cluster.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    expect(await admin!.exists(sessionKey('s1'))).toBe(0);
  });

  it('serves lookups from a cache that every change of an entry, on any node, invalidates at once', async () => {
    const [a, b, c] = await Promise.all([startNode('A'), startNode('B'), startNode('C')]);
    expect(await a.cluster.remoteNodes('moving')).toEqual([]);
    // The cache answers without Redis: an entry written behind the nodes' backs is not seen...
    await admin!.hset(sessionKey('moving'), 'C', `1:${await admin!.get(`${prefix}node:C`)}`);
    expect(await a.cluster.remoteNodes('moving')).toEqual([]);
    expect(await a.cluster.remoteNodes('moving', { fresh: true })).toEqual(['C']);
    await admin!.hdel(sessionKey('moving'), 'C');
    expect(await a.cluster.remoteNodes('moving')).toEqual(['C']);
    // ...but a node's own change is announced, and every cache drops the session.
    await b.cluster.setLocalSockets('moving', 1);
    await vi.waitFor(async () => expect(await a.cluster.remoteNodes('moving')).toEqual(['B']), { timeout: 1_000, interval: 10 });
    await b.cluster.setLocalSockets('moving', 0);
    await c.cluster.setLocalSockets('moving', 2);
    await vi.waitFor(async () => expect(await a.cluster.remoteNodes('moving')).toEqual(['C']), { timeout: 1_000, interval: 10 });
    await c.cluster.setLocalSockets('moving', 0);
    await vi.waitFor(async () => expect(await a.cluster.remoteNodes('moving')).toEqual([]), { timeout: 1_000, interval: 10 });
  });

  it('keeps sessions whose ids differ only in special characters apart', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    const ids = ['', 'a:b', 'a%003ab', 'a%3Ab', '{x}', '*', '?', 'a b', 'ü', '\ud800', '\ufffd', 'session:a'];
    for (const [i, id] of ids.entries()) await b.cluster.setLocalSockets(id, i + 1);

    for (const [i, id] of ids.entries()) expect(await a.cluster.presence(id), JSON.stringify(id)).toEqual({ nodes: ['B'], sockets: i + 1 });
    const sessionKeys = (await keysUnder(prefix)).filter((key) => key.startsWith(`${prefix}session:`));
    expect(sessionKeys).toHaveLength(ids.length);
  });

  it('gives the directory hash a key expiry, renewed by every write', async () => {
    const a = await startNode('A', { directoryTtlMs: 60_000 });
    await a.cluster.setLocalSockets('s1', 1);
    await admin!.pexpire(sessionKey('s1'), 5_000);

    await a.cluster.setLocalSockets('s1', 2);
    const ttl = await admin!.pttl(sessionKey('s1'));
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('stops counting the sockets of a node whose heartbeat stopped, and tidies its entry away', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B', { heartbeatMs: 50, nodeTtlMs: 250 })]);
    await b.cluster.setLocalSockets('s1', 1);
    expect(await a.cluster.remoteNodes('s1')).toEqual(['B']);

    await b.kill();
    await vi.waitFor(async () => expect(await a.cluster.remoteNodes('s1', { fresh: true })).toEqual([]), { timeout: 3_000, interval: 50 });
    expect(await a.cluster.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    await vi.waitFor(async () => expect(await admin!.hget(sessionKey('s1'), 'B')).toBeNull(), { timeout: 1_000, interval: 20 });
  });

  it('ignores the entries of an earlier process with the same node id at once', async () => {
    const a = await startNode('A');
    const first = await startNode('B', { nodeTtlMs: 60_000 });
    await first.cluster.setLocalSockets('s1', 1);
    await first.cluster.setLocalSockets('s2', 1);
    await first.kill();
    // Redis has noticed the first process is gone (a restart takes longer than this anyway).
    await vi.waitFor(async () => expect(await admin!.pubsub('NUMSUB', busChannel('B'))).toEqual([busChannel('B'), 0]));

    const second = await startNode('B', { nodeTtlMs: 60_000 });
    expect(await a.cluster.remoteNodes('s1')).toEqual([]);
    await second.cluster.setLocalSockets('s2', 4);
    expect(await a.cluster.presence('s2')).toEqual({ nodes: ['B'], sockets: 4 });
  });

  it('refuses to start under the node id of a running node', async () => {
    await startNode('A');
    await expect(startNode('A')).rejects.toThrow(/node id "A" is already used by a running node/);
  });

  it('writes its entries again after other nodes counted it as gone', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    await b.cluster.setLocalSockets('s1', 2);
    // As if B stalled past its TTL: its liveness key expires, and A tidies B's entry away.
    await admin!.del(nodeKey('B'));
    expect(await a.cluster.remoteNodes('s1')).toEqual([]);
    await vi.waitFor(async () => expect(await admin!.hget(sessionKey('s1'), 'B')).toBeNull(), { timeout: 1_000, interval: 10 });

    await vi.waitFor(async () => expect(await a.cluster.presence('s1')).toEqual({ nodes: ['B'], sockets: 2 }), { timeout: 2_000, interval: 20 });
  });

  it('rejects at once while Redis is unreachable, and repairs the directory when it is back', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    await a.cluster.setLocalSockets('s1', 1);
    await cutOff(a.redis);
    expect(a.cluster.connected).toBe(false);

    const started = Date.now();
    await expect(a.cluster.setLocalSockets('s1', 2)).rejects.toThrow(/Redis is unavailable/);
    await expect(a.cluster.remoteNodes('s1')).rejects.toThrow(/Redis is unavailable/);
    await expect(a.cluster.presence('s1')).rejects.toThrow(/Redis is unavailable/);
    await expect(a.cluster.forward('B', 's1', notification('m1'))).rejects.toThrow(/Redis is unavailable/);
    expect(Date.now() - started).toBeLessThan(200);

    await a.redis.connect();
    expect(a.cluster.connected).toBe(true);
    await vi.waitFor(async () => expect(await b.cluster.presence('s1')).toEqual({ nodes: ['A'], sockets: 2 }), { timeout: 2_000, interval: 20 });
  });

  it('reports connected only while both of its Redis connections are ready', async () => {
    const a = await startNode('A');
    expect(a.cluster.connected).toBe(true);
    await cutOff(a.subscriber);
    expect(a.cluster.connected).toBe(false);
  });

  it('leaves the cluster on close: liveness key and own entries removed, other nodes\' entries kept', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    await a.cluster.setLocalSockets('s1', 1);
    await a.cluster.setLocalSockets('s2', 1);
    await b.cluster.setLocalSockets('s1', 1);
    expect(await admin!.exists(nodeKey('A'))).toBe(1);

    await a.cluster.close();
    expect(await admin!.exists(nodeKey('A'))).toBe(0);
    expect(await admin!.hget(sessionKey('s1'), 'A')).toBeNull();
    expect(await admin!.hget(sessionKey('s1'), 'B')).not.toBeNull();
    expect(await admin!.exists(sessionKey('s2'))).toBe(0);
    expect(await b.cluster.remoteNodes('s1')).toEqual([]);
    // A socket leaving during shutdown does not bring the node back.
    await a.cluster.setLocalSockets('s1', 0);
    await a.cluster.setLocalSockets('s3', 1);
    expect(await admin!.exists(sessionKey('s3'))).toBe(0);

    await b.cluster.close();
    expect(await keysUnder(prefix)).toEqual([]);
  });

  it('rejects invalid settings with a reason', async () => {
    const [redis, subscriber] = [await connectClient(), await connectClient()];
    const logger = pino({ level: 'silent' });
    const options = { nodeId: 'A', keyPrefix: prefix, forwardTimeoutMs: 1000, logger };
    expect(() => new RedisCluster(redis, subscriber, { ...options, heartbeatMs: 100, nodeTtlMs: 100 })).toThrow(/nodeTtlMs \(100\) must exceed heartbeatMs/);
    expect(() => new RedisCluster(redis, subscriber, { ...options, forwardTimeoutMs: 0 })).toThrow(/forwardTimeoutMs/);
    expect(() => new RedisCluster(redis, subscriber, { ...options, nodeId: '' })).toThrow(/nodeId/);
  });
});

describe('RedisCluster node bus', () => {
  it('brings back the owning node\'s outcome of a reliable forward', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    const owner = recordingHandler(async (_session, n) => (n.id === 'yes' ? 'delivered' : 'not_delivered'));
    b.cluster.onForward(owner.handler);

    expect(await a.cluster.forward('B', 's1', notification('yes'))).toBe('delivered');
    expect(await a.cluster.forward('B', 's1', notification('no'))).toBe('not_delivered');
    expect(owner.calls).toEqual([
      { sessionId: 's1', notification: expect.objectContaining({ id: 'yes', data: { text: 'hello yes' }, reliable: true }) },
      { sessionId: 's1', notification: expect.objectContaining({ id: 'no' }) },
    ]);
  });

  it('hands the owning node the notification as it was sent', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    const owner = recordingHandler();
    b.cluster.onForward(owner.handler);
    const sent = { ...notification('m1'), sessions: ['s1', 's2'], groups: ['g'], data: [1, 'two', { three: null }] };

    await a.cluster.forward('B', 's2', sent);
    expect(owner.calls).toEqual([{ sessionId: 's2', notification: sent }]);
  });

  it('reports not_delivered when the owning node\'s handler fails', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    b.cluster.onForward(async () => {
      throw new Error('socket exploded');
    });

    expect(await a.cluster.forward('B', 's1', notification('m1'))).toBe('not_delivered');
    expect(b.logs.some((line) => line.msg === 'forward handler failed')).toBe(true);
  });

  it('resolves not_delivered at once when no node listens under that id', async () => {
    const a = await startNode('A', { forwardTimeoutMs: 10_000 });
    const started = Date.now();
    expect(await a.cluster.forward('gone', 's1', notification('m1'))).toBe('not_delivered');
    expect(await a.cluster.forward('gone', 's1', notification('m2', false))).toBe('not_delivered');
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('resolves not_delivered after forwardTimeoutMs when the owning node does not answer, and ignores a late answer', async () => {
    const [a, b] = await Promise.all([startNode('A', { forwardTimeoutMs: 300 }), startNode('B')]);
    let answer: (outcome: ForwardOutcome) => void = () => {};
    b.cluster.onForward(() => new Promise((resolve) => (answer = resolve)));

    const started = Date.now();
    expect(await a.cluster.forward('B', 's1', notification('m1'))).toBe('not_delivered');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(1_500);

    answer('delivered');
    await vi.waitFor(() => expect(a.logs.some((line) => line.msg === 'outcome arrived after its forward timed out')).toBe(true), { timeout: 1_000 });
  });

  it('resolves a volatile forward once it is on the bus, without waiting for the owning node or hearing back', async () => {
    const [a, b] = await Promise.all([startNode('A', { forwardTimeoutMs: 10_000 }), startNode('B')]);
    let release: () => void = () => {};
    const owner = recordingHandler(() => new Promise((resolve) => (release = () => resolve('delivered'))));
    b.cluster.onForward(owner.handler);
    const backToA = await listenOn(busChannel('A'));

    expect(await a.cluster.forward('B', 's1', notification('m1', false))).toBe('delivered');
    await vi.waitFor(() => expect(owner.calls).toHaveLength(1), { timeout: 1_000 });
    expect(owner.calls[0]?.notification.reliable).toBe(false);
    release();
    await sleep(100);
    expect(backToA).toEqual([]);
  });

  it('forwards to the target node only', async () => {
    const [a, b, c] = await Promise.all([startNode('A'), startNode('B'), startNode('C')]);
    const atB = recordingHandler();
    const atC = recordingHandler();
    b.cluster.onForward(atB.handler);
    c.cluster.onForward(atC.handler);

    expect(await a.cluster.forward('B', 's1', notification('m1'))).toBe('delivered');
    expect(await a.cluster.forward('C', 's1', notification('m2', false))).toBe('delivered');
    await vi.waitFor(() => expect(atC.calls).toHaveLength(1), { timeout: 1_000 });
    await sleep(50);
    expect(atB.calls.map((call) => call.notification.id)).toEqual(['m1']);
    expect(atC.calls.map((call) => call.notification.id)).toEqual(['m2']);
  });

  it('gives each of 1000 concurrent forwards its own outcome', async () => {
    const [a, b, c] = await Promise.all([startNode('A', { forwardTimeoutMs: 10_000 }), startNode('B'), startNode('C')]);
    // Answers come back in a shuffled order; the outcome depends on the message and on the node.
    const answer = (node: string) => async (_session: string, n: Notification): Promise<ForwardOutcome> => {
      await sleep(Math.random() * 50);
      return (Number(n.id.slice(2)) % 3 === 0) === (node === 'B') ? 'delivered' : 'not_delivered';
    };
    b.cluster.onForward(answer('B'));
    c.cluster.onForward(answer('C'));

    const targets = Array.from({ length: 1000 }, (_, i) => ({ node: i % 2 === 0 ? 'B' : 'C', id: `m-${i}` }));
    const outcomes = await Promise.all(targets.map(({ node, id }) => a.cluster.forward(node, 's1', notification(id))));

    const expected = targets.map(({ node, id }) => ((Number(id.slice(2)) % 3 === 0) === (node === 'B') ? 'delivered' : 'not_delivered'));
    expect(outcomes).toEqual(expected);
    expect(new Set(outcomes)).toEqual(new Set(['delivered', 'not_delivered']));
  });

  it('ignores malformed frames on its channel and keeps working', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B')]);
    const owner = recordingHandler();
    b.cluster.onForward(owner.handler);
    const { sessions: _sessions, ...withoutSessions } = notification('bad');
    const garbage = [
      'not json',
      'null',
      '42',
      '[]',
      '{}',
      '{"type":"deliver"}',
      JSON.stringify({ type: 'deliver', from: 'A', corr: 'c1', session: 's1', notification: withoutSessions }),
      JSON.stringify({ type: 'deliver', from: '', corr: 'c2', session: 's1', notification: notification('bad') }),
      JSON.stringify({ type: 'deliver', from: 'A', corr: 'c3', session: 7, notification: notification('bad') }),
      JSON.stringify({ type: 'outcome', corr: 'c4', outcome: 'maybe' }),
      JSON.stringify({ type: 'shout', corr: 'c5' }),
    ];
    for (const frame of garbage) expect(await admin!.publish(busChannel('B'), frame)).toBe(1);
    // Well-formed, but answers nothing A is waiting for.
    await admin!.publish(busChannel('A'), JSON.stringify({ type: 'outcome', corr: 'unknown', outcome: 'delivered' }));

    expect(await a.cluster.forward('B', 's1', notification('good'))).toBe('delivered');
    expect(owner.calls.map((call) => call.notification.id)).toEqual(['good']);
    const warnings = b.logs.filter((line) => line.level === WARN && line.msg === 'ignored a malformed frame on the node bus');
    expect(warnings).toHaveLength(garbage.length);
  });

  it('gets going again by itself after Redis dropped its connections', async () => {
    const [a, b] = await Promise.all([startNode('A'), startNode('B', { forwardTimeoutMs: 300 })]);
    a.cluster.onForward(async () => 'delivered');
    await a.cluster.setLocalSockets('s1', 1);

    expect(await killConnectionsOf('A')).toBe(2);
    const during = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => b.cluster.forward('A', 's1', notification(`m-${i}`))));
    for (const result of during) if (result.status === 'fulfilled') expect(['delivered', 'not_delivered']).toContain(result.value);

    await vi.waitFor(async () => expect(await b.cluster.forward('A', 's1', notification('after'))).toBe('delivered'), { timeout: 3_000, interval: 50 });
    expect(await b.cluster.presence('s1')).toEqual({ nodes: ['A'], sockets: 1 });
    expect(a.cluster.connected).toBe(true);
  });

  it('settles pending forwards as not_delivered on close, and refuses new ones', async () => {
    const [a, b] = await Promise.all([startNode('A', { forwardTimeoutMs: 10_000 }), startNode('B')]);
    b.cluster.onForward(never);
    const pending = a.cluster.forward('B', 's1', notification('m1'));
    await sleep(50);

    const started = Date.now();
    await a.cluster.close();
    expect(await pending).toBe('not_delivered');
    expect(Date.now() - started).toBeLessThan(1_000);
    await expect(a.cluster.forward('B', 's1', notification('m2'))).rejects.toThrow(/closed/);
  });

  it('answers not_delivered to a reliable forward that arrives before a handler is installed', async () => {
    const [a] = await Promise.all([startNode('A'), startNode('B')]);
    expect(await a.cluster.forward('B', 's1', notification('m1'))).toBe('not_delivered');
  });
});
