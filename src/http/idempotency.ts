import { createHash } from 'node:crypto';
import type { RedisClient } from '../cluster/redis-client.js';
import { requireCount } from '../inbox/ack-log.js';

/** The first request's answer, kept for its `Idempotency-Key` (PROTOCOL §6). */
export interface IdempotentResult {
  status: number;
  ids: string[];
}

/**
 * What `begin` found for a key: none (this request goes ahead; `finish` or `abandon` follows), the first
 * request's answer, the first request still under way, or the key used with another body.
 */
export type KeyState =
  | { kind: 'new' }
  | { kind: 'done'; result: IdempotentResult }
  | { kind: 'pending' }
  | { kind: 'mismatch' };

/**
 * The `Idempotency-Key` store: a key (scoped to the API key that sent it) is taken by the first request
 * with it, atomically, so that of two requests arriving at once only one enqueues. Engines:
 * `MemoryIdempotencyKeys` (embedded) and `RedisIdempotencyKeys` (shared by the nodes).
 */
export interface IdempotencyKeys {
  /** Takes the key for this request, or tells what holds it. `fingerprint` is the request body's hash. */
  begin(key: string, fingerprint: string): Promise<KeyState>;
  /** The request with the key was answered: later ones get this answer until the TTL runs out. */
  finish(key: string, fingerprint: string, result: IdempotentResult): Promise<void>;
  /** The request enqueued nothing (the queue was unavailable): the key is free again. */
  abandon(key: string, fingerprint: string): Promise<void>;
}

/** What is kept per key. */
interface Held {
  fingerprint: string;
  result?: IdempotentResult;
}

/** How long a key stays taken by a request that never finished (its node died mid-way). */
export const PENDING_MS = 30_000;

/** The key as stored: the API key's scope and the client's key, hashed (neither is kept in clear). */
export function scopedKey(scope: string, key: string): string {
  return createHash('sha256').update(scope).update('\0').update(key).digest('base64url');
}

export function fingerprintOf(body: Buffer): string {
  return createHash('sha256').update(body).digest('base64url');
}

function stateOf(held: Held, fingerprint: string): KeyState {
  if (held.fingerprint !== fingerprint) return { kind: 'mismatch' };
  return held.result ? { kind: 'done', result: held.result } : { kind: 'pending' };
}

export interface MemoryIdempotencyKeysOptions {
  ttlMs: number;
  /** Keys kept at the most; beyond it the oldest is forgotten. */
  maxKeys: number;
  now?: () => number;
}

export class MemoryIdempotencyKeys implements IdempotencyKeys {
  private readonly keys = new Map<string, Held & { until: number }>();
  private readonly now: () => number;

  constructor(private readonly options: MemoryIdempotencyKeysOptions) {
    requireCount('maxKeys', options.maxKeys);
    this.now = options.now ?? Date.now;
  }

  async begin(key: string, fingerprint: string): Promise<KeyState> {
    const now = this.now();
    const held = this.keys.get(key);
    if (held && held.until > now) return stateOf(held, fingerprint);
    this.keys.delete(key);
    this.keys.set(key, { fingerprint, until: now + Math.min(PENDING_MS, this.options.ttlMs) });
    for (const [oldKey, old] of this.keys) {
      if (this.keys.size <= this.options.maxKeys && old.until > now) break;
      this.keys.delete(oldKey);
    }
    return { kind: 'new' };
  }

  async finish(key: string, fingerprint: string, result: IdempotentResult): Promise<void> {
    this.keys.set(key, { fingerprint, result, until: this.now() + this.options.ttlMs });
  }

  async abandon(key: string, fingerprint: string): Promise<void> {
    const held = this.keys.get(key);
    if (held?.fingerprint === fingerprint && !held.result) this.keys.delete(key);
  }
}

export interface RedisIdempotencyKeysOptions {
  keyPrefix: string;
  ttlMs: number;
}

/** One Redis string per key, `<prefix>idem:{<hash>}`, holding JSON `{ fingerprint, result? }` with a TTL. */
export class RedisIdempotencyKeys implements IdempotencyKeys {
  constructor(private readonly redis: RedisClient, private readonly options: RedisIdempotencyKeysOptions) {}

  async begin(key: string, fingerprint: string): Promise<KeyState> {
    const name = this.name(key);
    const taken = await this.redis.set(name, JSON.stringify({ fingerprint }), 'PX', Math.min(PENDING_MS, this.options.ttlMs), 'NX');
    if (taken === 'OK') return { kind: 'new' };
    const held = await this.redis.get(name);
    // Gone between the two calls (it ran out): try once more.
    if (held === null) return this.begin(key, fingerprint);
    return stateOf(JSON.parse(held) as Held, fingerprint);
  }

  async finish(key: string, fingerprint: string, result: IdempotentResult): Promise<void> {
    await this.redis.set(this.name(key), JSON.stringify({ fingerprint, result }), 'PX', this.options.ttlMs);
  }

  async abandon(key: string, fingerprint: string): Promise<void> {
    const name = this.name(key);
    const held = await this.redis.get(name);
    if (held !== null && (JSON.parse(held) as Held).fingerprint === fingerprint && !(JSON.parse(held) as Held).result) {
      await this.redis.del(name);
    }
  }

  private name(key: string): string {
    return `${this.options.keyPrefix}idem:{${key}}`;
  }
}
