import { scriptCalls, type RedisClient } from '../cluster/redis-client.js';
import { requireCount } from '../inbox/ack-log.js';
import { Batcher } from '../util/batcher.js';
import { LuaScript } from '../util/lua-script.js';
import { receiptOf, type IdClaims, type Receipt, type ReceiptEvent, type ReceiptStore } from './receipts.js';

/*
 * Key layout (SHARDS of each; a notification id picks its shard by a hash of the id):
 *
 *   <prefix>{receipts:<k>}:events  HASH  id -> its events, JSON each, newline-separated
 *   <prefix>{receipts:<k>}:index   ZSET  id -> when its first event was written (ms since epoch)
 *   <prefix>{receipts:<k>}:claims  ZSET  id -> when it was claimed (PROTOCOL §6: the id is the identity)
 *
 * Shared hashes, not a key per notification: a batch of events touches at most SHARDS keys and goes
 * out as one script call (a key per notification costs a round trip's worth of work per event). Each
 * write forgets receipts past the TTL or over the bound, oldest first; each key expires a TTL after its
 * last write. Each shard has a hash tag of its own, so on Redis Cluster the shards spread over the masters;
 * there a batch goes out as one script call per shard (a script's keys must share a slot).
 */

const SHARDS = 64;
const addScript = LuaScript.load(new URL('./receipt-add.lua', import.meta.url));
const claimScript = LuaScript.load(new URL('./id-claim.lua', import.meta.url));

function shardOf(id: string): number {
  // FNV-1a over the UTF-16 code units: cheap, and spreads similar ids.
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i += 1) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % SHARDS;
}

export interface RedisReceiptsOptions {
  /** Namespace of every key, e.g. `pushcenter:`. */
  keyPrefix: string;
  /** How long a receipt is kept after its first event (ms). */
  ttlMs: number;
  /** Receipts kept at the most, all shards together (the newest are kept). */
  maxReceipts: number;
  /** How long the first event of a batch waits for others to share its round trip (ms). Default 2. */
  batchWindowMs?: number;
  /** Events per round trip at the most. Default 1000. */
  maxBatch?: number;
  now?: () => number;
  /** Told when a batch of events could not be written (they are lost to the receipts, not to delivery). */
  onError?: (err: unknown, events: number) => void;
}

/**
 * Receipts in Redis, written and read by every node: events written close together travel in one
 * script call (`receipt-add.lua`).
 */
export class RedisReceipts implements ReceiptStore {
  private readonly batcher: Batcher<[string, string], void>;
  private readonly now: () => number;
  private readonly perShard: number;

  constructor(private readonly redis: RedisClient, private readonly options: RedisReceiptsOptions) {
    requireCount('maxReceipts', options.maxReceipts);
    this.now = options.now ?? Date.now;
    this.perShard = Math.ceil(options.maxReceipts / SHARDS);
    this.batcher = new Batcher((events) => this.write(events), options.batchWindowMs ?? 2, options.maxBatch ?? 1000);
  }

  add(id: string, event: ReceiptEvent): void {
    this.batcher.push([id, JSON.stringify(event)]);
  }

  async get(id: string): Promise<Receipt | undefined> {
    const base = this.base(shardOf(id));
    const [events, firstAt] = await Promise.all([this.redis.hget(`${base}:events`, id), this.redis.zscore(`${base}:index`, id)]);
    if (events === null || firstAt === null || this.now() - Number(firstAt) >= this.options.ttlMs) return undefined;
    return receiptOf(id, events.split('\n').map((line) => JSON.parse(line) as ReceiptEvent));
  }

  async close(): Promise<void> {
    await this.batcher.drain();
  }

  private base(shard: number): string {
    return `${this.options.keyPrefix}{receipts:${shard}}`;
  }

  private async write(events: Array<[string, string]>): Promise<void[]> {
    // A notification's events of one batch (accepted, then delivered, say) go as one: one field update.
    const byShard = new Map<number, Map<string, string>>();
    for (const [id, json] of events) {
      const shard = shardOf(id);
      let ids = byShard.get(shard);
      if (!ids) byShard.set(shard, (ids = new Map()));
      const known = ids.get(id);
      ids.set(id, known === undefined ? json : `${known}\n${json}`);
    }
    const bounds = [this.now(), this.options.ttlMs, this.perShard];
    const shards = [...byShard];
    const calls = scriptCalls(this.redis, shards);
    try {
      await Promise.all(calls.map((call) => {
        const keys: string[] = [];
        const args: Array<string | number> = [...bounds];
        for (const [shard, ids] of call) {
          const base = this.base(shard);
          keys.push(`${base}:events`, `${base}:index`);
          args.push(ids.size);
          for (const [id, json] of ids) args.push(id, json);
        }
        return addScript.run(this.redis, keys, args);
      }));
    } catch (err) {
      this.options.onError?.(err, events.length);
      throw err;
    }
    return [];
  }
}

export interface RedisIdClaimsOptions {
  keyPrefix: string;
  /** How long a claimed id stays claimed (ms): `IDEMPOTENCY_TTL_MS`. */
  windowMs: number;
  /** Ids remembered at the most, all shards together (the window shrinks beyond it). */
  maxIds: number;
  /** How long the first claim of a batch waits for others (ms). Default 0: the claims of one turn of the event loop. */
  batchWindowMs?: number;
  maxBatch?: number;
  now?: () => number;
}

/** Id claims in Redis, shared by every node: claims made close together travel in one script call. */
export class RedisIdClaims implements IdClaims {
  private readonly batcher: Batcher<string, boolean>;
  private readonly now: () => number;
  private readonly perShard: number;

  constructor(private readonly redis: RedisClient, private readonly options: RedisIdClaimsOptions) {
    requireCount('maxIds', options.maxIds);
    this.now = options.now ?? Date.now;
    this.perShard = Math.ceil(options.maxIds / SHARDS);
    this.batcher = new Batcher((ids) => this.write(ids), options.batchWindowMs ?? 0, options.maxBatch ?? 1000);
  }

  claim(id: string): Promise<boolean> {
    return this.batcher.add(id);
  }

  async close(): Promise<void> {
    await this.batcher.drain();
  }

  private async write(ids: string[]): Promise<boolean[]> {
    const byShard = new Map<number, number[]>();
    ids.forEach((id, i) => {
      const shard = shardOf(id);
      const list = byShard.get(shard);
      if (list) list.push(i);
      else byShard.set(shard, [i]);
    });
    const bounds = [this.now(), this.options.windowMs, this.perShard];
    const shards = [...byShard];
    const calls = scriptCalls(this.redis, shards);
    const claimed = new Array<boolean>(ids.length);
    await Promise.all(calls.map(async (call) => {
      const keys: string[] = [];
      const args: Array<string | number> = [...bounds];
      const order: number[] = [];
      for (const [shard, positions] of call) {
        keys.push(`${this.options.keyPrefix}{receipts:${shard}}:claims`);
        args.push(positions.length);
        for (const i of positions) {
          args.push(ids[i]!);
          order.push(i);
        }
      }
      const replies = await claimScript.run(this.redis, keys, args) as number[];
      order.forEach((i, k) => {
        claimed[i] = replies[k] === 1;
      });
    }));
    return claimed;
  }
}
