import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { LeanSocket } from '../../bench/lib/lean-socket.js';
import { metric, post, startNode, until, type Running } from '../support/harness.js';

/**
 * The bench's minimal socket.io client must be a faithful client: the servers under test must see
 * exactly what socket.io-client would do (handshake, acks both ways, pings), or the benchmark would
 * measure something else.
 */

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

async function plainServer(options: { pingInterval?: number; pingTimeout?: number } = {}): Promise<{ io: Server; url: string }> {
  const http: HttpServer = createServer();
  const io = new Server(http, options);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  open.push({ close: () => new Promise<void>((resolve) => io.close(() => resolve())) });
  return { io, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
}

async function lean(url: string, auth?: Record<string, unknown>): Promise<LeanSocket> {
  const socket = await LeanSocket.connect(url, { timeoutMs: 5000, auth });
  open.push(socket);
  return socket;
}

describe('LeanSocket against a plain socket.io server', () => {
  it('emits with an ack and gets the answer, and acks what the server emits with an ack', async () => {
    const { io, url } = await plainServer();
    io.on('connection', (socket) => {
      socket.on('echo', (payload: unknown, answer: (value: unknown) => void) => answer({ echoed: payload }));
    });
    const client = await lean(url);
    expect(await client.emitWithAck('echo', { a: [1, 'two'] }, 2000)).toEqual({ echoed: { a: [1, 'two'] } });

    const seen: unknown[] = [];
    client.on('news', (payload, ack) => {
      seen.push(payload);
      ack?.('thanks');
    });
    const [serverSide] = await io.fetchSockets();
    const answers = await serverSide!.timeout(2000).emitWithAck('news', { n: 1 });
    expect(seen).toEqual([{ n: 1 }]);
    expect(answers).toBe('thanks');

    serverSide!.emit('news', { n: 2 });
    await until(() => seen.length, (n) => n === 2);
    expect(seen[1]).toEqual({ n: 2 });
  });

  it('answers pings, so the server keeps the connection past its ping timeout', async () => {
    const { io, url } = await plainServer({ pingInterval: 50, pingTimeout: 50 });
    const client = await lean(url);
    let reason: string | undefined;
    client.onDisconnect((why) => (reason = why));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(reason).toBeUndefined();
    expect(io.of('/').sockets.size).toBe(1);
  });

  it('reports a disconnect by the server, and rejects an answer that does not come', async () => {
    const { io, url } = await plainServer();
    const client = await lean(url);
    let reason: string | undefined;
    client.onDisconnect((why) => (reason = why));
    await expect(client.emitWithAck('nobody-listens', {}, 100)).rejects.toThrow(/no answer to nobody-listens within 100 ms/);
    io.disconnectSockets();
    await until(() => reason, (why) => why !== undefined);
    expect(reason).toBe('io server disconnect');
  });

  it('fails the handshake clearly when nothing listens', async () => {
    await expect(LeanSocket.connect('http://127.0.0.1:1', { timeoutMs: 2000 })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('LeanSocket against push-center', () => {
  let node: Running;

  it('registers, receives a reliable message and its ack settles the delivery', async () => {
    node = await startNode();
    open.push(node);
    const client = await lean(node.url);
    const received: Array<{ envelope: any; acked: boolean }> = [];
    client.on('message', (envelope, ack) => {
      received.push({ envelope, acked: ack !== undefined });
      ack?.();
    });
    expect(await client.emitWithAck('register', { sessionId: 'lean-1' }, 2000)).toEqual({ ok: true, sessionId: 'lean-1', groups: [] });

    expect((await post(node.url, [
      { id: 'r1', session: 'lean-1', data: { x: 1 } },
      { id: 'v1', session: 'lean-1', data: { x: 2 }, delivery: 'volatile' },
    ])).status).toBe(202);
    await until(() => received.length, (n) => n === 2);
    expect(received.map((r) => [r.envelope.id, r.envelope.reliable, r.acked]).sort()).toEqual([['r1', true, true], ['v1', false, false]]);
    await until(
      () => metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'delivered' }),
      (n) => n === 1,
    );
    expect(await metric(node.url, 'pushcenter_inbox_total', { op: 'stored' })).toBe(0);
  });

  it('is refused with the server\'s reason when auth is on and no token is sent', async () => {
    node = await startNode({ AUTH_JWT_SECRET: 'a-test-secret-of-at-least-32-characters!' });
    open.push(node);
    await expect(LeanSocket.connect(node.url, { timeoutMs: 2000 })).rejects.toThrow(/^unauthorized$/);
  });
});
