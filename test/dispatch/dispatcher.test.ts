import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ForwardHandler, ForwardOutcome } from '../../src/cluster/bus.js';
import type { NodeBus } from '../../src/cluster/bus.js';
import type { NodeStatus, SessionDirectory } from '../../src/cluster/directory.js';
import { loadConfig } from '../../src/config/config.js';
import { Dispatcher } from '../../src/dispatch/dispatcher.js';
import type { LocalOutcome, LocalSessions } from '../../src/dispatch/local-sessions.js';
import type { Inbox, InboxEntry, StoreOptions } from '../../src/inbox/inbox.js';
import type { AckLog } from '../../src/inbox/ack-log.js';
import { MemoryAckLog } from '../../src/inbox/memory-ack-log.js';
import { MemoryInbox } from '../../src/inbox/memory-inbox.js';
import type { Delivery } from '../../src/ingest/queue.js';
import { NotificationParser } from '../../src/notification/parse.js';
import type { Envelope } from '../../src/notification/schema.js';
import { Metrics } from '../../src/observability/metrics.js';
import { MemoryIdClaims, MemoryReceipts } from '../../src/receipts/memory-receipts.js';
import type { IdClaims } from '../../src/receipts/receipts.js';
import { ReceiptRecorder } from '../../src/receipts/recorder.js';

/** Sockets of this node, scripted: what each session's sockets answer. */
class FakeSessions implements LocalSessions {
  answers = new Map<string, LocalOutcome>();
  /** Sessions whose sockets answer only after this many ms. */
  delays = new Map<string, number>();
  emitted: Array<{ to: string; envelope: Envelope }> = [];
  replayed: string[] = [];
  online = new Set<string>();
  /** Sessions whose sockets throw when offered a message (a bug in a lower layer). */
  throwing = new Set<string>();
  offer(sessionId: string, envelope: Envelope, done: (outcome: LocalOutcome) => void): void {
    if (this.throwing.has(sessionId)) throw new Error(`socket of ${sessionId} threw`);
    const outcome = this.answers.get(sessionId) ?? 'no_sockets';
    if (outcome !== 'no_sockets') this.emitted.push({ to: `session:${sessionId}`, envelope });
    const delay = this.delays.get(sessionId);
    if (delay) setTimeout(() => done(outcome), delay);
    else done(outcome);
  }
  send(sessionId: string, envelope: Envelope): 'delivered' | 'behind' | 'no_sockets' {
    if (this.throwing.has(sessionId)) throw new Error(`socket of ${sessionId} threw`);
    const outcome = this.answers.get(sessionId) ?? 'no_sockets';
    if (outcome === 'no_sockets' || outcome === 'behind') return outcome;
    this.emitted.push({ to: `session:${sessionId}`, envelope });
    return 'delivered';
  }
  /** Sockets each group reaches on this node. */
  readonly members = new Map<string, number>();
  emitToGroup(group: string, envelope: Envelope): number {
    this.emitted.push({ to: `group:${group}`, envelope });
    return this.members.get(group) ?? 0;
  }
  broadcast(envelope: Envelope): number {
    this.emitted.push({ to: 'all', envelope });
    return this.online.size;
  }
  sockets(sessionId: string): number {
    return this.online.has(sessionId) ? 1 : 0;
  }
  replay(sessionId: string): void {
    this.replayed.push(sessionId);
  }
  /** Sessions told their `behind` message is in the inbox (or will not be), in order. */
  spills: string[] = [];
  spilled(sessionId: string): void {
    this.spills.push(sessionId);
  }
}

/** Other nodes, scripted: which node holds which session and what it answers. */
class FakeCluster implements SessionDirectory, NodeBus {
  readonly nodeId = 'here';
  connected = true;
  owners = new Map<string, string[]>();
  answers = new Map<string, ForwardOutcome | Error>();
  forwarded: Array<{ node: string; sessionId: string }> = [];
  handler: ForwardHandler | undefined;
  async setLocalSockets(): Promise<void> {}
  async remoteNodes(sessionId: string): Promise<string[]> {
    return this.owners.get(sessionId) ?? [];
  }
  /** False: the directory cache knows nothing, so every session is looked up. */
  cacheWarm = true;
  knownRemoteNodes(sessionId: string): string[] | undefined {
    return this.cacheWarm ? this.owners.get(sessionId) ?? [] : undefined;
  }
  async presence() {
    return { nodes: [], sockets: 0 };
  }
  async forward(node: string, sessionId: string): Promise<ForwardOutcome> {
    this.forwarded.push({ node, sessionId });
    const answer = this.answers.get(node) ?? 'not_delivered';
    if (answer instanceof Error) throw answer;
    return answer;
  }
  onForward(handler: ForwardHandler): void {
    this.handler = handler;
  }
  replayRequests: Array<{ node: string; sessionId: string }> = [];
  replayHandler: ((sessionId: string) => void) | undefined;
  async requestReplay(node: string, sessionId: string): Promise<void> {
    this.replayRequests.push({ node, sessionId });
  }
  onReplay(handler: (sessionId: string) => void): void {
    this.replayHandler = handler;
  }
  async close(): Promise<void> {}
  reportStatus(): void {}
  async nodes(): Promise<NodeStatus[]> {
    return [];
  }
}

class FakeDelivery implements Delivery {
  settled: string[] = [];
  deadLetterReason: string | undefined;
  constructor(readonly message: Delivery['message'], readonly redelivered = false) {}
  ack(): void {
    this.settled.push('ack');
  }
  async deadLetter(reason: string): Promise<void> {
    this.deadLetterReason = reason;
    this.settled.push('deadLetter');
  }
  requeue(): void {
    this.settled.push('requeue');
  }
  release(): void {
    this.released = true;
  }
  released = false;
}

/**
 * Whether the dispatcher knows a session's other nodes at once (the directory cache is warm) or looks
 * them up first. The outcomes must not depend on it, so the outcome tests run both ways.
 */
let cacheWarm = true;

function setup(options: { inbox?: Inbox; acked?: AckLog | null; claims?: IdClaims } = {}) {
  const acked = options.acked === null ? undefined : options.acked ?? new MemoryAckLog();
  const config = loadConfig({});
  const metrics = new Metrics({ defaultMetrics: false });
  const gateway = new FakeSessions();
  const cluster = new FakeCluster();
  cluster.cacheWarm = cacheWarm;
  const inbox = options.inbox ?? new MemoryInbox({ maxPerSession: 10 }, { gaveUp: async () => {} });
  const receipts = new MemoryReceipts({ ttlMs: 60_000, maxReceipts: 1000 });
  const dispatcher = new Dispatcher({
    ackHoldMs: 200,
    parser: new NotificationParser(config.limits),
    sessions: gateway,
    directory: cluster,
    bus: cluster,
    inbox,
    acked,
    claims: options.claims,
    receipts: new ReceiptRecorder('this-node', receipts, undefined, metrics),
    metrics,
    logger: pino({ level: 'silent' }),
  });
  const send = async (body: unknown, message: Partial<Delivery['message']> = {}, redelivered = false) => {
    const delivery = new FakeDelivery({
      body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
      ...message,
    }, redelivered);
    dispatcher.handle(delivery);
    await dispatcher.idle();
    return delivery;
  };
  const count = async (labels: Record<string, string>) => {
    const metric = await metrics.deliveries.get();
    return metric.values.filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
      .reduce((sum, v) => sum + v.value, 0);
  };
  return { gateway, cluster, inbox, acked, metrics, dispatcher, send, count, receipts };
}

describe.each([
  ['directory cache warm', true],
  ['directory cache cold', false],
])('dispatcher outcomes, %s', (_path, warm) => {
  beforeEach(() => {
    cacheWarm = warm;
  });
  afterEach(() => {
    cacheWarm = true;
  });
  it('acks a reliable session message once a local socket acked it', async () => {
    const { gateway, send, count, inbox } = setup();
    gateway.answers.set('s1', 'delivered');
    const delivery = await send({ id: 'm', session: 's1', data: 1 });
    expect(delivery.settled).toEqual(['ack']);
    expect(delivery.released).toBe(true);
    expect(await count({ target: 'session', mode: 'reliable', outcome: 'delivered' })).toBe(1);
    expect(await inbox.size('s1')).toBe(0);
  });

  it('stores a reliable message for an offline session, then acks', async () => {
    const { send, count, inbox } = setup();
    const delivery = await send({ id: 'm', session: 'away', data: { a: 1 }, event: 'ev' });
    expect(delivery.settled).toEqual(['ack']);
    expect(await count({ outcome: 'stored' })).toBe(1);
    const [entry] = await inbox.read('away', 10);
    expect(entry).toMatchObject({ id: 'm', event: 'ev', data: { a: 1 }, reliable: true });
  });

  it('stores a reliable message no socket acked in time', async () => {
    const { gateway, send, inbox } = setup();
    gateway.answers.set('slow', 'not_delivered');
    await send({ id: 'm', session: 'slow', data: 1 });
    expect(await inbox.size('slow')).toBe(1);
  });

  it('stores a reliable message for a session whose sockets are too far behind, under the connected bound, then says so', async () => {
    const stores: Array<{ sessionId: string; connected: boolean | undefined; spillsBefore: number }> = [];
    const inner = new MemoryInbox({ maxPerSession: 10 }, { gaveUp: async () => {} });
    const { gateway, send, inbox } = setup({
      inbox: Object.assign(Object.create(inner) as MemoryInbox, {
        store: async (sessionId: string, entry: InboxEntry, options?: StoreOptions) => {
          stores.push({ sessionId, connected: options?.connected, spillsBefore: gateway.spills.length });
          await inner.store(sessionId, entry, options);
        },
      }),
    });
    gateway.answers.set('behind', 'behind');
    await send({ id: 'm', session: 'behind', data: 1 });
    await send({ id: 'n', session: 'away', data: 1 });
    expect(await inbox.size('behind')).toBe(1);
    expect(stores).toEqual([
      { sessionId: 'behind', connected: true, spillsBefore: 0 },
      { sessionId: 'away', connected: false, spillsBefore: 1 },
    ]);
    expect(gateway.spills).toEqual(['behind']);
  });

  it('tells the sockets that were behind when another node delivered the message instead', async () => {
    const { gateway, cluster, send, inbox } = setup();
    gateway.answers.set('two-places', 'behind');
    cluster.owners.set('two-places', ['node-b']);
    cluster.answers.set('node-b', 'delivered');
    const delivery = await send({ id: 'm', session: 'two-places', data: 1 });
    expect(delivery.settled).toEqual(['ack']);
    expect(await inbox.size('two-places')).toBe(0);
    expect(gateway.spills).toEqual(['two-places']);
  });

  it('frees the broker slot after the hold time by storing the message; a late ack takes it out of the inbox', async () => {
    const { gateway, send, count, inbox, metrics } = setup();
    gateway.answers.set('slow-acker', 'delivered');
    gateway.delays.set('slow-acker', 500);
    const started = Date.now();
    const delivery = await send({ id: 'late', session: 'slow-acker', data: 1 });
    expect(Date.now() - started).toBeLessThan(450);
    expect(delivery.settled).toEqual(['ack']);
    expect(await count({ outcome: 'stored' })).toBe(1);
    expect(await inbox.size('slow-acker')).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect(await inbox.size('slow-acker')).toBe(0);
    const replayed = (await metrics.inbox.get()).values.find((v) => v.labels.op === 'replayed');
    expect(replayed?.value).toBe(1);
  });

  it('keeps a message that is never acked in the inbox after the hold time', async () => {
    const { gateway, send, inbox } = setup();
    gateway.answers.set('silent', 'not_delivered');
    gateway.delays.set('silent', 400);
    await send({ id: 'kept', session: 'silent', data: 1 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await inbox.size('silent')).toBe(1);
  });

  it('replays at once when the session registered while its message was being stored', async () => {
    const { gateway, send } = setup();
    gateway.online.add('racer');
    await send({ id: 'm', session: 'racer', data: 1 });
    expect(gateway.replayed).toEqual(['racer']);
  });

  it('requeues and counts a failure when the inbox cannot store', async () => {
    const broken: Inbox = {
      store: async () => {
        throw new Error('redis down');
      },
      read: async () => [] as InboxEntry[],
      remove: async () => false,
      removeAll: async () => 0,
      size: async () => 0,
      takeMissed: async () => undefined,
      close: async () => {},
    };
    const { send, count } = setup({ inbox: broken });
    const delivery = await send({ id: 'm', session: 'x', data: 1 });
    expect(delivery.settled).toEqual(['requeue']);
    expect(await count({ outcome: 'failed' })).toBe(1);
  });

  it('drops and counts a volatile message for an offline session', async () => {
    const { send, count, inbox } = setup();
    const delivery = await send({ session: 'gone', delivery: 'volatile', data: 1 });
    expect(delivery.settled).toEqual(['ack']);
    expect(await count({ mode: 'volatile', outcome: 'dropped' })).toBe(1);
    expect(await inbox.size('gone')).toBe(0);
  });

  it('counts an expired message per target and acks it without delivering', async () => {
    const { gateway, send, count } = setup();
    gateway.answers.set('a', 'delivered');
    const delivery = await send(
      { session: ['a', 'b'], group: 'g', data: 1, ttl: 1000 },
      { timestamp: Date.now() - 5000 },
    );
    expect(delivery.settled).toEqual(['ack']);
    expect(gateway.emitted).toEqual([]);
    expect(await count({ target: 'session', outcome: 'expired' })).toBe(2);
    expect(await count({ target: 'group', outcome: 'expired' })).toBe(1);
  });

  it('dead-letters an invalid message with its reason and counts it', async () => {
    const { send, metrics } = setup();
    const delivery = await send('{"data": 1}');
    expect(delivery.settled).toEqual(['deadLetter']);
    expect(delivery.deadLetterReason).toBe('no_target');
    // The dead-letter copy needs the message: it is not let go of before.
    expect(delivery.released).toBe(false);
    const invalid = await metrics.messagesInvalid.get();
    expect(invalid.values).toEqual([expect.objectContaining({ labels: { reason: 'no_target' }, value: 1 })]);
    const deadLetters = await metrics.deadLetters.get();
    expect(deadLetters.values).toEqual([expect.objectContaining({ labels: { reason: 'no_target' }, value: 1 })]);
  });

  it('emits once per group with the group named, and to everyone for a broadcast', async () => {
    const { gateway, send, count } = setup();
    await send({ id: 'm', group: ['g1', 'g2'], broadcast: true, data: 1, delivery: 'volatile' });
    expect(gateway.emitted.map((e) => [e.to, e.envelope.group])).toEqual([
      ['group:g1', 'g1'],
      ['group:g2', 'g2'],
      ['all', undefined],
    ]);
    expect(await count({ target: 'group', mode: 'volatile', outcome: 'delivered' })).toBe(2);
    expect(await count({ target: 'broadcast', outcome: 'delivered' })).toBe(1);
  });

  it('counts amqp messages as received, but not those the HTTP API already counted', async () => {
    const { send, metrics } = setup();
    await send({ session: 's', data: 1, delivery: 'volatile' });
    await send({ session: 's', data: 1, delivery: 'volatile' }, { source: 'http' });
    const received = await metrics.messagesReceived.get();
    expect(received.values).toEqual([expect.objectContaining({ labels: { source: 'amqp' }, value: 1 })]);
  });
});

describe('dispatcher faults', () => {
  it('sends a message back to the queue when delivering it throws, and stores nothing later', async () => {
    const { gateway, send, inbox, dispatcher } = setup();
    gateway.throwing.add('s1');
    for (const delivery of ['reliable', 'volatile']) {
      const sent = await send({ id: `m-${delivery}`, session: 's1', data: 1, delivery });
      expect(sent.settled).toEqual(['requeue']);
    }
    expect(dispatcher.inflight).toBe(0);
    // The reliable message's hold time (200 ms here) passes: it must not go to the inbox as well.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await inbox.size('s1')).toBe(0);
  });
});

describe('dispatcher across nodes', () => {
  it('acks a reliable message once the owning node reports it delivered', async () => {
    const { cluster, send, count, inbox } = setup();
    cluster.owners.set('remote', ['node-b']);
    cluster.answers.set('node-b', 'delivered');
    const delivery = await send({ id: 'm', session: 'remote', data: 1 });
    expect(cluster.forwarded).toEqual([{ node: 'node-b', sessionId: 'remote' }]);
    expect(delivery.settled).toEqual(['ack']);
    expect(await count({ outcome: 'delivered' })).toBe(1);
    expect(await inbox.size('remote')).toBe(0);
  });

  it('is delivered when any of the nodes holding the session delivers it', async () => {
    const { cluster, send, count } = setup();
    cluster.owners.set('tabs', ['node-b', 'node-c']);
    cluster.answers.set('node-b', 'not_delivered');
    cluster.answers.set('node-c', 'delivered');
    await send({ id: 'm', session: 'tabs', data: 1 });
    expect(await count({ outcome: 'delivered' })).toBe(1);
  });

  it('stores the message when the owning node does not deliver it or fails', async () => {
    const { cluster, send, inbox } = setup();
    cluster.owners.set('lost', ['node-b', 'node-c']);
    cluster.answers.set('node-b', 'not_delivered');
    cluster.answers.set('node-c', new Error('bus down'));
    const delivery = await send({ id: 'm', session: 'lost', data: 1 });
    expect(delivery.settled).toEqual(['ack']);
    expect(await inbox.size('lost')).toBe(1);
  });

  it('asks every node holding the session to replay once the message is stored: one it registered on meanwhile too', async () => {
    const { cluster, send, inbox } = setup();
    cluster.owners.set('moving', ['node-b']);
    cluster.answers.set('node-b', 'not_delivered');
    const storing = send({ id: 'm', session: 'moving', data: 1 });
    cluster.owners.set('moving', ['node-b', 'node-c']);
    await storing;
    expect(await inbox.size('moving')).toBe(1);
    expect(cluster.replayRequests).toEqual([{ node: 'node-b', sessionId: 'moving' }, { node: 'node-c', sessionId: 'moving' }]);
  });

  it('replays on this node when another node asks', () => {
    const { cluster, gateway } = setup();
    cluster.replayHandler!('asked');
    expect(gateway.replayed).toEqual(['asked']);
  });

  it('forwards a volatile message and counts it as forwarded', async () => {
    const { cluster, send, count } = setup();
    cluster.owners.set('v', ['node-b']);
    await send({ session: 'v', data: 1, delivery: 'volatile' });
    expect(cluster.forwarded).toHaveLength(1);
    expect(await count({ mode: 'volatile', outcome: 'forwarded' })).toBe(1);
  });

  it('requeues a reliable group message while the other nodes cannot be reached; drops a volatile one', async () => {
    const { cluster, gateway, send, count } = setup();
    cluster.connected = false;
    expect((await send({ group: 'g', data: 1 })).settled).toEqual(['requeue']);
    expect((await send({ broadcast: true, data: 1, delivery: 'volatile' })).settled).toEqual(['ack']);
    expect(gateway.emitted).toEqual([]);
    expect(await count({ target: 'group', mode: 'reliable', outcome: 'failed' })).toBe(1);
    expect(await count({ target: 'broadcast', mode: 'volatile', outcome: 'dropped' })).toBe(1);
  });

  it('delivers a message forwarded by another node to its local sockets and reports back', async () => {
    const { cluster, gateway, acked } = setup();
    gateway.answers.set('mine', 'delivered');
    const now = Date.now();
    const notification = {
      id: 'fw', sessions: ['mine'], groups: [], broadcast: false, event: 'message', data: 1,
      reliable: true, enqueuedAt: now, expiresAt: now + 1000,
    };
    expect(await cluster.handler!('mine', notification)).toBe('delivered');
    expect(await cluster.handler!('not-here', notification)).toBe('not_delivered');
    // Recorded where the client acked, before the answer lets the other node ack the broker.
    expect(await acked!.has('mine', 'fw')).toBe(true);
    expect(await acked!.has('not-here', 'fw')).toBe(false);
  });
});

describe('no needless duplicates', () => {
  /** An acked-id log that notes each call, and can be down. */
  function notingLog(events: string[], down = false): AckLog {
    const inner = new MemoryAckLog();
    return {
      record: async (sessionId, id) => {
        if (down) throw new Error('redis down');
        await inner.record(sessionId, id);
        events.push(`record ${sessionId}/${id}`);
      },
      has: async (sessionId, id) => {
        if (down) throw new Error('redis down');
        return inner.has(sessionId, id);
      },
      close: () => inner.close(),
    };
  }

  it('records the client ack, without holding the broker ack for it, and acks also when the log is down', async () => {
    for (const down of [false, true]) {
      const events: string[] = [];
      const { gateway, send } = setup({ acked: notingLog(events, down) });
      gateway.answers.set('s1', 'delivered');
      const delivery = await send({ id: 'm', session: 's1', data: 1 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(delivery.settled).toEqual(['ack']);
      expect(events).toEqual(down ? [] : ['record s1/m']);
    }
  });

  it('acks a redelivered message its session already acked without emitting it, and counts it', async () => {
    const { gateway, send, metrics, acked } = setup();
    gateway.answers.set('s1', 'delivered');
    await acked!.record('s1', 'm');
    const delivery = await send({ id: 'm', session: ['s1', 's2'], data: 1 }, {}, true);
    expect(delivery.settled).toEqual(['ack']);
    // Only s2, which had not acked it, is offered it (s2 has no sockets: it goes to its inbox).
    expect(gateway.emitted).toEqual([]);
    expect((await metrics.duplicatesSuppressed.get()).values[0]?.value).toBe(1);
  });

  it('offers a redelivered message its session did not ack, and one it cannot ask about', async () => {
    const events: string[] = [];
    for (const down of [false, true]) {
      const { gateway, send, metrics } = setup({ acked: notingLog(events, down) });
      gateway.answers.set('s1', 'delivered');
      const delivery = await send({ id: `m-${down}`, session: 's1', data: 1 }, {}, true);
      expect(delivery.settled).toEqual(['ack']);
      expect(gateway.emitted.map((e) => e.envelope.id)).toEqual([`m-${down}`]);
      expect((await metrics.duplicatesSuppressed.get()).values[0]?.value ?? 0).toBe(0);
    }
  });

  it('offers a redelivered message as usual when suppression is off (DUPLICATE_WINDOW_MS=0)', async () => {
    const { gateway, send } = setup({ acked: null });
    gateway.answers.set('s1', 'delivered');
    const delivery = await send({ id: 'm', session: 's1', data: 1 }, {}, true);
    expect(delivery.settled).toEqual(['ack']);
    expect(gateway.emitted.map((e) => e.envelope.id)).toEqual(['m']);
  });

  it('does not ask about a message delivered the first time', async () => {
    const { gateway, send, acked } = setup();
    const asked = vi.spyOn(acked!, 'has');
    gateway.answers.set('s1', 'delivered');
    await send({ id: 'm', session: 's1', data: 1 });
    expect(asked).not.toHaveBeenCalled();
  });
});

describe('dispatcher: receipts and identity', () => {
  const outcomesOf = async (receipts: MemoryReceipts, id: string) =>
    (await receipts.get(id))?.events.map((e) => `${e.outcome}${e.reason ? `:${e.reason}` : ''}${e.session ? `@${e.session}` : ''}`);

  it('acks a second message with an id accepted already without delivering it; a redelivery of the first is not a second one', async () => {
    // Without the acked-id log, which would suppress the redelivery for its own reason.
    const { gateway, send, metrics } = setup({ acked: null, claims: new MemoryIdClaims({ windowMs: 60_000, maxIds: 100 }) });
    gateway.answers.set('s1', 'delivered');
    expect((await send({ id: 'once', session: 's1', data: 1 })).settled).toEqual(['ack']);
    expect((await send({ id: 'once', session: 's1', data: 1 })).settled).toEqual(['ack']);
    expect(gateway.emitted).toHaveLength(1);
    expect((await metrics.duplicatePublishes.get()).values[0]?.value).toBe(1);
    await send({ id: 'once', session: 's1', data: 1 }, {}, true);
    expect(gateway.emitted).toHaveLength(2);
  });

  it('claims no id for a message that had none (each gets a new one)', async () => {
    const claims = new MemoryIdClaims({ windowMs: 60_000, maxIds: 100 });
    const claimed = vi.spyOn(claims, 'claim');
    const { gateway, send } = setup({ claims });
    gateway.answers.set('s1', 'delivered');
    await send({ session: 's1', data: 1 });
    await send({ session: 's1', data: 1 });
    expect(claimed).not.toHaveBeenCalled();
    expect(gateway.emitted).toHaveLength(2);
  });

  it('writes one event per session of a notification to several, naming the session', async () => {
    const { gateway, send, receipts } = setup();
    gateway.answers.set('here', 'delivered');
    await send({ id: 'multi', session: ['here', 'away'], data: 1 });
    expect((await outcomesOf(receipts, 'multi'))?.sort()).toEqual(['accepted', 'delivered@here', 'stored@away']);
  });

  it('starts no receipt for a message the HTTP API accepted (it wrote that already)', async () => {
    const { gateway, send, receipts } = setup();
    gateway.answers.set('s1', 'delivered');
    await send({ id: 'via-http', session: 's1', data: 1 }, { source: 'http' });
    expect(await outcomesOf(receipts, 'via-http')).toEqual(['delivered']);
  });

  it('says dead for an invalid message it can name, and dropped for an expired one', async () => {
    const { send, receipts } = setup();
    await send('{oops', { messageId: 'broken' });
    expect(await outcomesOf(receipts, 'broken')).toEqual(['dead:not_json']);
    await send({ id: 'stale', session: 's1', data: 1, ttl: 1 }, { timestamp: Date.now() - 10_000 });
    expect(await outcomesOf(receipts, 'stale')).toEqual(['accepted', 'dropped:expired']);
  });

  it('counts the sockets a group message reached on this node', async () => {
    const { gateway, send, receipts } = setup();
    gateway.members.set('room', 3);
    await send({ id: 'to-room', group: 'room', data: 1 });
    expect((await receipts.get('to-room'))).toMatchObject({ status: 'delivered', sockets: 3 });
  });
});

describe('dispatcher: inbox order', () => {
  it('stores a session\'s refused messages in the order they came, whether its nodes were known or looked up', async () => {
    // The first three wait for a directory lookup; the cache warms before the next three arrive.
    cacheWarm = false;
    const { gateway, cluster, inbox, dispatcher } = setup();
    cacheWarm = true;
    gateway.answers.set('burst', 'behind');
    const slow = cluster.remoteNodes.bind(cluster);
    cluster.remoteNodes = async (id: string) => { await new Promise((r) => setTimeout(r, 20)); return slow(id); };
    const deliver = (i: number) => dispatcher.handle(new FakeDelivery({ body: Buffer.from(JSON.stringify({ id: `m${i}`, session: 'burst', data: i })) }));
    for (const i of [1, 2, 3]) deliver(i);
    cluster.cacheWarm = true;
    for (const i of [4, 5, 6]) deliver(i);
    await dispatcher.idle();
    expect((await inbox.read('burst', 10)).map((e) => e.id)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  });
});
