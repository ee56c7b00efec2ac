import type { Inbox, InboxEntry, InboxEvents } from './inbox.js';

export interface MemoryInboxOptions {
  maxPerSession: number;
  /** How often expired entries of sessions that never come back are swept (ms). */
  sweepIntervalMs?: number;
  now?: () => number;
}

/**
 * The embedded inbox: one insertion-ordered map per session. Bounded per session by `INBOX_MAX` and in
 * time by each entry's TTL; a periodic sweep releases the memory of sessions that never return.
 */
export class MemoryInbox implements Inbox {
  private readonly sessions = new Map<string, Map<string, InboxEntry>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly options: MemoryInboxOptions, private readonly events: InboxEvents) {
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 10_000);
    this.sweeper.unref();
  }

  async store(sessionId: string, entry: InboxEntry): Promise<void> {
    let entries = this.sessions.get(sessionId);
    if (!entries) {
      entries = new Map();
      this.sessions.set(sessionId, entries);
    }
    if (entries.has(entry.id)) return;
    entries.set(entry.id, entry);
    let evicted = 0;
    for (const id of entries.keys()) {
      if (entries.size <= this.options.maxPerSession) break;
      entries.delete(id);
      evicted += 1;
    }
    if (evicted > 0) this.events.evicted(evicted);
  }

  async read(sessionId: string, limit: number): Promise<InboxEntry[]> {
    const entries = this.sessions.get(sessionId);
    if (!entries) return [];
    this.expire(sessionId, entries);
    const alive: InboxEntry[] = [];
    for (const entry of entries.values()) {
      if (alive.length >= limit) break;
      alive.push(entry);
    }
    return alive;
  }

  async remove(sessionId: string, id: string): Promise<boolean> {
    const entries = this.sessions.get(sessionId);
    if (!entries?.delete(id)) return false;
    if (entries.size === 0) this.sessions.delete(sessionId);
    return true;
  }

  async size(sessionId: string): Promise<number> {
    return this.sessions.get(sessionId)?.size ?? 0;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Removes every expired entry now (the periodic sweep). */
  sweep(): void {
    for (const [sessionId, entries] of this.sessions) this.expire(sessionId, entries);
  }

  private expire(sessionId: string, entries: Map<string, InboxEntry>): void {
    const now = this.now();
    let expired = 0;
    for (const [id, entry] of entries) {
      if (entry.expiresAt <= now) {
        entries.delete(id);
        expired += 1;
      }
    }
    if (entries.size === 0) this.sessions.delete(sessionId);
    if (expired > 0) this.events.expired(expired);
  }
}
