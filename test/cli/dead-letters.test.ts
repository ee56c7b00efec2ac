import { connect, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENQUEUED_MS_HEADER, ERROR_DETAIL_HEADER, ERROR_HEADER, ORIGINAL_QUEUE_HEADER } from '../../src/ingest/amqp/headers.js';
import { declareTopology } from '../../src/ingest/amqp/topology.js';
import { cli, killCliChildren, spawnCli } from '../support/cli.js';
import { closeClients, collect, connectClient, register, startNode, until, type Running } from '../support/harness.js';
import { workQueues } from '../../src/config/config.js';
import { AMQP_URL, REDIS_URL, cleanupShardedEngines, realEngines, requireConsistentHashExchange, requireService, uniqueName } from '../support/services.js';

/**
 * `push-center dead-letters list|replay` against the real RabbitMQ, each test on a topology of its own
 * (the names a node on `realEngines(name)` declares), removed afterwards.
 */

const HOUR = 3_600_000;
let connection: ChannelModel;
let channel: ConfirmChannel;
const names: Array<{ name: string; shards: number }> = [];
let node: Running | undefined;

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  connection = await connect(AMQP_URL);
  channel = await connection.createConfirmChannel();
});

afterEach(async () => {
  closeClients();
  killCliChildren();
  await node?.close();
  node = undefined;
  for (const { name, shards } of names.splice(0)) await cleanupShardedEngines(name, shards);
});

afterAll(async () => {
  await connection?.close().catch(() => undefined);
});

/** A work queue (or `shards` of them) and its dead-letter queue and exchange, declared as a node declares them. */
async function topology(
  shards = 1, queueType: 'classic' | 'quorum' = 'classic',
): Promise<{ name: string; dead: string; env: Record<string, string>; args: string[]; listArgs: string[] }> {
  const name = uniqueName('cli-dead');
  names.push({ name, shards });
  const env = realEngines(name, shards);
  await declareTopology(channel, {
    queue: name,
    queueShards: shards,
    queueTtlMs: 600_000,
    queueType,
    deadLetterQueue: env.AMQP_DEAD_LETTER_QUEUE!,
    deadLetterExchange: env.AMQP_DEAD_LETTER_EXCHANGE!,
  }, connection);
  const dead = env.AMQP_DEAD_LETTER_QUEUE!;
  const listArgs = ['--amqp', AMQP_URL, '--dead-letter-queue', dead];
  return { name, dead, env, listArgs, args: [...listArgs, '--queue', name] };
}

interface Letter {
  body: string;
  reason: string;
  detail: string;
  id: string;
  enqueuedAt: number;
}

/** Publishes dead letters as push-center does: to the dead-letter exchange, with the reason headers. */
async function deadLetter(name: string, letters: Letter[]): Promise<void> {
  for (const { body, reason, detail, id, enqueuedAt } of letters) {
    channel.publish(`${name}.dlx`, name, Buffer.from(body), {
      persistent: true,
      contentType: 'application/json',
      messageId: id,
      timestamp: Math.floor(enqueuedAt / 1000),
      headers: {
        [ENQUEUED_MS_HEADER]: enqueuedAt,
        [ERROR_HEADER]: reason,
        [ERROR_DETAIL_HEADER]: detail,
        [ORIGINAL_QUEUE_HEADER]: name,
        'x-custom': 'kept',
      },
    });
  }
  await channel.waitForConfirms();
}

function inboxLetter(id: string, sessionId: string, reason: 'inbox_full' | 'inbox_expired', enqueuedAt: number): Letter {
  return {
    body: JSON.stringify({ id, session: sessionId, event: 'message', data: { n: id }, delivery: 'reliable' }),
    reason,
    detail: reason === 'inbox_full'
      ? `the inbox of session "${sessionId}" was over its bound`
      : `its ttl ran out at ${new Date(enqueuedAt + 600_000).toISOString()} in the inbox of session "${sessionId}"`,
    id,
    enqueuedAt,
  };
}

/** What RabbitMQ itself dead-letters: a message that expires in the work queue (x-death, reason expired). */
async function expireInQueue(name: string, dead: string, id: string, sessionId: string): Promise<void> {
  const before = await count(dead);
  channel.sendToQueue(name, Buffer.from(JSON.stringify({ id, session: sessionId, data: 1 })),
    { persistent: true, messageId: id, expiration: '1', headers: { [ENQUEUED_MS_HEADER]: Date.now() } });
  await channel.waitForConfirms();
  await until(() => count(dead), (n) => n === before + 1);
}

async function count(queue: string): Promise<number> {
  const probe = await connection.createChannel();
  try {
    return (await probe.checkQueue(queue)).messageCount;
  } finally {
    await probe.close();
  }
}

/**
 * Every message in the queue, head first. `take`: removes them; else they are read with basic.get and
 * put back by closing the channel (independently of the code under test).
 */
async function contents(queue: string, take = false): Promise<GetMessage[]> {
  const reader = await connection.createChannel();
  const found: GetMessage[] = [];
  for (let msg = await reader.get(queue, { noAck: take }); msg; msg = await reader.get(queue, { noAck: take })) found.push(msg);
  await reader.close();
  return found;
}

/** The messageId of each message (push-center's dead letters and these tests' carry the notification id there). */
const ids = (messages: GetMessage[]): string[] => messages.map((m) => String(m.properties.messageId));

/** Six dead letters of every kind, oldest first; returns their ids in queue order. */
async function mixed(name: string, dead: string): Promise<string[]> {
  const old = Date.now() - 2 * HOUR;
  await deadLetter(name, [
    inboxLetter('full-alice', 'alice', 'inbox_full', old),
    { body: 'this is {not json', reason: 'not_json', detail: 'body is not JSON: Unexpected token', id: 'garbled', enqueuedAt: old },
  ]);
  await expireInQueue(name, dead, 'expired-carol', 'carol');
  await deadLetter(name, [
    { body: JSON.stringify({ id: 'team-connect', group: 'team-a', event: 'connect', data: 1 }), reason: 'reserved_event',
      detail: 'event "connect" is reserved by socket.io; choose another name', id: 'team-connect', enqueuedAt: old },
    inboxLetter('full-bob', 'bob', 'inbox_full', old),
    inboxLetter('expired-dave', 'dave', 'inbox_expired', old),
  ]);
  return ['full-alice', 'garbled', 'expired-carol', 'team-connect', 'full-bob', 'expired-dave'];
}

describe('push-center dead-letters list', () => {
  it('shows reason, detail, target, id and age of each dead letter, counts them by reason, and leaves the queue as it was', async () => {
    const { name, dead, listArgs: args } = await topology();
    const order = await mixed(name, dead);
    const before = (await contents(dead)).map((m) => m.content.toString());

    const { code, stdout, stderr } = await cli(['dead-letters', 'list', ...args]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(/^#\s+AGE\s+REASON\s+TARGET\s+ID\s+DETAIL$/);
    const row = (id: string) => lines.find((line) => line.includes(` ${id} `)) ?? '';
    expect(row('full-alice')).toMatch(/^1\s+2h0\dm\s+inbox_full\s+session alice\s+full-alice\s+the inbox of session "alice" was over its bound$/);
    expect(row('garbled')).toMatch(/^2\s+2h0\dm\s+not_json\s+\?\s+garbled\s+body is not JSON/);
    expect(row('expired-carol')).toMatch(new RegExp(`^3\\s+\\d+s\\s+expired\\s+session carol\\s+expired-carol\\s+` +
      `RabbitMQ dead-lettered it from queue '${name.replace(/\./g, '\\.')}' \\(expired\\)$`));
    expect(row('team-connect')).toMatch(/^4\s+\S+\s+reserved_event\s+group team-a\s+team-connect\s+event "connect" is reserved/);
    expect(row('expired-dave')).toMatch(/^6\s+\S+\s+inbox_expired\s+session dave\s+/);
    expect(stdout).toContain(`6 dead letters in '${dead}', by reason:\n  inbox_full      2\n`);
    for (const reason of ['not_json', 'expired', 'reserved_event', 'inbox_expired']) expect(stdout).toMatch(new RegExp(`^  ${reason}\\s+1$`, 'm'));

    // Intact: the same messages, in the same order.
    const after = await contents(dead);
    expect(after.map((m) => m.content.toString())).toEqual(before);
    expect(ids(after)).toEqual(order);
    expect(after.every((m) => m.fields.redelivered)).toBe(true);
  });

  it('leaves a quorum dead-letter queue in order too (each read counts as a delivery there)', async () => {
    const { name, dead, listArgs: args } = await topology(1, 'quorum');
    const order = await mixed(name, dead);
    const { code, stdout } = await cli(['dead-letters', 'list', ...args]);
    expect(code).toBe(0);
    expect(stdout).toContain(`6 dead letters in '${dead}', by reason:`);
    const after = await contents(dead);
    expect(ids(after)).toEqual(order);
    expect(after.map((m) => m.properties.headers?.['x-delivery-count'])).toEqual(order.map(() => 1));
  });

  it('filters by --reason, cuts at --limit, and writes JSON lines with --json', async () => {
    const { name, dead, listArgs: args } = await topology();
    await mixed(name, dead);

    const { code, stdout } = await cli(['dead-letters', 'list', ...args, '--reason', 'inbox_full', '--reason', 'expired',
      '--limit', '2', '--json']);
    expect(code).toBe(0);
    const records = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, any>);
    expect(records).toHaveLength(3);
    const [alice, carol, summary] = records;
    expect(alice).toMatchObject({ position: 1, reason: 'inbox_full', id: 'full-alice', target: { session: ['alice'] },
      originalQueue: name, deadLetteredAt: null });
    expect(alice!.ageMs).toBeGreaterThanOrEqual(2 * HOUR);
    expect(carol).toMatchObject({ position: 3, reason: 'expired', id: 'expired-carol', target: { session: ['carol'] }, originalQueue: name });
    expect(Date.parse(carol!.deadLetteredAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(summary).toEqual({ summary: { queue: dead, read: 6, matching: 3, shown: 2,
      byReason: { inbox_full: 2, expired: 1, inbox_expired: 1, not_json: 1, reserved_event: 1 } } });
    expect(await count(dead)).toBe(6);
  });

  it('says so when the queue is empty', async () => {
    const { dead, listArgs: args } = await topology();
    const { code, stdout } = await cli(['dead-letters', 'list', ...args]);
    expect(code).toBe(0);
    expect(stdout).toBe(`the dead-letter queue '${dead}' is empty\n`);
  });
});

describe('push-center dead-letters replay', () => {
  it('moves the dead letters of a reason back to the work queue with a fresh enqueue time, and leaves the others in order', async () => {
    await requireService('Redis', REDIS_URL);
    const { name, dead, env, args } = await topology();
    const order = await mixed(name, dead);
    const startedAt = Date.now();

    const { code, stdout, stderr } = await cli(['dead-letters', 'replay', ...args, '--reason', 'inbox_full']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^replayed 2 of 6 dead letters from '${dead.replace(/\./g, '\\.')}' to '${name.replace(/\./g, '\\.')}' ` +
      `in \\d+\\.\\d\\d s \\([\\d,]+/s\\); 4 left in '${dead.replace(/\./g, '\\.')}'\\n`));
    expect(stdout).toMatch(/^ {2}reason\s+replayed\s+left$/m);
    expect(stdout).toMatch(/^ {2}inbox_full\s+2\s+0$/m);
    expect(stdout).toMatch(/^ {2}not_json\s+0\s+1$/m);

    expect(ids(await contents(dead))).toEqual(order.filter((id) => !id.startsWith('full-')));
    const replayed = await contents(name);
    expect(ids(replayed)).toEqual(['full-alice', 'full-bob']);
    for (const msg of replayed) {
      const id = ids([msg])[0]!;
      expect(msg.content.toString()).toBe(inboxLetter(id, id.slice(5), 'inbox_full', 0).body);
      expect(msg.properties.messageId).toBe(id);
      const headers = msg.properties.headers ?? {};
      expect(headers).not.toHaveProperty(ERROR_HEADER);
      expect(headers).not.toHaveProperty(ERROR_DETAIL_HEADER);
      expect(headers).not.toHaveProperty(ORIGINAL_QUEUE_HEADER);
      expect(headers['x-custom']).toBe('kept');
      expect(headers[ENQUEUED_MS_HEADER]).toBeGreaterThanOrEqual(startedAt);
      expect(msg.properties.timestamp).toBeGreaterThanOrEqual(Math.floor(startedAt / 1000));
      expect(msg.properties.deliveryMode).toBe(2);
    }

    // Two hours old at first, with the queue's 10-minute ttl: only the fresh enqueue time gets it delivered.
    node = await startNode(env);
    const socket = await connectClient(node.url);
    // Listening before registering: the inbox may replay it in the same breath as the register answer.
    const received = collect(socket);
    expect((await register(socket, { sessionId: 'alice', groups: [] })).ok).toBe(true);
    await until(() => received.length, (n) => n === 1, 10_000);
    expect(received[0]!.envelope).toMatchObject({ id: 'full-alice', data: { n: 'full-alice' } });
  });

  it('replays what RabbitMQ expired without its x-death history, and stops at --limit', async () => {
    const { name, dead, args } = await topology();
    await expireInQueue(name, dead, 'expired-1', 'erin');
    await expireInQueue(name, dead, 'expired-2', 'erin');

    const { code, stdout } = await cli(['dead-letters', 'replay', ...args, '--reason', 'expired', '--limit', '1']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^replayed 1 of 2 dead letters .*; 1 left in/);
    expect(stdout).toMatch(/^ {2}\(not read\)\s+1$/m);
    const [copy] = await contents(name);
    expect(ids([copy!])).toEqual(['expired-1']);
    expect(Object.keys(copy!.properties.headers ?? {}).filter((header) => header.includes('death'))).toEqual([]);
    expect(copy!.properties.expiration).toBeUndefined();
    expect(ids(await contents(dead))).toEqual(['expired-2']);
  });

  describe('cut short in the middle of 2,200 dead letters (2,000 to replay, 200 of another reason among them)', () => {
    const TOTAL = 2200;

    async function fill(name: string): Promise<string[]> {
      const old = Date.now() - HOUR;
      const letters = Array.from({ length: TOTAL }, (_, i) => {
        const id = `dl-${String(i).padStart(4, '0')}`;
        return i % 11 === 10
          ? { body: `garbled ${i}`, reason: 'not_json', detail: 'body is not JSON', id, enqueuedAt: old }
          : inboxLetter(id, `s${i % 7}`, 'inbox_full', old);
      });
      await deadLetter(name, letters);
      return letters.map((letter) => letter.id);
    }

    /**
     * What both queues hold, once RabbitMQ has put back what the CLI's connection held: until then those
     * messages are neither ready nor gone, and a read would see the queue without them.
     */
    async function settled(name: string, dead: string): Promise<{ left: string[]; moved: string[] }> {
      await until(async () => (await count(dead)) + (await count(name)), (n) => n >= TOTAL, 10_000);
      return { left: ids(await contents(dead, true)), moved: ids(await contents(name, true)) };
    }

    /** Runs replay until its progress log shows 1,000 read, then sends `signal`. */
    async function replayUntilHalfway(args: string[], signal: NodeJS.Signals) {
      const run = spawnCli(['dead-letters', 'replay', ...args, '--reason', 'inbox_full']);
      await until(() => run.stderr(), (text) => /^read 1000\/2200 /m.test(text) || run.child.exitCode !== null, 20_000);
      expect(run.child.exitCode, `replay ended before the signal:\n${run.stdout()}${run.stderr()}`).toBeNull();
      run.child.kill(signal);
      const code = await run.exited;
      return { code, stdout: run.stdout(), stderr: run.stderr() };
    }

    it('killed (SIGKILL): every dead letter is in exactly one of the two queues, but at most the one in hand, which can be in both', async () => {
      const { name, dead, args } = await topology();
      const all = await fill(name);

      const { code } = await replayUntilHalfway(args, 'SIGKILL');
      expect(code).toBeNull();

      const { left, moved } = await settled(name, dead);
      const toReplay = (id: string) => all.indexOf(id) % 11 !== 10;
      // Cut in the middle: some replayed, some not.
      expect(moved.length).toBeGreaterThan(0);
      expect(left.filter(toReplay).length).toBeGreaterThan(0);
      // Nothing lost.
      expect(new Set([...left, ...moved])).toEqual(new Set(all));
      // Each order kept: the replayed ones in the work queue, the rest in the dead-letter queue.
      const byPlace = (list: string[]) => [...list].sort((a, b) => all.indexOf(a) - all.indexOf(b));
      expect(moved).toEqual(byPlace(moved));
      expect(left).toEqual(byPlace(left));
      expect(moved.every(toReplay)).toBe(true);
      // At most one in both: the last one copied, which is also the first inbox_full still dead-lettered.
      const both = moved.filter((id) => left.includes(id));
      expect(both.length).toBeLessThanOrEqual(1);
      if (both.length === 1) {
        expect(both[0]).toBe(moved.at(-1));
        expect(both[0]).toBe(left.find(toReplay));
      }
      expect(left.length + moved.length).toBe(TOTAL + both.length);
    }, 60_000);

    it('interrupted (SIGINT): it finishes the message in hand, says what it did, and nothing is in both queues', async () => {
      const { name, dead, args } = await topology();
      const all = await fill(name);

      const { code, stdout, stderr } = await replayUntilHalfway(args, 'SIGINT');
      expect(code).toBe(1);
      const replayedCount = Number(/^replayed (\d+) of 2200 dead letters/.exec(stdout)?.[1]);
      expect(stderr).toMatch(new RegExp(`interrupted: ${replayedCount} replayed, ${TOTAL - replayedCount} left in '[^']+'\\. ` +
        "Every dead letter read is in exactly one of '[^']+' and '[^']+'\\. Run it again to go on\\."));

      const { left, moved } = await settled(name, dead);
      expect(moved).toHaveLength(replayedCount);
      expect(left.length + moved.length).toBe(TOTAL);
      expect(new Set([...left, ...moved])).toEqual(new Set(all));
      expect(left).toEqual(all.filter((id) => left.includes(id)));
    }, 60_000);
  });
});

describe('push-center dead-letters: usage', () => {
  it('lists its subcommands and options with --help', async () => {
    const { code, stdout } = await cli(['dead-letters', '--help']);
    expect(code).toBe(0);
    for (const text of ['dead-letters list', 'dead-letters replay', '--reason', '--limit', '--json', '--amqp', '--dead-letter-queue', '--queue']) {
      expect(stdout).toContain(text);
    }
    expect((await cli(['help', 'dead-letters'])).stdout).toBe(stdout);
    expect((await cli(['dead-letters', 'replay', '--help'])).stdout).toBe(stdout);
  });

  it.each([
    [[], /say what to do: list or replay/],
    [['purge'], /unknown subcommand 'purge'; the subcommands are list, replay/],
    [['list', '--limit', '0'], /--limit "0": must be a whole number from 1 to/],
    [['replay', '--limit', 'lots'], /--limit "lots": must be a whole number/],
    [['list', '--reason', 'inbox full'], /--reason "inbox full": a reason is 1 to 64 of/],
    [['replay', '--json'], /unknown option '--json'/],
    [['list', '--queue', 'q'], /unknown option '--queue'/],
    [['list', '--amqp', 'http://127.0.0.1'], /--amqp "http:\/\/127\.0\.0\.1\/?": must start with amqp:\/\//],
  ])('refuses %j with exit code 2', async (args, message) => {
    const { code, stdout, stderr } = await cli(['dead-letters', ...args]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/Run 'push-center dead-letters --help' for usage/);
  });

  it('names the dead-letter queue that does not exist, and the option that chooses it (exit 1)', async () => {
    const missing = uniqueName('cli-dead.missing');
    const { code, stderr } = await cli(['dead-letters', 'list', '--amqp', AMQP_URL, '--dead-letter-queue', missing]);
    expect(code).toBe(1);
    expect(stderr).toContain(`the queue '${missing}' does not exist`);
    expect(stderr).toContain('--dead-letter-queue / AMQP_DEAD_LETTER_QUEUE');
  });

  it('with AMQP_QUEUE_SHARDS, replays through the exchange: each copy to the shard its session\'s messages go to, in order', async () => {
    await requireConsistentHashExchange();
    const { name, dead, args } = await topology(4);
    const old = Date.now() - HOUR;
    const sessions = ['sh-alice', 'sh-bob', 'sh-carol', 'sh-dave', 'sh-erin', 'sh-frank'];
    const letters = Array.from({ length: 24 }, (_, i) => inboxLetter(`sh-${String(i).padStart(2, '0')}`, sessions[i % 6]!, 'inbox_full', old));
    await deadLetter(name, letters);

    const { code, stdout, stderr } = await cli(['dead-letters', 'replay', ...args], { AMQP_QUEUE_SHARDS: '4' });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(`replayed 24 of 24 dead letters from '${dead}' to the 4 shards behind exchange '${name}'`);
    expect(await count(dead)).toBe(0);

    // A backend's message to each session, through the same exchange: its copies are in that shard, in order.
    const shards = workQueues({ queue: name, queueShards: 4 });
    for (const sessionId of sessions) channel.publish(name, sessionId, Buffer.from('{}'), { messageId: `marker-${sessionId}` });
    await channel.waitForConfirms();
    const held = await Promise.all(shards.map(async (shard) => ids(await contents(shard, true))));
    expect(held.flat()).toHaveLength(24 + sessions.length);
    for (const sessionId of sessions) {
      const shard = held.find((found) => found.includes(`marker-${sessionId}`))!;
      const copies = letters.filter((letter) => letter.body.includes(`"${sessionId}"`)).map((letter) => letter.id);
      expect(shard.filter((id) => copies.includes(id))).toEqual(copies);
    }
    // Six sessions over four shards: more than one shard is used.
    expect(held.filter((found) => found.length > 0).length).toBeGreaterThan(1);
  });

  it('takes the queues from AMQP_DEAD_LETTER_QUEUE and AMQP_QUEUE, and RabbitMQ from AMQP_URL', async () => {
    const { name, dead, env } = await topology();
    await deadLetter(name, [inboxLetter('env-1', 'frank', 'inbox_full', Date.now())]);
    const { code, stdout } = await cli(['dead-letters', 'replay'],
      { AMQP_URL, AMQP_QUEUE: name, AMQP_DEAD_LETTER_QUEUE: env.AMQP_DEAD_LETTER_QUEUE! });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^replayed 1 of 1 dead letter /);
    expect(await count(dead)).toBe(0);
    expect(ids(await contents(name))).toEqual(['env-1']);
  });
});
