import { connect, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tab } from '../support/cluster.js';
import { sleep, until } from '../support/harness.js';
import { startProcess, type NodeProcess } from '../support/process.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, requireService, uniqueName } from '../support/services.js';

/**
 * A short, bounded version of the benchmark's overload scenario, as a correctness check (not a timing
 * assertion): far more reliable messages than the node can send at once, a fifth of the clients never
 * acking, and the node must hold its prefetch bound, keep its memory bounded, stay up and lose nothing.
 */
const TOTAL = 20_000;
const PREFETCH = 100;
const SESSIONS = Array.from({ length: 100 }, (_, i) => `load-${i}`);
const BROKEN = new Set(SESSIONS.filter((_, i) => i % 5 === 0));

let node: NodeProcess;
let amqp: ChannelModel;
const name = uniqueName('test-overload');

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  node = await startProcess({
    ...realEngines(name),
    AMQP_PREFETCH: String(PREFETCH),
    ACK_TIMEOUT_MS: '2000',
    ACK_HOLD_MS: '200',
    SOCKET_MAX_PENDING: '20',
    BACKPRESSURE_LAG_MS: '50',
  });
  amqp = await connect(AMQP_URL);
});
afterAll(async () => {
  await amqp?.close();
  await node?.stop('SIGTERM');
  await cleanupRealEngines(name);
});

async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

describe('overload', () => {
  it('holds the prefetch bound and bounded memory, stays up, and loses no reliable message', async () => {
    const openTab = async (session: string, acks: boolean) => {
      const tab = new Tab(session, [], () => node.url);
      await tab.open(node.url);
      if (!acks) {
        // A broken client: takes messages, never acks them.
        tab.socket!.offAny();
        tab.socket!.onAny(() => undefined);
      }
      return tab;
    };
    const first = await Promise.all(SESSIONS.map((session) => openTab(session, !BROKEN.has(session))));

    let maxInflight = 0;
    let maxRss = 0;
    let pausedSamples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await metrics();
        maxInflight = Math.max(maxInflight, m.get('pushcenter_inflight_messages') ?? 0);
        maxRss = Math.max(maxRss, m.get('process_resident_memory_bytes') ?? 0);
        if (m.get('pushcenter_consumer_paused') === 1) pausedSamples += 1;
        await sleep(100);
      }
    })();

    const channel = await amqp.createConfirmChannel();
    for (let i = 0; i < TOTAL; i += 1000) {
      for (let j = i; j < i + 1000; j++) {
        const body = { id: `o-${j}`, session: SESSIONS[j % SESSIONS.length], data: { n: j, pad: 'x'.repeat(150) } };
        channel.sendToQueue(name, Buffer.from(JSON.stringify(body)), { persistent: true, contentType: 'application/json' });
      }
      await channel.waitForConfirms();
    }
    // Drained: nothing waits in the queue, nothing is in flight.
    await until(async () => (await channel.checkQueue(name)).messageCount, (n) => n === 0, 120_000);
    await until(async () => (await metrics()).get('pushcenter_inflight_messages'), (n) => n === 0, 30_000);
    await channel.close();
    sampling = false;
    await sampler;

    // Everyone comes back as a working client: the inboxes hand over what could not be delivered.
    for (const tab of first) tab.close();
    const second = await Promise.all(SESSIONS.map((session) => openTab(session, true)));
    const delivered = () => {
      const ids = new Set<string>();
      for (const tab of first) if (!BROKEN.has(tab.sessionId)) for (const id of tab.ids()) ids.add(id);
      for (const tab of second) for (const id of tab.ids()) ids.add(id);
      return ids.size;
    };
    await until(delivered, (n) => n === TOTAL, 60_000);
    const m = await metrics();
    console.info(`overload: ${TOTAL} reliable messages, all delivered; max inflight ${maxInflight}/${PREFETCH}, ` +
      `max RSS ${Math.round(maxRss / 2 ** 20)} MB, paused in ${pausedSamples} samples, ` +
      `stored ${m.get('pushcenter_deliveries_total{target="session",mode="reliable",outcome="stored"}') ?? 0}, ` +
      `slow-ack spills ${m.get('pushcenter_backpressure_events_total{reason="slow_ack"}') ?? 0}`);

    expect(delivered()).toBe(TOTAL);
    expect(maxInflight).toBeLessThanOrEqual(PREFETCH);
    expect(maxRss).toBeLessThan(512 * 2 ** 20);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    expect(m.get('pushcenter_deliveries_total{target="session",mode="reliable",outcome="failed"}') ?? 0).toBe(0);
    for (const tab of second) tab.close();
  }, 240_000);
});
