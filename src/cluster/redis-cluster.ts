import { randomBytes, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import { escapeKeyPart } from './redis-keys.js';
import type { Cluster, ForwardHandler, ForwardOutcome, ReplayHandler, SessionPresence } from './cluster.js';

export interface RedisClusterOptions {
  /** This node's id (`NODE_ID`); unique among the running nodes, `start()` refuses a duplicate. */
  nodeId: string;
  /** Namespace of every key and channel, e.g. `pushcenter:`; the same on every node of a cluster. */
  keyPrefix: string;
  /** How often this node refreshes its liveness key (and repairs its directory entries). Default 2000 ms. */
  heartbeatMs?: number;
  /**
   * How long the liveness key lives without a refresh: after that, other nodes treat this node as gone
   * and ignore its directory entries. Must exceed `heartbeatMs`. Default 3 × `heartbeatMs`.
   */
  nodeTtlMs?: number;
  /**
   * Key expiry of a session's directory hash, set on every write; every node rewrites its entries at a
   * quarter of it, so a session connected for days stays listed while a leaked hash still disappears.
   * Default 24 h.
   */
  directoryTtlMs?: number;
  /** How long a reliable forward waits for the owning node's outcome: the ack timeout plus a margin. */
  forwardTimeoutMs: number;
  /** How long `start()` waits for both clients to be ready. Default 10 000 ms. */
  startTimeoutMs?: number;
  logger: Logger;
}

/*
 * Key and channel layout (`<enc>` is an id escaped by `escapeKeyPart`, so any id is safe in a key or channel):
 *
 *   <prefix>node:<enc nodeId>       STRING  the node's incarnation (random per `start()`), PX = nodeTtlMs
 *   <prefix>session:<enc session>   HASH    nodeId -> "<sockets>:<incarnation>", PX = directoryTtlMs
 *   <prefix>bus:<enc nodeId>        channel the frames addressed to that node
 *
 * A directory entry counts only while its node's liveness key holds the same incarnation. So the entries
 * of a node that died stop counting when its key expires, and those of a node that crashed and came back
 * under the same NODE_ID stop counting at once, without anyone having to clean them up first. Readers
 * delete entries that do not count (compare-and-delete, so a fresh entry written meanwhile survives);
 * a node whose liveness lapsed (e.g. a long pause) notices on its next heartbeat and rewrites its entries.
 *
 * Frames (JSON) on the bus:
 *   { type: 'deliver', from, corr, session, notification }   sender -> owning node
 *   { type: 'outcome', corr, outcome }                      owning node -> sender, reliable messages only
 *   { type: 'replay', corr, session }                       any node -> a node holding the session
 */

const DEFAULT_HEARTBEAT_MS = 2000;
/** How long a directory lookup is reused at most (changes are announced, so usually much less). */
const DIRECTORY_CACHE_MS = 60_000;
/** Sessions cached at most; the cache starts over beyond it. */
const DIRECTORY_CACHE_MAX = 100_000;
const DEFAULT_DIRECTORY_TTL_MS = 24 * 60 * 60 * 1000;
const DEFAULT_START_TIMEOUT_MS = 10_000;
/** Sessions written per pipeline when the directory entries are rewritten in bulk. */
const WRITE_BATCH = 500;
/** How much of a malformed frame goes into the log. */
const LOGGED_FRAME_CHARS = 200;

/** Deletes KEYS[1] field ARGV[1] only if it still holds ARGV[2]: a reader never removes a newer entry. */
const DELETE_FIELD_IF_UNCHANGED = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`;

/** Deletes KEYS[1] only if it still holds ARGV[1]: a closing node never removes a successor's liveness. */
const DELETE_KEY_IF_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

interface DeliverFrame {
  type: 'deliver';
  from: string;
  corr: string;
  session: string;
  notification: Notification;
}

interface OutcomeFrame {
  type: 'outcome';
  corr: string;
  outcome: ForwardOutcome;
}

interface ReplayFrame {
  type: 'replay';
  corr: string;
  session: string;
}

type Frame = DeliverFrame | OutcomeFrame | ReplayFrame;

interface PendingForward {
  settle(outcome: ForwardOutcome): void;
}

/** A directory entry of another node, as read from the session's hash. */
interface Entry {
  node: string;
  sockets: number;
  incarnation: string;
  /** The raw field value, for compare-and-delete. */
  raw: string;
}

/**
 * The cluster port on Redis: the session directory is a hash per session, liveness is a key per node
 * with a short expiry, and the node bus is one pub/sub channel per node, so a forward reaches exactly
 * the node that holds the session.
 *
 * Guarantees:
 * - `remoteNodes` and `presence` count only nodes whose liveness key is current (see the layout above).
 * - A reliable `forward` settles exactly once: with the owning node's outcome, or `not_delivered` when
 *   nobody subscribes to its channel (at once), when it does not answer within `forwardTimeoutMs`, or
 *   when this node closes.
 * - Every operation rejects at once, rather than waiting, while the Redis client it needs is not ready
 *   (a connection that died unnoticed fails its commands when ioredis notices, within its retry limit).
 *   Pub/sub is at-most-once: a frame lost on a broken connection is a timeout, never a duplicate.
 * - A failed directory write is retried by the heartbeat until it lands: the directory converges to
 *   this node's real socket counts once Redis is back, even though the caller saw the write fail.
 * - Nothing here rejects unobserved or throws from a Redis event: failures of background work (heartbeat,
 *   replies, clean-up) are logged and retried by the next heartbeat where that makes sense.
 *
 * Both clients belong to the caller, who should create them with `enableOfflineQueue: false` and a small
 * `maxRetriesPerRequest` (see `redis-client.ts`), wait until they are ready, call `start()`, and quit them
 * after `close()`. The subscriber must be a connection of its own (`duplicate()`): a subscribed
 * connection runs no other commands.
 */
export class RedisCluster implements Cluster {
  readonly nodeId: string;
  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly nodeTtlMs: number;
  private readonly directoryTtlMs: number;
  private readonly forwardTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly logger: Logger;
  private readonly channel: string;
  private readonly livenessKey: string;
  /** Random per process start: tells this node's entries from those of an earlier process with its id. */
  private readonly incarnation = randomBytes(8).toString('hex');

  /**
   * Other nodes holding a session, as last read from Redis. Every node announces each change of its
   * entries on the directory channel, which drops the session from every cache; the TTL is a safety net
   * for announcements missed while the subscriber reconnected (the cache is also cleared then).
   */
  private readonly remoteCache = new Map<string, { nodes: string[]; at: number }>();
  /** Sessions announced as changed, with the sequence number of the announcement (see `remoteNodes`). */
  private readonly changedAt = new Map<string, number>();
  private changes = 0;
  private readonly directoryChannel: string;

  /** The truth about this node's sockets; the directory in Redis is a copy of it. */
  private readonly localSockets = new Map<string, number>();
  /** Sessions whose directory write failed; the heartbeat writes them again. */
  private readonly unsynced = new Set<string>();
  private readonly pending = new Map<string, PendingForward>();
  private handler: ForwardHandler | undefined;
  private replayHandler: ReplayHandler | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** The heartbeat running now, so `close()` can let it finish before removing the entries. */
  private beating: Promise<void> | undefined;
  private lastFullWrite = 0;
  private started = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    options: RedisClusterOptions,
  ) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const nodeTtlMs = options.nodeTtlMs ?? 3 * heartbeatMs;
    const directoryTtlMs = options.directoryTtlMs ?? DEFAULT_DIRECTORY_TTL_MS;
    requirePositive('heartbeatMs', heartbeatMs);
    requirePositive('forwardTimeoutMs', options.forwardTimeoutMs);
    if (!(nodeTtlMs > heartbeatMs)) {
      throw new RangeError(`nodeTtlMs (${nodeTtlMs}) must exceed heartbeatMs (${heartbeatMs}), or a live node would keep expiring`);
    }
    if (!(directoryTtlMs > nodeTtlMs)) {
      throw new RangeError(`directoryTtlMs (${directoryTtlMs}) must exceed nodeTtlMs (${nodeTtlMs})`);
    }
    if (options.nodeId.length === 0) throw new RangeError('nodeId must not be empty');
    this.nodeId = options.nodeId;
    this.prefix = options.keyPrefix;
    this.heartbeatMs = heartbeatMs;
    this.nodeTtlMs = nodeTtlMs;
    this.directoryTtlMs = directoryTtlMs;
    this.forwardTimeoutMs = options.forwardTimeoutMs;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.logger = options.logger.child({ component: 'cluster' });
    this.channel = this.busChannel(this.nodeId);
    this.directoryChannel = `${this.prefix}directory`;
    this.livenessKey = this.nodeKey(this.nodeId);
  }

  /** Both clients are ready and the node has not been closed. */
  get connected(): boolean {
    return !this.closed && this.redis.status === 'ready' && this.subscriber.status === 'ready';
  }

  /**
   * Joins the cluster: subscribes to this node's channel, then announces the node alive, so no other
   * node forwards to it before it can listen. Refuses a node id another running node subscribes with.
   */
  async start(): Promise<void> {
    if (this.closed) throw new Error('RedisCluster was closed; create a new one');
    if (this.started) throw new Error('RedisCluster.start() was called twice');
    this.started = true;
    this.redis.on('error', this.onCommandClientError);
    this.subscriber.on('error', this.onSubscriberError);
    this.subscriber.on('message', this.onMessage);
    try {
      await Promise.all([
        whenReady(this.redis, 'command', this.startTimeoutMs),
        whenReady(this.subscriber, 'subscriber', this.startTimeoutMs),
      ]);
      const listeners = await this.redis.pubsub('NUMSUB', this.channel);
      if (Number(listeners[1] ?? 0) > 0) {
        throw new Error(`node id "${this.nodeId}" is already used by a running node (it listens on ${this.channel}); `
          + 'give every node its own NODE_ID');
      }
      await this.subscriber.subscribe(this.channel, this.directoryChannel);
      this.subscriber.on('ready', this.forgetCache);
      // Unlike later heartbeats, the first one must succeed: a node nobody sees would only ever store.
      await this.writeLiveness();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
    this.logger.info({ node: this.nodeId, channel: this.channel }, 'joined the cluster');
  }

  async setLocalSockets(sessionId: string, sockets: number): Promise<void> {
    if (!Number.isSafeInteger(sockets) || sockets < 0) {
      throw new RangeError(`socket count must be a whole number >= 0, got ${sockets}`);
    }
    if (sockets > 0) this.localSockets.set(sessionId, sockets);
    else this.localSockets.delete(sessionId);
    // Once closed, this node's entries are gone and must stay gone (sockets disconnect during shutdown).
    if (this.closed) return;
    try {
      requireReady(this.redis);
      const transaction = this.redis.multi();
      this.queueEntryWrite(transaction, sessionId);
      transaction.publish(this.directoryChannel, sessionId);
      failOnCommandError(await transaction.exec());
    } catch (err) {
      this.unsynced.add(sessionId);
      throw err;
    }
  }

  /**
   * Cached (see `remoteCache`): a session that registers on another node is seen as soon as that node's
   * announcement arrives. `fresh` reads Redis regardless.
   */
  async remoteNodes(sessionId: string, options: { fresh?: boolean } = {}): Promise<string[]> {
    const now = Date.now();
    if (!options.fresh) {
      const known = this.knownRemoteNodes(sessionId, now);
      if (known) return known;
    }
    const asOf = this.changes;
    const nodes = (await this.liveEntries(sessionId)).map((entry) => entry.node);
    // A change announced while Redis was being read may not be in what was read: do not cache that.
    if ((this.changedAt.get(sessionId) ?? 0) <= asOf) {
      if (this.remoteCache.size >= DIRECTORY_CACHE_MAX) this.forgetCache();
      this.remoteCache.set(sessionId, { nodes, at: now });
    }
    return nodes;
  }

  knownRemoteNodes(sessionId: string, now = Date.now()): string[] | undefined {
    const cached = this.remoteCache.get(sessionId);
    return cached && now - cached.at < DIRECTORY_CACHE_MS ? cached.nodes : undefined;
  }

  async presence(sessionId: string): Promise<SessionPresence> {
    const entries = await this.liveEntries(sessionId);
    const own = this.localSockets.get(sessionId) ?? 0;
    const nodes = own > 0 ? [this.nodeId] : [];
    let sockets = own;
    for (const entry of entries) {
      nodes.push(entry.node);
      sockets += entry.sockets;
    }
    return { nodes, sockets };
  }

  /**
   * Publishes the message on the node's channel. Reliable: resolves with the outcome the node reports,
   * or `not_delivered` (see the class comment). Volatile: `delivered` means the node's subscription
   * received it, not that a socket did; `not_delivered` means no node listens under that id.
   * Rejects when a Redis client is not ready or the publish fails, and after `close()`.
   */
  async forward(nodeId: string, sessionId: string, notification: Notification): Promise<ForwardOutcome> {
    if (this.closed) throw new Error('the cluster connection is closed; cannot forward');
    requireReady(this.redis);
    // The outcome comes back through the subscriber: without it a reliable forward could only time out.
    requireReady(this.subscriber);
    const corr = randomUUID();
    const frame: DeliverFrame = { type: 'deliver', from: this.nodeId, corr, session: sessionId, notification };
    const payload = JSON.stringify(frame);
    const channel = this.busChannel(nodeId);
    if (!notification.reliable) {
      return (await this.redis.publish(channel, payload)) > 0 ? 'delivered' : 'not_delivered';
    }
    return new Promise<ForwardOutcome>((resolve, reject) => {
      // Registered before publishing: the outcome (on the subscriber) may overtake PUBLISH's reply.
      const timer = setTimeout(() => settle('not_delivered'), this.forwardTimeoutMs);
      const settle = (outcome: ForwardOutcome): void => {
        if (this.pending.delete(corr)) {
          clearTimeout(timer);
          resolve(outcome);
        }
      };
      this.pending.set(corr, { settle });
      this.redis.publish(channel, payload).then(
        (receivers) => {
          if (receivers === 0) settle('not_delivered');
        },
        (err: unknown) => {
          if (this.pending.delete(corr)) {
            clearTimeout(timer);
            reject(err);
          }
        },
      );
    });
  }

  async requestReplay(nodeId: string, sessionId: string): Promise<void> {
    if (this.closed) throw new Error('the cluster connection is closed; cannot ask for a replay');
    requireReady(this.redis);
    const frame: ReplayFrame = { type: 'replay', corr: randomUUID(), session: sessionId };
    await this.redis.publish(this.busChannel(nodeId), JSON.stringify(frame));
  }

  onReplay(handler: ReplayHandler): void {
    this.replayHandler = handler;
  }

  onForward(handler: ForwardHandler): void {
    this.handler = handler;
  }

  /**
   * Leaves the cluster: stops the heartbeat, settles every pending forward as `not_delivered`, removes
   * this node's liveness key and directory entries (best effort: if Redis is unreachable they stop
   * counting when the key expires) and unsubscribes. The clients stay open; they are the caller's.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const forward of [...this.pending.values()]) forward.settle('not_delivered');
    if (!this.started) return;
    await this.beating;
    try {
      // Entries first, then the liveness key: other nodes stop forwarding before the channel goes quiet.
      await this.writeEntries([...new Set([...this.localSockets.keys(), ...this.unsynced])], () => 0);
      await this.redis.eval(DELETE_KEY_IF_UNCHANGED, 1, this.livenessKey, this.incarnation);
    } catch (err) {
      this.logger.warn({ err }, 'could not remove this node from the session directory; its entries expire with its liveness key');
    }
    try {
      if (this.subscriber.status === 'ready') await this.subscriber.unsubscribe(this.channel, this.directoryChannel);
    } catch (err) {
      this.logger.debug({ err }, 'unsubscribe failed while closing');
    }
    this.subscriber.off('message', this.onMessage);
    this.subscriber.off('ready', this.forgetCache);
    this.subscriber.off('error', this.onSubscriberError);
    this.redis.off('error', this.onCommandClientError);
    this.localSockets.clear();
    this.unsynced.clear();
  }

  /**
   * Refreshes the liveness key and repairs the directory. Runs only while both clients are ready: a node
   * that cannot hear its channel should not be counted alive, and its entries then stop counting.
   */
  private beat(): void {
    if (this.closed || this.beating) return;
    if (this.redis.status !== 'ready' || this.subscriber.status !== 'ready') return;
    this.beating = this.writeLiveness()
      .catch((err: unknown) => this.logger.warn({ err }, 'heartbeat failed; retrying on the next one'))
      .finally(() => {
        this.beating = undefined;
      });
  }

  /**
   * Sets the liveness key and writes the directory entries that need it: all of them when the key had
   * lapsed (other nodes may have removed them meanwhile) or the periodic refresh is due, else only those
   * whose last write failed.
   */
  private async writeLiveness(): Promise<void> {
    const previous = await this.redis.set(this.livenessKey, this.incarnation, 'PX', this.nodeTtlMs, 'GET');
    const lapsed = previous !== this.incarnation;
    if (lapsed && this.lastFullWrite > 0) {
      this.logger.warn({ sessions: this.localSockets.size }, 'this node was counted as gone (liveness expired); rewriting its directory entries');
    }
    if (lapsed || Date.now() - this.lastFullWrite >= this.directoryTtlMs / 4) {
      const startedAt = Date.now();
      const sessions = new Set([...this.localSockets.keys(), ...this.unsynced]);
      this.unsynced.clear();
      await this.writeEntries([...sessions]);
      this.lastFullWrite = startedAt;
    } else if (this.unsynced.size > 0) {
      const sessions = [...this.unsynced];
      this.unsynced.clear();
      await this.writeEntries(sessions);
    }
  }

  /**
   * Writes the current local count of each session (HSET, or HDEL for none) in pipelines. Counts are read
   * when each batch is queued, and a client runs commands in order, so a later `setLocalSockets` always
   * lands after this. Sessions of a failed batch and of the batches after it are marked for the next try.
   */
  private async writeEntries(sessions: string[], count = (session: string) => this.localSockets.get(session) ?? 0): Promise<void> {
    for (let start = 0; start < sessions.length; start += WRITE_BATCH) {
      const batch = sessions.slice(start, start + WRITE_BATCH);
      try {
        requireReady(this.redis);
        const pipeline = this.redis.pipeline();
        for (const session of batch) this.queueEntryWrite(pipeline, session, count(session));
        failOnCommandError(await pipeline.exec());
      } catch (err) {
        if (!this.closed) for (const session of sessions.slice(start)) this.unsynced.add(session);
        throw err;
      }
    }
  }

  private queueEntryWrite(
    commands: ReturnType<Redis['pipeline']>,
    sessionId: string,
    sockets = this.localSockets.get(sessionId) ?? 0,
  ): void {
    const key = this.sessionKey(sessionId);
    if (sockets > 0) {
      commands.hset(key, this.nodeId, `${sockets}:${this.incarnation}`).pexpire(key, this.directoryTtlMs);
    } else {
      commands.hdel(key, this.nodeId);
    }
  }

  /** Entries of other nodes that count: a positive count and a liveness key with their incarnation. */
  private async liveEntries(sessionId: string): Promise<Entry[]> {
    requireReady(this.redis);
    const key = this.sessionKey(sessionId);
    const fields = await this.redis.hgetall(key);
    const candidates: Entry[] = [];
    const stale: Array<{ node: string; raw: string }> = [];
    for (const [node, raw] of Object.entries(fields)) {
      if (node === this.nodeId) continue;
      const entry = parseEntry(node, raw);
      if (entry) candidates.push(entry);
      else stale.push({ node, raw });
    }
    let live: Entry[] = [];
    if (candidates.length > 0) {
      const incarnations = await this.redis.mget(candidates.map((entry) => this.nodeKey(entry.node)));
      candidates.forEach((entry, i) => {
        if (incarnations[i] === entry.incarnation) live.push(entry);
        else stale.push(entry);
      });
    }
    if (stale.length > 0) this.removeStaleEntries(key, stale);
    return live;
  }

  /** Tidies the hash in the background; an entry that changed since it was read is left alone. */
  private removeStaleEntries(key: string, stale: Array<{ node: string; raw: string }>): void {
    const pipeline = this.redis.pipeline();
    for (const { node, raw } of stale) pipeline.eval(DELETE_FIELD_IF_UNCHANGED, 1, key, node, raw);
    pipeline.exec().then(
      (results) => {
        try {
          failOnCommandError(results);
          this.logger.debug({ key, nodes: stale.map((entry) => entry.node) }, 'removed directory entries of gone nodes');
        } catch (err) {
          this.logger.debug({ err, key }, 'could not remove directory entries of gone nodes');
        }
      },
      (err: unknown) => this.logger.debug({ err, key }, 'could not remove directory entries of gone nodes'),
    );
  }

  private forgetCache = (): void => {
    this.remoteCache.clear();
    this.changedAt.clear();
  };

  private onMessage = (channel: string, message: string): void => {
    if (channel === this.directoryChannel) {
      this.changes += 1;
      this.remoteCache.delete(message);
      if (this.changedAt.size >= DIRECTORY_CACHE_MAX) this.changedAt.clear();
      this.changedAt.set(message, this.changes);
      return;
    }
    if (channel !== this.channel) return;
    const frame = parseFrame(message);
    if (!frame) {
      this.logger.warn({ frame: message.slice(0, LOGGED_FRAME_CHARS) }, 'ignored a malformed frame on the node bus');
      return;
    }
    if (frame.type === 'outcome') {
      const forward = this.pending.get(frame.corr);
      if (forward) forward.settle(frame.outcome);
      else this.logger.debug({ corr: frame.corr }, 'outcome arrived after its forward timed out');
      return;
    }
    if (frame.type === 'replay') {
      if (!this.closed) this.replayHandler?.(frame.session);
      return;
    }
    void this.deliver(frame);
  };

  /** Runs the forward handler and, for a reliable message, reports the outcome; never rejects. */
  private async deliver(frame: DeliverFrame): Promise<void> {
    const { from, corr, session, notification } = frame;
    let outcome: ForwardOutcome = 'not_delivered';
    const handler = this.handler;
    if (this.closed) {
      this.logger.debug({ from, session, id: notification.id }, 'forwarded message arrived while closing');
    } else if (!handler) {
      this.logger.warn({ from, session, id: notification.id }, 'forwarded message arrived before a handler was installed');
    } else {
      try {
        outcome = await handler(session, notification);
      } catch (err) {
        this.logger.warn({ err, from, session, id: notification.id }, 'forward handler failed');
      }
    }
    if (!notification.reliable) return;
    const reply: OutcomeFrame = { type: 'outcome', corr, outcome };
    try {
      await this.redis.publish(this.busChannel(from), JSON.stringify(reply));
    } catch (err) {
      // The sender's timeout settles its forward as not_delivered.
      this.logger.warn({ err, to: from, session, id: notification.id }, 'could not report a forward outcome');
    }
  }

  // The composition root logs connection errors; these listeners make sure none is ever unhandled.
  private onCommandClientError = (err: Error): void => {
    this.logger.debug({ err: err.message }, 'redis command connection error');
  };

  private onSubscriberError = (err: Error): void => {
    this.logger.debug({ err: err.message }, 'redis subscriber connection error');
  };

  private nodeKey(nodeId: string): string {
    return `${this.prefix}node:${escapeKeyPart(nodeId)}`;
  }

  private sessionKey(sessionId: string): string {
    return `${this.prefix}session:${escapeKeyPart(sessionId)}`;
  }

  private busChannel(nodeId: string): string {
    return `${this.prefix}bus:${escapeKeyPart(nodeId)}`;
  }
}

function parseEntry(node: string, raw: string): Entry | undefined {
  const separator = raw.indexOf(':');
  if (separator <= 0) return undefined;
  const sockets = Number(raw.slice(0, separator));
  const incarnation = raw.slice(separator + 1);
  if (!Number.isSafeInteger(sockets) || sockets <= 0 || incarnation.length === 0) return undefined;
  return { node, sockets, incarnation, raw };
}

/** A frame from the bus, or undefined when it is not one this node understands. */
function parseFrame(message: string): Frame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || typeof value.corr !== 'string' || value.corr.length === 0) return undefined;
  if (value.type === 'outcome') {
    if (value.outcome !== 'delivered' && value.outcome !== 'not_delivered') return undefined;
    return { type: 'outcome', corr: value.corr, outcome: value.outcome };
  }
  if (value.type === 'replay') {
    if (typeof value.session !== 'string') return undefined;
    return { type: 'replay', corr: value.corr, session: value.session };
  }
  if (value.type === 'deliver') {
    if (typeof value.from !== 'string' || value.from.length === 0 || typeof value.session !== 'string') return undefined;
    const notification = parseNotification(value.notification);
    if (!notification) return undefined;
    return { type: 'deliver', from: value.from, corr: value.corr, session: value.session, notification };
  }
  return undefined;
}

/** Rebuilds the notification field by field, so a frame can hand the gateway nothing it does not expect. */
function parseNotification(value: unknown): Notification | undefined {
  if (!isRecord(value)) return undefined;
  const { id, sessions, groups, broadcast, event, data, reliable, enqueuedAt, expiresAt } = value;
  if (typeof id !== 'string' || typeof event !== 'string') return undefined;
  if (!isStringArray(sessions) || !isStringArray(groups)) return undefined;
  if (typeof broadcast !== 'boolean' || typeof reliable !== 'boolean') return undefined;
  if (!Number.isFinite(enqueuedAt) || !Number.isFinite(expiresAt)) return undefined;
  return {
    id,
    sessions,
    groups,
    broadcast,
    event,
    data,
    reliable,
    enqueuedAt: enqueuedAt as number,
    expiresAt: expiresAt as number,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function requirePositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
}

/** Fails fast instead of queueing a command behind a connection that is down. */
function requireReady(client: Redis): void {
  if (client.status !== 'ready') {
    throw new Error(`Redis is unavailable (connection ${client.status}); the session directory and node bus cannot be used`);
  }
}

/** A pipeline or transaction resolves even when single commands failed; turn the first failure into a rejection. */
function failOnCommandError(results: Array<[Error | null, unknown]> | null): void {
  if (results === null) throw new Error('Redis discarded the transaction');
  for (const [err] of results) if (err) throw err;
}

/** Resolves when the client is ready; rejects when it was closed or did not get ready in time. */
function whenReady(client: Redis, name: string, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end' || client.status === 'wait') {
    return Promise.reject(new Error(`the ${name} Redis client is not connecting (status ${client.status}); connect it before start()`));
  }
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const onEnd = (): void => done(new Error(`the ${name} Redis client was closed before it got ready`));
    const timer = setTimeout(() => done(new Error(`the ${name} Redis client was not ready within ${timeoutMs} ms`)), timeoutMs);
    client.on('ready', onReady);
    client.on('end', onEnd);
  });
}
