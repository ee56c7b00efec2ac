/**
 * Counts events per key (a client address) in fixed windows and says when a key went over its limit.
 * Memory is bounded by the keys seen in the current and the previous window.
 */
export class RateLimiter {
  private current = new Map<string, number>();
  private windowStart: number;

  /** `limit` 0 means no limit. */
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.windowStart = now();
  }

  /** Counts one event for the key; false when the key is over its limit in this window. */
  take(key: string): boolean {
    if (this.limit === 0) return true;
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.current = new Map();
      this.windowStart = now - ((now - this.windowStart) % this.windowMs);
    }
    const count = (this.current.get(key) ?? 0) + 1;
    this.current.set(key, count);
    return count <= this.limit;
  }

  /** Seconds until the current window ends (for Retry-After). */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.windowStart + this.windowMs - this.now()) / 1000));
  }
}
