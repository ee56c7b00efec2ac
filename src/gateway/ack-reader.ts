import type { Socket } from 'socket.io';
import { startDirectAcks, type DirectAcks } from './direct-acks.js';

/**
 * Takes the clients' acks off the WebSocket before engine.io and socket.io see them, the counterpart of
 * packet-writer.ts for the other direction. A client's ack of a reliable message is the text frame
 * `43<ack id>[args]` (engine.io message, socket.io ACK packet, main namespace). On its way to the ack
 * callback it is decoded to a string, parsed into an engine.io packet, emitted three times, parsed again
 * by socket.io-parser (its arguments with JSON.parse), emitted, deferred with `process.nextTick` and
 * logged through `debug` at most of those steps: for every reliable message a busy node delivers.
 *
 * Here the frame's bytes are read once: an ack for the main namespace whose id has a callback waiting,
 * in the registry of this socket's direct writes (direct-acks.ts) or in socket.io's ack map (its own
 * emits with an ack, and direct writes made before the reader was installed), calls that callback (the
 * latter with the ack's arguments, as socket.io's `onack` would) and takes it out. socket.io calls it on
 * the next tick; here it is called at once, which only moves acks ahead of events the same client sent
 * just before them, whose handlers do not depend on them. Everything else (other packets, binary data,
 * another namespace, an unknown id, a socket that left, arguments that are not a JSON array, a binary
 * packet being reassembled) goes to engine.io's own listener unchanged, so socket.io handles it, errors
 * included, exactly as before.
 *
 * It relies on engine.io 6 (its websocket transport listens to the ws socket's `message` event, once)
 * and socket.io 4 (the ack map, the `connected` flag, the decoder's binary reassembly state), with
 * socket.io's default parser, which the node uses. `readAcksDirectly()` installs it only where those are
 * as expected; otherwise socket.io reads the acks as usual.
 */

interface Internals {
  connected: boolean;
  acks: Map<number, (...args: unknown[]) => void>;
  client?: { decoder?: { reconstructor?: unknown } };
  conn: { transport?: { name?: string; socket?: WsLike } };
}

type MessageListener = (data: unknown, isBinary: boolean) => void;

interface WsLike {
  listeners(event: 'message'): MessageListener[];
  removeListener(event: 'message', listener: MessageListener): unknown;
  on(event: 'message', listener: MessageListener): unknown;
  /** ws 8's frame parser; `_mask` is the masking key of the frame it read last. */
  _receiver?: { _mask?: unknown } | null;
}

const CHAR_4 = 0x34;
const CHAR_3 = 0x33;
const CHAR_0 = 0x30;
const CHAR_9 = 0x39;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
/** Ack ids are a counter; more digits than a safe integer holds is not one of ours. */
const MAX_ID_DIGITS = 15;

/**
 * Puts the reader in front of engine.io's listener on the socket's WebSocket; false (and nothing
 * changed) where the connection is not a websocket (yet) or the internals are not as expected.
 */
export function readAcksDirectly(socket: Socket): boolean {
  const s = socket as unknown as Internals;
  const transport = s.conn?.transport;
  const ws = transport?.name === 'websocket' ? transport.socket : undefined;
  if (!ws || typeof ws.listeners !== 'function' || !(s.acks instanceof Map) || typeof s.client?.decoder !== 'object') {
    return false;
  }
  const listeners = ws.listeners('message');
  if (listeners.length !== 1) return false;
  const engineListener = listeners[0]!;
  ws.removeListener('message', engineListener);
  const direct = startDirectAcks(socket);
  // ws keeps the last frame's masking key until the next frame comes, as a view of the chunk the frame
  // arrived in: on a socket that gets a message every few seconds, the key's buffer object and the
  // chunk's ArrayBuffer outlived the young generation after every ack and were promoted, about 30 % of
  // what a busy node promoted (sampling heap profile, 2026-12-01). A server reads a new key for every
  // frame, and uses it to unmask that frame before the message is emitted: let go of it here.
  const receiver = ws._receiver;
  const dropKey = typeof receiver === 'object' && receiver !== null && '_mask' in receiver;
  ws.on('message', (data, isBinary) => {
    if (dropKey) receiver._mask = undefined;
    if (isBinary || !Buffer.isBuffer(data) || !takeAck(s, direct, data)) engineListener.call(ws, data, isBinary);
  });
  return true;
}

/** True when `data` was an ack this reader handled; false leaves it to socket.io. */
function takeAck(s: Internals, direct: DirectAcks, data: Buffer): boolean {
  const n = data.length;
  if (n < 5 || data[0] !== CHAR_4 || data[1] !== CHAR_3) return false;
  let id = 0;
  let i = 2;
  for (; i < n && i < 2 + MAX_ID_DIGITS; i++) {
    const c = data[i]!;
    if (c < CHAR_0 || c > CHAR_9) break;
    id = id * 10 + (c - CHAR_0);
  }
  if (i === 2 || i >= n || data[i] !== OPEN_BRACKET || data[n - 1] !== CLOSE_BRACKET) return false;
  // socket.io would drop it (socket left) or fail the connection (text amid a binary packet): let it.
  if (!s.connected || s.client?.decoder?.reconstructor) return false;
  let args: unknown;
  if (n - i === 2) {
    args = [];
  } else {
    try {
      args = JSON.parse(data.toString('utf8', i));
    } catch {
      return false;
    }
    if (!Array.isArray(args)) return false;
  }
  const mine = direct.take(id);
  if (mine !== undefined) {
    mine();
    return true;
  }
  const ack = s.acks.get(id);
  if (typeof ack !== 'function') return false;
  ack.apply(s, args as unknown[]);
  s.acks.delete(id);
  return true;
}
