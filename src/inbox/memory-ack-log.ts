import { ackLogBounds, requireCount, type AckLog, type AckLogOptions } from './ack-log.js';

export interface MemoryAckLogOptions extends AckLogOptions {
  /** Ids remembered per session; beyond it the oldest are forgotten. Default 2 000 (a node's prefetch at most). */
  perSession?: number;
  /** Sessions remembered at the most; beyond it the least recently recorded one is forgotten. Default 100 000. */
  maxSessions?: number;
  /** How often sessions whose latest record is `ttlMs` old are released (ms). Default 60 000. */
  sweepIntervalMs?: number;
}

/** One session's acked ids, oldest record first, and when the newest was recorded. */
interface SessionLog {
  ids: Map<string, number>;
  latestAt: number;
}

/**
 * The embedded acked-id log: one insertion-ordered map per session, the sessions themselves ordered by
 * their latest record, so the oldest ids and the least recently recorded sessions are always first.
 * Bounded per session by `perSession`, in number of sessions by `maxSessions`, and in time by `ttlMs`
 * (checked on every call, and by a periodic sweep for sessions that stopped acking).
 */
export class MemoryAckLog implements AckLog {
  private readonly sessions = new Map<string, SessionLog>();
  private readonly perSession: number;
  private readonly ttlMs: number;
  private readonly maxSessions: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryAckLogOptions = {}) {
    ({ ttlMs: this.ttlMs, now: this.now } = ackLogBounds(options));
    this.perSession = options.perSession ?? 2_000;
    requireCount('perSession', this.perSession);
    this.maxSessions = options.maxSessions ?? 100_000;
    requireCount('maxSessions', this.maxSessions);
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  /** Sessions remembered now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  async record(sessionId: string, id: string): Promise<void> {
    const now = this.now();
    const session = this.sessions.get(sessionId) ?? { ids: new Map<string, number>(), latestAt: now };
    // Re-inserted at the end: the session is now the most recently recorded, and the id its newest.
    this.sessions.delete(sessionId);
    this.sessions.set(sessionId, session);
    session.ids.delete(id);
    session.ids.set(id, now);
    session.latestAt = now;
    for (const [oldId, at] of session.ids) {
      if (session.ids.size <= this.perSession && this.alive(at, now)) break;
      session.ids.delete(oldId);
    }
    // Only when over the bound: walking from the start also walks over the holes that moving a session
    // to the end leaves behind, until V8 compacts the map.
    if (this.sessions.size <= this.maxSessions) return;
    for (const oldest of this.sessions.keys()) {
      if (this.sessions.size <= this.maxSessions) break;
      this.sessions.delete(oldest);
    }
  }

  async has(sessionId: string, id: string): Promise<boolean> {
    const session = this.sessions.get(sessionId);
    if (!session) return false;
    const now = this.now();
    if (!this.alive(session.latestAt, now)) {
      this.sessions.delete(sessionId);
      return false;
    }
    const at = session.ids.get(id);
    return at !== undefined && this.alive(at, now);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Releases every session whose latest record is `ttlMs` old now (the periodic sweep). */
  sweep(): void {
    const now = this.now();
    for (const [sessionId, session] of this.sessions) {
      if (this.alive(session.latestAt, now)) break;
      this.sessions.delete(sessionId);
    }
  }

  private alive(at: number, now: number): boolean {
    return now - at < this.ttlMs;
  }
}
