import type { Notification } from '../notification/schema.js';

/**
 * The node bus port: carries a message to the node that holds a session's sockets (found in the session
 * directory, `directory.ts`) and its outcome back. Engines: `MemoryCluster`'s buses and `RedisBus`.
 */

/** What the owning node reports back for a forwarded reliable message. */
export type ForwardOutcome = 'delivered' | 'not_delivered';

/** Delivers a message forwarded by another node to this node's sockets of the session. */
export type ForwardHandler = (sessionId: string, notification: Notification) => Promise<ForwardOutcome>;

/** Offers the session's inbox to its sockets on this node (another node stored a message for it). */
export type ReplayHandler = (sessionId: string) => void;

export interface NodeBus {
  readonly nodeId: string;
  /** Can send and hear now (always true for memory until closed); when false, sends reject at once. */
  readonly connected: boolean;
  /**
   * Sends the message to the node, which gets its own copy. Reliable: settles exactly once, with the
   * outcome that node reports, or `not_delivered` when no node listens under that id (at once), when it
   * does not answer within the forward timeout, or when this bus closes. Volatile: `delivered` once the
   * node's bus got it (not a socket), `not_delivered` when no node listens under that id; nothing comes
   * back. At most once: a message lost on the way is a timeout, never a duplicate. Rejects while
   * disconnected and after `close()`.
   */
  forward(nodeId: string, sessionId: string, notification: Notification): Promise<ForwardOutcome>;
  /**
   * Installs the handler for messages other nodes forward to this one. Until there is one, and once this
   * bus is closing, a reliable forward here is answered `not_delivered`; so is one whose handler throws.
   */
  onForward(handler: ForwardHandler): void;
  /**
   * Asks the node to replay the session's inbox to its sockets: a message was stored for a session that
   * registered there while the message was on its way. Fire and forget: resolves once sent, whether or
   * not a node got it. Rejects while disconnected and after `close()`.
   */
  requestReplay(nodeId: string, sessionId: string): Promise<void>;
  /** Installs the handler for replay requests other nodes send to this one. */
  onReplay(handler: ReplayHandler): void;
  /** Settles every pending forward as `not_delivered` and stops listening. Idempotent. */
  close(): Promise<void>;
}
