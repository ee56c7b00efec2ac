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

/** Why an inbox gave an entry up (the dead-letter reason, PROTOCOL §4.1). */
export type GiveUpReason = 'inbox_full' | 'inbox_expired';

/**
 * What a session missed (the gap notice, PROTOCOL §4.1): messages given up and dead-lettered since the
 * last `takeMissed`. The application fetches what it missed from its own backend.
 */
export interface Missed {
  /** How many messages were dead-lettered. */
  count: number;
  /** When the earliest of them was sent (its `sentAt`, the enqueue time), ms since epoch. */
  since: number;
}

/** Where the entries an inbox gives up on go (the dead-letter queue). */
export interface InboxEvents {
  /**
   * The inbox removed these entries of the session undelivered: over the bound (the oldest first) or
   * past their TTL. Resolves once they are safely dead-lettered; only then do they count as missed. The
   * Redis engine keeps them until this resolves and tries again later when it rejects, so it may hand
   * the same entry over twice, never zero times.
   */
  gaveUp(sessionId: string, reason: GiveUpReason, entries: InboxEntry[]): Promise<void>;
}

export interface StoreOptions {
  /**
   * The session has sockets now. Its inbox then holds up to the connected bound, so a client that is
   * acking through a burst loses nothing; the (smaller) bound for sessions that are away applies again
   * at the next store made while it has none.
   */
  connected?: boolean;
}

export interface Inbox {
  /**
   * Appends the entry to the session's inbox, or leaves it in place if an entry with the same id is
   * there (a redelivered message is stored once). Resolves once the entry is as durable as the engine
   * allows. Beyond the bound the oldest entries are given up (`InboxEvents.gaveUp`, `inbox_full`).
   */
  store(sessionId: string, entry: InboxEntry, options?: StoreOptions): Promise<void>;
  /**
   * Entries still alive, oldest first, at most `limit`; expired entries found on the way are given up
   * (`inbox_expired`).
   */
  read(sessionId: string, limit: number): Promise<InboxEntry[]>;
  /** Removes one entry (the client acked it); false if it was not there. */
  remove(sessionId: string, id: string): Promise<boolean>;
  /** Removes these entries (a replayed window the client acked) in one step; how many were there. */
  removeAll(sessionId: string, ids: readonly string[]): Promise<number>;
  /** Messages waiting (expired ones not yet swept may be included until the next read or sweep). */
  size(sessionId: string): Promise<number>;
  /**
   * What the session missed since the last call (the gap notice of the next `register` answer), and
   * forgets it; undefined when nothing was given up.
   */
  takeMissed(sessionId: string): Promise<Missed | undefined>;
  close(): Promise<void>;
}

/** Adds given-up entries to a session's missed record. */
export function addMissed(missed: Missed | undefined, entries: readonly InboxEntry[]): Missed {
  let since = missed?.since ?? Infinity;
  for (const entry of entries) since = Math.min(since, entry.sentAt);
  return { count: (missed?.count ?? 0) + entries.length, since };
}
