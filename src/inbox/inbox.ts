import type { Envelope } from '../notification/schema.js';

/**
 * The inbox port: reliable session messages that could not be delivered wait here until the session
 * registers again and acks them, or until their TTL runs out. Engines: `MemoryInbox` (embedded) and
 * `RedisInbox` (shared by every node of a cluster).
 */

/** A stored message: the envelope the browser will receive, and when it stops being worth delivering. */
export interface InboxEntry extends Envelope {
  /** ms since epoch. */
  expiresAt: number;
}

/** Reports what an inbox removed without being asked, so it is counted (PROTOCOL §4). */
export interface InboxEvents {
  expired(count: number): void;
  evicted(count: number): void;
}

export interface Inbox {
  /**
   * Appends the entry to the session's inbox, or leaves it in place if an entry with the same id is
   * there (a redelivered message is stored once). Resolves once the entry is as durable as the engine
   * allows. Beyond the inbox bound the oldest entries are evicted.
   */
  store(sessionId: string, entry: InboxEntry): Promise<void>;
  /** Entries still alive, oldest first, at most `limit`; expired entries found on the way are removed. */
  read(sessionId: string, limit: number): Promise<InboxEntry[]>;
  /** Removes one entry (the client acked it); false if it was not there. */
  remove(sessionId: string, id: string): Promise<boolean>;
  /** Messages waiting (expired ones not yet swept may be included until the next read or sweep). */
  size(sessionId: string): Promise<number>;
  close(): Promise<void>;
}
