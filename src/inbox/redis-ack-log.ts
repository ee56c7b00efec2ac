import type { Redis } from 'ioredis';
import { escapeKeyPart } from '../cluster/redis-keys.js';
import { ackLogBounds, requireCount, type AckLog, type AckLogOptions } from './ack-log.js';
import { LuaScript } from '../util/lua-script.js';
import { sessionKeyBase } from './redis-inbox.js';

/** One script call per batch: a command per id would cost the node more than the rest of a delivery. */
const recordScript = LuaScript.load(new URL('./ack-log-record.lua', import.meta.url));

export interface RedisAckLogOptions extends AckLogOptions {
  /**
   * Namespace of every key this log writes, the inbox's `keyPrefix` (e.g. `pushcenter:`), so a session's
   * acked ids share its inbox's Redis Cluster slot. Use it rather than the client's own `keyPrefix` option.
   */
  keyPrefix: string;
  /** How long the first record of a batch waits for others to share its round trip (ms). Default 2. */
  batchWindowMs?: number;
  /** Records per round trip at the most; a batch that reaches it is sent at once. Default 500. */
  maxBatch?: number;
}

/*
 * Key layout, per session (`<enc>` is the session id escaped by `escapeKeyPart`, as in the inbox's keys):
 *
 *   <prefix>{inbox:<enc>}:acked   ZSET  escaped message id -> when it was recorded (ms since epoch)
 *
 * Every write keeps the `perSession` highest scores (among ids recorded in the same millisecond, the
 * lexicographically greatest members win) and sets the key to expire `ttlMs` after it, so Redis drops
 * the ids of a session that stopped acking by itself.
 */

/** Records waiting to share one script call; each of them settles with that call's result. */
class Batch {
  /** key -> escaped message id -> when it was recorded. */
  readonly scores = new Map<string, Map<string, number>>();
  records = 0;
  timer: NodeJS.Timeout | undefined;
  /** Settles once `start()` was called and the pipeline answered. */
  readonly written: Promise<void>;
  private begin!: () => void;

  constructor(write: (batch: Batch) => Promise<void>) {
    this.written = new Promise<void>((resolve) => {
      this.begin = resolve;
    }).then(() => write(this));
  }

  add(key: string, member: string, at: number): void {
    let members = this.scores.get(key);
    if (!members) {
      members = new Map();
      this.scores.set(key, members);
    }
    members.set(member, at);
    this.records += 1;
  }

  start(): void {
    this.begin();
  }
}

/**
 * The cluster acked-id log, shared by every node through Redis: a node that takes over a redelivered
 * message sees what the session acked on the node that died. Records made close together travel in one
 * script call (`ack-log-record.lua`: ZADD, ZREMRANGEBYRANK, PEXPIRE per session), and resolve or reject
 * together with it. The keys of a batch span many hash slots: on Redis Cluster a batch has to be split
 * by slot.
 *
 * The Redis client belongs to the caller, who connects and quits it, after `close()`.
 */
export class RedisAckLog implements AckLog {
  private readonly perSession: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly batchWindowMs: number;
  private readonly maxBatch: number;
  private pending: Batch | undefined;
  private readonly sending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisAckLogOptions,
  ) {
    ({ perSession: this.perSession, ttlMs: this.ttlMs, now: this.now } = ackLogBounds(options));
    this.batchWindowMs = options.batchWindowMs ?? 2;
    this.maxBatch = options.maxBatch ?? 500;
    if (!(this.batchWindowMs >= 0)) throw new RangeError(`batchWindowMs must be >= 0, got ${this.batchWindowMs}`);
    requireCount('maxBatch', this.maxBatch);
  }

  record(sessionId: string, id: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the acked-id log is closed'));
    const batch = (this.pending ??= this.openBatch());
    batch.add(this.key(sessionId), escapeKeyPart(id), this.now());
    if (batch.records >= this.maxBatch) this.send();
    return batch.written;
  }

  async has(sessionId: string, id: string): Promise<boolean> {
    const key = this.key(sessionId);
    const member = escapeKeyPart(id);
    // Recorded but not sent yet: the session did ack it.
    if (this.pending?.scores.get(key)?.has(member)) return true;
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
    const keys: string[] = [];
    const args: (number | string)[] = [this.perSession, Math.ceil(this.ttlMs)];
    for (const [key, members] of batch.scores) {
      keys.push(key);
      args.push(members.size);
      for (const [member, at] of members) args.push(at, member);
    }
    await recordScript.run(this.redis, keys, args);
  }

  private key(sessionId: string): string {
    return `${sessionKeyBase(this.options.keyPrefix, sessionId)}:acked`;
  }
}
