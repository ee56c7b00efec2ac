/** An entry of a `LinkedList`: the list links its entries through these two fields. */
export interface Linked<T> {
  prev: T | undefined;
  next: T | undefined;
}

/**
 * A doubly linked list through its entries, oldest first: adding and taking out an entry allocate
 * nothing. The busy paths (un-acked emits and direct-write ack callbacks per socket, un-acked broker
 * deliveries) use it instead of a Map that is set and deleted at every message: such a Map rebuilds its
 * hash table as it churns, and on a busy node each table lives long enough to be promoted out of V8's
 * young generation, to be collected later by a full collection.
 */
export class LinkedList<T extends Linked<T>> {
  private first: T | undefined;
  private last: T | undefined;
  private count = 0;

  get head(): T | undefined {
    return this.first;
  }

  get size(): number {
    return this.count;
  }

  /** Whether the entry is in this list (an entry is in one list at most). */
  has(entry: T): boolean {
    return entry.prev !== undefined || this.first === entry;
  }

  /** Appends an entry that is in no list. */
  push(entry: T): void {
    entry.prev = this.last;
    entry.next = undefined;
    if (this.last) this.last.next = entry;
    else this.first = entry;
    this.last = entry;
    this.count += 1;
  }

  /** Takes an entry of this list out. */
  remove(entry: T): void {
    if (entry.prev) entry.prev.next = entry.next;
    else this.first = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.last = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    this.count -= 1;
  }

  /** Every entry, oldest first, taken out of the list. */
  drain(): T[] {
    const all: T[] = [];
    for (let entry = this.first; entry; ) {
      const next = entry.next;
      entry.prev = undefined;
      entry.next = undefined;
      all.push(entry);
      entry = next;
    }
    this.first = undefined;
    this.last = undefined;
    this.count = 0;
    return all;
  }
}
