import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { killOwnerDuring, type KillRun } from '../support/kill-run.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, requireService } from '../support/services.js';

/**
 * kill -9 of the node holding a session while 2,000 reliable messages to it are consumed, STRESS_RUNS
 * times (default 5): conservation must hold every time; duplicates delivered and suppressed are printed.
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

it(`kill -9 of the owning node during 2,000 messages, ${runs} times: nothing lost`, async () => {
  const results: KillRun[] = [];
  for (let i = 0; i < runs; i += 1) {
    // Kill at a different point each time: early, middle, late.
    const killAfter = 200 + Math.floor((i / Math.max(1, runs - 1)) * 1400);
    const { run, cluster, tab } = await killOwnerDuring(publisher, { total: 2000, killAfter, settleMs: 60_000 });
    tab.close();
    await cluster.stopAll();
    await cleanupRealEngines(cluster.name);
    results.push(run);
    const { delivered, waiting, dead, missing } = run.balance;
    console.info(`run ${i + 1} (kill after ${killAfter}): delivered ${delivered}, waiting ${waiting}, dead ${JSON.stringify(dead)}, ` +
      `missing ${missing.length}, duplicates delivered ${run.duplicatesDelivered}, suppressed ${run.suppressed}, ` +
      `gap notices ${run.gapNotices}, settled in ${run.settledMs} ms`);
  }
  for (const run of results) expect(run.balance.missing).toEqual([]);
});
