import type { Cluster, ForwardOutcome, SessionPresence } from './cluster.js';

/** The embedded cluster: this node is the only one, so every session is local or offline. */
export class SingleNode implements Cluster {
  readonly connected = true;
  private readonly sockets = new Map<string, number>();

  constructor(readonly nodeId: string) {}

  async setLocalSockets(sessionId: string, sockets: number): Promise<void> {
    if (sockets > 0) this.sockets.set(sessionId, sockets);
    else this.sockets.delete(sessionId);
  }

  async remoteNodes(): Promise<string[]> {
    return [];
  }

  knownRemoteNodes(): string[] {
    return [];
  }

  async presence(sessionId: string): Promise<SessionPresence> {
    const sockets = this.sockets.get(sessionId) ?? 0;
    return { nodes: sockets > 0 ? [this.nodeId] : [], sockets };
  }

  async forward(nodeId: string): Promise<ForwardOutcome> {
    throw new Error(`single-node cluster has no node ${nodeId} to forward to`);
  }

  onForward(): void {}

  async requestReplay(nodeId: string): Promise<void> {
    throw new Error(`single-node cluster has no node ${nodeId} to ask for a replay`);
  }

  onReplay(): void {}

  async close(): Promise<void> {}
}
