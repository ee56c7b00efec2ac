import type { Server, Socket } from 'socket.io';
import type { Socket as ClientSocket } from 'socket.io-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  nextAckId,
  socketIoAcks,
  supportsDirectWrite,
  writeEvent,
  writeSocketIoPacketsDirectly,
} from '../../../src/gateway/fast-path/packet-writer.js';
import { acksOf, startSocketPair, type SocketPair } from '../../support/socket-pair.js';

/** Envelopes written without socket.io's `emit` must reach a socket.io client exactly as `emit` sends them. */

let pair: SocketPair;
let server: Server;
let client: ClientSocket;
let socket: Socket;

beforeEach(async () => {
  pair = await startSocketPair();
  ({ server, client, socket } = pair);
});

afterEach(() => pair.close());

const envelope = { id: 'm1', event: 'notice', data: { text: 'héllo', n: [1, 2, { deep: null }] }, sentAt: 1, reliable: true };

function nextEvent(name: string): Promise<{ args: unknown[]; ack: ((...a: unknown[]) => void) | undefined }> {
  return new Promise((resolve) => client.once(name, (...args: unknown[]) => {
    const last = args.at(-1);
    const ack = typeof last === 'function' ? (args.pop() as (...a: unknown[]) => void) : undefined;
    resolve({ args, ack });
  }));
}

/** Writes an event asking for an ack, whose callback waits in socket.io's ack map, as the connection does before it reads acks itself. */
function writeWithAck(event: string, payload: unknown, onAck: (...answer: unknown[]) => void): void {
  const id = nextAckId(socket);
  socketIoAcks(socket).set(id, onAck);
  writeEvent(socket, event, payload, id);
}

describe('direct packet writes', () => {
  it('are available on a socket of a socket.io 4 server in its main namespace', () => {
    expect(supportsDirectWrite(socket)).toBe(true);
  });

  it('are not used where socket.io must see every packet, or its internals are not as expected', () => {
    const recovering = Object.create(socket, { server: { value: { opts: { connectionStateRecovery: {} } } } }) as Socket;
    expect(supportsDirectWrite(recovering)).toBe(false);
    const otherNamespace = Object.create(socket, { nsp: { value: { _ids: 0, name: '/admin' } } }) as Socket;
    expect(supportsDirectWrite(otherNamespace)).toBe(false);
    const noAckMap = Object.create(socket, { acks: { value: {} } }) as Socket;
    expect(supportsDirectWrite(noAckMap)).toBe(false);
  });

  it('deliver an event with the same payload as socket.emit', async () => {
    const viaEmit = nextEvent('notice');
    socket.emit('notice', envelope);
    const emitted = await viaEmit;
    const viaWrite = nextEvent('notice');
    writeEvent(socket, 'notice', envelope);
    const written = await viaWrite;
    expect(written.args).toEqual(emitted.args);
    expect(written.args).toEqual([envelope]);
    expect(written.ack).toBeUndefined();
  });

  it('ask for the client ack under the id given: socket.io answers it once, and no ack callback is left behind', async () => {
    const outcomes: boolean[] = [];
    const arrived = nextEvent('notice');
    writeWithAck('notice', envelope, () => outcomes.push(true));
    const { args, ack } = await arrived;
    expect(args).toEqual([envelope]);
    expect(typeof ack).toBe('function');
    ack!();
    await expect.poll(() => outcomes).toEqual([true]);
    expect(acksOf(socket).size).toBe(0);
  });

  it('share ack ids with socket.emit, so interleaved acks reach the right callbacks', async () => {
    const seen: string[] = [];
    client.on('notice', (payload: { id: string }, ack: (answer: string) => void) => ack(payload.id));
    const viaEmit = new Promise<string>((resolve) => socket.timeout(5000).emit('notice', { id: 'emitted' }, (_err: Error | null, answer: string) => resolve(answer)));
    const viaWrite = new Promise<void>((resolve) => writeWithAck('notice', { id: 'written' }, (answer) => {
      seen.push(`written ${String(answer)}`);
      resolve();
    }));
    const viaEmit2 = new Promise<string>((resolve) => socket.timeout(5000).emit('notice', { id: 'emitted2' }, (_err: Error | null, answer: string) => resolve(answer)));
    expect(await viaEmit).toBe('emitted');
    await viaWrite;
    expect(await viaEmit2).toBe('emitted2');
    expect(seen).toEqual(['written written']);
  });

  it('write one WebSocket frame straight to the TCP socket when nothing is queued above it', async () => {
    const { viaEngine, viaTcp } = watchWrites();
    const arrived = nextEvent('notice');
    writeEvent(socket, 'notice', envelope);
    expect((await arrived).args).toEqual([envelope]);
    expect(viaEngine).toEqual([]);
    expect(viaTcp).toHaveLength(1);
    const text = `42["notice",${JSON.stringify(envelope)}]`;
    const length = Buffer.byteLength(text);
    expect(viaTcp[0]).toEqual(Buffer.concat([Buffer.from([0x81, length]), Buffer.from(text)]));
  });

  it('frame payloads of every length class and any characters as ws does', async () => {
    const payloads = [
      { id: 'short', data: 'x' },
      { id: 'medium', data: 'ü'.repeat(200) },
      { id: 'long', data: 'ab€😀'.repeat(20_000) },
      { id: 'quotes', data: 'a "quoted" \\ line\nbreak' },
    ];
    for (const payload of payloads) {
      const arrived = nextEvent('notice');
      writeEvent(socket, 'notice', payload);
      expect((await arrived).args).toEqual([payload]);
    }
    const odd = nextEvent('odd "name"');
    writeEvent(socket, 'odd "name"', { id: 'odd' });
    expect((await odd).args).toEqual([{ id: 'odd' }]);
  });

  it('keep order behind packets engine.io still holds, and send through engine.io meanwhile', async () => {
    const seen: string[] = [];
    client.on('notice', (payload: { id: string }) => seen.push(payload.id));
    // A packet engine.io cannot send yet: the transport is busy until the previous write completed.
    const transport = (socket.conn as unknown as { transport: { writable: boolean } }).transport;
    transport.writable = false;
    socket.emit('notice', { id: 'queued' });
    writeEvent(socket, 'notice', { id: 'after' });
    expect((socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer).toHaveLength(2);
    transport.writable = true;
    (socket.conn as unknown as { flush(): void }).flush();
    writeEvent(socket, 'notice', { id: 'last' });
    await expect.poll(() => seen).toEqual(['queued', 'after', 'last']);
  });

  /** Records what goes through engine.io's transport and what is written to the TCP socket directly. */
  function watchWrites() {
    const conn = socket.conn as unknown as { transport: { send(packets: unknown[]): void; socket: { _socket: { write(chunk: unknown): boolean } } } };
    const viaEngine: unknown[] = [];
    const viaTcp: Buffer[] = [];
    const send = conn.transport.send.bind(conn.transport);
    conn.transport.send = (packets) => {
      viaEngine.push(...packets);
      send(packets);
    };
    const tcp = conn.transport.socket._socket as unknown as { write(...args: unknown[]): boolean };
    const write = tcp.write.bind(tcp);
    tcp.write = (...args: unknown[]) => {
      if (Buffer.isBuffer(args[0])) viaTcp.push(args[0]);
      return write(...args);
    };
    return { viaEngine, viaTcp };
  }

  it("write socket.io's own packets (group emits) as one frame, the bytes ws would send", async () => {
    expect(writeSocketIoPacketsDirectly(socket)).toBe(true);
    socket.join('g');
    const { viaEngine, viaTcp } = watchWrites();
    for (const payload of [envelope, { id: 'long', data: 'ab€😀'.repeat(20_000) }]) {
      const arrived = nextEvent('notice');
      server.to('g').emit('notice', payload);
      expect((await arrived).args).toEqual([payload]);
    }
    expect(viaEngine).toEqual([]);
    expect(viaTcp).toHaveLength(2);
    const text = `42["notice",${JSON.stringify(envelope)}]`;
    expect(viaTcp[0]).toEqual(Buffer.concat([Buffer.from([0x81, Buffer.byteLength(text)]), Buffer.from(text)]));
  });

  it('leave binary packets, and volatile ones the transport cannot take now, to engine.io', async () => {
    writeSocketIoPacketsDirectly(socket);
    socket.join('g');
    const { viaEngine } = watchWrites();
    const binary = nextEvent('blob');
    server.to('g').emit('blob', { id: 'b', bytes: Buffer.from([1, 2, 3]) });
    const [{ bytes }] = (await binary).args as [{ bytes: ArrayBuffer }];
    expect([...new Uint8Array(bytes)]).toEqual([1, 2, 3]);
    // Both parts (the text packet and its attachment) went through engine.io's transport.
    expect(viaEngine).toHaveLength(2);

    const seen: string[] = [];
    client.on('notice', (payload: { id: string }) => seen.push(payload.id));
    const transport = (socket.conn as unknown as { transport: { writable: boolean } }).transport;
    transport.writable = false;
    server.to('g').volatile.emit('notice', { id: 'dropped' });
    expect((socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer).toHaveLength(0);
    transport.writable = true;
    server.to('g').emit('notice', { id: 'kept' });
    await expect.poll(() => seen).toEqual(['kept']);
  });

  it('keep group emits in order behind packets engine.io still holds', async () => {
    writeSocketIoPacketsDirectly(socket);
    socket.join('g');
    const seen: string[] = [];
    client.on('notice', (payload: { id: string }) => seen.push(payload.id));
    const transport = (socket.conn as unknown as { transport: { writable: boolean } }).transport;
    transport.writable = false;
    writeEvent(socket, 'notice', { id: 'queued' });
    server.to('g').emit('notice', { id: 'group' });
    expect((socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer).toHaveLength(2);
    transport.writable = true;
    (socket.conn as unknown as { flush(): void }).flush();
    server.to('g').emit('notice', { id: 'last' });
    await expect.poll(() => seen).toEqual(['queued', 'group', 'last']);
  });

  it('write nothing to a closed connection', async () => {
    client.close();
    await expect.poll(() => socket.conn.readyState).not.toBe('open');
    const { viaEngine, viaTcp } = watchWrites();
    writeEvent(socket, 'notice', envelope);
    writeEvent(socket, 'notice', envelope, nextAckId(socket));
    expect(viaEngine).toEqual([]);
    expect(viaTcp).toEqual([]);
  });
});
