import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { killOwnerDuring, type KillRun } from '../support/kill-run.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, requireService } from '../support/services.js';

/**
 * kill -9 of the node holding a session, and of the node forwarding to it, while 2,000 reliable messages
 * to the session are consumed, STRESS_RUNS times each (default 5): conservation must hold every time;
 * duplicates delivered and suppressed are printed.
 */
const runs = Number(process.env.STRESS_RUNS ?? 5);
let amqp: ChannelModel;
let publisher: ConfirmChannel;

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  amqp = await connect(AMQP_URL);
  publisher = await amqp.createConfirmChannel();
});
afterAll(async () => {
  await amqp?.close();
});

it(`kill -9 of the owning node, and of the forwarding node, during 2,000 messages, ${runs} times each: nothing lost`, async () => {
  const results: KillRun[] = [];
  for (let i = 0; i < 2 * runs; i += 1) {
    // Kill at a different point each time (early, middle, late), the owner and the forwarding node in turn.
    const kill = i % 2 === 0 ? 'owner' : 'other';
    const step = Math.floor(i / 2);
    const killAfter = 200 + Math.floor((step / Math.max(1, runs - 1)) * 1400);
    const { run, cluster, tabs } = await killOwnerDuring(publisher, { total: 2000, killAfter, settleMs: 60_000, kill });
    for (const tab of tabs) tab.close();
    await cluster.stopAll();
    await cleanupRealEngines(cluster.name);
    results.push(run);
    const { delivered, waiting, dead, missing } = run.balance;
    console.info(`run ${i + 1} (kill -9 of the ${kill === 'owner' ? 'owning' : 'forwarding'} node after ${killAfter}): delivered ${delivered}, waiting ${waiting}, dead ${JSON.stringify(dead)}, ` +
      `missing ${missing.length}, duplicates delivered ${run.duplicatesDelivered}, suppressed ${run.suppressed}, ` +
      `gap notices ${run.gapNotices}, settled in ${run.settledMs} ms`);
  }
  for (const run of results) expect(run.balance.missing).toEqual([]);
});
