import type { Socket } from 'socket.io';
import { directAcksOf } from './direct-acks.js';

/**
 * Emits one event to one socket the way `socket.emit` / `socket.timeout(ms).emit` do, with less work per
 * message. socket.io's general `emit` copies its arguments, builds a packet, copies and resets the
 * socket's flags, wraps the ack in two closures with a timer, walks the payload looking for binary data
 * and logs through `debug` (which builds its arguments even when logging is off): about 12 % of all a
 * busy node allocated per message (sampling heap profile, 2026-12-01). Envelopes come from JSON, so they
 * never hold binary data, and the main namespace needs no prefix: the packet is socket.io-parser's text
 * encoding, `2<ack id>[event, payload]`.
 *
 * Below socket.io, engine.io and ws add their own layers for each packet (a packet object and events in
 * engine.io, the packet type prefixed to the text, a frame header and options object in ws, two writes
 * through Node's stream, each level's completion callback). Where nothing is queued at any of those
 * levels, the packet is written as one WebSocket text frame, `4` (engine.io's message type) + the packet,
 * straight to the TCP socket under ws, in one buffer: the bytes on the wire are the ones ws would send.
 * Anything queued (engine.io waiting for the transport, ws's sender busy, bytes Node has not handed to
 * the kernel yet) sends the packet through engine.io instead, behind what is queued, so order is kept;
 * and a slow client's packets then pile up in engine.io's write buffer, where the gateway's per-socket
 * limit sees them, exactly as without the shortcut.
 *
 * It relies on socket.io 4, engine.io 6 and ws 8 internals: the namespace's ack id counter (shared with
 * `socket.emit`, so ids never collide), the socket's map of ack callbacks (socket.io calls and removes the
 * callback when the client's ack arrives; used until the ack reader takes over the socket's acks, see
 * direct-acks.ts), the engine.io connection and its transport, and the ws
 * socket's sender and TCP socket. `supportsDirectWrite()` checks the socket.io ones on a socket (the
 * gateway uses `socket.emit` where they are not as expected); the frame is written only where the
 * engine.io and ws ones are as expected, at each write (a connection may upgrade from polling).
 */

interface Internals {
  acks: Map<number, (...args: unknown[]) => void>;
  nsp: { _ids: number; name: string };
  conn: EngineConnection;
}

interface EngineConnection {
  readyState: string;
  writeBuffer: unknown[];
  transport?: { name?: string; writable?: boolean; socket?: WsSocket };
  write(data: string, options: { compress: boolean }): unknown;
}

interface WsSocket {
  readyState?: number;
  _extensions?: Record<string, unknown>;
  _sender?: { _state?: number; _queue?: unknown[] };
  _socket?: { destroyed: boolean; writable: boolean; writableLength: number; write(chunk: Buffer): boolean };
}

/** As socket.io sends it: compression is asked for, and engine.io applies it only if configured. */
const WRITE_OPTIONS = { compress: true };
/** ws's `OPEN` readyState and its sender's idle state. */
const WS_OPEN = 1;
const WS_SENDER_IDLE = 0;
/** Event names that JSON writes as they are between quotes (the notification schema allows only these). */
const PLAIN_EVENT = /^[A-Za-z0-9_.:-]+$/;

export function supportsDirectWrite(socket: Socket): boolean {
  const s = socket as unknown as Partial<Internals> & { server?: { opts?: { connectionStateRecovery?: unknown } } };
  return s.acks instanceof Map &&
    typeof s.nsp?._ids === 'number' &&
    s.nsp.name === '/' &&
    typeof s.conn?.write === 'function' &&
    typeof s.conn.readyState === 'string' &&
    Array.isArray(s.conn.writeBuffer) &&
    // With connection state recovery socket.io stores each packet for replay: leave that to it.
    !s.server?.opts?.connectionStateRecovery;
}

/** `socket.emit(event, payload)`: written now if the connection is open, else dropped as socket.io does. */
export function writeEvent(socket: Socket, event: string, payload: unknown): void {
  const s = socket as unknown as Internals;
  if (s.conn.readyState !== 'open') return;
  writePacket(s.conn, '', event, payload);
}

/**
 * `socket.timeout(timeoutMs).emit(event, payload, ack)`: `done(true)` when the client acks, `done(false)`
 * when it has not within `timeoutMs`; once either way. A late ack after the timeout is ignored, as
 * socket.io ignores it.
 */
export function writeEventWithAck(socket: Socket, event: string, payload: unknown, timeoutMs: number, done: (acked: boolean) => void): void {
  const s = socket as unknown as Internals;
  const id = s.nsp._ids++;
  // Where the ack reader answers this socket's acks, the callback waits in its registry, not in
  // socket.io's map (see direct-acks.ts); an ack for an id in neither goes to socket.io, which ignores it.
  const direct = directAcksOf(socket);
  const timer = setTimeout(() => {
    if (direct) direct.take(id);
    else s.acks.delete(id);
    done(false);
  }, timeoutMs);
  const onAck = (): void => {
    clearTimeout(timer);
    done(true);
  };
  if (direct) direct.add(id, onAck);
  else s.acks.set(id, onAck);
  // socket.io registers the ack even when the connection is closing; the timeout settles it then.
  if (s.conn.readyState === 'open') writePacket(s.conn, String(id), event, payload);
}

/** socket.io's event packet `2<ackId>["event",payload]`, as one frame where it can be, else through engine.io. */
function writePacket(conn: EngineConnection, ackId: string, event: string, payload: unknown): void {
  const json = JSON.stringify(payload);
  const head = PLAIN_EVENT.test(event) ? `2${ackId}["${event}",` : `2${ackId}[${JSON.stringify(event)},`;
  const tcp = frameTarget(conn);
  if (tcp === undefined) {
    conn.write(`${head}${json}]`, WRITE_OPTIONS);
    return;
  }
  // The frame's payload: engine.io's message type `4`, the head, the JSON, the closing bracket.
  const length = 1 + head.length + Buffer.byteLength(json) + 1;
  const [frame, start] = textFrame(length);
  let at = start;
  frame[at++] = 0x34; // '4'
  at += frame.write(head, at, 'latin1');
  at += frame.write(json, at, 'utf8');
  frame[at] = 0x5d; // ']'
  tcp.write(frame);
}

/**
 * What socket.io writes to the socket's connection itself (group and broadcast emits through the adapter,
 * from this node or relayed from another, `socket.emit`, the answers to the client's events) goes out as
 * `writeEvent`'s packets do: one frame straight to the TCP socket where nothing is queued above it, else
 * through engine.io. A group emit hands every member the same encoded packet, so its frame is built once
 * for all of them (ws would build a header and write two buffers per member, after engine.io's packet
 * object and events). Anything but one text packet (binary data, several parts) goes through engine.io,
 * as does a volatile packet the transport cannot take now, which socket.io then drops. False (and
 * nothing changed) where socket.io's client is not as expected.
 */
export function writeSocketIoPacketsDirectly(socket: Socket): boolean {
  const client = (socket as unknown as { client?: { conn?: EngineConnection; writeToEngine?: unknown } }).client;
  const conn = client?.conn;
  if (!client || !conn || typeof client.writeToEngine !== 'function') return false;
  const viaEngine = client.writeToEngine as (encodedPackets: unknown, options: unknown) => void;
  client.writeToEngine = function writeToEngine(this: unknown, encodedPackets: unknown, options: unknown): void {
    const text = Array.isArray(encodedPackets) ? (encodedPackets.length === 1 ? encodedPackets[0] : undefined) : encodedPackets;
    const tcp = typeof text === 'string' && conn.readyState === 'open' ? frameTarget(conn) : undefined;
    if (tcp === undefined) viaEngine.call(this, encodedPackets, options);
    else tcp.write(sharedFrame(text as string));
  };
  return true;
}

/** The frame of the packet written last: a group emit writes the same one to every member. */
let lastPacket: string | undefined;
let lastFrame: Buffer | undefined;

function sharedFrame(packet: string): Buffer {
  if (packet !== lastPacket || lastFrame === undefined) {
    const [frame, at] = textFrame(1 + Buffer.byteLength(packet));
    frame[at] = 0x34; // '4', engine.io's message type
    frame.write(packet, at + 1, 'utf8');
    lastPacket = packet;
    lastFrame = frame;
  }
  return lastFrame;
}

/** A WebSocket text frame (FIN, unmasked, no compression) with room for `length` bytes of payload, and where it starts. */
function textFrame(length: number): [Buffer, number] {
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81; // FIN, text frame
  if (headerBytes === 2) {
    frame[1] = length;
  } else if (headerBytes === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  return [frame, headerBytes];
}

/** The TCP socket to write a frame to directly, or undefined when something is queued above it. */
function frameTarget(conn: EngineConnection): NonNullable<WsSocket['_socket']> | undefined {
  const transport = conn.transport;
  if (transport?.name !== 'websocket' || transport.writable !== true || conn.writeBuffer.length > 0) return undefined;
  const ws = transport.socket;
  const sender = ws?._sender;
  const tcp = ws?._socket;
  if (ws?.readyState !== WS_OPEN || !sender || !tcp || !ws._extensions) return undefined;
  // Compression negotiated (the only extension ws has): ws would compress, and set the RSV1 bit.
  if (ws._extensions['permessage-deflate'] !== undefined) return undefined;
  if (sender._state !== WS_SENDER_IDLE || (sender._queue?.length ?? 0) > 0) return undefined;
  if (tcp.destroyed || !tcp.writable || tcp.writableLength > 0) return undefined;
  return tcp;
}
