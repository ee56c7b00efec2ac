import type { Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { ForwardHandler, ForwardOutcome, NodeBus, ReplayHandler } from './bus.js';
import { nodeIdInUse, requireNodeId, requirePositiveMs, requireSocketCount } from './checks.js';
import type { NodeStatus, SessionDirectory, SessionPresence } from './directory.js';
import { answerForward, PendingForwards } from './forwarding.js';

export interface MemoryClusterOptions {
  /** How long a reliable forward waits for the owning node's outcome, unless its bus says otherwise. */
  forwardTimeoutMs: number;
  logger: Logger;
}

/** Sockets per node, per session, of every open directory of one hub. */
type SocketTable = Map<string, Map<string, number>>;

const NO_NODES: readonly string[] = Object.freeze([]);

/**
 * The cluster in one process: the directories and buses made from one hub see each other as the nodes
 * of a cluster do through Redis, with the same guarantees. A hub with one node is the embedded mode;
 * tests run several nodes on one hub. Nothing can be unreachable here, so nothing rejects for that.
 */
export class MemoryCluster {
  private readonly sockets: SocketTable = new Map();
  /** The open directories, each with its node's status source once it reported one. */
  private readonly directories = new Map<string, (() => Omit<NodeStatus, 'id'>) | undefined>();
  private readonly buses = new Map<string, MemoryBus>();

  constructor(private readonly options: MemoryClusterOptions) {
    requirePositiveMs('forwardTimeoutMs', options.forwardTimeoutMs);
  }

  /** The node's session directory; one open directory per node id. */
  directory(nodeId: string): SessionDirectory {
    requireNodeId(nodeId);
    if (this.directories.has(nodeId)) throw nodeIdInUse(nodeId);
    this.directories.set(nodeId, undefined);
    return new MemoryDirectory(nodeId, this.sockets, this.directories);
  }

  /** The node's bus; one open bus per node id, as on Redis. */
  bus(nodeId: string, options: Partial<MemoryClusterOptions> = {}): NodeBus {
    requireNodeId(nodeId);
    if (this.buses.has(nodeId)) throw nodeIdInUse(nodeId);
    const forwardTimeoutMs = options.forwardTimeoutMs ?? this.options.forwardTimeoutMs;
    requirePositiveMs('forwardTimeoutMs', forwardTimeoutMs);
    const logger = (options.logger ?? this.options.logger).child({ component: 'bus' });
    const bus = new MemoryBus(nodeId, this.buses, forwardTimeoutMs, logger);
    this.buses.set(nodeId, bus);
    return bus;
  }
}

class MemoryDirectory implements SessionDirectory {
  private closed = false;

  constructor(
    readonly nodeId: string,
    private readonly sockets: SocketTable,
    private readonly directories: Map<string, (() => Omit<NodeStatus, 'id'>) | undefined>,
  ) {}

  reportStatus(source: () => Omit<NodeStatus, 'id'>): void {
    if (!this.closed) this.directories.set(this.nodeId, source);
  }

  async nodes(): Promise<NodeStatus[]> {
    const nodes: NodeStatus[] = [];
    for (const [id, source] of this.directories) if (source) nodes.push({ id, ...source() });
    return nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get connected(): boolean {
    return !this.closed;
  }

  async setLocalSockets(sessionId: string, sockets: number): Promise<void> {
    requireSocketCount(sockets);
    if (this.closed) return;
    let nodes = this.sockets.get(sessionId);
    if (sockets > 0) {
      if (!nodes) this.sockets.set(sessionId, (nodes = new Map()));
      nodes.set(this.nodeId, sockets);
    } else if (nodes?.delete(this.nodeId) && nodes.size === 0) {
      this.sockets.delete(sessionId);
    }
  }

  async remoteNodes(sessionId: string): Promise<string[]> {
    return this.knownRemoteNodes(sessionId);
  }

  /** Always known: the table is the directory itself. */
  knownRemoteNodes(sessionId: string): string[] {
    let remote: string[] | undefined;
    for (const node of this.sockets.get(sessionId)?.keys() ?? []) {
      if (node !== this.nodeId) (remote ??= []).push(node);
    }
    // One shared empty answer: the embedded node asks this for every message.
    return remote ?? (NO_NODES as string[]);
  }

  async presence(sessionId: string): Promise<SessionPresence> {
    const counts = this.sockets.get(sessionId);
    const own = counts?.get(this.nodeId) ?? 0;
    const nodes = own > 0 ? [this.nodeId] : [];
    let sockets = own;
    for (const [node, count] of counts ?? []) {
      if (node === this.nodeId) continue;
      nodes.push(node);
      sockets += count;
    }
    return { nodes, sockets };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [sessionId, nodes] of this.sockets) {
      if (nodes.delete(this.nodeId) && nodes.size === 0) this.sockets.delete(sessionId);
    }
    this.directories.delete(this.nodeId);
  }
}

class MemoryBus implements NodeBus {
  private readonly pending: PendingForwards;
  private handler: ForwardHandler | undefined;
  private replayHandler: ReplayHandler | undefined;
  private closed = false;
  private sequence = 0;

  constructor(
    readonly nodeId: string,
    private readonly buses: Map<string, MemoryBus>,
    forwardTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.pending = new PendingForwards(forwardTimeoutMs, logger);
  }

  get connected(): boolean {
    return !this.closed;
  }

  async forward(nodeId: string, sessionId: string, notification: Notification): Promise<ForwardOutcome> {
    if (this.closed) throw new Error('the node bus is closed; cannot forward');
    const owner = this.buses.get(nodeId);
    if (!owner) return 'not_delivered';
    // A copy, as a message off the wire would be: neither side sees what the other does to it later.
    const sent = structuredClone(notification);
    if (!notification.reliable) {
      owner.receive(this.nodeId, sessionId, sent);
      return 'delivered';
    }
    const corr = String(++this.sequence);
    return this.pending.wait(corr, async () => {
      owner.receive(this.nodeId, sessionId, sent, (outcome) => this.pending.settle(corr, outcome));
    });
  }

  onForward(handler: ForwardHandler): void {
    this.handler = handler;
  }

  async requestReplay(nodeId: string, sessionId: string): Promise<void> {
    if (this.closed) throw new Error('the node bus is closed; cannot ask for a replay');
    const owner = this.buses.get(nodeId);
    // Later, as a frame from the wire would arrive: the handler never runs inside the sender's call.
    if (owner) setImmediate(() => owner.replay(sessionId));
  }

  onReplay(handler: ReplayHandler): void {
    this.replayHandler = handler;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending.settleAll();
    if (this.buses.get(this.nodeId) === this) this.buses.delete(this.nodeId);
  }

  /** A forward from another node, handled on a later turn; `report` gets the outcome of a reliable one. */
  private receive(from: string, sessionId: string, notification: Notification, report?: (outcome: ForwardOutcome) => void): void {
    setImmediate(() => {
      const receiver = { handler: this.handler, closed: this.closed, logger: this.logger };
      void answerForward(receiver, from, sessionId, notification).then(report);
    });
  }

  private replay(sessionId: string): void {
    if (!this.closed) this.replayHandler?.(sessionId);
  }
}
