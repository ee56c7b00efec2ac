import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Server } from 'socket.io';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { NodeBus } from './cluster/bus.js';
import type { SessionDirectory } from './cluster/directory.js';
import { MemoryCluster } from './cluster/memory.js';
import { RedisBus } from './cluster/redis-bus.js';
import { connectRedis, duplicateForSubscriptions, guardUnawaited, quitRedis, redisUp, type RedisClient } from './cluster/redis-client.js';
import { RedisDirectory } from './cluster/redis-directory.js';
import { FAST_PATH_PART_NAMES, type Config, type FastPathParts } from './config/config.js';
import { BackpressureMonitor } from './dispatch/backpressure.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { openAccess, type Authenticator } from './gateway/auth.js';
import { FAST_PATH_OFF, probeFastPath } from './gateway/fast-path/probe.js';
import { Gateway } from './gateway/gateway.js';
import type { PushServer } from './gateway/protocol.js';
import { JwtAuthenticator } from './gateway/jwt-auth.js';
import { registerAdminRoutes, type AdminOverview } from './http/admin.js';
import { createHttpServer, registerOperationsRoutes, registerStaticRoutes, type DeadLettersView, type Readiness } from './http/server.js';
import type { AckLog } from './inbox/ack-log.js';
import { inboxDeadLetters } from './inbox/dead-letters.js';
import type { Inbox } from './inbox/inbox.js';
import { MemoryAckLog } from './inbox/memory-ack-log.js';
import { MemoryInbox } from './inbox/memory-inbox.js';
import { RedisAckLog } from './inbox/redis-ack-log.js';
import { RedisInbox } from './inbox/redis-inbox.js';
import { AmqpQueue } from './ingest/amqp/amqp-queue.js';
import { registerNotificationRoute, registerReceiptRoute } from './ingest/http-route.js';
import { MemoryQueue } from './ingest/memory-queue.js';
import type { NotificationQueue } from './ingest/queue.js';
import { NotificationParser } from './notification/parse.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics, type Dependency } from './observability/metrics.js';
import { MemoryIdClaims, MemoryReceipts } from './receipts/memory-receipts.js';
import type { IdClaims, ReceiptStore } from './receipts/receipts.js';
import { ReceiptRecorder } from './receipts/recorder.js';
import { RedisIdClaims, RedisReceipts } from './receipts/redis-receipts.js';
import { AmqpReceiptStream } from './receipts/receipt-stream.js';
import { MemoryIdempotencyKeys, RedisIdempotencyKeys, type IdempotencyKeys } from './http/idempotency.js';
import { orAfter } from './util/timeout.js';

/** Engines to use instead of the ones the configuration picks (tests, embedding). */
export interface AppOverrides {
  logger?: Logger;
  queue?: NotificationQueue;
  inbox?: Inbox;
  ackLog?: AckLog;
  /** The node's session directory and bus, both or neither (when built here, the bus starts first). */
  cluster?: NodeCluster;
  auth?: Authenticator;
  /** The `Idempotency-Key` store (e.g. one with a test's clock). */
  idempotencyKeys?: IdempotencyKeys;
}

/** A node's two cluster parts. */
interface NodeCluster {
  directory: SessionDirectory;
  bus: NodeBus;
}

/** Everything a node is built from; `App.create` picks and connects them from the configuration. */
interface Parts {
  logger: Logger;
  metrics: Metrics;
  queue: NotificationQueue;
  inbox: Inbox;
  ackLog: AckLog | undefined;
  cluster: NodeCluster;
  auth: Authenticator;
  /** Redis connections this node opened (closed last): clients of one Redis, or of a Redis Cluster. */
  redis: RedisClient[];
  /** The one of them that runs commands (the others subscribe). */
  redisCommands: RedisClient | undefined;
  /** The socket.io adapter that carries group and broadcast emits to the other nodes. */
  adapter: AdapterFactory | undefined;
  http: FastifyInstance;
  /** The parts of the socket fast path this node uses. */
  fastPath: FastPathParts;
  receipts: ReceiptRecorder;
  /** Undefined with `IDEMPOTENCY_TTL_MS=0`. */
  claims: IdClaims | undefined;
  idempotencyKeys: IdempotencyKeys | undefined;
}

type AdapterFactory = ReturnType<typeof createAdapter> | ReturnType<typeof createShardedAdapter>;

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** How often each node sweeps expired inbox entries of sessions nobody reads. */
const INBOX_SWEEP_MS = 60_000;

/** A reliable forward waits for the owning node's client ack, plus this for the round trip. */
const FORWARD_MARGIN_MS = 2000;

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
  /** Undefined with `DUPLICATE_WINDOW_MS=0`. */
  readonly ackLog: AckLog | undefined;
  readonly directory: SessionDirectory;
  readonly bus: NodeBus;
  readonly gateway: Gateway;
  readonly dispatcher: Dispatcher;
  readonly http: FastifyInstance;
  readonly io: PushServer;
  readonly receipts: ReceiptRecorder;
  private readonly claims: IdClaims | undefined;
  private readonly redis: RedisClient[];
  private readonly redisCommands: RedisClient | undefined;
  private readonly backpressure: BackpressureMonitor;
  private closing: Promise<void> | undefined;
  private started = false;

  /**
   * Connects the engines the configuration asks for (RabbitMQ when `AMQP_URL` is set, Redis when
   * `REDIS_URL` is) and builds the node. Fails with a message naming the setting when a dependency
   * cannot be reached or does not match (e.g. a queue declared with other arguments).
   */
  static async create(config: Config, overrides: AppOverrides = {}): Promise<App> {
    const logger = overrides.logger ?? createLogger(config.logLevel, config.nodeId);
    const metrics = new Metrics();
    const redis: RedisClient[] = [];
    // What this builds (not the overrides) is closed again, newest first, when a later step fails: a
    // node that did not start leaves no liveness key or directory entries in Redis, no inbox sweep and
    // no connection to RabbitMQ behind.
    const built: Array<{ close(): Promise<void> }> = [];
    try {
      const client = config.redis.url && (!overrides.inbox || !overrides.cluster)
        ? await connectRedis(config.redis.url, 'commands', logger)
        : undefined;
      if (client) redis.push(client);
      const forwardTimeoutMs = config.ackTimeoutMs + FORWARD_MARGIN_MS;
      let cluster = overrides.cluster;
      if (!cluster && client) {
        // One subscriber connection for both parts: each listens to its own channels.
        const subscriber = await duplicateForSubscriptions(client, 'bus', logger);
        redis.push(subscriber);
        const node = { nodeId: config.nodeId, keyPrefix: config.redis.keyPrefix, logger };
        const bus = new RedisBus(client, subscriber, { ...node, forwardTimeoutMs });
        built.push(bus);
        await bus.start();
        const directory = new RedisDirectory(client, subscriber, {
          ...node,
          heartbeatMs: config.redis.heartbeatMs,
          listening: () => bus.listening,
        });
        built.push(directory);
        await directory.start();
        cluster = { directory, bus };
      }
      if (!cluster) {
        // Embedded: a cluster of this one node.
        const hub = new MemoryCluster({ forwardTimeoutMs, logger });
        cluster = { directory: hub.directory(config.nodeId), bus: hub.bus(config.nodeId) };
      }
      let adapter: AdapterFactory | undefined;
      if (client) {
        const subscriber = await duplicateForSubscriptions(client, 'adapter', logger);
        redis.push(subscriber);
        const key = `${config.redis.keyPrefix}socket.io`;
        adapter = config.redis.adapter === 'sharded'
          ? createShardedAdapter(guardUnawaited(client, logger), guardUnawaited(subscriber, logger), { channelPrefix: key, subscriptionMode: 'dynamic' })
          : createAdapter(guardUnawaited(client, logger), guardUnawaited(subscriber, logger), { key });
      }
      const queue = overrides.queue ?? (config.amqp.url
        ? await AmqpQueue.connect({ ...config.amqp, url: config.amqp.url, logger, connectionName: `push-center:${config.nodeId}` })
        : new MemoryQueue({ prefetch: config.amqp.prefetch, maxLength: config.embeddedQueueMax }));
      if (!overrides.queue) built.push(queue);
      const receipts = await receiptRecorder(config, client, metrics, logger);
      built.push(receipts);
      const idempotencyTtlMs = config.idempotencyTtlMs;
      const claims = idempotencyTtlMs === 0 ? undefined : client
        ? new RedisIdClaims(client, { keyPrefix: config.redis.keyPrefix, windowMs: idempotencyTtlMs, maxIds: config.idempotencyMaxIds })
        : new MemoryIdClaims({ windowMs: idempotencyTtlMs, maxIds: config.idempotencyMaxIds });
      if (claims) built.push(claims);
      const idempotencyKeys = overrides.idempotencyKeys ?? (idempotencyTtlMs === 0 ? undefined : client
        ? new RedisIdempotencyKeys(client, { keyPrefix: config.redis.keyPrefix, ttlMs: idempotencyTtlMs })
        : new MemoryIdempotencyKeys({ ttlMs: idempotencyTtlMs, maxKeys: 100_000 }));
      const bounds = { maxPerSession: config.inboxMax, maxPerConnectedSession: config.inboxMaxConnected };
      const gaveUp = inboxDeadLetters(queue, metrics, logger.child({ component: 'inbox' }), receipts);
      const inbox = overrides.inbox ?? (client
        ? new RedisInbox(client, {
          keyPrefix: config.redis.keyPrefix,
          ...bounds,
          // Gives up the expiries of sessions that never come back, and dead-letters what a node that
          // died left behind (PROTOCOL §4.1: nothing silently lost).
          sweepIntervalMs: INBOX_SWEEP_MS,
          onError: (err, message) => logger.warn({ err }, message),
        }, gaveUp)
        : new MemoryInbox(bounds, gaveUp));
      if (!overrides.inbox) built.push(inbox);
      const ttlMs = config.duplicateWindowMs;
      const ackLog = overrides.ackLog ?? (ttlMs === 0 ? undefined : client
        ? new RedisAckLog(client, { keyPrefix: config.redis.keyPrefix, ttlMs })
        : new MemoryAckLog({ ttlMs }));
      if (!overrides.ackLog && ackLog) built.push(ackLog);
      const auth = overrides.auth ?? (config.auth.mode === 'jwt'
        ? await JwtAuthenticator.create({
          secret: config.auth.jwtSecret,
          publicKeyPem: config.auth.jwtPublicKey,
          maxIdLength: config.limits.maxIdLength,
          maxGroups: config.limits.maxGroups,
        })
        : openAccess);
      const http = await createHttpServer({
        bodyLimit: config.httpBodyMaxBytes,
        logger,
        metrics,
        trustProxy: config.trustProxy,
        rateLimitPerMinute: config.rateLimits.httpPerMinute,
        corsOrigins: config.corsOrigins,
        version: PACKAGE_VERSION,
        docs: config.httpDocs,
        access: {
          apiKeys: config.apiKeys,
          perKeyPerMinute: config.rateLimits.httpPerKeyPerMinute,
          metricsToken: config.metricsToken,
        },
      });
      const fastPath = await fastPathFor(config, logger);
      for (const [part, name] of Object.entries(FAST_PATH_PART_NAMES) as Array<[keyof FastPathParts, string]>) {
        metrics.fastPath.set({ part: name }, fastPath[part] ? 1 : 0);
      }
      return new App(config, {
        logger, metrics, queue, inbox, ackLog, cluster, auth, redis, redisCommands: client, adapter, http, fastPath,
        receipts, claims, idempotencyKeys,
      });
    } catch (err) {
      for (const part of built.reverse()) {
        await part.close().catch((closeErr: unknown) => logger.debug({ err: closeErr }, 'closing after a failed start-up'));
      }
      await Promise.all(redis.map(quitRedis));
      throw err;
    }
  }

  private constructor(config: Config, parts: Parts) {
    this.config = config;
    const { logger, metrics } = parts;
    this.logger = logger;
    this.metrics = metrics;
    this.queue = parts.queue;
    this.inbox = parts.inbox;
    this.ackLog = parts.ackLog;
    this.directory = parts.cluster.directory;
    this.bus = parts.cluster.bus;
    this.redis = parts.redis;
    this.receipts = parts.receipts;
    this.claims = parts.claims;
    this.redisCommands = parts.redisCommands;
    const parser = new NotificationParser(config.limits);

    const queue = this.queue;
    metrics.trackInflight(() => queue.inflight);
    metrics.trackDependencies(() => this.dependencies());

    this.http = parts.http;
    this.io = new Server(this.http.server, {
      serveClient: false,
      maxHttpBufferSize: config.socket.maxFrameBytes,
      cors: corsFor(config.corsOrigins),
      ...(parts.adapter ? { adapter: parts.adapter } : {}),
    }) as PushServer;
    this.gateway = new Gateway(this.io, {
      options: {
        trustProxy: config.trustProxy,
        connectsPer10s: config.rateLimits.connectsPer10s,
        registersPer10s: config.rateLimits.registersPer10s,
        ackTimeoutMs: config.ackTimeoutMs,
        ackHoldMs: config.ackHoldMs,
        maxPending: config.socket.maxPending,
        maxBuffered: config.socket.maxBuffered,
        maxIdLength: config.limits.maxIdLength,
        maxGroups: config.limits.maxGroups,
      },
      auth: parts.auth,
      directory: this.directory,
      fastPath: parts.fastPath,
      inbox: this.inbox,
      receipts: parts.receipts,
      metrics,
      logger: this.logger.child({ component: 'gateway' }),
    });
    this.dispatcher = new Dispatcher({
      ackHoldMs: config.ackHoldMs,
      parser,
      sessions: this.gateway,
      directory: this.directory,
      bus: this.bus,
      inbox: this.inbox,
      acked: this.ackLog,
      claims: parts.claims,
      receipts: parts.receipts,
      metrics,
      logger: this.logger.child({ component: 'dispatch' }),
    });
    this.backpressure = new BackpressureMonitor(
      {
        lagMs: config.backpressure.lagMs,
        heapBytes: config.backpressure.heapBytes,
        dependenciesUp: () => Object.values(this.dependencies()).every(Boolean),
      },
      this.queue,
      metrics,
      this.logger.child({ component: 'backpressure' }),
    );

    const startedAt = Date.now();
    this.directory.reportStatus(() => ({
      startedAt,
      sockets: this.gateway.connectionCount,
      sessions: this.gateway.sessionCount,
      inflight: this.queue.inflight,
      paused: this.backpressure.paused,
      version: PACKAGE_VERSION,
    }));

    registerNotificationRoute(this.http, {
      parser, queue: this.queue, metrics, receipts: parts.receipts, idempotencyKeys: parts.idempotencyKeys,
    });
    registerReceiptRoute(this.http, { maxIdLength: config.limits.maxIdLength, store: parts.receipts.store });
    registerStaticRoutes(this.http, new URL('../public/', import.meta.url));
    registerAdminRoutes(this.http, {
      maxIdLength: config.limits.maxIdLength,
      overview: () => this.adminOverview(),
      inbox: async (id, limit) => {
        const [size, entries] = await Promise.all([this.inbox.size(id), this.inbox.read(id, limit)]);
        return {
          size,
          entries: entries.map(({ id: messageId, event, sentAt, expiresAt, data }) => ({
            id: messageId, event, sentAt, expiresAt, preview: (JSON.stringify(data) ?? 'null').slice(0, 200),
          })),
        };
      },
    });
    registerOperationsRoutes(this.http, {
      metrics,
      readiness: () => this.readiness(),
      maxIdLength: config.limits.maxIdLength,
      cluster: () => this.directory.nodes(),
      deadLetters: (query) => this.queue instanceof MemoryQueue
        ? embeddedDeadLetters(this.queue, query)
        : { elsewhere: `dead letters are in the RabbitMQ queue '${config.amqp.deadLetterQueue}' (reason in header x-pushcenter-error); ` +
            '`push-center dead-letters list` shows them' },
      session: async (id) => {
        const [presence, inbox] = await Promise.all([this.directory.presence(id), this.inbox.size(id)]);
        return { online: presence.sockets > 0, sockets: presence.sockets, nodes: presence.nodes, inbox };
      },
    });
  }

  /** This node's consumer and dead letters (the admin page). */
  async adminOverview(): Promise<AdminOverview> {
    const { queue } = this;
    let waiting: number | null = null;
    try {
      waiting = await queue.deadLetterDepth();
    } catch (err) {
      this.logger.debug({ err }, 'could not ask the broker for the dead-letter queue depth');
    }
    const byReason: Record<string, number> = {};
    for (const { labels, value } of (await this.metrics.deadLetters.get()).values) byReason[String(labels.reason)] = value;
    return {
      node: this.config.nodeId,
      consumer: {
        engine: queue.engine,
        connected: queue.connected,
        consuming: queue.consuming,
        paused: this.backpressure.paused,
        inflight: queue.inflight,
        prefetch: this.config.amqp.prefetch,
      },
      deadLetters: { waiting, byReason },
    };
  }

  /** Each configured dependency: connected or not. */
  dependencies(): Partial<Record<Dependency, boolean>> {
    const up: Partial<Record<Dependency, boolean>> = {};
    if (this.queue.engine === 'amqp') up.amqp = this.queue.connected;
    if (this.redis.length > 0) {
      up.redis = this.redis.every((client) => (client === this.redisCommands ? redisUp(client) : client.status === 'ready'));
    }
    return up;
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
    const checks: Record<string, boolean> = { ...this.dependencies() };
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
    if ((await orAfter(this.dispatcher.idle(), this.config.shutdownTimeoutMs, 'timeout')) === 'timeout') {
      logger.warn({ inflight: this.dispatcher.inflight }, 'in-flight messages did not finish in time; they go back to the queue');
    }
    if (this.queue instanceof MemoryQueue && this.queue.length > 0) {
      logger.warn({ lost: this.queue.length }, 'embedded queue still held messages; they are lost');
    }
    this.gateway.disconnectAll();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await this.http.close();
    await this.queue.close();
    // The directory before the bus: other nodes stop forwarding here before nobody listens.
    await Promise.all([
      this.inbox.close(), this.ackLog?.close(), this.receipts.close(), this.claims?.close(),
      this.directory.close().then(() => this.bus.close()),
    ]);
    await Promise.all(this.redis.map(quitRedis));
    logger.info('stopped');
  }
}

/**
 * The receipts (PROTOCOL §6): kept in Redis when the node has it, else in memory; published to
 * `AMQP_RECEIPTS_EXCHANGE` when the node has RabbitMQ and the exchange is set.
 */
async function receiptRecorder(config: Config, client: RedisClient | undefined, metrics: Metrics, logger: Logger): Promise<ReceiptRecorder> {
  const log = logger.child({ component: 'receipts' });
  const { receiptsTtlMs: ttlMs } = config;
  let store: ReceiptStore | undefined;
  if (ttlMs > 0) {
    store = client
      ? new RedisReceipts(client, {
        keyPrefix: config.redis.keyPrefix,
        ttlMs,
        maxReceipts: config.receiptsMax ?? 1_000_000,
        onError: (err, events) => {
          metrics.receiptsLost.inc({ where: 'store' }, events);
          log.warn({ err, events }, 'receipt events could not be written to Redis; those receipts miss them');
        },
      })
      : new MemoryReceipts({ ttlMs, maxReceipts: config.receiptsMax ?? 100_000 });
  }
  const { url, receiptsExchange } = config.amqp;
  const stream = url && receiptsExchange !== ''
    ? await AmqpReceiptStream.connect({
      url,
      exchange: receiptsExchange,
      logger: log,
      connectionName: `push-center:${config.nodeId}`,
      onDropped: () => metrics.receiptsLost.inc({ where: 'stream' }),
    })
    : undefined;
  return new ReceiptRecorder(config.nodeId, store, stream, metrics);
}

/** The parts of the socket fast path to use, logged: none with SOCKET_FAST_PATH=off, else what the probe saw work. */
async function fastPathFor(config: Config, logger: Logger): Promise<FastPathParts> {
  const wanted = config.socket.fastPath;
  if (!Object.values(wanted).some(Boolean)) {
    logger.info('socket fast path off (SOCKET_FAST_PATH=off): socket.io writes and reads every packet');
    return FAST_PATH_OFF;
  }
  const probed = await probeFastPath();
  const { mismatches } = probed;
  const parts: FastPathParts = {
    eventWriter: wanted.eventWriter && probed.parts.eventWriter,
    groupWriter: wanted.groupWriter && probed.parts.groupWriter,
    ackReader: wanted.ackReader && probed.parts.ackReader,
  };
  if (mismatches.length > 0) {
    logger.warn({ mismatches }, 'socket fast path off: the installed socket.io stack is not the version it was tested with');
  } else if (Object.values(parts).every(Boolean)) {
    logger.info(parts, 'socket fast path on (SOCKET_FAST_PATH=off turns it off)');
  } else if (probed.parts.eventWriter && probed.parts.groupWriter && probed.parts.ackReader) {
    logger.info(parts, 'socket fast path: only the parts SOCKET_FAST_PATH lists are on');
  } else {
    logger.warn(parts, 'socket fast path: the parts that did not work with the installed socket.io, engine.io and ws are off');
  }
  return parts;
}

function embeddedDeadLetters(queue: MemoryQueue, query: { reason?: string | undefined; limit: number }): DeadLettersView {
  const matching = queue.deadLetters.filter((letter) => query.reason === undefined || letter.reason === query.reason);
  return {
    counts: Object.fromEntries(queue.deadLetterCounts),
    kept: queue.deadLetters.length,
    letters: matching.slice(-query.limit).map(({ at, reason, detail, message }) => ({
      at,
      reason,
      detail,
      ...(message.messageId === undefined ? {} : { id: message.messageId }),
      notification: parsedOrText(message.body),
    })),
  };
}

function parsedOrText(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function corsFor(origins: string[]): { origin: boolean | string[] } | undefined {
  if (origins.length === 0) return undefined;
  if (origins.includes('*')) return { origin: true };
  return { origin: origins };
}
