import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type ConnectionOptions } from '../../src/gateway/connection.js';
import type { FastPathParts } from '../../src/config/config.js';
import { FAST_PATH_OFF } from '../../src/gateway/fast-path/probe.js';
import type { PushSocket } from '../../src/gateway/protocol.js';
import { MemoryInbox } from '../../src/inbox/memory-inbox.js';
import type { Envelope } from '../../src/notification/schema.js';
import { Metrics } from '../../src/observability/metrics.js';
import { ReceiptRecorder } from '../../src/receipts/recorder.js';
import { acksOf, startSocketPair, type SocketPair } from '../support/socket-pair.js';

/** One socket's connection: its reliable emits, each settled once by the ack, the timeout or the close. */

const ALL_ON: FastPathParts = { eventWriter: true, groupWriter: true, ackReader: true };
const envelope = (id: string): Envelope => ({ id, event: 'notice', data: { id }, sentAt: 1, reliable: true });

let pair: SocketPair | undefined;

afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

async function connection(
  options: Partial<ConnectionOptions> = {},
  fastPath: FastPathParts = ALL_ON,
  transports: Array<'polling' | 'websocket'> = ['websocket'],
  spills: { pending: boolean } = { pending: false },
): Promise<{ connection: Connection; pair: SocketPair; inbox: MemoryInbox }> {
  pair = await startSocketPair(transports);
  const inbox = new MemoryInbox({ maxPerSession: 10 }, { gaveUp: async () => {} });
  const made = new Connection(pair.socket as unknown as PushSocket, {
    options: { ackTimeoutMs: 5000, ackHoldMs: 1000, maxPending: 100, maxBuffered: 1000, ...options },
    fastPath,
    inbox,
    receipts: new ReceiptRecorder('test', undefined, undefined, new Metrics({ defaultMetrics: false })),
    metrics: new Metrics({ defaultMetrics: false }),
    logger: pino({ level: 'silent' }),
    spillsPending: () => spills.pending,
  });
  return { connection: made, pair, inbox };
}

describe.each([
  ['with the fast path', ALL_ON],
  ['through socket.emit', FAST_PATH_OFF],
])('a reliable emit, %s', (_way, fastPath) => {
  it('reports the client ack once, and leaves nothing waiting behind', async () => {
    const { connection: c, pair: { client, socket } } = await connection({}, fastPath);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const outcomes: boolean[] = [];
    c.sendWithAck(envelope('m1'), (acked) => outcomes.push(acked));
    await expect.poll(() => outcomes).toEqual([true]);
    expect(c.pending).toBe(0);
    expect(acksOf(socket).size).toBe(0);
  });

  it('reports a missing ack after the timeout, ignores a late one, and forgets the emit', async () => {
    const { connection: c, pair: { client, socket } } = await connection({ ackTimeoutMs: 100 }, fastPath);
    let answer: (() => void) | undefined;
    client.on('notice', (_payload: unknown, ack: () => void) => (answer = ack));
    const outcomes: boolean[] = [];
    c.sendWithAck(envelope('m1'), (acked) => outcomes.push(acked));
    await expect.poll(() => outcomes, { timeout: 2000 }).toEqual([false]);
    expect(c.pending).toBe(0);
    await expect.poll(() => acksOf(socket).size).toBe(0);
    answer!();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(outcomes).toEqual([false]);
  });

  it('hands acks that come in any order to the right emits', async () => {
    const { connection: c, pair: { client } } = await connection({}, fastPath);
    const answers: Array<() => void> = [];
    client.on('notice', (_payload: unknown, ack: () => void) => answers.push(ack));
    const acked: string[] = [];
    for (const id of ['a', 'b', 'c', 'd']) c.sendWithAck(envelope(id), () => acked.push(id));
    await expect.poll(() => answers.length).toBe(4);
    for (const n of [2, 0, 3, 1]) answers[n]!();
    await expect.poll(() => acked).toEqual(['c', 'a', 'd', 'b']);
    expect(c.pending).toBe(0);
  });

  it('reports every emit still waiting as not delivered when the socket closes, oldest first', async () => {
    const { connection: c } = await connection({}, fastPath);
    const outcomes: string[] = [];
    for (const id of ['a', 'b', 'c']) c.sendWithAck(envelope(id), (acked) => outcomes.push(`${id} ${acked}`));
    c.close();
    expect(outcomes).toEqual(['a false', 'b false', 'c false']);
    c.sendWithAck(envelope('after'), (acked) => outcomes.push(`after ${acked}`));
    expect(outcomes.at(-1)).toBe('after false');
    expect(c.pending).toBe(0);
  });

  it('reports an emit to a connection that is no longer open as not delivered, at the timeout', async () => {
    const { connection: c, pair: { client, socket } } = await connection({ ackTimeoutMs: 100 }, fastPath);
    client.close();
    await expect.poll(() => socket.conn.readyState).not.toBe('open');
    const outcomes: boolean[] = [];
    c.sendWithAck(envelope('m1'), (acked) => outcomes.push(acked));
    await expect.poll(() => outcomes, { timeout: 2000 }).toEqual([false]);
  });
});

describe('a connection that reads its acks off the WebSocket', () => {
  it("keeps each reliable emit in its own list, not in socket.io's ack map, until the ack or the timeout", async () => {
    const { connection: c, pair: { client, socket } } = await connection({ ackTimeoutMs: 300 });
    let answer: (() => void) | undefined;
    client.on('notice', (_payload: unknown, ack: () => void) => (answer = ack));
    client.on('silent', () => {});
    const outcomes: boolean[] = [];
    c.sendWithAck(envelope('acked'), (acked) => outcomes.push(acked));
    c.sendWithAck({ ...envelope('not acked'), event: 'silent' }, (acked) => outcomes.push(acked));
    expect(c.pending).toBe(2);
    expect(acksOf(socket).size).toBe(0);
    await expect.poll(() => answer).toBeDefined();
    answer!();
    await expect.poll(() => outcomes).toEqual([true, false]);
    expect(c.pending).toBe(0);
    expect(acksOf(socket).size).toBe(0);
  });

  it('starts reading them once a long-polling client has upgraded; emits made before are answered through socket.io', async () => {
    const { connection: c, pair: { client, socket } } = await connection({}, ALL_ON, ['polling', 'websocket']);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const outcomes: string[] = [];
    const polling = socket.conn.transport.name === 'polling';
    c.sendWithAck(envelope('first'), (acked) => outcomes.push(`first ${acked}`));
    if (polling) expect(acksOf(socket).size).toBe(1);
    await expect.poll(() => socket.conn.transport.name).toBe('websocket');
    c.sendWithAck(envelope('second'), (acked) => outcomes.push(`second ${acked}`));
    expect(acksOf(socket).size).toBe(0);
    await expect.poll(() => outcomes).toEqual(['first true', 'second true']);
  });
});

describe('whether a connection takes more', () => {
  it('takes no reliable message once maxPending emits wait for their ack; volatile ones still', async () => {
    const { connection: c } = await connection({ maxPending: 2 });
    expect(c.canTake(true)).toBe(true);
    c.sendWithAck(envelope('a'), () => {});
    c.sendWithAck(envelope('b'), () => {});
    expect(c.canTake(true)).toBe(false);
    expect(c.canTake(false)).toBe(true);
  });

  it('takes no reliable message while its oldest emit has waited past the hold time', async () => {
    const { connection: c } = await connection({ ackHoldMs: 50 });
    c.sendWithAck(envelope('a'), () => {});
    expect(c.canTake(true)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(c.canTake(true)).toBe(false);
  });

  it('takes nothing once its socket has disconnected', async () => {
    const { connection: c, pair: { client, socket } } = await connection();
    client.close();
    await expect.poll(() => socket.connected).toBe(false);
    expect(c.canTake(false)).toBe(false);
    expect(c.canTake(true)).toBe(false);
  });
});

describe('a connection whose session has a backlog in the inbox', () => {
  const stored = (id: string) => ({ ...envelope(id), expiresAt: Date.now() + 60_000 });

  it('holds newer reliable messages back while the inbox replays, oldest first, and takes them once it is empty', async () => {
    const { connection: c, pair: { client }, inbox } = await connection();
    const received: string[] = [];
    client.on('notice', (payload: Envelope, ack: () => void) => {
      received.push(payload.id);
      ack();
    });
    c.sessionId = 's';
    for (const id of ['a', 'b', 'c']) await inbox.store('s', stored(id));
    c.replay();
    expect(c.canTake(true)).toBe(false);
    expect(c.canTake(false)).toBe(true);
    await expect.poll(() => received).toEqual(['a', 'b', 'c']);
    await expect.poll(() => c.canTake(true)).toBe(true);
    expect(await inbox.size('s')).toBe(0);
  });

  it('stays in backlog while a message refused to it is still on its way to the inbox, and replays it then', async () => {
    const spills = { pending: true };
    const { connection: c, pair: { client }, inbox } = await connection({}, ALL_ON, ['websocket'], spills);
    const received: string[] = [];
    client.on('notice', (payload: Envelope, ack: () => void) => {
      received.push(payload.id);
      ack();
    });
    c.sessionId = 's';
    c.replay();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(c.canTake(true)).toBe(false);

    await inbox.store('s', stored('late'));
    spills.pending = false;
    c.inboxChanged();
    await expect.poll(() => received).toEqual(['late']);
    await expect.poll(() => c.canTake(true)).toBe(true);
  });

  it('waits for an emit it still has out instead of sending the stored copy again', async () => {
    const { connection: c, pair: { client }, inbox } = await connection();
    const received: string[] = [];
    let answer: (() => void) | undefined;
    client.on('notice', (payload: Envelope, ack: () => void) => {
      received.push(payload.id);
      answer = ack;
    });
    c.sessionId = 's';
    const outcomes: boolean[] = [];
    c.sendWithAck(envelope('held'), (acked) => outcomes.push(acked));
    await expect.poll(() => received).toEqual(['held']);
    // Stored at the hold time while still out: the replay finds it in the inbox.
    await inbox.store('s', stored('held'));
    c.replay();
    await new Promise((resolve) => setTimeout(resolve, 50));
    answer!();
    await expect.poll(async () => inbox.size('s')).toBe(0);
    expect(received).toEqual(['held']);
    expect(outcomes).toEqual([true]);
  });
});
