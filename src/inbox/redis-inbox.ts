import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { mastersOf, type RedisClient } from '../cluster/redis-client.js';
import { escapeKeyPart, requireKeyPrefix, unescapeKeyPart } from '../cluster/redis-keys.js';
import { LuaScript } from '../util/lua-script.js';
import type { GiveUpReason, Inbox, InboxEntry, InboxEvents, Missed, StoreOptions } from './inbox.js';

export interface RedisInboxOptions {
  /**
   * Namespace of every key this inbox writes, e.g. `pushcenter:`; without `{` and `}`, which would change
   * the Redis Cluster hash tag of the keys (refused). Use this prefix rather than the client's own
   * `keyPrefix` option, which SCAN (the sweep) ignores.
   */
  keyPrefix: string;
  /** `INBOX_MAX`: entries kept for a session that is away; beyond it the oldest are given up. */
  maxPerSession: number;
  /** `INBOX_MAX_CONNECTED`: entries kept for a session that has sockets. Default: 100 × `maxPerSession`. */
  maxPerConnectedSession?: number;
  /** The clock that decides whether an entry has expired (ms since epoch); default `Date.now`. */
  now?: () => number;
  /**
   * When set, every this many ms the node scans its inbox keys, gives up the expired entries of sessions
   * nobody reads any more, and dead-letters what another node left in a dead list (it died, or the
   * dead-letter queue was down). Default: no sweep.
   */
  sweepIntervalMs?: number;
  /**
   * How long a session's keys outlive its latest `expiresAt` before Redis deletes them. While any node
   * sweeps, expired entries are dead-lettered long before; the grace only matters when no node runs for
   * that long (Redis then drops them uncounted). Default: 24 h.
   */
  keyExpiryGraceMs?: number;
  /** How long a session's missed record (the gap notice) waits for its next registration. Default: 7 days. */
  missedTtlMs?: number;
  /** Told when a sweep or a dead-lettering fails; the entries stay, and the next sweep tries again. */
  onError?: (err: unknown, message: string) => void;
}

/*
 * Key layout, per session (`<enc>` is the session id escaped by `escapeKeyPart`; the ids in members and
 * fields are message ids escaped the same way):
 *
 *   <prefix>{inbox:<enc>}:order   ZSET  id -> position (1, 2, 3, ...: insertion order)
 *   <prefix>{inbox:<enc>}:expiry  ZSET  id -> expiresAt (ms since epoch), so expired ids are a range query
 *   <prefix>{inbox:<enc>}:data    HASH  id -> the entry as JSON
 *   <prefix>{inbox:<enc>}:dead    LIST  entries given up, `<reason>\n<entry JSON>`, until dead-lettered
 *   <prefix>{inbox:<enc>}:dead-lock  STRING  the node dead-lettering the list now (a token, with a TTL)
 *   <prefix>{inbox:<enc>}:missed  HASH  count, since: what was dead-lettered since the last registration
 *
 * The `{inbox:<enc>}` hash tag puts the keys of a session in one Redis Cluster slot, which the scripts
 * and the missed record's transaction need; it is never empty, even for an empty session id, and neither
 * the prefix nor an escaped id holds a brace that could end it early or open another. The next position is the last
 * one plus one, so no counter key is needed: positions only have to grow while the session has entries.
 * Every store sets one absolute expiry time on all three keys: the latest `expiresAt` in the session
 * plus a grace period. Redis deletes an abandoned inbox by itself, and all three keys go at once.
 *
 * Every operation is one Lua script (`store.lua`, `read.lua`, `remove.lua` beside this file), so nodes
 * touching the same session at once see each store+evict, read+expire and remove as one step: the bound
 * holds and nothing is counted twice. An entry given up moves to the dead list in the same step, so it
 * is never only in a node's memory: the node that moved it publishes it to the dead-letter queue and
 * trims the list after the broker confirmed (`dead-letter.lua`, under a per-session lock so two nodes do
 * not trim each other's work); a node that dies meanwhile leaves the list to the next sweep.
 */

const storeScript = LuaScript.load(new URL('./store.lua', import.meta.url));
const readScript = LuaScript.load(new URL('./read.lua', import.meta.url));
const removeScript = LuaScript.load(new URL('./remove.lua', import.meta.url));
const deadLetterScript = LuaScript.load(new URL('./dead-letter.lua', import.meta.url));
const lockScript = LuaScript.load(new URL('./lock.lua', import.meta.url));
const unlockScript = LuaScript.load(new URL('./unlock.lua', import.meta.url));

/** Dead-list items handed over per round trip. */
const DEAD_LETTER_BATCH = 200;
/** After a failed hand-over, the first retry comes this much later, each next one twice as late. */
const DEAD_LETTER_RETRY_MS = 1_000;
const DEAD_LETTER_RETRY_MAX_MS = 30_000;
/** A drain lock outlives a node that died holding it by this much; each confirmed batch renews it. */
const DEAD_LETTER_LOCK_MS = 30_000;

/** The three keys of one session (see the layout above). */
interface SessionKeys {
  order: string;
  expiry: string;
  data: string;
  dead: string;
  lock: string;
  missed: string;
}

const ORDER_SUFFIX = ':order';
const DEAD_SUFFIX = ':dead';

/** What every key of a session starts with: the prefix and the session's hash tag. */
function sessionKeyBase(keyPrefix: string, sessionId: string): string {
  return `${keyPrefix}{inbox:${escapeKeyPart(sessionId)}}`;
}

function keysOf(base: string): SessionKeys {
  return {
    order: `${base}${ORDER_SUFFIX}`,
    expiry: `${base}:expiry`,
    data: `${base}:data`,
    dead: `${base}${DEAD_SUFFIX}`,
    lock: `${base}:dead-lock`,
    missed: `${base}:missed`,
  };
}

/** The KEYS of the store, read and remove scripts, in the order they expect them. */
function scriptKeys({ order, expiry, data, dead }: SessionKeys): string[] {
  return [order, expiry, data, dead];
}

/** A dead-list item: `<reason>\n<entry JSON>`. */
function parseDeadItem(item: string): { reason: GiveUpReason; entry: InboxEntry } {
  const newline = item.indexOf('\n');
  return { reason: item.slice(0, newline) as GiveUpReason, entry: JSON.parse(item.slice(newline + 1)) as InboxEntry };
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
  private readonly missedTtlMs: number;
  private readonly maxConnected: number;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  /** Sessions whose dead list this node is handing over now. */
  private readonly draining = new Map<string, Promise<void>>();
  /** Sessions whose hand-over failed, and when it is tried again. */
  private readonly retries = new Map<string, { timer: NodeJS.Timeout; delayMs: number }>();
  private closed = false;
  /** This inbox's drain-lock token: a retry after a failure (its unlock failed too) still holds the lock. */
  private readonly token = randomUUID();

  constructor(
    private readonly redis: RedisClient,
    private readonly options: RedisInboxOptions,
    private readonly events: InboxEvents,
  ) {
    requireKeyPrefix(options.keyPrefix);
    this.now = options.now ?? Date.now;
    this.keyExpiryGraceMs = options.keyExpiryGraceMs ?? 24 * 3_600_000;
    this.missedTtlMs = options.missedTtlMs ?? 7 * 24 * 3_600_000;
    this.maxConnected = options.maxPerConnectedSession ?? options.maxPerSession * 100;
    if (options.sweepIntervalMs !== undefined) {
      this.sweeper = setInterval(() => this.sweepInBackground(), options.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  async store(sessionId: string, entry: InboxEntry, options: StoreOptions = {}): Promise<void> {
    if (!Number.isFinite(entry.expiresAt)) {
      throw new TypeError(`inbox entry ${entry.id}: expiresAt must be a finite ms timestamp, got ${entry.expiresAt}`);
    }
    const keys = this.keys(sessionId);
    const evicted = await storeScript.run(this.redis, scriptKeys(keys), [
      escapeKeyPart(entry.id),
      JSON.stringify(entry),
      entry.expiresAt,
      options.connected ? this.maxConnected : this.options.maxPerSession,
      this.now(),
      this.keyExpiryGraceMs,
    ]);
    if (typeof evicted === 'number' && evicted > 0) await this.deadLetter(sessionId, keys);
  }

  async read(sessionId: string, limit: number): Promise<InboxEntry[]> {
    return this.readKeys(this.keys(sessionId), entryCount(limit), sessionId);
  }

  async remove(sessionId: string, id: string): Promise<boolean> {
    return (await removeScript.run(this.redis, scriptKeys(this.keys(sessionId)), [escapeKeyPart(id)])) === 1;
  }

  async removeAll(sessionId: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const removed = await removeScript.run(this.redis, scriptKeys(this.keys(sessionId)), ids.map(escapeKeyPart));
    return typeof removed === 'number' ? removed : 0;
  }

  async size(sessionId: string): Promise<number> {
    return this.redis.zcard(this.keys(sessionId).order);
  }

  async takeMissed(sessionId: string): Promise<Missed | undefined> {
    const { missed } = this.keys(sessionId);
    const reply = await this.redis.multi().hgetall(missed).del(missed).exec();
    const [err, record] = reply?.[0] ?? [new Error('the missed-record transaction was discarded')];
    if (err) throw err;
    const { count, since } = record as Record<string, string>;
    if (count === undefined || since === undefined) return undefined;
    return { count: Number(count), since: Number(since) };
  }

  /** Stops the periodic sweep and waits for a running one and for dead-lettering under way; the client stays open. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const { timer } of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
    await this.sweeping;
    await Promise.all(this.draining.values());
  }

  /**
   * Gives up the expired entries of every session under the key prefix now, and dead-letters what any
   * node left in a dead list (the periodic sweep). Several nodes may sweep at once: each expired entry
   * is given up by one of them. On a Redis Cluster it scans every master, each of which holds its own
   * slots' keys; a master that cannot be scanned does not stop the others (the sweep rejects afterwards).
   */
  async sweep(): Promise<void> {
    const failures: unknown[] = [];
    for (const master of mastersOf(this.redis)) {
      try {
        await this.scan(master, ORDER_SUFFIX, (keys, sessionId) => this.readKeys(keys, 0, sessionId).then(() => undefined));
        await this.scan(master, DEAD_SUFFIX, (keys, sessionId) => this.deadLetter(sessionId, keys));
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `the inbox sweep failed on ${failures.length} Redis masters`);
  }

  private async scan(master: Redis, suffix: string, visit: (keys: SessionKeys, sessionId: string) => Promise<void>): Promise<void> {
    const head = `${this.options.keyPrefix}{inbox:`;
    const pattern = `${escapeGlob(this.options.keyPrefix)}{inbox:*}${suffix}`;
    let cursor = '0';
    do {
      const [next, found] = await master.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      // One session at a time: the sweep is background work and must not crowd out deliveries.
      for (const key of found) {
        if (this.closed) return;
        const base = key.slice(0, -suffix.length);
        await visit(keysOf(base), unescapeKeyPart(base.slice(head.length, -1)));
      }
    } while (cursor !== '0' && !this.closed);
  }

  private sweepInBackground(): void {
    if (this.sweeping) return;
    this.sweeping = this.sweep()
      .catch((err: unknown) => this.options.onError?.(err, 'inbox sweep failed; the next one tries again'))
      .finally(() => {
        this.sweeping = undefined;
      });
  }

  private async readKeys(keys: SessionKeys, count: number, sessionId: string): Promise<InboxEntry[]> {
    const reply = await readScript.run(this.redis, scriptKeys(keys), [this.now(), count]);
    const { expired, entries } = parseReadReply(reply);
    if (expired > 0) await this.deadLetter(sessionId, keys);
    return entries;
  }

  /**
   * Hands the session's dead list over to `events.gaveUp`, batch by batch, trimming each batch once it
   * is dead-lettered. Failures are reported, not thrown: the entries stay in the list for the sweep.
   */
  private deadLetter(sessionId: string, keys: SessionKeys): Promise<void> {
    const running = this.draining.get(sessionId);
    if (running) return running;
    const drain = this.drain(sessionId, keys)
      .then(() => {
        this.retries.delete(sessionId);
      }, (err: unknown) => {
        const delay = Math.min((this.retries.get(sessionId)?.delayMs ?? DEAD_LETTER_RETRY_MS / 2) * 2, DEAD_LETTER_RETRY_MAX_MS);
        this.options.onError?.(err, `dead-lettering inbox entries failed; they stay in Redis, tried again in ${delay} ms`);
        this.retryLater(sessionId, keys, delay);
      })
      .finally(() => this.draining.delete(sessionId));
    this.draining.set(sessionId, drain);
    return drain;
  }

  /** The dead-letter queue or Redis was down: try again soon rather than at the next sweep. */
  private retryLater(sessionId: string, keys: SessionKeys, delayMs: number): void {
    if (this.closed) return;
    clearTimeout(this.retries.get(sessionId)?.timer);
    const timer = setTimeout(() => void this.deadLetter(sessionId, keys), delayMs);
    timer.unref();
    this.retries.set(sessionId, { timer, delayMs });
  }

  private async drain(sessionId: string, keys: SessionKeys): Promise<void> {
    const { token } = this;
    // Another node may be draining the list: it trims only what it handed over, then looks again.
    while ((await lockScript.run(this.redis, [keys.lock], [token, DEAD_LETTER_LOCK_MS])) === 1) {
      try {
        for (;;) {
          const items = await this.redis.lrange(keys.dead, 0, DEAD_LETTER_BATCH - 1);
          if (items.length === 0) break;
          const parsed = items.map(parseDeadItem);
          for (const run of runsByReason(parsed)) await this.events.gaveUp(sessionId, run.reason, run.entries);
          const since = Math.min(...parsed.map(({ entry }) => entry.sentAt));
          const trimmed = await deadLetterScript.run(this.redis, [keys.dead, keys.missed, keys.lock],
            [token, items.length, since, this.missedTtlMs, DEAD_LETTER_LOCK_MS, items[0]!]);
          // The lock ran out meanwhile: another node may hand the same items over again (a duplicate
          // dead letter, never a lost one).
          if (trimmed === 0) return;
          // 2: the batch was trimmed already (this script ran before, its answer lost): read again.
        }
      } finally {
        await unlockScript.run(this.redis, [keys.lock], [token]);
      }
      // An item given up while this node held the lock was left to it: look once more.
      if ((await this.redis.llen(keys.dead)) === 0) return;
    }
  }

  private keys(sessionId: string): SessionKeys {
    return keysOf(sessionKeyBase(this.options.keyPrefix, sessionId));
  }
}

/** Consecutive items with the same reason, in list order. */
function runsByReason(items: Array<{ reason: GiveUpReason; entry: InboxEntry }>): Array<{ reason: GiveUpReason; entries: InboxEntry[] }> {
  const runs: Array<{ reason: GiveUpReason; entries: InboxEntry[] }> = [];
  for (const { reason, entry } of items) {
    const last = runs[runs.length - 1];
    if (last?.reason === reason) last.entries.push(entry);
    else runs.push({ reason, entries: [entry] });
  }
  return runs;
}
