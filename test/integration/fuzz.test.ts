import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tab } from '../support/cluster.js';
import { until } from '../support/harness.js';
import { startProcess, type NodeProcess } from '../support/process.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, requireService, uniqueName } from '../support/services.js';

/**
 * A seeded fuzz run: ≥ 10,000 malformed notifications, through RabbitMQ and over HTTP, interleaved with
 * 1,000 valid ones. The seed is printed; `FUZZ_SEED=<n>` replays a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261123);
const MALFORMED_PER_PATH = 5000;
const VALID_PER_PATH = 500;
const SESSIONS = Array.from({ length: 20 }, (_, i) => `fuzz-${i}`);

/** mulberry32: small, fast, good enough to pick cases reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  body: string;
  /** The reason push-center must give. */
  reason: string;
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const int = (rng: Rng, max: number) => Math.floor(rng() * max);
const ODD = ['\u0000', '\u202e', '\ud83d\ude00', '\uffff', 'é', '\u200b', '\ud800', '\\', '"', '\n', '\u2028'];
const oddText = (rng: Rng, length: number) => Array.from({ length }, () => pick(rng, ODD)).join('');
const json = (value: unknown) => JSON.stringify(value);

/** Every generator returns a body and the reason it must be refused for. */
const GENERATORS: Array<(rng: Rng) => Case> = [
  (rng) => ({ body: `{${oddText(rng, 1 + int(rng, 20))}`, reason: 'not_json' }),
  (rng) => {
    const full = json({ session: 's', data: { n: int(rng, 1000) } });
    return { body: full.slice(0, 1 + int(rng, full.length - 1)), reason: 'not_json' };
  },
  () => ({ body: '', reason: 'not_json' }),
  (rng) => ({ body: json(pick(rng, [[1, 2], 'text', 42, null, true, [[{ session: 's', data: 1 }]]])), reason: 'not_object' }),
  (rng) => ({ body: json({ session: pick(rng, [42, true, { a: 1 }, [1], null, 1.5]), data: 1 }), reason: 'invalid_session' }),
  (rng) => ({ body: json({ session: 'x'.repeat(129 + int(rng, 5000)), data: 1 }), reason: 'invalid_session' }),
  (rng) => ({ body: json({ group: pick(rng, [7, false, {}, [[]], [3]]), data: 1 }), reason: 'invalid_group' }),
  (rng) => ({ body: json({ session: 's', event: pick(rng, ['bad event', oddText(rng, 3), '', 'e'.repeat(65), 12]), data: 1 }), reason: 'invalid_event' }),
  (rng) => ({ body: json({ session: 's', event: pick(rng, ['connect', 'disconnect', 'error', 'newListener', 'removeListener', 'connect_error', 'disconnecting']), data: 1 }), reason: 'reserved_event' }),
  (rng) => ({ body: json({ session: 's', delivery: pick(rng, ['maybe', 1, true, null, 'VOLATILE']), data: 1 }), reason: 'invalid_delivery' }),
  (rng) => ({ body: json({ session: 's', ttl: pick(rng, [0, -5, 1.5, '100', null, 'soon']), data: 1 }), reason: 'invalid_ttl' }),
  (rng) => ({ body: json({ broadcast: pick(rng, ['yes', 1, null, {}]), data: 1 }), reason: 'invalid_broadcast' }),
  (rng) => ({ body: json({ id: pick(rng, [5, '', 'i'.repeat(200), null]), session: 's', data: 1 }), reason: 'invalid_id' }),
  (rng) => ({ body: json({ session: 's', [pick(rng, ['Data', 'payload', 'date'])]: 1 }), reason: 'missing_data' }),
  (rng) => ({ body: json({ data: int(rng, 10), title: oddText(rng, 5) }), reason: 'no_target' }),
  () => ({ body: '{"__proto__": {"session": "fuzz-0", "broadcast": true}, "data": 1}', reason: 'no_target' }),
  () => ({ body: '{"constructor": {"prototype": {"session": "fuzz-0"}}, "data": 1}', reason: 'no_target' }),
  () => ({ body: '{"session": "s", "data": 1, "__proto__": {"isVolatile": "x"}, "socketSessionId": "t"}', reason: 'conflicting_fields' }),
  (rng) => ({ body: json({ session: 's', data: 'x'.repeat(70_000 + int(rng, 10_000)) }), reason: 'too_large' }),
  (rng) => {
    const depth = 70 + int(rng, 2000);
    return { body: `{"session":"s","data":${'['.repeat(depth)}1${']'.repeat(depth)}}`, reason: 'too_deep' };
  },
  (rng) => {
    const depth = 70 + int(rng, 500);
    return { body: `{"session":"s","data":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`, reason: 'too_deep' };
  },
  (rng) => ({ body: json({ session: Array.from({ length: 1001 + int(rng, 50) }, (_, i) => `s${i}`), data: 1 }), reason: 'too_many_sessions' }),
  (rng) => ({ body: json({ group: Array.from({ length: 101 + int(rng, 50) }, (_, i) => `g${i}`), data: 1 }), reason: 'too_many_groups' }),
  (rng) => ({ body: json({ socketSessionId: pick(rng, [1, [2], {}]), data: 1 }), reason: 'invalid_session' }),
  (rng) => ({ body: json({ session: 's', isVolatile: pick(rng, ['true', 1, null]), data: 1 }), reason: 'invalid_delivery' }),
];

function malformed(rng: Rng): Case {
  return pick(rng, GENERATORS)(rng);
}

/** A valid message, sometimes in the original message center's format, with odd but legal content. */
function valid(rng: Rng, id: string): string {
  const session = pick(rng, SESSIONS);
  return rng() < 0.5
    ? json({ id, session, data: { text: oddText(rng, 8), n: rng() } })
    : json({ id, socketSessionId: session, isVolatile: false, data: json({ legacy: true }) });
}

let amqp: ChannelModel;
let channel: ConfirmChannel;
let node: NodeProcess;
const name = uniqueName('test-fuzz');

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  node = await startProcess({ ...realEngines(name), RATE_LIMIT_HTTP_PER_MIN: '0', LOG_LEVEL: 'info' });
  amqp = await connect(AMQP_URL);
  channel = await amqp.createConfirmChannel();
});
afterAll(async () => {
  await amqp?.close();
  await node?.stop('SIGTERM');
  await cleanupRealEngines(name);
});

async function sample(metricName: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${metricName} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

describe(`fuzz (seed ${SEED})`, () => {
  it('survives 10,000 malformed notifications, dead-letters or refuses each with its reason, delivers every valid one', async () => {
    console.info(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const rng = prng(SEED);
    const tabs = await Promise.all(SESSIONS.map(async (session) => {
      const tab = new Tab(session, [], () => node.url);
      await tab.open(node.url);
      return tab;
    }));

    // Interleave: each path sends its malformed and valid messages in a seeded order.
    const plan = (prefix: string) => {
      const items: Array<{ valid: true; body: string; id: string } | ({ valid: false } & Case)> = [];
      for (let i = 0; i < MALFORMED_PER_PATH; i++) items.push({ valid: false, ...malformed(rng) });
      for (let i = 0; i < VALID_PER_PATH; i++) {
        const id = `${prefix}-valid-${i}`;
        items.splice(int(rng, items.length + 1), 0, { valid: true, id, body: valid(rng, id) });
      }
      return items;
    };
    const amqpPlan = plan('amqp');
    const httpPlan = plan('http');
    const heapAt: number[] = [];

    const viaAmqp = (async () => {
      for (let i = 0; i < amqpPlan.length; i++) {
        channel.sendToQueue(name, Buffer.from(amqpPlan[i]!.body), { persistent: true, contentType: 'application/json' });
        if (i % 200 === 199) await channel.waitForConfirms();
      }
      await channel.waitForConfirms();
    })();
    const httpAnswers: Array<{ status: number; reason: string | undefined }> = new Array(httpPlan.length);
    const viaHttp = (async () => {
      let next = 0;
      const worker = async () => {
        while (next < httpPlan.length) {
          const index = next++;
          if (index === Math.floor(httpPlan.length / 5)) heapAt.push(await sample('process_resident_memory_bytes'));
          const response = await fetch(`${node.url}/v1/notifications`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: httpPlan[index]!.body,
          });
          const body = (await response.json()) as { error?: { code: string; reasons?: Array<{ reason: string }> } };
          httpAnswers[index] = { status: response.status, reason: body.error?.reasons?.[0]?.reason ?? body.error?.code };
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
    })();
    await Promise.all([viaAmqp, viaHttp]);

    // Every valid one is delivered (the tabs ack reliable messages).
    const validIds = [...amqpPlan, ...httpPlan].filter((item) => item.valid).map((item) => (item as { id: string }).id);
    const seen = () => new Set(tabs.flatMap((tab) => tab.ids()));
    await until(() => seen().size, (n) => n >= validIds.length, 60_000);
    expect([...seen()].sort()).toEqual([...validIds].sort());

    // Every malformed HTTP request got a 4xx with the reason.
    httpPlan.forEach((item, index) => {
      const answer = httpAnswers[index]!;
      if (item.valid) {
        expect(answer.status).toBe(202);
      } else {
        expect(answer.status, `HTTP case ${index}: ${item.body.slice(0, 80)}`).toBe(item.reason === 'too_large' ? 413 : 400);
        expect(answer.reason, `HTTP case ${index}: ${item.body.slice(0, 80)}`).toBe(item.reason);
      }
    });

    // Every malformed AMQP message is in the dead-letter queue with its reason.
    const expected = amqpPlan.filter((item) => !item.valid).map((item) => (item as Case).reason);
    const letters: string[] = [];
    const dead = await amqp.createChannel();
    await dead.consume(`${name}.dead`, (message) => {
      if (message) letters.push(String(message.properties.headers?.['x-pushcenter-error']));
    }, { noAck: true });
    await until(() => letters.length, (n) => n >= expected.length, 60_000);
    await dead.close();
    const count = (reasons: string[]) => reasons.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r]: (acc[r] ?? 0) + 1 }), {});
    expect(count(letters)).toEqual(count(expected));

    // The node is up, and its memory did not grow with the run.
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    heapAt.push(await sample('process_resident_memory_bytes'));
    console.info(`fuzz RSS: ${heapAt.map((b) => `${Math.round(b / 2 ** 20)} MB`).join(' -> ')}`);
    expect(heapAt[1]!).toBeLessThan(heapAt[0]! * 1.5 + 64 * 2 ** 20);
    for (const tab of tabs) tab.close();
  }, 180_000);
});
