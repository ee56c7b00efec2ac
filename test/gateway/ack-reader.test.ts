import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { readAcksDirectly } from '../../src/gateway/ack-reader.js';
import { directAcksOf } from '../../src/gateway/direct-acks.js';
import { writeEventWithAck } from '../../src/gateway/packet-writer.js';

/** Acks read off the WebSocket must reach the same callbacks, with the same arguments, as through socket.io. */

let http: HttpServer | undefined;
let server: Server | undefined;
let client: ClientSocket | undefined;

afterEach(async () => {
  client?.close();
  await server?.close();
  http = server = client = undefined;
});

async function start(transports: Array<'polling' | 'websocket'>): Promise<{ socket: Socket; client: ClientSocket }> {
  http = createServer();
  server = new Server(http);
  await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
  const connected = new Promise<Socket>((resolve) => server!.once('connection', resolve));
  client = connect(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { transports, reconnection: false });
  const socket = await connected;
  await new Promise<void>((resolve) => (client!.connected ? resolve() : client!.once('connect', () => resolve())));
  return { socket, client };
}

/** Counts the acks socket.io itself handled (its `onack`), still letting it handle them. */
function countSocketIoAcks(socket: Socket): { count: number } {
  const seen = { count: 0 };
  const s = socket as unknown as { onack(packet: unknown): void };
  const onack = s.onack.bind(socket);
  s.onack = (packet) => {
    seen.count += 1;
    onack(packet);
  };
  return seen;
}

function acksOf(socket: Socket): Map<number, unknown> {
  return (socket as unknown as { acks: Map<number, unknown> }).acks;
}

describe('reading acks off the WebSocket', () => {
  it('calls the ack callback of a direct write itself, once, and takes it out of the map', async () => {
    const { socket, client } = await start(['websocket']);
    expect(readAcksDirectly(socket)).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) writeEventWithAck(socket, 'notice', { id: `m${i}` }, 5000, (acked) => outcomes.push(acked));
    await expect.poll(() => outcomes).toEqual([true, true, true]);
    expect(bySocketIo.count).toBe(0);
    expect(acksOf(socket).size).toBe(0);
  });

  it("keeps a direct write's callback out of socket.io's ack map once it reads the acks, until the ack or the timeout", async () => {
    const { socket, client } = await start(['websocket']);
    expect(directAcksOf(socket)).toBeUndefined();
    expect(readAcksDirectly(socket)).toBe(true);
    const direct = directAcksOf(socket)!;
    let answer: (() => void) | undefined;
    client.on('notice', (_payload: unknown, ack: () => void) => (answer = ack));
    const outcomes: boolean[] = [];
    writeEventWithAck(socket, 'notice', { id: 'acked' }, 5000, (acked) => outcomes.push(acked));
    writeEventWithAck(socket, 'silent', { id: 'not acked' }, 200, (acked) => outcomes.push(acked));
    expect(direct.size).toBe(2);
    expect(acksOf(socket).size).toBe(0);
    await expect.poll(() => answer).toBeDefined();
    answer!();
    await expect.poll(() => outcomes).toEqual([true, false]);
    expect(direct.size).toBe(0);
    expect(acksOf(socket).size).toBe(0);
  });

  it("answers acks of direct writes made before it was installed through socket.io's map", async () => {
    const { socket, client } = await start(['websocket']);
    let answer: (() => void) | undefined;
    client.on('notice', (_payload: unknown, ack: () => void) => (answer = ack));
    const acked = new Promise<boolean>((resolve) => writeEventWithAck(socket, 'notice', { id: 'early' }, 5000, resolve));
    expect(acksOf(socket).size).toBe(1);
    expect(readAcksDirectly(socket)).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    await expect.poll(() => answer).toBeDefined();
    answer!();
    expect(await acked).toBe(true);
    expect(acksOf(socket).size).toBe(0);
    expect(bySocketIo.count).toBe(0);
  });

  it("lets go of ws's last masking key after each message, and every later frame still reads right", async () => {
    const { socket, client } = await start(['websocket']);
    expect(readAcksDirectly(socket)).toBe(true);
    const receiver = (socket.conn.transport as unknown as { socket: { _receiver: { _mask?: unknown } } }).socket._receiver;
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const events: unknown[] = [];
    socket.on('hello', (payload: unknown) => events.push(payload));
    for (let i = 0; i < 3; i++) {
      expect(await new Promise<boolean>((resolve) => writeEventWithAck(socket, 'notice', { i }, 5000, resolve))).toBe(true);
      expect(receiver._mask).toBeUndefined();
      client.emit('hello', { i, text: 'ü€😀'.repeat(i * 50) });
      await expect.poll(() => events.length).toBe(i + 1);
      expect(receiver._mask).toBeUndefined();
    }
    expect(events).toEqual([0, 1, 2].map((i) => ({ i, text: 'ü€😀'.repeat(i * 50) })));
  });

  it("passes the client's answer to socket.emit's ack callbacks as socket.io does", async () => {
    const { socket, client } = await start(['websocket']);
    readAcksDirectly(socket);
    const bySocketIo = countSocketIoAcks(socket);
    client.on('question', (payload: { n: number }, ack: (...answer: unknown[]) => void) => ack('answer', { n: payload.n, text: 'ü€😀 "quoted"' }, [null]));
    const answer = await socket.timeout(5000).emitWithAck('question', { n: 7 });
    expect(answer).toEqual('answer');
    const all = await new Promise<unknown[]>((resolve) => socket.emit('question', { n: 8 }, (...args: unknown[]) => resolve(args)));
    expect(all).toEqual(['answer', { n: 8, text: 'ü€😀 "quoted"' }, [null]]);
    expect(bySocketIo.count).toBe(0);
  });

  it('leaves events, unknown ack ids and malformed acks to socket.io', async () => {
    const { socket, client } = await start(['websocket']);
    readAcksDirectly(socket);
    const bySocketIo = countSocketIoAcks(socket);
    const events: unknown[] = [];
    socket.on('hello', (payload: unknown, ack: (answer: string) => void) => {
      events.push(payload);
      ack('hi');
    });
    expect(await client.timeout(5000).emitWithAck('hello', { from: 'client' })).toBe('hi');
    expect(events).toEqual([{ from: 'client' }]);

    // An ack nobody waits for: socket.io ignores it, the connection stays.
    const engine = (client as unknown as { io: { engine: { write(data: string): void } } }).io.engine;
    engine.write('3999[]');
    await expect.poll(() => bySocketIo.count).toBe(1);
    expect(socket.connected).toBe(true);
  });

  it('ends the connection on an ack whose arguments are not JSON, as socket.io does without it', async () => {
    const reasons: string[] = [];
    for (const withReader of [false, true]) {
      const { socket, client } = await start(['websocket']);
      if (withReader) expect(readAcksDirectly(socket)).toBe(true);
      const closed = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      const id = (socket as unknown as { nsp: { _ids: number } }).nsp._ids;
      writeEventWithAck(socket, 'notice', {}, 5000, () => {});
      (client as unknown as { io: { engine: { write(data: string): void } } }).io.engine.write(`3${id}[}]`);
      reasons.push(await closed);
      client.close();
      await server!.close();
    }
    expect(reasons[1]).toBe(reasons[0]);
    expect(reasons[0]).not.toBe('client namespace disconnect');
  });

  it('is put in place only on a websocket, so a long-polling client gets it after upgrading', async () => {
    const { socket, client } = await start(['polling', 'websocket']);
    const installed = socket.conn.transport.name === 'websocket'
      ? readAcksDirectly(socket)
      : await new Promise<boolean>((resolve) => {
        expect(readAcksDirectly(socket)).toBe(false);
        socket.conn.once('upgrade', () => resolve(readAcksDirectly(socket)));
      });
    expect(installed).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const acked = await new Promise<boolean>((resolve) => writeEventWithAck(socket, 'notice', { id: 'up' }, 5000, resolve));
    expect(acked).toBe(true);
    expect(bySocketIo.count).toBe(0);
  });
});
