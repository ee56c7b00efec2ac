import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, killCliChildren, spawnCli } from '../support/cli.js';
import { closeClients, collect, metric, session, startNode, until, type Running } from '../support/harness.js';
import { workQueues } from '../../src/config/config.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, cleanupShardedEngines, realEngines, requireConsistentHashExchange, requireService, uniqueName } from '../support/services.js';

let node: Running | undefined;

afterEach(async () => {
  closeClients();
  killCliChildren();
  await node?.close();
  node = undefined;
});

describe('push-center (the command line)', () => {
  it('lists its commands with --help', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/Usage: push-center <command>/);
    for (const command of ['start', 'send', 'dead-letters', 'bench']) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('shows the options of a command with <command> --help', async () => {
    const { code, stdout } = await cli(['send', '--help']);
    expect(code).toBe(0);
    for (const option of ['--session', '--group', '--broadcast', '--data-file', '--count', '--http', '--amqp']) {
      expect(stdout).toContain(option);
    }
  });

  it('refuses an unknown command with exit code 2, naming it', async () => {
    const { code, stderr } = await cli(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown command 'frobnicate'/);
    expect(stderr).toMatch(/push-center --help/);
  });

  it('refuses an unknown option with exit code 2, naming it', async () => {
    const { code, stderr } = await cli(['send', '--session', 'x', '--data', '1', '--colour', 'red']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown option '--colour'/);
    expect(stderr).toMatch(/push-center send --help/);
  });
});

describe('push-center send over HTTP', () => {
  it('prints the id, and the session receives the notification under it', async () => {
    node = await startNode();
    const received = collect(await session(node.url, 'cli-alice'));

    const { code, stdout, stderr } = await cli(['send', '--http', node.url, '--session', 'cli-alice',
      '--data', '{"title":"Hello"}']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const ids = stdout.trim().split('\n');
    expect(ids).toHaveLength(1);
    await until(() => received.length, (n) => n === 1);
    expect(received[0]!.envelope).toMatchObject({ id: ids[0], event: 'message', data: { title: 'Hello' }, reliable: true });
  });

  it('sends --count copies, each with its own id, and prints a summary', async () => {
    node = await startNode();
    const received = collect(await session(node.url, 'cli-many'));

    const { code, stdout } = await cli(['send', '--http', node.url, '--session', 'cli-many', '--data', 'hello',
      '--count', '50']);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(stdout).toMatch(/^sent 50 notifications to http:\/\/127\.0\.0\.1:\d+\/v1\/notifications/);
    await until(() => received.length, (n) => n === 50);
    expect(new Set(received.map((r) => r.envelope.id)).size).toBe(50);
    // Not JSON: sent as a string.
    expect(received.every((r) => r.envelope.data === 'hello')).toBe(true);
  });

  it('numbers the ids of the copies after --id', async () => {
    node = await startNode();
    const received = collect(await session(node.url, 'cli-numbered'));

    const { code, stdout } = await cli(['send', '--http', node.url, '--session', 'cli-numbered', '--data', '7',
      '--id', 'order', '--count', '3']);
    expect(code).toBe(0);
    expect(stdout).toBe('order-1\norder-2\norder-3\n');
    await until(() => received.length, (n) => n === 3);
    expect(received.map((r) => r.envelope.id).sort()).toEqual(['order-1', 'order-2', 'order-3']);
    expect(received[0]!.envelope.data).toBe(7);
  });

  it('reads the payload from stdin with --data-file -, to a group under a custom event', async () => {
    node = await startNode();
    const received = collect(await session(node.url, 'cli-member', ['cli-team']), 'news');

    const { code } = await cli(['send', '--http', node.url, '--group', 'cli-team', '--event', 'news',
      '--data-file', '-'], {}, '{"from":"stdin"}\n');
    expect(code).toBe(0);
    await until(() => received.length, (n) => n === 1);
    expect(received[0]!.envelope).toMatchObject({ event: 'news', group: 'cli-team', data: { from: 'stdin' } });
  });

  it('sends the API key from --api-key or PUSHCENTER_API_KEY', async () => {
    node = await startNode({ API_KEYS: 'cli-key-1,cli-key-2' });
    const received = collect(await session(node.url, 'cli-keyed'));

    const flag = await cli(['send', '--http', node.url, '--api-key', 'cli-key-1', '--session', 'cli-keyed', '--data', '1']);
    const env = await cli(['send', '--http', node.url, '--session', 'cli-keyed', '--data', '2'],
      { PUSHCENTER_API_KEY: 'cli-key-2' });
    expect([flag.code, env.code]).toEqual([0, 0]);
    await until(() => received.length, (n) => n === 2);
  });

  it('exits 1 with the server\'s message when the API key is wrong', async () => {
    node = await startNode({ API_KEYS: 'cli-key-1' });

    const { code, stdout, stderr } = await cli(['send', '--http', node.url, '--api-key', 'wrong', '--session', 'x',
      '--data', '1']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/answered 401 Unauthorized: send a valid API key as "Authorization: Bearer <key>"/);
    expect(stderr).toMatch(/--api-key/);
  });

  it('exits 1 saying which scope is missing when the API key may not publish', async () => {
    node = await startNode({ API_KEYS: 'cli-key-1:publish,cli-reader:read' });

    const { code, stderr } = await cli(['send', '--http', node.url, '--api-key', 'cli-reader', '--session', 'x', '--data', '1']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/answered 403 Forbidden: this key lacks the publish scope/);
    expect(stderr).toMatch(/grants publish/);
  });

  it('refuses a reserved event with the server\'s reason and sends nothing', async () => {
    node = await startNode();

    const { code, stdout, stderr } = await cli(['send', '--http', node.url, '--session', 'x', '--data', '1',
      '--event', 'connect']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/invalid \(reserved_event\): event "connect" is reserved by socket\.io/);
    expect(stderr).toMatch(/Nothing was sent/);
    expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' })).toBe(0);
  });

  it('refuses a notification without a target and sends nothing', async () => {
    node = await startNode();

    const { code, stderr } = await cli(['send', '--http', node.url, '--data', '1']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/invalid \(no_target\): at least one of session, group or broadcast/);
    expect(stderr).toMatch(/--session, --group or --broadcast/);
    expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' })).toBe(0);
  });

  it('says which URL it could not reach and what to check', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });

    const { code, stderr } = await cli(['send', '--http', `http://127.0.0.1:${port}`, '--session', 'x', '--data', '1']);
    expect(code).toBe(1);
    expect(stderr).toContain(`cannot reach push-center at http://127.0.0.1:${port}/v1/notifications`);
    expect(stderr).toMatch(/ECONNREFUSED/);
    expect(stderr).toMatch(/Check that a node runs there/);
  });
});

describe('push-center send to RabbitMQ', () => {
  it('publishes to the queue a node on RabbitMQ and Redis consumes, with --amqp or AMQP_URL', async () => {
    await requireService('RabbitMQ', AMQP_URL);
    await requireService('Redis', REDIS_URL);
    const name = uniqueName('cli');
    try {
      node = await startNode(realEngines(name));
      const received = collect(await session(node.url, 'cli-bob'));

      const flag = await cli(['send', '--amqp', AMQP_URL, '--queue', name, '--session', 'cli-bob', '--data', '{"via":"flag"}']);
      expect(flag.stderr).toBe('');
      expect(flag.code).toBe(0);
      // AMQP_URL in the environment makes RabbitMQ the default transport.
      const env = await cli(['send', '--session', 'cli-bob', '--data', '{"via":"env"}'], { AMQP_URL, AMQP_QUEUE: name });
      expect(env.code).toBe(0);

      await until(() => received.length, (n) => n === 2, 10_000);
      const byId = new Map(received.map((r) => [r.envelope.id, r.envelope.data]));
      expect(byId.get(flag.stdout.trim())).toEqual({ via: 'flag' });
      expect(byId.get(env.stdout.trim())).toEqual({ via: 'env' });
    } finally {
      await node?.close();
      node = undefined;
      await cleanupRealEngines(name);
    }
  });

  it('says so when the queue does not exist, and declares nothing', async () => {
    await requireService('RabbitMQ', AMQP_URL);
    const name = uniqueName('cli.missing');

    const { code, stderr } = await cli(['send', '--amqp', AMQP_URL, '--queue', name, '--session', 'x', '--data', '1']);
    expect(code).toBe(1);
    expect(stderr).toContain(`the queue '${name}' does not exist`);
    const { connect } = await import('amqplib');
    const connection = await connect(AMQP_URL);
    try {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      await expect(channel.checkQueue(name)).rejects.toThrow(/NOT_FOUND/);
    } finally {
      await connection.close().catch(() => undefined);
    }
  });
});

describe('push-center send to sharded RabbitMQ queues (AMQP_QUEUE_SHARDS)', () => {
  it('publishes through the exchange with the session as routing key, and says what to set when it is missing', async () => {
    await requireService('RabbitMQ', AMQP_URL);
    await requireService('Redis', REDIS_URL);
    await requireConsistentHashExchange();
    const name = uniqueName('cli-sharded');
    const { connect } = await import('amqplib');
    const connection = await connect(AMQP_URL);
    try {
      node = await startNode(realEngines(name, 4));
      const received = collect(await session(node.url, 'cli-carol'));
      await node.app.queue.pause();
      const channel = await connection.createConfirmChannel();
      const depths = () => Promise.all(workQueues({ queue: name, queueShards: 4 }).map(async (shard) => (await channel.checkQueue(shard)).messageCount));
      // Where a backend's message for the session goes: the shard the CLI must use too.
      channel.publish(name, 'cli-carol', Buffer.from(JSON.stringify({ id: 'backend-0', session: 'cli-carol', data: 0 })), { persistent: true });
      await channel.waitForConfirms();
      const shard = (await depths()).indexOf(1);
      expect(shard).toBeGreaterThanOrEqual(0);

      const unset = await cli(['send', '--amqp', AMQP_URL, '--queue', name, '--session', 'cli-carol', '--data', '1']);
      expect(unset.code).toBe(1);
      expect(unset.stderr).toContain(`the queue '${name}' does not exist`);
      expect(unset.stderr).toContain('set AMQP_QUEUE_SHARDS as they have it');

      const sent = await cli(['send', '--amqp', AMQP_URL, '--queue', name, '--session', 'cli-carol', '--id', 'cli', '--count', '20', '--data', '1'],
        { AMQP_QUEUE_SHARDS: '4' });
      expect(sent.stderr).toBe('');
      expect(sent.code).toBe(0);
      expect(sent.stdout).toContain(`exchange '${name}'`);
      const after = await depths();
      expect(after[shard]).toBe(21);
      expect(after.reduce((a, b) => a + b, 0)).toBe(21);

      node.app.queue.resume();
      await until(() => received.length, (n) => n === 21, 10_000);
      expect(received.map((r) => r.envelope.id)).toEqual(['backend-0', ...Array.from({ length: 20 }, (_, i) => `cli-${i + 1}`)]);
    } finally {
      await connection.close();
      await node?.close();
      node = undefined;
      await cleanupShardedEngines(name, 4);
    }
  });
});

describe('push-center start', () => {
  it('runs a node from the environment and exits 0 on SIGTERM', async () => {
    const run = spawnCli(['start'], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    const port = await until(() => /"port":(\d+)[^\n]*push-center listening/.exec(run.stdout())?.[1],
      (found) => found !== undefined || run.child.exitCode !== null, 20_000);
    expect(port, `the node did not start:\n${run.stdout()}${run.stderr()}`).toBeDefined();
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toMatch(/"msg":"stopped"/);
  });
});
