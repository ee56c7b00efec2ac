import { addMissed, type GiveUpReason, type Inbox, type InboxEntry, type InboxEvents, type Missed, type StoreOptions } from './inbox.js';

export interface MemoryInboxOptions {
  /** `INBOX_MAX`: entries kept for a session that is away. */
  maxPerSession: number;
  /** `INBOX_MAX_CONNECTED`: entries kept for a session that has sockets. Default: 100 × `maxPerSession`. */
  maxPerConnectedSession?: number;
  /** How often expired entries of sessions that never come back are swept (ms). */
  sweepIntervalMs?: number;
  now?: () => number;
}

/** Sessions whose gap notice waits for their next registration, at most (the memory engine's bound). */
const MAX_MISSED_SESSIONS = 100_000;

/**
 * The embedded inbox: one insertion-ordered map per session. Bounded per session by `INBOX_MAX` (or the
 * connected bound) and in time by each entry's TTL; what it gives up goes to `events.gaveUp`, and a
 * periodic sweep releases the memory of sessions that never return.
 */
export class MemoryInbox implements Inbox {
  private readonly sessions = new Map<string, Map<string, InboxEntry>>();
  private readonly missed = new Map<string, Missed>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly maxConnected: number;

  constructor(private readonly options: MemoryInboxOptions, private readonly events: InboxEvents) {
    this.now = options.now ?? Date.now;
    this.maxConnected = options.maxPerConnectedSession ?? options.maxPerSession * 100;
    this.sweeper = setInterval(() => void this.sweep(), options.sweepIntervalMs ?? 10_000);
    this.sweeper.unref();
  }

  async store(sessionId: string, entry: InboxEntry, options: StoreOptions = {}): Promise<void> {
    let entries = this.sessions.get(sessionId);
    if (!entries) {
      entries = new Map();
      this.sessions.set(sessionId, entries);
    }
    if (entries.has(entry.id)) return;
    entries.set(entry.id, entry);
    const max = options.connected ? this.maxConnected : this.options.maxPerSession;
    const evicted: InboxEntry[] = [];
    for (const [id, oldest] of entries) {
      if (entries.size <= max) break;
      entries.delete(id);
      evicted.push(oldest);
    }
    await this.giveUp(sessionId, 'inbox_full', evicted);
  }

  async read(sessionId: string, limit: number): Promise<InboxEntry[]> {
    const entries = this.sessions.get(sessionId);
    if (!entries) return [];
    await this.expire(sessionId, entries);
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

  async removeAll(sessionId: string, ids: readonly string[]): Promise<number> {
    let removed = 0;
    for (const id of ids) if (await this.remove(sessionId, id)) removed += 1;
    return removed;
  }

  async size(sessionId: string): Promise<number> {
    return this.sessions.get(sessionId)?.size ?? 0;
  }

  async takeMissed(sessionId: string): Promise<Missed | undefined> {
    const missed = this.missed.get(sessionId);
    this.missed.delete(sessionId);
    return missed;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Gives up every expired entry now (the periodic sweep). */
  async sweep(): Promise<void> {
    for (const [sessionId, entries] of this.sessions) await this.expire(sessionId, entries);
  }

  private async expire(sessionId: string, entries: Map<string, InboxEntry>): Promise<void> {
    const now = this.now();
    const expired: InboxEntry[] = [];
    for (const [id, entry] of entries) {
      if (entry.expiresAt <= now) {
        entries.delete(id);
        expired.push(entry);
      }
    }
    if (entries.size === 0) this.sessions.delete(sessionId);
    await this.giveUp(sessionId, 'inbox_expired', expired);
  }

  private async giveUp(sessionId: string, reason: GiveUpReason, entries: InboxEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.events.gaveUp(sessionId, reason, entries);
    const missed = addMissed(this.missed.get(sessionId), entries);
    // Re-inserted at the end, so the sessions longest without a new gap are first to be forgotten.
    this.missed.delete(sessionId);
    this.missed.set(sessionId, missed);
    if (this.missed.size > MAX_MISSED_SESSIONS) this.missed.delete(this.missed.keys().next().value!);
  }
}
