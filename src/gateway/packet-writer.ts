import type { Socket } from 'socket.io';

/**
 * Emits one event to one socket the way `socket.emit` / `socket.timeout(ms).emit` do, with less work per
 * message. socket.io's general `emit` copies its arguments, builds a packet, copies and resets the
 * socket's flags, wraps the ack in two closures with a timer, walks the payload looking for binary data
 * and logs through `debug` (which builds its arguments even when logging is off): about 12 % of all a
 * busy node allocated per message (sampling heap profile, 2026-12-01). Envelopes come from JSON, so they
 * never hold binary data, and the main namespace needs no prefix: the packet is socket.io-parser's text
 * encoding, `2<ack id>[event, payload]`, written to the engine.io connection as socket.io writes it.
 *
 * It relies on three socket.io 4 internals: the namespace's ack id counter (shared with `socket.emit`,
 * so ids never collide), the socket's map of ack callbacks (socket.io calls and removes the callback when
 * the client's ack arrives) and the engine.io connection. `supportsDirectWrite()` checks them on a socket; where
 * they are not as expected (another socket.io version), the gateway uses `socket.emit`.
 */

interface Internals {
  acks: Map<number, (...args: unknown[]) => void>;
  nsp: { _ids: number; name: string };
  conn: { readyState: string; write(data: string, options: { compress: boolean }): unknown };
}

/** As socket.io sends it: compression is asked for, and engine.io applies it only if configured. */
const WRITE_OPTIONS = { compress: true };

export function supportsDirectWrite(socket: Socket): boolean {
  const s = socket as unknown as Partial<Internals> & { server?: { opts?: { connectionStateRecovery?: unknown } } };
  return s.acks instanceof Map &&
    typeof s.nsp?._ids === 'number' &&
    s.nsp.name === '/' &&
    typeof s.conn?.write === 'function' &&
    typeof s.conn.readyState === 'string' &&
    // With connection state recovery socket.io stores each packet for replay: leave that to it.
    !s.server?.opts?.connectionStateRecovery;
}

/** `socket.emit(event, payload)`: written now if the connection is open, else dropped as socket.io does. */
export function writeEvent(socket: Socket, event: string, payload: unknown): void {
  const s = socket as unknown as Internals;
  if (s.conn.readyState !== 'open') return;
  s.conn.write(`2${JSON.stringify([event, payload])}`, WRITE_OPTIONS);
}

/**
 * `socket.timeout(timeoutMs).emit(event, payload, ack)`: `done(true)` when the client acks, `done(false)`
 * when it has not within `timeoutMs`; once either way. A late ack after the timeout is ignored, as
 * socket.io ignores it.
 */
export function writeEventWithAck(socket: Socket, event: string, payload: unknown, timeoutMs: number, done: (acked: boolean) => void): void {
  const s = socket as unknown as Internals;
  const id = s.nsp._ids++;
  const timer = setTimeout(() => {
    s.acks.delete(id);
    done(false);
  }, timeoutMs);
  s.acks.set(id, () => {
    clearTimeout(timer);
    done(true);
  });
  // socket.io registers the ack even when the connection is closing; the timeout settles it then.
  if (s.conn.readyState === 'open') s.conn.write(`2${id}${JSON.stringify([event, payload])}`, WRITE_OPTIONS);
}
