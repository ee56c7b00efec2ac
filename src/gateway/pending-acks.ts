import { LinkedList, type Linked } from '../util/linked-list.js';

/** A reliable emit waiting for its ack; settled once, by the ack, the timeout or a disconnect. */
export interface PendingAck extends Linked<PendingAck> {
  readonly settle: (acked: boolean) => void;
  /** When it was emitted (ms since epoch). */
  readonly sentAt: number;
}

/**
 * One socket's un-acked reliable emits, oldest first: a list linked through its entries, made once per
 * socket. A Map here (set, then delete, at every message) allocated a new hash table whenever it
 * emptied; each lived until the socket's next message, seconds later, so the young generation
 * promoted all of them and the full collections of a busy node had more to do.
 */
export class PendingAcks {
  private readonly list = new LinkedList<PendingAck>();

  get size(): number {
    return this.list.size;
  }

  /** When the oldest un-acked emit went out; undefined when none waits. */
  get oldestSentAt(): number | undefined {
    return this.list.head?.sentAt;
  }

  add(settle: (acked: boolean) => void, sentAt: number): PendingAck {
    const entry: PendingAck = { settle, sentAt, prev: undefined, next: undefined };
    this.list.push(entry);
    return entry;
  }

  /** Takes an entry out; one taken out already is left alone. */
  remove(entry: PendingAck): void {
    if (this.list.has(entry)) this.list.remove(entry);
  }

  /** Every waiting emit, oldest first, taken out of the list (e.g. to settle them on a disconnect). */
  drain(): PendingAck[] {
    return this.list.drain();
  }
}
