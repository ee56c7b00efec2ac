import { io as connectSocket, type Socket } from 'socket.io-client';
import type { Envelope } from '../../src/notification/schema.js';
import { startProcess, type NodeProcess } from './process.js';
import { realEngines } from './services.js';

/** Node processes sharing one queue and one Redis prefix: a cluster on this machine. */
export class ClusterUnderTest {
  readonly nodes = new Map<string, NodeProcess>();

  constructor(readonly name: string, private readonly env: Record<string, string> = {}) {}

  async start(nodeId: string): Promise<NodeProcess> {
    const node = await startProcess({ ...realEngines(this.name), NODE_ID: nodeId, ...this.env });
    this.nodes.set(nodeId, node);
    return node;
  }

  url(nodeId: string): string {
    const node = this.nodes.get(nodeId);
    if (!node) throw new Error(`no node ${nodeId}`);
    return node.url;
  }

  /** URLs of the nodes still running. */
  liveUrls(): string[] {
    return [...this.nodes.values()].filter((node) => node.child.exitCode === null && node.child.signalCode === null)
      .map((node) => node.url);
  }

  async stop(nodeId: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const node = this.nodes.get(nodeId);
    if (!node) return null;
    const code = await node.stop(signal);
    this.nodes.delete(nodeId);
    return code;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.stop(id, 'SIGKILL')));
  }
}

/**
 * A browser tab that, like a real one behind a load balancer, reconnects to some live node when its
 * node goes away, and registers again. Records every envelope it gets and acks reliable ones.
 */
export class Tab {
  readonly received: Envelope[] = [];
  socket: Socket | undefined;
  private closed = false;

  constructor(
    readonly sessionId: string,
    private readonly groups: string[],
    private readonly pickUrl: () => string | undefined,
    private readonly ackDelayMs = 0,
  ) {}

  async open(url: string): Promise<void> {
    const socket = connectSocket(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket = socket;
    socket.onAny((_event: string, envelope: Envelope, ack?: () => void) => {
      this.received.push(envelope);
      if (typeof ack === 'function') {
        if (this.ackDelayMs > 0) setTimeout(ack, this.ackDelayMs);
        else ack();
      }
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const answer = await socket.timeout(5000).emitWithAck('register', { sessionId: this.sessionId, groups: this.groups });
    if (!answer.ok) throw new Error(`register failed: ${JSON.stringify(answer)}`);
    // Only a registered tab reconnects by itself; a failed attempt is retried by `reopen`.
    socket.on('disconnect', () => {
      if (!this.closed) setTimeout(() => void this.reopen(), 50);
    });
  }

  ids(): string[] {
    return this.received.map((envelope) => envelope.id);
  }

  close(): void {
    this.closed = true;
    this.socket?.close();
  }

  private async reopen(): Promise<void> {
    for (let attempt = 0; attempt < 100 && !this.closed; attempt++) {
      const url = this.pickUrl();
      if (url) {
        try {
          await this.open(url);
          return;
        } catch {
          this.socket?.close();
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
