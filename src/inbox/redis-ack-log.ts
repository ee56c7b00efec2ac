import { scriptCalls, type RedisClient } from '../cluster/redis-client.js';
import { requireKeyPrefix } from '../cluster/redis-keys.js';
import { allSettledOrFirstError } from '../util/all-settled.js';
import { LuaScript } from '../util/lua-script.js';
import { ackLogBounds, requireCount, type AckLog, type AckLogOptions } from './ack-log.js';

export interface RedisAckLogOptions extends AckLogOptions {
  /** Namespace of every key this log writes, e.g. `pushcenter:` (the client's own `keyPrefix` stays unused). */
  keyPrefix: string;
  /**
   * Ids remembered at most, all sessions together (the newest are kept). Default 1,000,000: about
   * 100 MB of Redis memory, a window of 100 s at 10,000 acked messages a second.
   */
  maxIds?: number;
  /** How long the first record of a batch waits for others to share its round trip (ms). Default 2. */
  batchWindowMs?: number;
  /** Records per round trip at the most; a batch that reaches it is sent at once. Default 500. */
  maxBatch?: number;
}

/*
 * Key layout (SHARDS sorted sets; the session picks one by a hash of its id):
 *
 *   <prefix>{acked:<k>}   ZSET  JSON [session, message id] -> when it was recorded (ms since epoch)
 *
 * Sorted sets shared by sessions, not one per session: a batch of records then touches at most SHARDS
 * keys, and goes out as one script call whose arguments do not grow by a key per message (per-session
 * keys cost the node as much again as the rest of a delivery). Each shard has a hash tag of its own, so
 * on a Redis Cluster the shards spread over the masters, and a batch goes out as one call per shard
 * (a script's keys must share a slot), which ioredis pipelines per master. Every write drops the ids
 * older than `ttlMs`, keeps the newest `maxIds / SHARDS`, and sets the key to expire `ttlMs` later.
 */

const SHARDS = 16;
const recordScript = LuaScript.load(new URL('./ack-log-record.lua', import.meta.url));

/** The key of the shard that holds a session's acked ids. */
export function ackShardKey(keyPrefix: string, sessionId: string): string {
  // FNV-1a over the UTF-16 code units: cheap, and spreads similar ids.
  let hash = 0x811c9dc5;
  for (let i = 0; i < sessionId.length; i += 1) hash = Math.imul(hash ^ sessionId.charCodeAt(i), 0x01000193);
  return `${keyPrefix}{acked:${(hash >>> 0) % SHARDS}}`;
}

/** A session's acked id as a member: JSON keeps any two different pairs apart, lone surrogates included. */
function memberOf(sessionId: string, id: string): string {
  return JSON.stringify([sessionId, id]);
}

/** Records waiting to share one script call; each of them settles with that call's result. */
class Batch {
  /** shard key -> members recorded. */
  readonly members = new Map<string, string[]>();
  records = 0;
  timer: NodeJS.Timeout | undefined;
  /** Settles once `start()` was called and the call answered. */
  readonly written: Promise<void>;
  private begin!: () => void;

  constructor(write: (batch: Batch) => Promise<void>) {
    this.written = new Promise<void>((resolve) => {
      this.begin = resolve;
    }).then(() => write(this));
  }

  add(key: string, member: string): void {
    const members = this.members.get(key);
    if (members) members.push(member);
    else this.members.set(key, [member]);
    this.records += 1;
  }

  has(key: string, member: string): boolean {
    return this.members.get(key)?.includes(member) ?? false;
  }

  start(): void {
    this.begin();
  }
}

/**
 * The cluster acked-id log, shared by every node through Redis: a node that takes over a redelivered
 * message sees what the session acked on the node that died. Records made close together travel in one
 * script call (`ack-log-record.lua`; on a Redis Cluster one per shard) and resolve or reject together
 * with it (with all of them, once each has answered).
 *
 * The Redis client belongs to the caller, who connects and quits it, after `close()`.
 */
export class RedisAckLog implements AckLog {
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly perShard: number;
  private readonly batchWindowMs: number;
  private readonly maxBatch: number;
  private pending: Batch | undefined;
  private readonly sending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly options: RedisAckLogOptions,
  ) {
    requireKeyPrefix(options.keyPrefix);
    ({ ttlMs: this.ttlMs, now: this.now } = ackLogBounds(options));
    const maxIds = options.maxIds ?? 1_000_000;
    requireCount('maxIds', maxIds);
    this.perShard = Math.ceil(maxIds / SHARDS);
    this.batchWindowMs = options.batchWindowMs ?? 2;
    this.maxBatch = options.maxBatch ?? 500;
    if (!(this.batchWindowMs >= 0)) throw new RangeError(`batchWindowMs must be >= 0, got ${this.batchWindowMs}`);
    requireCount('maxBatch', this.maxBatch);
  }

  record(sessionId: string, id: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the acked-id log is closed'));
    const batch = (this.pending ??= this.openBatch());
    batch.add(ackShardKey(this.options.keyPrefix, sessionId), memberOf(sessionId, id));
    if (batch.records >= this.maxBatch) this.send();
    return batch.written;
  }

  async has(sessionId: string, id: string): Promise<boolean> {
    const key = ackShardKey(this.options.keyPrefix, sessionId);
    const member = memberOf(sessionId, id);
    // Recorded but not sent yet: the session did ack it.
    if (this.pending?.has(key, member)) return true;
    const score = await this.redis.zscore(key, member);
    return score !== null && this.now() - Number(score) < this.ttlMs;
  }

  /** Sends what is pending and waits until every batch sent is answered; the Redis client stays open. */
  async close(): Promise<void> {
    this.closed = true;
    this.send();
    await Promise.all([...this.sending]);
  }

  private openBatch(): Batch {
    const batch = new Batch((ready) => this.write(ready));
    batch.timer = setTimeout(() => this.send(), this.batchWindowMs);
    return batch;
  }

  private send(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    clearTimeout(batch.timer);
    // Its records' callers handle the outcome; close() only waits for it.
    const settled: Promise<void> = batch.written.catch(() => undefined).finally(() => this.sending.delete(settled));
    this.sending.add(settled);
    batch.start();
  }

  private async write(batch: Batch): Promise<void> {
    const bounds = [this.now(), Math.ceil(this.ttlMs), this.perShard];
    const shards = [...batch.members];
    const calls = scriptCalls(this.redis, shards);
    await allSettledOrFirstError(calls.map((call) =>
      recordScript.run(this.redis, call.map(([key]) => key), [...bounds, ...call.map(([, members]) => members.join('\n'))])));
  }
}
