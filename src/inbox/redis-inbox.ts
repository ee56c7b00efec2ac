import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { escapeKeyPart } from '../cluster/redis-keys.js';
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
 *
 * The `{inbox:<enc>}` hash tag puts the three keys of a session in one Redis Cluster slot, which the
 * scripts below need; it is never empty, even for an empty session id. The next position is the last
 * one plus one, so no counter key is needed: positions only have to grow while the session has entries.
 * Every store sets one absolute expiry time on all three keys: the latest `expiresAt` in the session
 * plus a grace period. Redis deletes an abandoned inbox by itself, and all three keys go at once.
 *
 * Every operation is one Lua script, so nodes touching the same session at once see each store+evict,
 * read+expire and remove as one step: the bound holds and nothing is counted twice.
 */

/** KEYS: order, expiry, data. ARGV: id, entry JSON, expiresAt, maxPerSession, now, grace ms. Returns evicted. */
const STORE_SCRIPT = `
local order, expiry, data = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('ZSCORE', order, id) then
  return 0
end
local last = redis.call('ZRANGE', order, -1, -1, 'WITHSCORES')
local position = 1
if last[2] then
  position = tonumber(last[2]) + 1
end
redis.call('ZADD', order, string.format('%.0f', position), id)
redis.call('ZADD', expiry, ARGV[3], id)
redis.call('HSET', data, id, ARGV[2])

local evicted = 0
local excess = redis.call('ZCARD', order) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZRANGE', order, 0, excess - 1)
  for _, victim in ipairs(oldest) do
    redis.call('ZREM', expiry, victim)
    redis.call('HDEL', data, victim)
  end
  redis.call('ZREMRANGEBYRANK', order, 0, excess - 1)
  evicted = #oldest
end

local latest = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
if latest[2] then
  local ttl = math.max(tonumber(latest[2]) - tonumber(ARGV[5]), 0) + tonumber(ARGV[6])
  local time = redis.call('TIME')
  local redisNow = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local at = string.format('%.0f', redisNow + math.ceil(ttl))
  redis.call('PEXPIREAT', order, at)
  redis.call('PEXPIREAT', expiry, at)
  redis.call('PEXPIREAT', data, at)
end
return evicted
`;

/** KEYS: order, expiry, data. ARGV: now, count. Returns { expired, entry JSONs oldest first }. */
const READ_SCRIPT = `
local order, expiry, data = KEYS[1], KEYS[2], KEYS[3]
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', ARGV[1])
if #expired > 0 then
  for _, id in ipairs(expired) do
    redis.call('ZREM', order, id)
    redis.call('HDEL', data, id)
  end
  redis.call('ZREMRANGEBYSCORE', expiry, '-inf', ARGV[1])
end

local entries = {}
local count = tonumber(ARGV[2])
if count > 0 then
  for _, id in ipairs(redis.call('ZRANGE', order, 0, count - 1)) do
    local entry = redis.call('HGET', data, id)
    if entry then
      entries[#entries + 1] = entry
    end
  end
end
return { #expired, entries }
`;

/** KEYS: order, expiry, data. ARGV: id. Returns 1 if it was there. */
const REMOVE_SCRIPT = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
`;

/** A Lua script run by its SHA1 (EVALSHA), sent in full only when Redis does not have it cached. */
class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // Redis restarted, failed over or ran SCRIPT FLUSH: EVAL runs the script and caches it again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const storeScript = new LuaScript(STORE_SCRIPT);
const readScript = new LuaScript(READ_SCRIPT);
const removeScript = new LuaScript(REMOVE_SCRIPT);

/** The three keys of one session (see the layout above). */
interface SessionKeys {
  order: string;
  expiry: string;
  data: string;
}

const ORDER_SUFFIX = ':order';

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
    return keysOf(`${this.options.keyPrefix}{inbox:${escapeKeyPart(sessionId)}}`);
  }
}
