import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import type { Cluster } from './cluster/cluster.js';
import { SingleNode } from './cluster/single-node.js';
import type { Config } from './config/config.js';
import { BackpressureMonitor } from './dispatch/backpressure.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { openAccess, type Authenticator } from './gateway/auth.js';
import { Gateway, type PushServer } from './gateway/gateway.js';
import { registerOperationsRoutes, createHttpServer, type Readiness } from './http/server.js';
import type { Inbox } from './inbox/inbox.js';
import { MemoryInbox } from './inbox/memory-inbox.js';
import { registerNotificationRoute } from './ingest/http-route.js';
import { MemoryQueue } from './ingest/memory-queue.js';
import type { NotificationQueue } from './ingest/queue.js';
import { NotificationParser } from './notification/parse.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';

/** Engines to use instead of the ones the configuration picks (tests, embedding). */
export interface AppOverrides {
  logger?: Logger;
  queue?: NotificationQueue;
  inbox?: Inbox;
  cluster?: Cluster;
  auth?: Authenticator;
}

/**
 * The composition root: builds one push-center node from its configuration, picking the memory or the
 * real engine for each port, and wires ingest → dispatch → gateway. `start()` listens and consumes;
 * `close()` drains and releases everything.
 */
export class App {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly queue: NotificationQueue;
  readonly inbox: Inbox;
  readonly cluster: Cluster;
  readonly gateway: Gateway;
  readonly dispatcher: Dispatcher;
  readonly http;
  readonly io: PushServer;
  private readonly backpressure: BackpressureMonitor;
  private closing: Promise<void> | undefined;
  private started = false;

  constructor(config: Config, overrides: AppOverrides = {}) {
    this.config = config;
    this.logger = overrides.logger ?? createLogger(config.logLevel, config.nodeId);
    const metrics = (this.metrics = new Metrics());
    const parser = new NotificationParser(config.limits);

    this.queue = overrides.queue ?? new MemoryQueue({ prefetch: config.amqp.prefetch, maxLength: config.embeddedQueueMax });
    this.inbox = overrides.inbox ?? new MemoryInbox({ maxPerSession: config.inboxMax }, {
      expired: (n) => metrics.inbox.inc({ op: 'expired' }, n),
      evicted: (n) => metrics.inbox.inc({ op: 'evicted' }, n),
    });
    this.cluster = overrides.cluster ?? new SingleNode(config.nodeId);

    const queue = this.queue;
    metrics.trackInflight(() => queue.inflight);

    this.http = createHttpServer({ bodyLimit: config.httpBodyMaxBytes, logger: this.logger, metrics });
    this.io = new Server(this.http.server, {
      serveClient: false,
      maxHttpBufferSize: 64 * 1024,
      cors: corsFor(config.corsOrigins),
    }) as PushServer;
    this.gateway = new Gateway(this.io, {
      options: {
        ackTimeoutMs: config.ackTimeoutMs,
        maxPending: config.socket.maxPending,
        maxBuffered: config.socket.maxBuffered,
        maxIdLength: config.limits.maxIdLength,
        maxGroups: config.limits.maxGroups,
      },
      auth: overrides.auth ?? openAccess,
      cluster: this.cluster,
      inbox: this.inbox,
      metrics,
      logger: this.logger.child({ component: 'gateway' }),
    });
    this.dispatcher = new Dispatcher({
      parser,
      gateway: this.gateway,
      cluster: this.cluster,
      inbox: this.inbox,
      metrics,
      logger: this.logger.child({ component: 'dispatch' }),
    });
    this.backpressure = new BackpressureMonitor(
      { lagMs: config.backpressure.lagMs, heapBytes: config.backpressure.heapBytes },
      this.queue,
      metrics,
      this.logger.child({ component: 'backpressure' }),
    );

    registerNotificationRoute(this.http, { parser, queue: this.queue, metrics, apiKeys: config.apiKeys });
    registerOperationsRoutes(this.http, {
      metrics,
      readiness: () => this.readiness(),
      session: async (id) => {
        const [presence, inbox] = await Promise.all([this.cluster.presence(id), this.inbox.size(id)]);
        return { online: presence.sockets > 0, sockets: presence.sockets, nodes: presence.nodes, inbox };
      },
    });
  }

  /** Listens on `PORT` (0: any free port) and starts consuming; resolves with the address. */
  async start(): Promise<AddressInfo> {
    const { config, logger } = this;
    if (this.queue.engine === 'memory') {
      logger.warn('embedded mode: the queue lives in this process and is NOT durable; set AMQP_URL for RabbitMQ');
    }
    if (this.inbox instanceof MemoryInbox) {
      logger.warn('embedded mode: offline inboxes live in this process and are NOT durable; set REDIS_URL for Redis');
    }
    await this.http.listen({ port: config.port, host: config.host });
    await this.queue.consume(this.dispatcher.handle);
    this.backpressure.start();
    this.started = true;
    const address = this.http.server.address() as AddressInfo;
    logger.info({ port: address.port, host: config.host, node: config.nodeId, queue: this.queue.engine },
      `push-center listening on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${address.port}`);
    return address;
  }

  get stopping(): boolean {
    return this.closing !== undefined;
  }

  readiness(): Readiness {
    const checks: Record<string, boolean> = {};
    if (this.queue.engine === 'amqp') checks.amqp = this.queue.connected;
    if (this.config.redis.url !== undefined) checks.redis = this.cluster.connected;
    checks.consuming = this.started && this.closing === undefined && this.queue.consuming;
    return { ready: Object.values(checks).every(Boolean), checks };
  }

  /**
   * Graceful stop: take no new work, let in-flight messages finish (up to `SHUTDOWN_TIMEOUT_MS`), hand
   * the rest back to the queue, close the sockets so clients reconnect elsewhere, release connections.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const { logger } = this;
    logger.info('shutting down: no new work is taken');
    this.backpressure.stop();
    await this.queue.stopConsuming();
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, this.config.shutdownTimeoutMs, 'timeout').unref());
    if ((await Promise.race([this.dispatcher.idle(), timeout])) === 'timeout') {
      logger.warn({ inflight: this.dispatcher.inflight }, 'in-flight messages did not finish in time; they go back to the queue');
    }
    if (this.queue instanceof MemoryQueue && this.queue.length > 0) {
      logger.warn({ lost: this.queue.length }, 'embedded queue still held messages; they are lost');
    }
    this.gateway.disconnectAll();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await this.http.close();
    await this.queue.close();
    await Promise.all([this.inbox.close(), this.cluster.close()]);
    logger.info('stopped');
  }
}

function corsFor(origins: string[]): { origin: boolean | string[] } | undefined {
  if (origins.length === 0) return undefined;
  if (origins.includes('*')) return { origin: true };
  return { origin: origins };
}
