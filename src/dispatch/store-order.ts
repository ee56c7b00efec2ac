/** What `StoreOrder` keeps per item: its session's list links. */
export interface InOrder<T> {
  readonly sessionId: string;
  orderPrev: T | undefined;
  orderNext: T | undefined;
  /** In its session's list (joined, not left yet). */
  inOrder: boolean;
  /** Called once the item is the oldest left of its session, when something waits for that. */
  whenFirst: (() => void) | undefined;
}

/**
 * Per session, the reliable messages not decided yet, oldest first. One writes to the inbox only once
 * every older message of its session has been decided (delivered, or its inbox write issued, or given
 * back), so the inbox keeps the order the messages came in, whichever of them had to look up the
 * session's nodes first and whichever found them in the directory cache.
 */
export class StoreOrder<T extends InOrder<T>> {
  private readonly sessions = new Map<string, { head: T; tail: T }>();

  join(item: T): void {
    const list = this.sessions.get(item.sessionId);
    item.inOrder = true;
    item.orderNext = undefined;
    item.orderPrev = list?.tail;
    if (list) {
      list.tail.orderNext = item;
      list.tail = item;
    } else {
      this.sessions.set(item.sessionId, { head: item, tail: item });
    }
  }

  /** Resolves once every older item of the session has left; undefined when that is so already. */
  turn(item: T): Promise<void> | undefined {
    if (!item.inOrder || item.orderPrev === undefined) return undefined;
    return new Promise((resolve) => {
      item.whenFirst = resolve;
    });
  }

  /** The item is decided; the next one of its session may write once it is the oldest left. */
  leave(item: T): void {
    if (!item.inOrder) return;
    item.inOrder = false;
    const { orderPrev: prev, orderNext: next } = item;
    item.orderPrev = undefined;
    item.orderNext = undefined;
    if (prev) prev.orderNext = next;
    if (next) next.orderPrev = prev;
    const list = this.sessions.get(item.sessionId)!;
    if (list.head === item && list.tail === item) {
      this.sessions.delete(item.sessionId);
      return;
    }
    if (list.tail === item) list.tail = prev!;
    if (list.head === item) {
      list.head = next!;
      const wake = next!.whenFirst;
      next!.whenFirst = undefined;
      wake?.();
    }
  }

  /** Sessions with a message not decided yet. */
  get size(): number {
    return this.sessions.size;
  }
}
