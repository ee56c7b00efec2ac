import { requirePositiveMs } from '../cluster/checks.js';

/**
 * The acked-id log port: which reliable messages each session acked lately, so that a message RabbitMQ
 * redelivers (a node died before its ack reached the broker) is acked to the broker instead of emitted
 * to the session again (PROTOCOL §4.1, "No needless duplicates"). It only ever avoids duplicates: an id
 * it forgot, or could not answer for, means a possible duplicate, never a lost message. Engines:
 * `MemoryAckLog` (embedded) and `RedisAckLog` (shared by every node of a cluster).
 */
export interface AckLog {
  /**
   * Remembers that the session acked message `id` (again: as its newest). Resolves once that is as
   * durable as the engine allows; engines may batch, so many records share one round trip. Rejects when
   * the engine is unavailable (the caller acks the broker anyway).
   */
  record(sessionId: string, id: string): Promise<void>;
  /**
   * Whether the session acked `id` less than `ttlMs` ago (and the engine's size bound has not pushed it
   * out). Rejects when the engine is unavailable (the caller then emits as usual).
   */
  has(sessionId: string, id: string): Promise<boolean>;
  /** Writes what is still pending and stops background work; the log is not used afterwards. */
  close(): Promise<void>;
}

/** The bounds every engine takes. */
export interface AckLogOptions {
  /**
   * How long an acked id is remembered (ms): `has` answers false for ids recorded longer ago. It has to
   * cover the time from a node's death to RabbitMQ's redelivery (at once when the connection drops; up
   * to the heartbeat timeout when the node hangs). Default 3 minutes (`DUPLICATE_WINDOW_MS`).
   */
  ttlMs?: number;
  /** The clock records are stamped with (ms since epoch); default `Date.now`. */
  now?: () => number;
}

export const DEFAULT_ACK_LOG_TTL_MS = 3 * 60_000;

/** The options with their defaults, checked the same way in every engine. */
export function ackLogBounds(options: AckLogOptions): Required<AckLogOptions> {
  const bounds = {
    ttlMs: options.ttlMs ?? DEFAULT_ACK_LOG_TTL_MS,
    now: options.now ?? Date.now,
  };
  requirePositiveMs('ttlMs', bounds.ttlMs);
  return bounds;
}

export function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number >= 1, got ${value}`);
}
