import type { Redis } from 'ioredis';
import { escapeKeyPart } from '../cluster/redis-keys.js';
import { LuaScript } from '../util/lua-script.js';
import type { Inbox, InboxEntry, InboxEvents } from './inbox.js';

export interface RedisInboxOptions {
  /**
   * Namespace of every key this inbox writes, e.g. `pushcenter:`. Keep `{` and `}` out of it: a brace
   * pair in the prefix would become the Redis Cluster hash tag and put every session in one slot.
   * Use this prefix rather than the client's own `keyPrefix` option, which SCAN (the sweep) ignores.
   */
  keyPrefix: string;
  /** `INBOX_MAX`: entries kept per session; beyond it the oldest are evicted. */
  maxPerSession: number;
  /** The clock that decides whether an entry has expired (ms since epoch); default `Date.now`. */
  now?: () => number;
  /**
   * When set, every this many ms the node scans its inbox keys and removes (and counts) the expired
   * entries of sessions nobody reads any more. Default: no sweep. Without it, expired entries are
   * counted when their session is read, and the keys of a session that never returns are dropped by
   * Redis uncounted (see `keyExpiryGraceMs`), so memory stays bounded either way.
   */
  sweepIntervalMs?: number;
  /**
   * How long a session's keys outlive its latest `expiresAt` before Redis deletes them. It absorbs
   * clock skew between nodes and gives a returning session or the sweep time to count the expired
   * entries first. Default: 60 s plus two sweep intervals.
   */
  keyExpiryGraceMs?: number;
  /** Told when a periodic sweep fails; the next sweep tries again. Default: the failure is ignored. */
  onSweepError?: (err: unknown) => void;
}

/*
 * Key layout, per session (`<enc>` is the session id escaped by `escapeKeyPart`; the ids in members and
 * fields are message ids escaped the same way):
 *
 *   <prefix>{inbox:<enc>}:order   ZSET  id -> position (1, 2, 3, ...: insertion order)
 *   <prefix>{inbox:<enc>}:expiry  ZSET  id -> expiresAt (ms since epoch), so expired ids are a range query
 *   <prefix>{inbox:<enc>}:data    HASH  id -> the entry as JSON
 *   <prefix>{inbox:<enc>}:acked   ZSET  id -> when the session acked it: `RedisAckLog`'s, with an expiry of its own
 *
 * The `{inbox:<enc>}` hash tag puts the three keys of a session in one Redis Cluster slot, which the
 * scripts need; it is never empty, even for an empty session id. The next position is the last
 * one plus one, so no counter key is needed: positions only have to grow while the session has entries.
 * Every store sets one absolute expiry time on all three keys: the latest `expiresAt` in the session
 * plus a grace period. Redis deletes an abandoned inbox by itself, and all three keys go at once.
 *
 * Every operation is one Lua script (`store.lua`, `read.lua`, `remove.lua` beside this file), so nodes
 * touching the same session at once see each store+evict, read+expire and remove as one step: the bound
 * holds and nothing is counted twice.
 */

const storeScript = LuaScript.load(new URL('./store.lua', import.meta.url));
const readScript = LuaScript.load(new URL('./read.lua', import.meta.url));
const removeScript = LuaScript.load(new URL('./remove.lua', import.meta.url));

/** The three keys of one session (see the layout above). */
interface SessionKeys {
  order: string;
  expiry: string;
  data: string;
}

const ORDER_SUFFIX = ':order';

/**
 * What every key of a session starts with: the prefix and the session's hash tag. The acked-id log
 * (`RedisAckLog`) builds its key on it too, so all of a session's keys share one Redis Cluster slot.
 */
export function sessionKeyBase(keyPrefix: string, sessionId: string): string {
  return `${keyPrefix}{inbox:${escapeKeyPart(sessionId)}}`;
}

function keysOf(base: string): SessionKeys {
  return { order: `${base}${ORDER_SUFFIX}`, expiry: `${base}:expiry`, data: `${base}:data` };
}

/** The KEYS of every script, in the order the scripts expect them. */
function scriptKeys({ order, expiry, data }: SessionKeys): string[] {
  return [order, expiry, data];
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Caps a read limit to what ZRANGE accepts; anything not above zero reads nothing. */
function entryCount(limit: number): number {
  return limit > 0 ? Math.min(Math.ceil(limit), 2 ** 31 - 1) : 0;
}

function parseReadReply(reply: unknown): { expired: number; entries: InboxEntry[] } {
  if (!Array.isArray(reply) || typeof reply[0] !== 'number' || !Array.isArray(reply[1])) {
    throw new Error(`unexpected reply from the inbox read script: ${JSON.stringify(reply)}`);
  }
  const entries = (reply[1] as unknown[]).map((json) => JSON.parse(String(json)) as InboxEntry);
  return { expired: reply[0], entries };
}

/**
 * The cluster inbox, shared by every node through Redis: the same semantics as `MemoryInbox`, with each
 * operation atomic per session across nodes. Entries are stored durably as far as Redis persists them;
 * a failing Redis rejects the promise (the dispatcher then requeues the message to the broker).
 *
 * The Redis client belongs to the caller, who connects and quits it; `close()` only stops the sweep.
 */
export class RedisInbox implements Inbox {
  private readonly now: () => number;
  private readonly keyExpiryGraceMs: number;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisInboxOptions,
    private readonly events: InboxEvents,
  ) {
    this.now = options.now ?? Date.now;
    this.keyExpiryGraceMs = options.keyExpiryGraceMs ?? 60_000 + 2 * (options.sweepIntervalMs ?? 0);
    if (options.sweepIntervalMs !== undefined) {
      this.sweeper = setInterval(() => this.sweepInBackground(), options.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  async store(sessionId: string, entry: InboxEntry): Promise<void> {
    if (!Number.isFinite(entry.expiresAt)) {
      throw new TypeError(`inbox entry ${entry.id}: expiresAt must be a finite ms timestamp, got ${entry.expiresAt}`);
    }
    const evicted = await storeScript.run(this.redis, scriptKeys(this.keys(sessionId)), [
      escapeKeyPart(entry.id),
      JSON.stringify(entry),
      entry.expiresAt,
      this.options.maxPerSession,
      this.now(),
      this.keyExpiryGraceMs,
    ]);
    if (typeof evicted === 'number' && evicted > 0) this.events.evicted(evicted);
  }

  async read(sessionId: string, limit: number): Promise<InboxEntry[]> {
    return this.readKeys(this.keys(sessionId), entryCount(limit));
  }

  async remove(sessionId: string, id: string): Promise<boolean> {
    return (await removeScript.run(this.redis, scriptKeys(this.keys(sessionId)), [escapeKeyPart(id)])) === 1;
  }

  async size(sessionId: string): Promise<number> {
    return this.redis.zcard(this.keys(sessionId).order);
  }

  /** Stops the periodic sweep and waits for a running one; the Redis client stays open. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await this.sweeping;
  }

  /**
   * Removes and counts the expired entries of every session under the key prefix now (the periodic
   * sweep). Several nodes may sweep at once: each expired entry is removed, and counted, by one of them.
   * Scans the keyspace of the client's node only; on Redis Cluster each master needs its own client.
   */
  async sweep(): Promise<void> {
    const pattern = `${escapeGlob(this.options.keyPrefix)}{inbox:*}${ORDER_SUFFIX}`;
    let cursor = '0';
    do {
      const [next, orderKeys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      // One session at a time: the sweep is background work and must not crowd out deliveries.
      for (const orderKey of orderKeys) {
        if (this.closed) return;
        await this.readKeys(keysOf(orderKey.slice(0, -ORDER_SUFFIX.length)), 0);
      }
    } while (cursor !== '0' && !this.closed);
  }

  private sweepInBackground(): void {
    if (this.sweeping) return;
    this.sweeping = this.sweep()
      .catch((err: unknown) => this.options.onSweepError?.(err))
      .finally(() => {
        this.sweeping = undefined;
      });
  }

  private async readKeys(keys: SessionKeys, count: number): Promise<InboxEntry[]> {
    const reply = await readScript.run(this.redis, scriptKeys(keys), [this.now(), count]);
    const { expired, entries } = parseReadReply(reply);
    if (expired > 0) this.events.expired(expired);
    return entries;
  }

  private keys(sessionId: string): SessionKeys {
    return keysOf(sessionKeyBase(this.options.keyPrefix, sessionId));
  }
}
