/** A reliable emit waiting for its ack; settled once, by the ack, the timeout or a disconnect. */
export interface PendingAck {
  readonly settle: (acked: boolean) => void;
  /** When it was emitted (ms since epoch). */
  readonly sentAt: number;
  prev: PendingAck | undefined;
  next: PendingAck | undefined;
}

/**
 * One socket's un-acked reliable emits, oldest first: a list linked through its entries, made once per
 * socket. A Map here (set, then delete, at every message) allocated a new hash table whenever it
 * emptied; each lived until the socket's next message, seconds later, so the young generation
 * promoted all of them and the full collections of a busy node had more to do.
 */
export class PendingAcks {
  private head: PendingAck | undefined;
  private tail: PendingAck | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** When the oldest un-acked emit went out; undefined when none waits. */
  get oldestSentAt(): number | undefined {
    return this.head?.sentAt;
  }

  add(settle: (acked: boolean) => void, sentAt: number): PendingAck {
    const entry: PendingAck = { settle, sentAt, prev: this.tail, next: undefined };
    if (this.tail) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    this.count += 1;
    return entry;
  }

  /** Takes an entry out; one taken out already is left alone. */
  remove(entry: PendingAck): void {
    if (entry.prev === undefined && this.head !== entry) return;
    if (entry.prev) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    this.count -= 1;
  }

  /** Every waiting emit, oldest first, taken out of the list (e.g. to settle them on a disconnect). */
  drain(): PendingAck[] {
    const all: PendingAck[] = [];
    let entry = this.head;
    while (entry) {
      const next = entry.next;
      entry.prev = undefined;
      entry.next = undefined;
      all.push(entry);
      entry = next;
    }
    this.head = undefined;
    this.tail = undefined;
    this.count = 0;
    return all;
  }
}
