/**
 * The session directory port: which nodes hold sockets of a session. Engines: `MemoryCluster`'s
 * directories (embedded, where this node is the whole cluster, and several nodes in one process for
 * tests) and `RedisDirectory`. The node bus (`bus.ts`) carries messages to the nodes found here.
 */

export interface SessionPresence {
  /** Nodes holding at least one socket of the session, this one included. */
  nodes: string[];
  sockets: number;
}

/** What a node tells the cluster about itself (`GET /v1/cluster`). */
export interface NodeStatus {
  id: string;
  /** ms since epoch. */
  startedAt: number;
  /** Sockets connected to it. */
  sockets: number;
  /** Sessions with a socket on it. */
  sessions: number;
  /** Broker messages it holds unacked. */
  inflight: number;
  /** Backpressure holds its consumption. */
  paused: boolean;
  /** The push-center version it runs. */
  version: string;
}

export interface SessionDirectory {
  readonly nodeId: string;
  /** Can reach the shared store now (always true for memory until closed); when false, calls reject at once. */
  readonly connected: boolean;
  /**
   * Records how many sockets of the session this node holds now (0: none left). Once it resolves, a
   * `fresh` lookup on any node sees the new count, and a cached one as soon as the change is announced.
   * When the write fails it rejects, but the count is kept and written again until it lands. Rejects
   * with a RangeError for a count that is not a whole number >= 0. After `close()` it records nothing.
   */
  setLocalSockets(sessionId: string, sockets: number): Promise<void>;
  /**
   * Live nodes other than this one that hold sockets of the session. May be served from a cache that
   * every node's change of its entries invalidates; `fresh` asks the shared store itself. A node whose
   * liveness lapsed, or that was replaced by a new process under its id, is never listed. The array may
   * be shared with the cache: read it, do not change it.
   */
  remoteNodes(sessionId: string, options?: { fresh?: boolean }): Promise<string[]>;
  /**
   * What `remoteNodes(sessionId)` would answer now without asking the shared store, or undefined when it
   * would have to ask. Synchronous, so the hot path needs no await for a session it knows. The array may
   * be shared: read it, do not change it.
   */
  knownRemoteNodes(sessionId: string): string[] | undefined;
  /** Where the session is connected, cluster-wide: this node's own count and the live nodes' counts. */
  presence(sessionId: string): Promise<SessionPresence>;
  /**
   * Where this node's status comes from: read at each heartbeat and published with it (the memory engine
   * reads it when asked).
   */
  reportStatus(source: () => Omit<NodeStatus, 'id'>): void;
  /**
   * The status of every live node that reports one, this one's read now, the others' as of their latest
   * heartbeat; ordered by id. A node whose liveness lapsed is not listed.
   */
  nodes(): Promise<NodeStatus[]>;
  /**
   * Leaves the directory: this node's entries are removed (or, when the store is unreachable, stop
   * counting once its liveness lapses). Close it before the node's bus, so other nodes stop forwarding
   * here before nobody listens. Idempotent.
   */
  close(): Promise<void>;
}
