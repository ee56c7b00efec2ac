import { Children, type Child } from './children.js';
import type { ClientKind, WorkerCommand, WorkerReport } from './ipc.js';
import { sessionId } from './payload.js';
import { DeliveryStats } from './stats.js';

export interface FleetOptions {
  clients: number;
  client: ClientKind;
  workers: number;
  /** The server each worker's clients connect to (two nodes: alternate). */
  urlForWorker: (worker: number) => string;
  groups: string[];
  /** Sessions whose arrivals are recorded one by one and kept out of `stats` (see `arrivals`). */
  traced?: string[];
  /** Compiled `client-worker.js`. */
  workerModule: string;
  cwd: string;
  /** Connections in flight at once, over all workers. */
  concurrency?: number;
}

export interface ConnectResult {
  connected: number;
  failed: number;
  errors: string[];
  seconds: number;
}

/**
 * The simulated browsers: `clients` sessions (`s0` … `s<clients-1>`, one socket each) spread over
 * `workers` child processes; client i lives in worker i % workers, so consecutive sessions (and
 * consecutive messages) land on different workers.
 */
export class ClientFleet {
  readonly stats = new DeliveryStats();
  /** Each traced session's arrivals so far: flat [sequence number, received at (ms), ...]. */
  readonly arrivals = new Map<string, number[]>();
  private readonly workers: Child[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private readonly listeners = new Set<(worker: number, report: WorkerReport) => void>();

  private constructor(private readonly children: Children, private readonly options: FleetOptions) {
    this.heartbeat = setInterval(() => this.broadcast({ type: 'heartbeat' }), 1000);
  }

  static start(children: Children, options: FleetOptions): ClientFleet {
    const fleet = new ClientFleet(children, options);
    for (let w = 0; w < options.workers; w++) {
      const child = children.fork(`client-worker-${w}`, options.workerModule, { ...process.env }, options.cwd, 'load');
      child.process.on('message', (report: WorkerReport) => fleet.onReport(w, report));
      fleet.workers.push(child);
    }
    return fleet;
  }

  /** Connects and registers every client; resolves when all workers are done trying. */
  async connect(onProgress?: (connected: number, failed: number) => void, timeoutMs = 20_000): Promise<ConnectResult> {
    const { clients, workers, groups } = this.options;
    const concurrency = Math.max(1, Math.floor((this.options.concurrency ?? 200) / workers));
    const connecting = new Map<number, { connected: number; failed: number }>();
    const progress = (worker: number, report: WorkerReport) => {
      if (report.type !== 'connecting' && report.type !== 'ready') return;
      connecting.set(worker, { connected: report.connected, failed: report.failed });
      let connected = 0;
      let failed = 0;
      for (const entry of connecting.values()) {
        connected += entry.connected;
        failed += entry.failed;
      }
      onProgress?.(connected, failed);
    };
    this.listeners.add(progress);
    try {
      const results = await Promise.all(this.workers.map((child, w) => {
        const sessionIds: string[] = [];
        for (let i = w; i < clients; i += workers) sessionIds.push(sessionId(i));
        // Generous (a loaded machine connects slowly) but bounded.
        const ready = this.next(w, 'ready', 60_000 + timeoutMs + sessionIds.length * 20);
        this.send(child, { type: 'connect', client: this.options.client, url: this.options.urlForWorker(w), sessionIds, groups, concurrency, timeoutMs,
          traced: this.options.traced ?? [] });
        return ready;
      }));
      return {
        connected: results.reduce((sum, r) => sum + r.connected, 0),
        failed: results.reduce((sum, r) => sum + r.failed, 0),
        errors: results.flatMap((r) => r.errors).slice(0, 5),
        seconds: Math.max(...results.map((r) => r.ms)) / 1000,
      };
    } finally {
      this.listeners.delete(progress);
    }
  }

  /** Every client registers again (push-center then replays its inbox). */
  async reregister(timeoutMs = 60_000): Promise<{ ok: number; failed: number }> {
    const results = await Promise.all(this.workers.map((child, w) => {
      const done = this.next(w, 'reregistered', timeoutMs);
      this.send(child, { type: 'reregister' });
      return done;
    }));
    return { ok: results.reduce((sum, r) => sum + r.ok, 0), failed: results.reduce((sum, r) => sum + r.failed, 0) };
  }

  /** Asks every worker to close its sockets and exit; terminates those that have not within 3 s. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.broadcast({ type: 'stop' });
    await Promise.all(this.workers.map((child) => this.children.stop(child, 3000, 3000).catch(() => undefined)));
  }

  pids(): number[] {
    return this.workers.filter((child) => child.alive()).map((child) => child.pid);
  }

  /** Workers that exited before being told to. */
  crashed(): Child[] {
    return this.workers.filter((child) => !child.alive());
  }

  private onReport(worker: number, report: WorkerReport): void {
    if (report.type === 'stats') this.stats.apply(worker, report);
    if (report.type === 'arrivals') {
      const records = this.arrivals.get(report.sessionId);
      if (records) for (const value of report.records) records.push(value);
      else this.arrivals.set(report.sessionId, report.records);
    }
    for (const listener of this.listeners) listener(worker, report);
  }

  private next<T extends WorkerReport['type']>(worker: number, type: T, timeoutMs: number): Promise<Extract<WorkerReport, { type: T }>> {
    const child = this.workers[worker]!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`client worker ${worker} sent no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      const listener = (from: number, report: WorkerReport) => {
        if (from === worker && report.type === type) finish(undefined, report as Extract<WorkerReport, { type: T }>);
      };
      const onExit = () => finish(new Error(`client worker ${worker} exited:\n${child.output()}`));
      const finish = (err?: Error, report?: Extract<WorkerReport, { type: T }>) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        child.process.off('exit', onExit);
        if (err) reject(err);
        else resolve(report!);
      };
      this.listeners.add(listener);
      child.process.once('exit', onExit);
    });
  }

  private send(child: Child, command: WorkerCommand): void {
    if (child.alive() && child.process.connected) child.process.send(command);
  }

  private broadcast(command: WorkerCommand): void {
    for (const child of this.workers) this.send(child, command);
  }
}
