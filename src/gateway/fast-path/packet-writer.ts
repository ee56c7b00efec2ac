import type { Socket } from 'socket.io';
import { eventFrame, eventHead, messageFrame } from '../wire.js';

/**
 * Writes events to one socket as `socket.emit` would, with less work per message. socket.io's `emit`
 * copies its arguments, builds a packet object, wraps an ack in closures with a timer, walks the payload
 * for binary data and logs through `debug`; engine.io and ws then add a packet object, events, a frame
 * header and two stream writes of their own. Envelopes come from JSON (never binary) and go to the main
 * namespace, so the packet is socket.io-parser's text encoding (wire.ts), and where nothing is queued
 * in engine.io, ws or Node's stream it goes out as one WebSocket frame written straight to the TCP
 * socket: the bytes ws would send. Anything queued sends the packet through engine.io instead, behind
 * what is queued, so order holds and a slow client's packets pile up in engine.io's write buffer, where
 * the connection's limit sees them.
 *
 * Relies on socket.io 4, engine.io 6 and ws 8 internals (versions pinned, see tested-versions.ts):
 * the namespace's ack id counter (shared with `socket.emit`, so ids never collide), the socket's ack map,
 * the engine.io connection, its transport and write buffer, and the ws socket's sender and TCP socket.
 * `supportsDirectWrite()` checks the socket.io ones once per socket; the engine.io and ws ones are
 * checked at every write (a connection may upgrade from polling).
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

/** The next ack id of the socket's namespace, taken: the one `socket.emit` would have used. */
export function nextAckId(socket: Socket): number {
  return (socket as unknown as Internals).nsp._ids++;
}

/** The socket's map of ack callbacks by id, which socket.io answers (and empties) as acks arrive. */
export function socketIoAcks(socket: Socket): Map<number, (...args: unknown[]) => void> {
  return (socket as unknown as Internals).acks;
}

/**
 * `socket.emit(event, payload)`, asking for an ack under `ackId` when given: written now if the
 * connection is open, else dropped as socket.io drops it (an ack asked for then never comes).
 */
export function writeEvent(socket: Socket, event: string, payload: unknown, ackId?: number): void {
  const conn = (socket as unknown as Internals).conn;
  if (conn.readyState !== 'open') return;
  const head = eventHead(event, ackId);
  const json = JSON.stringify(payload);
  const tcp = frameTarget(conn);
  if (tcp === undefined) conn.write(`${head}${json}]`, WRITE_OPTIONS);
  else tcp.write(eventFrame(head, json));
}

/**
 * What socket.io writes to the socket's connection itself (group and broadcast emits through the adapter,
 * `socket.emit`, answers to the client's events) goes out as `writeEvent`'s packets do: one frame
 * straight to the TCP socket where nothing is queued above it, else through engine.io. A group emit
 * hands every member the same encoded packet, so its frame is built once for all of them. Anything but
 * one text packet (binary data, several parts) goes through engine.io, as does a volatile packet the
 * transport cannot take now, which socket.io then drops. False (and nothing changed) where socket.io's
 * client is not as expected.
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
    lastFrame = messageFrame(packet);
    lastPacket = packet;
  }
  return lastFrame;
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
