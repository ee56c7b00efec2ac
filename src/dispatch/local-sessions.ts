import type { Envelope } from '../notification/schema.js';

/**
 * What happened when a message was offered to this node's sockets of one session.
 * - `delivered`: a socket acked it (reliable) or took it (volatile)
 * - `not_delivered`: sockets were offered it, none acked in time (reliable)
 * - `behind`: every socket of the session is too far behind to be offered more (or has a backlog in the
 *   inbox that must go out first): the caller stores the message in the inbox, then calls `spilled`
 * - `no_sockets`: the session has no socket on this node
 */
export type LocalOutcome = 'delivered' | 'not_delivered' | 'behind' | 'no_sockets';

/**
 * The dispatcher's view of this node's sockets: the port the gateway implements (and a small fake in
 * the dispatcher's tests).
 */
export interface LocalSessions {
  /**
   * Offers a reliable envelope to this node's sockets of the session that can take it now, with an ack
   * asked of each: `done('delivered')` at the first ack, `done('not_delivered')` once every one timed
   * out. `done` is called exactly once, synchronously when there is nothing to wait for (no sockets,
   * all behind).
   */
  offer(sessionId: string, envelope: Envelope, done: (outcome: LocalOutcome) => void): void;
  /**
   * Emits a volatile envelope to this node's sockets of the session that can take it now, without an
   * ack: `delivered` when at least one took it.
   */
  send(sessionId: string, envelope: Envelope): Exclude<LocalOutcome, 'not_delivered'>;
  /**
   * A message `offer` answered `behind` for is in the inbox now, or will not be (delivered elsewhere,
   * failed): called once per such answer. Until every one is in, the session's sockets do not leave
   * their backlog, so nothing newer overtakes it.
   */
  spilled(sessionId: string): void;
  /** Sockets of the session on this node. */
  sockets(sessionId: string): number;
  /** Offers the session's inbox to its sockets on this node, oldest first (see `Connection.replay`). */
  replay(sessionId: string): void;
  /** Emits to the group's members on every node (through the socket.io adapter): the sockets reached on this node. */
  emitToGroup(group: string, envelope: Envelope): number;
  /** Emits to every connected socket on every node: the sockets reached on this node. */
  broadcast(envelope: Envelope): number;
}
