import { randomBytes } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { LuaScript } from '../util/lua-script.js';
import { requireNodeId, requirePositiveMs, requireSocketCount } from './checks.js';
import { RemoteNodesCache } from './directory-cache.js';
import type { NodeStatus, SessionDirectory, SessionPresence } from './directory.js';
import {
  clientsReady,
  DEFAULT_START_TIMEOUT_MS,
  failOnCommandError,
  getAll,
  listenTo,
  pipelined,
  requireReady,
  type RedisClient,
  type RedisNodeOptions,
} from './redis-client.js';
import { formatEntry, LiveEntries } from './redis-entries.js';
import { ClusterNames } from './redis-keys.js';

export interface RedisDirectoryOptions extends RedisNodeOptions {
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
  /**
   * Whether this node hears its bus channel now (`RedisBus.listening`): liveness is announced and
   * refreshed only while it does, since other nodes forward to every node they count alive.
   */
  listening: () => boolean;
}

const DEFAULT_HEARTBEAT_MS = 2000;
const DEFAULT_DIRECTORY_TTL_MS = 24 * 60 * 60 * 1000;
/** Sessions written per pipeline when the directory entries are rewritten in bulk. */
const WRITE_BATCH = 500;

const deleteKeyIfUnchanged = LuaScript.load(new URL('./delete-key-if-unchanged.lua', import.meta.url));

/**
 * The session directory on Redis: a hash per session, and a liveness key per node with a short expiry
 * (layout in `redis-keys.ts`). An entry counts only while its node's liveness key holds the entry's
 * incarnation. So the entries of a node that died stop counting when its key expires, and those of a node
 * that crashed and came back under the same NODE_ID stop counting at once, without anyone having to clean
 * them up first. Readers delete entries that do not count (compare-and-delete, so a fresh entry written
 * meanwhile survives); a node whose liveness lapsed (e.g. a long pause) notices on its next heartbeat
 * and rewrites its entries.
 *
 * Guarantees, beyond the port's:
 * - Liveness is refreshed only while the command client is ready and the node's bus listens: a node that
 *   cannot hear its channel is not counted alive, and its entries stop counting with it.
 * - Every operation rejects at once, rather than waiting, while the command client is not ready.
 * - A failed directory write is retried by the heartbeat until it lands: the directory converges to
 *   this node's real socket counts once Redis is back, even though the caller saw the write fail.
 * - Nothing here rejects unobserved or throws from a Redis event: failures of background work (heartbeat,
 *   clean-up) are logged and retried by the next heartbeat where that makes sense.
 *
 * On a Redis Cluster every key is its own (no hash tags): each command and transaction touches one key,
 * reads of several liveness keys are a GET each, and bulk writes go out in a pipeline per master.
 *
 * The clients belong to the caller (see `RedisBus`, whose subscriber connection this may share).
 */
/** A node's status as another node wrote it. */
function parseStatus(json: string): Omit<NodeStatus, 'id'> & { incarnation?: string } {
  try {
    return JSON.parse(json) as Omit<NodeStatus, 'id'> & { incarnation?: string };
  } catch {
    return { startedAt: 0, sockets: 0, sessions: 0, inflight: 0, paused: false, version: 'unknown' };
  }
}

export class RedisDirectory implements SessionDirectory {
  readonly nodeId: string;
  private readonly names: ClusterNames;
  private readonly heartbeatMs: number;
  private readonly nodeTtlMs: number;
  private readonly directoryTtlMs: number;
  private readonly startTimeoutMs: number;
  private readonly listening: () => boolean;
  private readonly logger: Logger;
  private readonly livenessKey: string;
  /** Random per process start: tells this node's entries from those of an earlier process with its id. */
  private readonly incarnation = randomBytes(8).toString('hex');
  private readonly cache = new RemoteNodesCache();
  private readonly entries: LiveEntries;
  /** The truth about this node's sockets; the directory in Redis is a copy of it. */
  private readonly localSockets = new Map<string, number>();
  /** Sessions whose directory write failed; the heartbeat writes them again. */
  private readonly unsynced = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** The heartbeat running now, so `close()` can let it finish before removing the entries. */
  private beating: Promise<void> | undefined;
  private lastFullWrite = 0;
  private statusSource: (() => Omit<NodeStatus, 'id'>) | undefined;
  private stopListening: (() => void) | undefined;
  private started = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly subscriber: RedisClient,
    options: RedisDirectoryOptions,
  ) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const nodeTtlMs = options.nodeTtlMs ?? 3 * heartbeatMs;
    const directoryTtlMs = options.directoryTtlMs ?? DEFAULT_DIRECTORY_TTL_MS;
    requirePositiveMs('heartbeatMs', heartbeatMs);
    if (!(nodeTtlMs > heartbeatMs)) {
      throw new RangeError(`nodeTtlMs (${nodeTtlMs}) must exceed heartbeatMs (${heartbeatMs}), or a live node would keep expiring`);
    }
    if (!(directoryTtlMs > nodeTtlMs)) {
      throw new RangeError(`directoryTtlMs (${directoryTtlMs}) must exceed nodeTtlMs (${nodeTtlMs})`);
    }
    requireNodeId(options.nodeId);
    this.nodeId = options.nodeId;
    this.names = new ClusterNames(options.keyPrefix);
    this.heartbeatMs = heartbeatMs;
    this.nodeTtlMs = nodeTtlMs;
    this.directoryTtlMs = directoryTtlMs;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.listening = options.listening;
    this.logger = options.logger.child({ component: 'directory' });
    this.livenessKey = this.names.nodeKey(this.nodeId);
    this.entries = new LiveEntries(redis, this.names, this.nodeId, this.logger);
  }

  /** Both clients are ready (changes are announced through the subscriber) and it has not been closed. */
  get connected(): boolean {
    return !this.closed && this.redis.status === 'ready' && this.subscriber.status === 'ready';
  }

  /**
   * Joins the cluster: subscribes to the change announcements, then announces this node alive. The
   * directory owns a node's start-up order: it refuses to announce a node whose bus does not listen yet
   * (start the `RedisBus` first), so no other node forwards to a node that cannot hear.
   */
  async start(): Promise<void> {
    if (this.closed) throw new Error('RedisDirectory was closed; create a new one');
    if (this.started) throw new Error('RedisDirectory.start() was called twice');
    this.started = true;
    this.stopListening = listenTo(this.redis, this.subscriber, this.logger, this.onMessage);
    try {
      await clientsReady(this.redis, this.subscriber, this.startTimeoutMs);
      if (!this.listening()) throw new Error('start the node bus before the session directory: a node is announced alive only once it hears its channel');
      await this.subscriber.subscribe(this.names.directoryChannel);
      this.subscriber.on('ready', this.forgetCache);
      // Unlike later heartbeats, the first one must succeed: a node nobody sees would only ever store.
      await this.writeLiveness();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
    this.logger.info({ node: this.nodeId }, 'joined the cluster');
  }

  async setLocalSockets(sessionId: string, sockets: number): Promise<void> {
    requireSocketCount(sockets);
    if (sockets > 0) this.localSockets.set(sessionId, sockets);
    else this.localSockets.delete(sessionId);
    // Once closed, this node's entries are gone and must stay gone (sockets disconnect during shutdown).
    if (this.closed) return;
    try {
      requireReady(this.redis);
      const transaction = this.redis.multi();
      this.queueEntryWrite(transaction, sessionId);
      // A classic PUBLISH names no key, so on a Redis Cluster the transaction stays in the session key's
      // slot; and every node wants the announcement, which the cluster copies to every master.
      transaction.publish(this.names.directoryChannel, sessionId);
      failOnCommandError(await transaction.exec());
    } catch (err) {
      this.unsynced.add(sessionId);
      throw err;
    }
  }

  /**
   * Cached: a session that registers on another node is seen as soon as that node's announcement
   * arrives. `fresh` reads Redis regardless.
   */
  async remoteNodes(sessionId: string, options: { fresh?: boolean } = {}): Promise<string[]> {
    const now = Date.now();
    if (!options.fresh) {
      const known = this.cache.get(sessionId, now);
      if (known) return known;
    }
    const mark = this.cache.mark();
    const nodes = (await this.entries.live(sessionId)).map((entry) => entry.node);
    this.cache.store(sessionId, nodes, mark, now);
    return nodes;
  }

  knownRemoteNodes(sessionId: string): string[] | undefined {
    return this.cache.get(sessionId);
  }

  async presence(sessionId: string): Promise<SessionPresence> {
    const entries = await this.entries.live(sessionId);
    const own = this.localSockets.get(sessionId) ?? 0;
    const nodes = own > 0 ? [this.nodeId] : [];
    let sockets = own;
    for (const entry of entries) {
      nodes.push(entry.node);
      sockets += entry.sockets;
    }
    return { nodes, sockets };
  }

  reportStatus(source: () => Omit<NodeStatus, 'id'>): void {
    this.statusSource = source;
  }

  async nodes(): Promise<NodeStatus[]> {
    requireReady(this.redis);
    const reported = await this.redis.hgetall(this.names.nodesKey);
    const others = Object.keys(reported).filter((id) => id !== this.nodeId);
    const alive = await getAll(this.redis, others.map((id) => this.names.nodeKey(id)));
    const nodes: NodeStatus[] = this.statusSource && !this.closed ? [{ id: this.nodeId, ...this.statusSource() }] : [];
    const gone: string[] = [];
    others.forEach((id, i) => {
      const { incarnation, ...status } = parseStatus(reported[id]!);
      // Reported by a process that is no longer alive under this id (its key lapsed or a new one runs).
      if (alive[i] !== incarnation) {
        if (alive[i] === null) gone.push(id);
        return;
      }
      nodes.push({ ...status, id });
    });
    if (gone.length > 0) {
      this.redis.hdel(this.names.nodesKey, ...gone).catch((err: unknown) => this.logger.debug({ err }, 'could not remove gone nodes\' status'));
    }
    return nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Leaves the cluster: stops the heartbeat, removes this node's directory entries and liveness key (best
   * effort: if Redis is unreachable they stop counting when the key expires) and unsubscribes. The
   * clients stay open; they are the caller's.
   */
  close(): Promise<void> {
    this.closing ??= this.leave();
    return this.closing;
  }

  private async leave(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    if (!this.started) return;
    await this.beating;
    try {
      // Entries first: should Redis go away before the key is deleted too, the key expires by itself.
      await this.writeEntries([...new Set([...this.localSockets.keys(), ...this.unsynced])], () => 0);
      await deleteKeyIfUnchanged.run(this.redis, [this.livenessKey], [this.incarnation]);
      await this.redis.hdel(this.names.nodesKey, this.nodeId);
    } catch (err) {
      this.logger.warn({ err }, 'could not remove this node from the session directory; its entries expire with its liveness key');
    }
    try {
      if (this.subscriber.status === 'ready') await this.subscriber.unsubscribe(this.names.directoryChannel);
    } catch (err) {
      this.logger.debug({ err }, 'unsubscribe failed while closing');
    }
    this.subscriber.off('ready', this.forgetCache);
    this.stopListening?.();
    this.localSockets.clear();
    this.unsynced.clear();
  }

  /** Refreshes the liveness key and repairs the directory, only while Redis is ready and the bus hears. */
  private beat(): void {
    if (this.closed || this.beating) return;
    if (this.redis.status !== 'ready' || !this.listening()) return;
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
    if (this.statusSource) {
      await this.redis.hset(this.names.nodesKey, this.nodeId, JSON.stringify({ ...this.statusSource(), incarnation: this.incarnation }));
    }
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
   * Writes the current local count of each session (HSET, or HDEL for none) in pipelines (one per master
   * on a Cluster). Counts are read when each batch is queued, and a client runs commands in order, so a
   * later `setLocalSockets` always lands after this. Sessions of a failed batch and of the batches after
   * it are marked for the next try.
   */
  private async writeEntries(sessions: string[], count = (session: string) => this.localSockets.get(session) ?? 0): Promise<void> {
    for (let start = 0; start < sessions.length; start += WRITE_BATCH) {
      const batch = sessions.slice(start, start + WRITE_BATCH);
      try {
        requireReady(this.redis);
        await pipelined(this.redis, batch, (session) => this.names.sessionKey(session), (pipeline, session) => this.queueEntryWrite(pipeline, session, count(session)));
      } catch (err) {
        if (!this.closed) for (const session of sessions.slice(start)) this.unsynced.add(session);
        throw err;
      }
    }
  }

  /** The entry's write, on the session's key alone: in a transaction, too, on a Redis Cluster. */
  private queueEntryWrite(
    commands: ChainableCommander,
    sessionId: string,
    sockets = this.localSockets.get(sessionId) ?? 0,
  ): void {
    const key = this.names.sessionKey(sessionId);
    if (sockets > 0) {
      commands.hset(key, this.nodeId, formatEntry(sockets, this.incarnation)).pexpire(key, this.directoryTtlMs);
    } else {
      commands.hdel(key, this.nodeId);
    }
  }

  private forgetCache = (): void => {
    this.cache.clear();
  };

  private onMessage = (channel: string, message: string): void => {
    if (channel === this.names.directoryChannel) this.cache.changed(message);
  };
}
