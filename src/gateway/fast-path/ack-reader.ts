import type { Socket } from 'socket.io';
import { readAck } from '../wire.js';

/**
 * Takes the clients' acks off the WebSocket before engine.io and socket.io see them, the counterpart of
 * packet-writer.ts. On its way to an ack callback a client's ack frame (`43<id>[args]`) is decoded to a
 * string, parsed into an engine.io packet, emitted three times, parsed again by socket.io-parser,
 * emitted, deferred with `process.nextTick` and logged through `debug`: for every reliable message.
 *
 * Here the frame's bytes are read once. An ack for the main namespace goes to `take(id)` (the
 * connection's own un-acked emits); one `take` does not know, to the callback waiting in socket.io's ack
 * map (its own emits with an ack), called with the ack's arguments as socket.io's `onack` would. Both
 * are called at once rather than on the next tick, which only moves acks ahead of events the same
 * client sent just before them. Everything else (other packets, binary data, another namespace, an
 * unknown id, a socket that left, arguments that are not a JSON array, a binary packet being
 * reassembled) goes to engine.io's own listener unchanged, so socket.io handles it, errors included.
 *
 * What engine.io does for every packet it receives is done for the acks taken here too: it emits
 * `packet` on the connection, and while it waits for a pong it refreshes the ping timeout once, so a
 * client busy acking a long stream, whose pong comes late, is not timed out.
 *
 * Relies on engine.io 6 (its websocket transport listens to the ws socket's `message` event, once; the
 * connection's ping timeout fields) and socket.io 4 (the ack map, the `connected` flag, the decoder's
 * binary reassembly state), with socket.io's default parser. `readAcksDirectly()` installs it only
 * where those are as expected.
 */

interface Internals {
  connected: boolean;
  acks: Map<number, (...args: unknown[]) => void>;
  client?: { decoder?: { reconstructor?: unknown } };
  conn: EngineSocket;
}

/** engine.io's Socket, as far as the reader stands in for its `onPacket`. */
interface EngineSocket {
  transport?: { name?: string; socket?: WsLike };
  protocol?: number;
  pingTimeoutTimer?: { refresh(): unknown } | null;
  hasRefreshedPingTimeout?: boolean;
  listenerCount(event: string): number;
  emit(event: string, packet: unknown): boolean;
}

type MessageListener = (data: unknown, isBinary: boolean) => void;

interface WsLike {
  listeners(event: 'message'): MessageListener[];
  removeListener(event: 'message', listener: MessageListener): unknown;
  on(event: 'message', listener: MessageListener): unknown;
  /** ws 8's frame parser; `_mask` is the masking key of the frame it read last. */
  _receiver?: { _mask?: unknown } | null;
}

/**
 * Puts the reader in front of engine.io's listener on the socket's WebSocket; false (and nothing
 * changed) where the connection is not a websocket (yet) or the internals are not as expected.
 */
export function readAcksDirectly(socket: Socket, take: (ackId: number) => boolean): boolean {
  const s = socket as unknown as Internals;
  const conn = s.conn;
  const transport = conn?.transport;
  const ws = transport?.name === 'websocket' ? transport.socket : undefined;
  if (!ws || typeof ws.listeners !== 'function' || !(s.acks instanceof Map) || typeof s.client?.decoder !== 'object' ||
    typeof conn.emit !== 'function' || !('pingTimeoutTimer' in conn) || typeof conn.hasRefreshedPingTimeout !== 'boolean') {
    return false;
  }
  const listeners = ws.listeners('message');
  if (listeners.length !== 1) return false;
  const engineListener = listeners[0]!;
  ws.removeListener('message', engineListener);
  // ws keeps the last frame's masking key (a view of the chunk the frame came in) until the next
  // frame; on a socket that gets a message every few seconds that kept every chunk alive long enough
  // to be promoted. A server reads a new key for every frame and has used it before the message is
  // emitted: let go of it here.
  const receiver = ws._receiver;
  const dropKey = typeof receiver === 'object' && receiver !== null && '_mask' in receiver;
  ws.on('message', (data, isBinary) => {
    if (dropKey) receiver._mask = undefined;
    if (isBinary || !Buffer.isBuffer(data) || !takeAck(s, take, data)) engineListener.call(ws, data, isBinary);
  });
  return true;
}

/** True when `data` was an ack this reader handled; false leaves it to socket.io. */
function takeAck(s: Internals, take: (ackId: number) => boolean, data: Buffer): boolean {
  const ack = readAck(data);
  if (ack === undefined) return false;
  // socket.io would drop it (socket left) or fail the connection (text amid a binary packet): let it.
  if (!s.connected || s.client?.decoder?.reconstructor) return false;
  let args: unknown;
  if (data.length - ack.argsAt === 2) {
    args = [];
  } else {
    try {
      args = JSON.parse(data.toString('utf8', ack.argsAt));
    } catch {
      return false;
    }
    if (!Array.isArray(args)) return false;
  }
  if (!take(ack.id)) {
    const callback = s.acks.get(ack.id);
    if (typeof callback !== 'function') return false;
    s.acks.delete(ack.id);
    callback.apply(s, args as unknown[]);
  }
  received(s.conn, data);
  return true;
}

/** What engine.io's `onPacket` does for a packet it receives, before handing it on. */
function received(conn: EngineSocket, data: Buffer): void {
  if (conn.listenerCount('packet') > 0) conn.emit('packet', { type: 'message', data: data.toString('utf8', 1) });
  if (conn.protocol !== 3 && conn.pingTimeoutTimer && !conn.hasRefreshedPingTimeout) {
    conn.pingTimeoutTimer.refresh();
    conn.hasRefreshedPingTimeout = true;
  }
}
