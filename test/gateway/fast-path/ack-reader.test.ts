import type { Socket } from 'socket.io';
import type { Socket as ClientSocket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { readAcksDirectly } from '../../../src/gateway/fast-path/ack-reader.js';
import { nextAckId, socketIoAcks, writeEvent } from '../../../src/gateway/fast-path/packet-writer.js';
import { acksOf, rawEngine, startSocketPair, type SocketPair } from '../../support/socket-pair.js';

/** Acks read off the WebSocket must reach the same callbacks, with the same arguments, as through socket.io. */

let pair: SocketPair | undefined;

afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

async function start(transports: Array<'polling' | 'websocket'>, options: { pingInterval?: number; pingTimeout?: number } = {}): Promise<{ socket: Socket; client: ClientSocket }> {
  pair = await startSocketPair(transports, options);
  return pair;
}

/** Acks waiting by id, as a connection keeps them: what `take` answers for the reader. */
function registry() {
  const waiting = new Map<number, () => void>();
  return {
    waiting,
    take: (id: number): boolean => {
      const callback = waiting.get(id);
      if (!callback) return false;
      waiting.delete(id);
      callback();
      return true;
    },
    /** Writes an event asking for an ack that waits here. */
    write(socket: Socket, event: string, payload: unknown, onAck: () => void): number {
      const id = nextAckId(socket);
      waiting.set(id, onAck);
      writeEvent(socket, event, payload, id);
      return id;
    },
  };
}

/** Writes an event asking for an ack whose callback waits in socket.io's ack map. */
function writeViaSocketIoMap(socket: Socket, event: string, payload: unknown, onAck: () => void): number {
  const id = nextAckId(socket);
  socketIoAcks(socket).set(id, onAck);
  writeEvent(socket, event, payload, id);
  return id;
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

describe('reading acks off the WebSocket', () => {
  it('hands the ack of a direct write to its owner itself, once, without socket.io', async () => {
    const { socket, client } = await start(['websocket']);
    const acks = registry();
    expect(readAcksDirectly(socket, acks.take)).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) acks.write(socket, 'notice', { id: `m${i}` }, () => outcomes.push(true));
    await expect.poll(() => outcomes).toEqual([true, true, true]);
    expect(bySocketIo.count).toBe(0);
    expect(acksOf(socket).size).toBe(0);
    expect(acks.waiting.size).toBe(0);
  });

  it('hands acks that come in any order to the right owners', async () => {
    const { socket, client } = await start(['websocket']);
    const acks = registry();
    readAcksDirectly(socket, acks.take);
    const answers: Array<() => void> = [];
    client.on('notice', (_payload: unknown, ack: () => void) => answers.push(ack));
    const called: number[] = [];
    for (const n of [0, 1, 2, 3]) acks.write(socket, 'notice', { n }, () => called.push(n));
    await expect.poll(() => answers.length).toBe(4);
    for (const n of [2, 0, 3, 1]) answers[n]!();
    await expect.poll(() => called).toEqual([2, 0, 3, 1]);
  });

  it("answers acks of direct writes made before it was installed through socket.io's map", async () => {
    const { socket, client } = await start(['websocket']);
    let answer: (() => void) | undefined;
    client.on('notice', (_payload: unknown, ack: () => void) => (answer = ack));
    const acked = new Promise<boolean>((resolve) => writeViaSocketIoMap(socket, 'notice', { id: 'early' }, () => resolve(true)));
    expect(acksOf(socket).size).toBe(1);
    expect(readAcksDirectly(socket, registry().take)).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    await expect.poll(() => answer).toBeDefined();
    answer!();
    expect(await acked).toBe(true);
    expect(acksOf(socket).size).toBe(0);
    expect(bySocketIo.count).toBe(0);
  });

  it("lets go of ws's last masking key after each message, and every later frame still reads right", async () => {
    const { socket, client } = await start(['websocket']);
    const acks = registry();
    expect(readAcksDirectly(socket, acks.take)).toBe(true);
    const receiver = (socket.conn.transport as unknown as { socket: { _receiver: { _mask?: unknown } } }).socket._receiver;
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const events: unknown[] = [];
    socket.on('hello', (payload: unknown) => events.push(payload));
    for (let i = 0; i < 3; i++) {
      expect(await new Promise<boolean>((resolve) => acks.write(socket, 'notice', { i }, () => resolve(true)))).toBe(true);
      expect(receiver._mask).toBeUndefined();
      client.emit('hello', { i, text: 'ü€😀'.repeat(i * 50) });
      await expect.poll(() => events.length).toBe(i + 1);
      expect(receiver._mask).toBeUndefined();
    }
    expect(events).toEqual([0, 1, 2].map((i) => ({ i, text: 'ü€😀'.repeat(i * 50) })));
  });

  it("passes the client's answer to socket.emit's ack callbacks as socket.io does", async () => {
    const { socket, client } = await start(['websocket']);
    readAcksDirectly(socket, registry().take);
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
    readAcksDirectly(socket, registry().take);
    const bySocketIo = countSocketIoAcks(socket);
    const events: unknown[] = [];
    socket.on('hello', (payload: unknown, ack: (answer: string) => void) => {
      events.push(payload);
      ack('hi');
    });
    expect(await client.timeout(5000).emitWithAck('hello', { from: 'client' })).toBe('hi');
    expect(events).toEqual([{ from: 'client' }]);

    // An ack nobody waits for: socket.io ignores it, the connection stays.
    rawEngine(client).write('3999[]');
    await expect.poll(() => bySocketIo.count).toBe(1);
    expect(socket.connected).toBe(true);
  });

  it('ends the connection on an ack whose arguments are not JSON, as socket.io does without it', async () => {
    const reasons: string[] = [];
    for (const withReader of [false, true]) {
      const { socket, client } = await start(['websocket']);
      const acks = registry();
      if (withReader) expect(readAcksDirectly(socket, acks.take)).toBe(true);
      const closed = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      const id = acks.write(socket, 'notice', {}, () => {});
      rawEngine(client).write(`3${id}[}]`);
      reasons.push(await closed);
      await pair!.close();
      pair = undefined;
    }
    expect(reasons[1]).toBe(reasons[0]);
    expect(reasons[0]).not.toBe('client namespace disconnect');
  });

  it('is put in place only on a websocket, so a long-polling client gets it after upgrading', async () => {
    const { socket, client } = await start(['polling', 'websocket']);
    const acks = registry();
    const installed = socket.conn.transport.name === 'websocket'
      ? readAcksDirectly(socket, acks.take)
      : await new Promise<boolean>((resolve) => {
        expect(readAcksDirectly(socket, acks.take)).toBe(false);
        socket.conn.once('upgrade', () => resolve(readAcksDirectly(socket, acks.take)));
      });
    expect(installed).toBe(true);
    const bySocketIo = countSocketIoAcks(socket);
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const acked = await new Promise<boolean>((resolve) => acks.write(socket, 'notice', { id: 'up' }, () => resolve(true)));
    expect(acked).toBe(true);
    expect(bySocketIo.count).toBe(0);
  });

  it("emits engine.io's `packet` on the connection for each ack it takes, as engine.io does", async () => {
    const { socket, client } = await start(['websocket']);
    const acks = registry();
    readAcksDirectly(socket, acks.take);
    const packets: unknown[] = [];
    socket.conn.on('packet', (packet: unknown) => packets.push(packet));
    client.on('notice', (_payload: unknown, ack: () => void) => ack());
    const acked = new Promise<void>((resolve) => acks.write(socket, 'notice', {}, resolve));
    const id = [...acks.waiting.keys()][0]!;
    await acked;
    expect(packets).toContainEqual({ type: 'message', data: `3${id}[]` });
  });

  describe('the heartbeat, while the client is late with its pong', () => {
    // engine.io pings every 300 ms and waits 400 ms for the pong; this client answers its first one 550 ms late.
    const timing = { pingInterval: 300, pingTimeout: 400 };

    async function lateClient(ackAfterPingMs: number | undefined): Promise<{ socket: Socket; took: number[] }> {
      const { socket, client } = await start(['websocket'], timing);
      const took: number[] = [];
      const acks = registry();
      expect(readAcksDirectly(socket, (id) => {
        took.push(id);
        return acks.take(id);
      })).toBe(true);
      let held: (() => void) | undefined;
      client.on('notice', (_payload: unknown, ack: () => void) => (held = ack));
      acks.write(socket, 'notice', {}, () => {});
      await expect.poll(() => held).toBeDefined();
      const engine = (client as unknown as {
        io: { engine: { _pingTimeout: number; _sendPacket(type: string, ...rest: unknown[]): void; once(event: string, fn: () => void): void } };
      }).io.engine;
      // Only the server's patience is under test: the client does not give up on the server meanwhile.
      engine._pingTimeout = 60_000;
      const send = engine._sendPacket.bind(engine);
      let late = true;
      engine._sendPacket = (type, ...rest) => {
        if (type !== 'pong' || !late) {
          send(type, ...rest);
          return;
        }
        late = false;
        setTimeout(() => send(type, ...rest), 550);
      };
      if (ackAfterPingMs !== undefined) engine.once('ping', () => setTimeout(() => held!(), ackAfterPingMs));
      return { socket, took };
    }

    it('times out a client that sends nothing meanwhile (as without the reader)', async () => {
      const { socket } = await lateClient(undefined);
      const reason = await new Promise<string>((resolve) => socket.once('disconnect', resolve));
      expect(reason).toBe('ping timeout');
    });

    it('keeps a client whose ack, read here, came while engine.io waited for its pong', async () => {
      const { socket, took } = await lateClient(250);
      let reason: string | undefined;
      socket.once('disconnect', (why) => (reason = why));
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect(took).toHaveLength(1);
      expect(reason).toBeUndefined();
      expect(socket.connected).toBe(true);
    });
  });
});
