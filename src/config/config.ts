import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import { parseRedisUrl } from '../cluster/redis-url.js';

/** What push-center runs with: PROTOCOL §7, read once at start-up by the composition root. */
export interface Config {
  nodeEnv: string;
  port: number;
  host: string;
  nodeId: string;
  amqp: {
    /** Unset: the embedded in-process queue (not durable). */
    url: string | undefined;
    /**
     * The work queue; with `queueShards` > 1, the consistent-hash exchange in front of the shard queues
     * (PROTOCOL §9.1).
     */
    queue: string;
    /** `AMQP_QUEUE_SHARDS`: queues the ingest is spread over; every node consumes each of them. */
    queueShards: number;
    /** Unacked deliveries RabbitMQ hands this node at most, over all its shard consumers together. */
    prefetch: number;
    queueTtlMs: number;
    queueType: 'classic' | 'quorum';
    deadLetterQueue: string;
    deadLetterExchange: string;
    /** Topic exchange each final outcome is published to (`<outcome>.<target>`); empty: no stream. */
    receiptsExchange: string;
  };
  redis: {
    /** Unset: in-memory inbox and a single-node cluster. One Redis, or a Redis Cluster (`redis+cluster://`). */
    url: string | undefined;
    /** `REDIS_URL` names a Redis Cluster: ioredis's cluster client, sharded pub/sub for the bus and groups. */
    cluster: boolean;
    keyPrefix: string;
    /** How often a node renews its liveness; it counts as gone after three missed beats. */
    heartbeatMs: number;
    /**
     * socket.io adapter for groups and broadcasts: `classic` (every node receives every group emit) or
     * `sharded` (Redis 7 sharded pub/sub, a channel per room: only nodes with members receive it). Always
     * `sharded` on a Redis Cluster.
     */
    adapter: 'classic' | 'sharded';
  };
  auth: {
    mode: 'none' | 'jwt';
    jwtSecret: string | undefined;
    jwtPublicKey: string | undefined;
  };
  /** `API_KEYS`: empty leaves the HTTP API open; else every `/v1` route needs a key with its scope. */
  apiKeys: ApiKey[];
  /** `METRICS_TOKEN`: when set, `GET /metrics` needs it as a bearer token. */
  metricsToken: string | undefined;
  /** `HTTP_DOCS`: serve the OpenAPI description and Swagger UI at `/docs`. */
  httpDocs: boolean;
  ackTimeoutMs: number;
  /**
   * How long a reliable message waits for a client ack while it holds its broker (prefetch) slot; after
   * that it is written to the inbox and the slot is freed. A later ack (until ACK_TIMEOUT_MS) still
   * removes it from the inbox. Bounds how much a few slow or broken clients can slow everyone down.
   */
  ackHoldMs: number;
  inboxMax: number;
  /**
   * Inbox bound of a session that has sockets: the backlog of a client acking through a burst waits
   * there instead of being given up. Default 100 × INBOX_MAX.
   */
  inboxMaxConnected: number;
  /**
   * How long a session's acked message ids are remembered, so that a RabbitMQ redelivery of one is
   * acked instead of emitted again (PROTOCOL §4.1); 0 turns the suppression off.
   */
  duplicateWindowMs: number;
  /**
   * How long a notification's receipt is kept (`GET /v1/notifications/:id`); 0 keeps none. The embedded
   * node keeps at most `receiptsMax`, the oldest forgotten first.
   */
  receiptsTtlMs: number;
  /** Unset: 100,000 on the embedded node, 1,000,000 in Redis. */
  receiptsMax: number | undefined;
  /**
   * How long an `Idempotency-Key` and a notification id are remembered: a repeated key answers the first
   * request again, a repeated id is not delivered again; 0 turns both off.
   */
  idempotencyTtlMs: number;
  /** Notification ids remembered at the most for that; beyond it the oldest are forgotten (the window shrinks). */
  idempotencyMaxIds: number;
  /** Empty: same-origin only for HTTP, any origin for socket.io handshakes is refused. `*`: any origin. */
  corsOrigins: string[];
  logLevel: string;
  limits: NotificationLimits;
  httpBodyMaxBytes: number;
  /** Take the client address from X-Forwarded-For (behind nginx or another proxy you control). */
  trustProxy: boolean;
  rateLimits: {
    /** HTTP requests per client address per minute (0: no limit). */
    httpPerMinute: number;
    /** HTTP requests per API key per minute (0: no limit); only requests with a valid key count. */
    httpPerKeyPerMinute: number;
    /** socket.io connections per client address per 10 s (0: no limit). */
    connectsPer10s: number;
    /** `register` calls per client address per 10 s (0: no limit). */
    registersPer10s: number;
  };
  socket: {
    /** Largest frame a client may send (socket.io `maxHttpBufferSize`); clients only send small frames. */
    maxFrameBytes: number;
    /** Reliable messages a socket may have un-acked before it counts as too far behind. */
    maxPending: number;
    /** Packets waiting in a socket's write buffer before volatile messages to it are dropped. */
    maxBuffered: number;
    /**
     * The parts of the socket fast path (single-frame writes, acks read off the WebSocket, which rely on
     * the pinned socket.io, engine.io and ws internals) to use where the start-up probe saw them work:
     * `SOCKET_FAST_PATH` is `on` (all), `off` (none) or a list of parts.
     */
    fastPath: FastPathParts;
  };
  embeddedQueueMax: number;
  shutdownTimeoutMs: number;
  backpressure: {
    lagMs: number;
    heapBytes: number;
  };
}

/**
 * What an API key may do (PROTOCOL §6): `publish` notifications, `read` sessions (and, later, receipts
 * and the cluster view), `admin` the node (dead letters).
 */
export const API_SCOPES = ['publish', 'read', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** One entry of `API_KEYS`. */
export interface ApiKey {
  key: string;
  /** All three when the entry lists none. */
  scopes: ApiScope[];
}

/** The parts of the socket fast path, each on or off. */
export interface FastPathParts {
  /** Envelopes written as single frames. */
  eventWriter: boolean;
  /** socket.io's own packets (group and broadcast emits) written as single frames. */
  groupWriter: boolean;
  /** Clients' acks read off the WebSocket. */
  ackReader: boolean;
}

/** Each part's name in `SOCKET_FAST_PATH` and in the `pushcenter_fast_path` metric. */
export const FAST_PATH_PART_NAMES: Readonly<Record<keyof FastPathParts, string>> = {
  eventWriter: 'event_writer',
  groupWriter: 'group_writer',
  ackReader: 'ack_reader',
};

export interface NotificationLimits {
  maxMessageBytes: number;
  maxSessions: number;
  maxGroups: number;
  maxIdLength: number;
  maxBatch: number;
  /** The queue TTL: the default and the maximum `ttl` of a notification. */
  maxTtlMs: number;
}

/** A configuration that cannot run; the message names every bad variable and what it accepts. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Source = Record<string, string | number | boolean | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,255}$/;
/** More shards than this spread the broker's work no further on any cluster push-center is meant for. */
export const MAX_QUEUE_SHARDS = 64;
/** What a bearer token may hold: visible ASCII. */
const TOKEN = /^[\x21-\x7e]+$/;
/** An API key: visible ASCII but the two separators of `API_KEYS`. */
const API_KEY = /^[\x21-\x2b\x2d-\x39\x3b-\x7e]+$/;

export const DEFAULTS_FILE = fileURLToPath(new URL('../../config/default.json', import.meta.url));

/** Reads `config/default.json`; a missing file means no defaults beyond the built-in ones. */
export function readDefaults(file = DEFAULTS_FILE): Source {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Source;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
}

/**
 * Builds the configuration from environment variables over the defaults file.
 * Every problem is collected, so one start-up attempt shows them all.
 */
export function loadConfig(env: Source = process.env, defaults: Source = readDefaults()): Config {
  const problems: string[] = [];
  const raw = (name: string): string | undefined => {
    const value = env[name] ?? defaults[name];
    if (value === undefined || value === null) return undefined;
    const text = String(value).trim();
    return text === '' ? undefined : text;
  };
  const str = (name: string, fallback: string, check?: RegExp, allowed?: string): string => {
    const value = raw(name) ?? fallback;
    if (check && !check.test(value)) problems.push(`${name}=${JSON.stringify(value)}: must be ${allowed}`);
    return value;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const text = raw(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(text)}: must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const value = raw(name) ?? fallback;
    if (!allowed.includes(value as T)) {
      problems.push(`${name}=${JSON.stringify(value)}: must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return value as T;
  };
  const url = (name: string, protocols: string[]): string | undefined => {
    const value = raw(name);
    if (value === undefined) return undefined;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) throw new Error('protocol');
    } catch {
      problems.push(`${name}: must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
    }
    return value;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const text = raw(name);
    if (text === undefined) return fallback;
    if (/^(true|1|yes)$/i.test(text)) return true;
    if (/^(false|0|no)$/i.test(text)) return false;
    problems.push(`${name}=${JSON.stringify(text)}: must be true or false`);
    return fallback;
  };
  const list = (name: string): string[] =>
    (raw(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');

  // A secret is never echoed in a problem: only its length.
  const secret = (name: string): string | undefined => {
    const value = raw(name);
    if (value !== undefined && !TOKEN.test(value)) {
      problems.push(`${name} (${characters(value.length)}): must be visible ASCII characters without whitespace`);
    }
    return value;
  };

  const heapWatermark = (): number => {
    const text = raw('BACKPRESSURE_HEAP_MB');
    if (text === undefined || text === 'auto') return defaultHeapWatermark();
    const mb = Number(text);
    if (!/^\d+$/.test(text) || mb < 16 || mb > 65_536) {
      problems.push(`BACKPRESSURE_HEAP_MB=${JSON.stringify(text)}: must be auto or a whole number from 16 to 65536`);
      return defaultHeapWatermark();
    }
    return mb * 1024 * 1024;
  };

  const fastPathSetting = (): FastPathParts => {
    const text = raw('SOCKET_FAST_PATH') ?? 'on';
    const names = Object.values(FAST_PATH_PART_NAMES);
    const listed = text === 'on' ? names : text === 'off' ? [] : list('SOCKET_FAST_PATH');
    if (listed.some((name) => !names.includes(name))) {
      problems.push(`SOCKET_FAST_PATH=${JSON.stringify(text)}: must be on, off or a list of ${names.join(', ')}`);
    }
    const on = (part: keyof FastPathParts): boolean => listed.includes(FAST_PATH_PART_NAMES[part]);
    return { eventWriter: on('eventWriter'), groupWriter: on('groupWriter'), ackReader: on('ackReader') };
  };

  const nodeEnv = raw('NODE_ENV') ?? 'development';
  const ackTimeoutMs = int('ACK_TIMEOUT_MS', 10_000, 100, 600_000);
  const inboxMax = int('INBOX_MAX', 1000, 1, 1_000_000);
  // Bounded below by INBOX_MAX: a connected session's inbox never holds less than an absent one's.
  const inboxMaxConnected = int('INBOX_MAX_CONNECTED', inboxMax * 100, inboxMax, 100_000_000);
  const queueTtlMs = int('AMQP_QUEUE_TTL_MS', 600_000, 1000, 2 ** 31 - 1);
  const queueType = oneOf('AMQP_QUEUE_TYPE', 'classic', ['classic', 'quorum'] as const);
  const queue = str('AMQP_QUEUE', 'pushcenter.notifications', QUEUE_NAME, 'a queue name of A-Z a-z 0-9 _ . : -');
  const queueShards = int('AMQP_QUEUE_SHARDS', 1, 1, MAX_QUEUE_SHARDS);
  // The prefetch is split over the shard consumers, and RabbitMQ caps a quorum queue consumer's at 2,000.
  const prefetch = int('AMQP_PREFETCH', 400, 1, queueType === 'quorum' ? Math.min(65_535, 2000 * queueShards) : 65_535);
  if (prefetch < queueShards) {
    problems.push(`AMQP_PREFETCH=${prefetch}: must be at least AMQP_QUEUE_SHARDS (${queueShards}): ` +
      'each shard\'s consumer takes a part of the prefetch');
  }
  const longestShard = shardQueueName(queue, queueShards - 1);
  if (queueShards > 1 && longestShard.length > 255) {
    problems.push(`AMQP_QUEUE: at most ${255 - (longestShard.length - queue.length)} characters with ` +
      `AMQP_QUEUE_SHARDS=${queueShards}: its shard queues are named like ${JSON.stringify(shardQueueName('…', queueShards - 1))}`);
  }

  const jwtSecret = raw('AUTH_JWT_SECRET');
  const jwtPublicKey = raw('AUTH_JWT_PUBLIC_KEY');
  const authModeText = raw('AUTH_MODE');
  let authMode: 'none' | 'jwt' = jwtSecret || jwtPublicKey ? 'jwt' : 'none';
  if (authModeText !== undefined) {
    authMode = oneOf('AUTH_MODE', authMode, ['none', 'jwt'] as const);
    if (authMode === 'jwt' && !jwtSecret && !jwtPublicKey) {
      problems.push('AUTH_MODE=jwt: needs AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256/ES256, PEM)');
    }
    if (authMode === 'none' && (jwtSecret || jwtPublicKey)) {
      problems.push('AUTH_MODE=none: contradicts the AUTH_JWT_SECRET / AUTH_JWT_PUBLIC_KEY that is set; unset one');
    }
  }
  if (jwtSecret && jwtPublicKey) {
    problems.push('AUTH_JWT_SECRET and AUTH_JWT_PUBLIC_KEY: set only one of them');
  }
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    problems.push('AUTH_JWT_SECRET: must be at least 32 characters (HS256 needs a 256-bit key)');
  }
  if (jwtPublicKey !== undefined && !jwtPublicKey.includes('-----BEGIN PUBLIC KEY-----')) {
    problems.push('AUTH_JWT_PUBLIC_KEY: must be a PEM public key (-----BEGIN PUBLIC KEY-----)');
  }
  if (nodeEnv === 'production' && authMode === 'none' && authModeText !== 'none') {
    problems.push(
      'NODE_ENV=production without authentication: set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, ' +
        'or AUTH_MODE=none to run without it on purpose',
    );
  }

  const redisUrl = raw('REDIS_URL');
  let redisCluster = false;
  if (redisUrl !== undefined) {
    try {
      redisCluster = parseRedisUrl(redisUrl).cluster;
    } catch (err) {
      problems.push(`REDIS_URL: ${(err as Error).message}`);
    }
  }
  // On a Redis Cluster a classic PUBLISH is copied to every master: groups take sharded pub/sub there.
  const redisAdapter = oneOf('REDIS_ADAPTER', redisCluster ? 'sharded' : 'classic', ['classic', 'sharded'] as const);
  if (redisCluster && redisAdapter === 'classic') {
    problems.push('REDIS_ADAPTER=classic: a Redis Cluster (REDIS_URL=redis+cluster://…) takes the sharded adapter only, ' +
      'since a classic PUBLISH is copied to every master of the cluster; unset REDIS_ADAPTER or set it to sharded');
  }

  const corsOrigins = list('CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`CORS_ORIGINS: ${JSON.stringify(origin)} must be * or an origin like https://app.example.com`);
    }
  }

  const config: Config = {
    nodeEnv,
    port: int('PORT', 3000, 0, 65_535),
    host: str('HOST', '0.0.0.0'),
    nodeId: str('NODE_ID', `${hostname()}-${randomBytes(3).toString('hex')}`, /^[A-Za-z0-9_.:-]{1,64}$/,
      '1 to 64 of A-Z a-z 0-9 _ . : -'),
    amqp: {
      url: url('AMQP_URL', ['amqp:', 'amqps:']),
      queue,
      queueShards,
      prefetch,
      queueTtlMs,
      queueType,
      deadLetterQueue: str('AMQP_DEAD_LETTER_QUEUE', 'pushcenter.dead', QUEUE_NAME,
        'a queue name of A-Z a-z 0-9 _ . : -'),
      deadLetterExchange: str('AMQP_DEAD_LETTER_EXCHANGE', 'pushcenter.dead', QUEUE_NAME,
        'an exchange name of A-Z a-z 0-9 _ . : -'),
      // Set and empty turns the stream off (unset takes the default).
      receiptsExchange: String(env.AMQP_RECEIPTS_EXCHANGE ?? 'x').trim() === ''
        ? ''
        : str('AMQP_RECEIPTS_EXCHANGE', 'pushcenter.receipts', QUEUE_NAME, 'an exchange name of A-Z a-z 0-9 _ . : -, or empty for no receipts stream'),
    },
    redis: {
      url: redisUrl,
      cluster: redisCluster,
      keyPrefix: str('REDIS_KEY_PREFIX', 'pushcenter:', /^[A-Za-z0-9_.:-]{0,64}$/, 'up to 64 of A-Z a-z 0-9 _ . : -'),
      heartbeatMs: int('CLUSTER_HEARTBEAT_MS', 2000, 100, 60_000),
      adapter: redisAdapter,
    },
    auth: { mode: authMode, jwtSecret, jwtPublicKey },
    apiKeys: parseApiKeys(raw('API_KEYS'), problems),
    metricsToken: secret('METRICS_TOKEN'),
    // The API's description helps whoever probes a production node as much as its developers.
    httpDocs: oneOf('HTTP_DOCS', nodeEnv === 'production' ? 'off' : 'on', ['on', 'off'] as const) === 'on',
    ackTimeoutMs,
    ackHoldMs: Math.min(int('ACK_HOLD_MS', 1000, 10, 600_000), ackTimeoutMs),
    inboxMax,
    inboxMaxConnected,
    duplicateWindowMs: int('DUPLICATE_WINDOW_MS', 180_000, 0, 86_400_000),
    receiptsTtlMs: int('RECEIPTS_TTL_MS', 86_400_000, 0, 30 * 86_400_000),
    receiptsMax: raw('RECEIPTS_MAX') === undefined ? undefined : int('RECEIPTS_MAX', 100_000, 1, 100_000_000),
    idempotencyTtlMs: int('IDEMPOTENCY_TTL_MS', 86_400_000, 0, 30 * 86_400_000),
    idempotencyMaxIds: int('IDEMPOTENCY_MAX_IDS', 2_000_000, 1, 1_000_000_000),
    corsOrigins,
    logLevel: oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    limits: {
      maxMessageBytes: int('MAX_MESSAGE_BYTES', 65_536, 256, 16 * 1024 * 1024),
      maxSessions: int('MAX_SESSIONS_PER_MESSAGE', 1000, 1, 100_000),
      maxGroups: int('MAX_GROUPS_PER_MESSAGE', 100, 1, 10_000),
      maxIdLength: int('MAX_ID_LENGTH', 128, 8, 1024),
      maxBatch: int('MAX_BATCH', 1000, 1, 100_000),
      maxTtlMs: queueTtlMs,
    },
    httpBodyMaxBytes: int('HTTP_BODY_MAX_BYTES', 1024 * 1024, 1024, 256 * 1024 * 1024),
    trustProxy: bool('TRUST_PROXY', false),
    rateLimits: {
      httpPerMinute: int('RATE_LIMIT_HTTP_PER_MIN', 6000, 0, 10_000_000),
      httpPerKeyPerMinute: int('RATE_LIMIT_HTTP_PER_KEY_PER_MIN', 60_000, 0, 10_000_000),
      connectsPer10s: int('RATE_LIMIT_CONNECTS_PER_10S', 1000, 0, 10_000_000),
      registersPer10s: int('RATE_LIMIT_REGISTERS_PER_10S', 2000, 0, 10_000_000),
    },
    socket: {
      maxFrameBytes: int('SOCKET_MAX_FRAME_BYTES', 16_384, 1024, 16 * 1024 * 1024),
      maxPending: int('SOCKET_MAX_PENDING', 100, 1, 100_000),
      maxBuffered: int('SOCKET_MAX_BUFFERED', 1000, 1, 1_000_000),
      fastPath: fastPathSetting(),
    },
    embeddedQueueMax: int('EMBEDDED_QUEUE_MAX', 100_000, 1, 10_000_000),
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    backpressure: {
      lagMs: int('BACKPRESSURE_LAG_MS', 200, 10, 60_000),
      heapBytes: heapWatermark(),
    },
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * The name of shard `index` of the work queue `queue` when the ingest is sharded (PROTOCOL §9.1):
 * `<queue>.shard-<index>`, from 0.
 */
export function shardQueueName(queue: string, index: number): string {
  return `${queue}.shard-${index}`;
}

/** The queues the nodes consume: `queue` itself with one shard, else its shard queues. */
export function workQueues(amqp: Pick<Config['amqp'], 'queue' | 'queueShards'>): string[] {
  if (amqp.queueShards === 1) return [amqp.queue];
  return Array.from({ length: amqp.queueShards }, (_, index) => shardQueueName(amqp.queue, index));
}

/**
 * Reads `API_KEYS`: comma-separated entries `key` (all scopes) or `key:scope+scope`, whitespace around
 * entries, keys and scopes ignored, empty entries skipped. A malformed entry adds a problem that names it
 * by its position and a redacted form: a key is never printed whole.
 */
function parseApiKeys(text: string | undefined, problems: string[]): ApiKey[] {
  const keys: ApiKey[] = [];
  const positions = new Map<string, number>();
  (text ?? '').split(',').forEach((item, index) => {
    const entry = item.trim();
    if (entry === '') return;
    const position = index + 1;
    const colon = entry.indexOf(':');
    const key = (colon < 0 ? entry : entry.slice(0, colon)).trim();
    const problem = (what: string) => problems.push(`API_KEYS entry ${position} (${redactKey(key)}): ${what}`);
    if (key === '') {
      problems.push(`API_KEYS entry ${position}: the key before ":" is empty; an entry is key or key:scope+scope ` +
        '(e.g. API_KEYS=backend-7Hq2:publish,dashboard-Xp9:read+admin)');
      return;
    }
    if (!API_KEY.test(key)) {
      const what = /\s/.test(key) ? 'whitespace' : 'a character outside visible ASCII';
      problem(`the key holds ${what}; a key is visible ASCII characters other than "," and ":" (e.g. from openssl rand -hex 24)`);
      return;
    }
    const scopes = colon < 0 ? [...API_SCOPES] : parseScopes(entry.slice(colon + 1), problem);
    if (scopes === undefined) return;
    const earlier = positions.get(key);
    if (earlier !== undefined) {
      problem(`the same key as entry ${earlier}; list each key once, with all its scopes (key:publish+read)`);
      return;
    }
    positions.set(key, position);
    keys.push({ key, scopes });
  });
  return keys;
}

/** The scopes after an entry's `:`; undefined when one is not a scope (the problem is told). */
function parseScopes(text: string, problem: (what: string) => void): ApiScope[] | undefined {
  if (text.includes(':')) {
    problem('more than one ":"; a key may not hold ":", and scopes follow the first one');
    return undefined;
  }
  const names = text.split('+').map((name) => name.trim());
  if (names.length === 1 && names[0] === '') {
    problem(`no scope after ":"; list scopes (${API_SCOPES.join(', ')}, joined with +), or drop the ":" for all of them`);
    return undefined;
  }
  const unknown = names.filter((name) => !(API_SCOPES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    // A word is shown (a typo of a scope); anything else may be part of a key and is not.
    const shown = unknown.map((name) => (/^[a-z_-]{0,20}$/.test(name) ? JSON.stringify(name) : `(${characters(name.length)})`));
    problem(`unknown scope ${shown.join(', ')}; scopes are ${API_SCOPES.join(', ')}, joined with + (e.g. dashboard-Xp9:read+admin)`);
    return undefined;
  }
  return API_SCOPES.filter((scope) => names.includes(scope));
}

/** A key as a problem may show it: its first characters (at most a quarter of it, at most 4) and its length. */
function redactKey(key: string): string {
  const shown = key.slice(0, Math.min(4, Math.floor(key.length / 4)));
  return `${JSON.stringify(`${shown}…`)}, ${characters(key.length)}`;
}

function characters(count: number): string {
  return `${count} character${count === 1 ? '' : 's'}`;
}

/**
 * `BACKPRESSURE_HEAP_MB=auto` (the default): three quarters of the heap V8 may grow to in this process
 * (its default, or what `--max-old-space-size` set), so the watermark holds consumption before the heap
 * limit is near, whatever the limit is.
 */
export function defaultHeapWatermark(heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  return Math.floor(heapLimitBytes * 0.75);
}
