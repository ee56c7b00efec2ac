import { LinkedList, type Linked } from './linked-list.js';

/** An entry of a `DeadlineList`: when it was added (ms since epoch), set by `add`. */
export interface Timed<T> extends Linked<T> {
  at: number;
}

/**
 * Entries that each expire a fixed time after they were added, oldest first, with one timer for all of
 * them: armed for the oldest entry's deadline, armed again for the next one when it fires. Entries taken
 * out before their deadline cost no timer of their own (a per-entry timer would be an object per message
 * on the busiest paths). Because every entry waits the same time, the oldest always expires first.
 */
export class DeadlineList<T extends Timed<T>> {
  private readonly list = new LinkedList<T>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly delayMs: number,
    /** Called with each entry whose deadline passed, after it was taken out. */
    private readonly expire: (entry: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.list.size;
  }

  /** The oldest entry; walk on through `next`. */
  get head(): T | undefined {
    return this.list.head;
  }

  /** Adds an entry that is in no list; it expires `delayMs` from now. */
  add(entry: T): void {
    entry.at = this.now();
    this.list.push(entry);
    if (this.timer === undefined) this.arm(entry.at + this.delayMs);
  }

  /** Takes the entry out before its deadline; false when it is not in the list (expired, taken out). */
  remove(entry: T): boolean {
    if (!this.list.has(entry)) return false;
    this.list.remove(entry);
    return true;
  }

  /** Every entry, oldest first, taken out without expiring; the timer stops. */
  drain(): T[] {
    this.stop();
    return this.list.drain();
  }

  private stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(deadline: number): void {
    this.timer = setTimeout(this.fire, Math.max(0, deadline - this.now()));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = this.now();
    for (let head = this.list.head; head && head.at + this.delayMs <= now; head = this.list.head) {
      this.list.remove(head);
      this.expire(head);
    }
    // `expire` may have added entries, arming the timer already.
    const head = this.list.head;
    if (head && this.timer === undefined) this.arm(head.at + this.delayMs);
  };
}
