import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../src/notification/schema.js';
import { closeClients, connectClient, getJson, post, register, sleep, startNode, until, type Running } from '../support/harness.js';

let node: Running;
beforeAll(async () => {
  node = await startNode({ SOCKET_MAX_PENDING: 1, ACK_TIMEOUT_MS: 3000, ACK_HOLD_MS: 2000 });
});
afterEach(() => closeClients());
afterAll(async () => node?.close());

describe('a slow client', () => {
  it('gets what went to its inbox while it was behind once it has caught up, without registering again', async () => {
    const socket = await connectClient(node.url);
    const received: string[] = [];
    // Acks each message only after 200 ms: with one un-acked message allowed, the next ones find it behind.
    socket.on('message', (envelope: Envelope, ack?: () => void) => {
      received.push(envelope.id);
      setTimeout(() => ack?.(), 200);
    });
    await register(socket, { sessionId: 'slowpoke' });
    await post(node.url, [1, 2, 3, 4].map((i) => ({ id: `slow-${i}`, session: 'slowpoke', data: i })));
    await until(() => received.length, (n) => n >= 1);
    await until(async () => (await getJson(node.url, '/v1/sessions/slowpoke')).body.inbox, (n) => n === 3);

    await until(() => received.length, (n) => n === 4, 5000);
    expect(received).toEqual(['slow-1', 'slow-2', 'slow-3', 'slow-4']);
    await until(async () => (await getJson(node.url, '/v1/sessions/slowpoke')).body.inbox, (n) => n === 0);
  });

  it('a client that never acks is not offered its inbox again and again', async () => {
    const socket = await connectClient(node.url);
    const received: string[] = [];
    socket.on('message', (envelope: Envelope) => received.push(envelope.id));
    await register(socket, { sessionId: 'never-acks' });
    await post(node.url, [1, 2, 3].map((i) => ({ id: `mute-${i}`, session: 'never-acks', data: i })));
    await until(async () => (await getJson(node.url, '/v1/sessions/never-acks')).body.inbox, (n) => n === 3, 6000);
    await sleep(3500);
    // The first was offered once (then timed out into the inbox); the others were never sent again.
    expect(received).toEqual(['mute-1']);
  });
});
