import type { Notification } from '../notification/schema.js';

/**
 * The cluster port: which node holds a session's sockets (the session directory) and how a message
 * reaches a node that holds them (the node bus). Engines: `SingleNode` (embedded: this node is the
 * whole cluster) and `RedisCluster`.
 */

/** What the owning node reports back for a forwarded reliable message. */
export type ForwardOutcome = 'delivered' | 'not_delivered';

/** Delivers a message forwarded by another node to this node's sockets of the session. */
export type ForwardHandler = (sessionId: string, notification: Notification) => Promise<ForwardOutcome>;

/** Offers the session's inbox to its sockets on this node (another node stored a message for it). */
export type ReplayHandler = (sessionId: string) => void;

export interface SessionPresence {
  /** Nodes holding at least one socket of the session, this one included. */
  nodes: string[];
  sockets: number;
}

export interface Cluster {
  readonly nodeId: string;
  /** Connected to the shared store (always true for the single node). */
  readonly connected: boolean;
  /** Records how many sockets of the session this node holds now (0: none left). */
  setLocalSockets(sessionId: string, sockets: number): Promise<void>;
  /**
   * Live nodes other than this one that hold sockets of the session. May be served from a cache kept
   * current by change announcements; `fresh` asks the shared store itself.
   */
  remoteNodes(sessionId: string, options?: { fresh?: boolean }): Promise<string[]>;
  /**
   * What `remoteNodes(sessionId)` would answer now without asking the shared store (from its cache), or
   * undefined when it would have to ask. Lets the hot path stay synchronous for sessions it knows.
   */
  knownRemoteNodes(sessionId: string): string[] | undefined;
  /** Where the session is connected, cluster-wide. */
  presence(sessionId: string): Promise<SessionPresence>;
  /**
   * Sends the message to the owning node. Reliable: resolves with what that node reports, or
   * `not_delivered` when it does not answer in time. Volatile: resolves once handed to the bus.
   */
  forward(nodeId: string, sessionId: string, notification: Notification): Promise<ForwardOutcome>;
  /** Installs the handler for messages other nodes forward to this one. */
  onForward(handler: ForwardHandler): void;
  /**
   * Asks the node to replay the session's inbox to its sockets: a message was stored for a session that
   * registered there while the message was on its way. Fire and forget.
   */
  requestReplay(nodeId: string, sessionId: string): Promise<void>;
  onReplay(handler: ReplayHandler): void;
  close(): Promise<void>;
}
