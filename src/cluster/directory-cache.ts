/** How long a directory lookup is reused at most (changes are announced, so usually much less). */
const CACHE_MS = 60_000;
/** Sessions cached at most; the cache starts over beyond it. */
const CACHE_MAX = 100_000;

/**
 * Other nodes holding a session, as last read from the shared store. Every node announces each change of
 * its entries, which drops the session from every cache (`changed`); the age limit is a safety net for
 * announcements missed while the subscriber reconnected (the cache is also cleared then).
 */
export class RemoteNodesCache {
  private readonly lookups = new Map<string, { nodes: string[]; at: number }>();
  /** Sessions announced as changed, with the sequence number of the announcement (see `store`). */
  private readonly changedAt = new Map<string, number>();
  private changes = 0;

  get(sessionId: string, now = Date.now()): string[] | undefined {
    const cached = this.lookups.get(sessionId);
    return cached && now - cached.at < CACHE_MS ? cached.nodes : undefined;
  }

  /** Marks the start of a read of the store; pass it to `store` with what was read. */
  mark(): number {
    return this.changes;
  }

  /**
   * Keeps what a read begun at `mark` found, unless a change of the session was announced meanwhile:
   * the read may have missed it, and caching it would hide the change until the age limit.
   */
  store(sessionId: string, nodes: string[], mark: number, now = Date.now()): void {
    if ((this.changedAt.get(sessionId) ?? 0) > mark) return;
    if (this.lookups.size >= CACHE_MAX) this.clear();
    this.lookups.set(sessionId, { nodes, at: now });
  }

  /** A node announced a change of its entries for the session. */
  changed(sessionId: string): void {
    this.changes += 1;
    this.lookups.delete(sessionId);
    if (this.changedAt.size >= CACHE_MAX) this.changedAt.clear();
    this.changedAt.set(sessionId, this.changes);
  }

  clear(): void {
    this.lookups.clear();
    this.changedAt.clear();
  }
}
