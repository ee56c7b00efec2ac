import type { ConfirmChannel } from 'amqplib';
import { Redis } from 'ioredis';
import { ClusterUnderTest, Tab } from './cluster.js';
import { balance, type Balance, type DeadLetterSeen } from './conservation.js';
import { metric, until } from './harness.js';
import { REDIS_URL, uniqueName } from './services.js';

/** What one kill -9 run saw. */
export interface KillRun {
  balance: Balance;
  /** Redeliveries the surviving node acked without emitting (the session had acked them). */
  suppressed: number;
  /** Arrivals at the client beyond the first per id. */
  duplicatesDelivered: number;
  /** Set when the register answer after the move carried a gap notice. */
  gapNotices: number;
  /** ms from the kill until every id was accounted for. */
  settledMs: number;
}

/**
 * Two node processes on one queue (or on `shards` queues, published to through their exchange); the
 * tabs of `sessions` sessions on A; `total` reliable messages to them, round robin, published to the
 * queue (both nodes consume, B forwards to A); once the tabs have `killAfter` of them, A (the owner;
 * the tabs move to B) or B (only forwarding: what it held comes back to A) is killed with SIGKILL.
 * Waits until every id is delivered, waiting in an inbox or dead-lettered, or `settleMs` passed, and
 * returns the balance (the caller asserts on it).
 */
export async function killOwnerDuring(
  publisher: ConfirmChannel,
  options: {
    total: number;
    killAfter: number;
    settleMs: number;
    env?: Record<string, string>;
    /** `owner` (default): the node the tabs are on, which move; `other`: the node that only consumes and forwards. */
    kill?: 'owner' | 'other';
    /** Sessions the messages go to, one tab each. Default 1. */
    sessions?: number;
    /** AMQP_QUEUE_SHARDS. Default 1: published straight to the queue. */
    shards?: number;
  },
): Promise<{ run: KillRun; cluster: ClusterUnderTest; tabs: Tab[] }> {
  const shards = options.shards ?? 1;
  const cluster = new ClusterUnderTest(uniqueName('test-kill'),
    { ACK_TIMEOUT_MS: '2000', AMQP_PREFETCH: '200', AMQP_QUEUE_SHARDS: String(shards), ...options.env });
  await Promise.all([cluster.start('A'), cluster.start('B')]);
  const sessions = Array.from({ length: options.sessions ?? 1 }, (_, i) => (i === 0 ? 'victim' : `victim-${i}`));
  const tabs = sessions.map((sessionId) => new Tab(sessionId, [], () => cluster.liveUrls()[0]));
  const delivered = () => tabs.flatMap((tab) => tab.ids());
  try {
    for (const tab of tabs) await tab.open(cluster.url('A'));
    const ids = Array.from({ length: options.total }, (_, i) => `v-${String(i).padStart(5, '0')}`);
    ids.forEach((id, i) => {
      const sessionId = sessions[i % sessions.length]!;
      const body = Buffer.from(JSON.stringify({ id, session: sessionId, data: id }));
      const properties = { persistent: true, contentType: 'application/json', messageId: id };
      // A backend publishes to the exchange in front of the shards, with the session as routing key.
      if (shards > 1) publisher.publish(cluster.name, sessionId, body, properties);
      else publisher.sendToQueue(cluster.name, body, properties);
    });
    await publisher.waitForConfirms();
    await until(() => new Set(delivered()).size, (n) => n >= options.killAfter, 30_000);
    const [victim, survivor] = options.kill === 'other' ? ['B', cluster.url('A')] : ['A', cluster.url('B')];
    await cluster.stop(victim, 'SIGKILL');
    const killedAt = Date.now();

    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    await redis.connect();
    const dead: DeadLetterSeen[] = [];
    const account = async () => {
      for (;;) {
        const letter = await publisher.get(`${cluster.name}.dead`, { noAck: true });
        if (!letter) break;
        dead.push({ id: letter.properties.messageId as string | undefined, reason: String(letter.properties.headers?.['x-pushcenter-error']) });
      }
      // The ids are plain: the inbox keeps them as they are (see RedisInbox's key layout).
      const waiting = (await Promise.all(sessions.map((sessionId) =>
        redis.zrange(`${cluster.name}:{inbox:${sessionId}}:order`, '0', '-1')))).flat();
      return balance(ids, { delivered: delivered(), waiting, deadLettered: dead });
    };
    let result: Balance;
    try {
      // Settled: every id delivered or dead-lettered. What still waits then is reported as waiting.
      result = await until(account, (b) => b.missing.length === 0 && b.waiting === 0, options.settleMs).catch(account);
    } finally {
      redis.disconnect();
    }
    const settledMs = Date.now() - killedAt;
    const run: KillRun = {
      balance: result,
      suppressed: await metric(survivor, 'pushcenter_duplicates_suppressed_total'),
      duplicatesDelivered: delivered().length - new Set(delivered()).size,
      gapNotices: await metric(survivor, 'pushcenter_gap_notices_total'),
      settledMs,
    };
    return { run, cluster, tabs };
  } catch (err) {
    for (const tab of tabs) tab.close();
    await cluster.stopAll();
    throw err;
  }
}
