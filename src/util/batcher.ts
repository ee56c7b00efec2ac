/**
 * Gathers items added close together into one write: the first item of a batch waits `windowMs` for
 * others (or until `maxItems` are in; with 0, until the current turn of the event loop is over), then
 * `write` gets them all and each `add` settles with its own item's result. Used where one round trip per item would cost more than the work itself.
 */
export class Batcher<T, R> {
  private pending: {
    items: T[];
    waiters: Array<{ index: number; resolve: (r: R) => void; reject: (err: unknown) => void }>;
    timer: NodeJS.Timeout | NodeJS.Immediate;
  } | undefined;
  private readonly sending = new Set<Promise<void>>();

  constructor(
    private readonly write: (items: T[]) => Promise<R[]>,
    private readonly windowMs: number,
    private readonly maxItems: number,
  ) {
    if (!(windowMs >= 0)) throw new RangeError(`windowMs must be >= 0, got ${windowMs}`);
    if (!Number.isSafeInteger(maxItems) || maxItems < 1) throw new RangeError(`maxItems must be a whole number >= 1, got ${maxItems}`);
  }

  add(item: T): Promise<R> {
    const batch = this.batch();
    const index = batch.items.push(item) - 1;
    const result = new Promise<R>((resolve, reject) => batch.waiters.push({ index, resolve, reject }));
    if (batch.items.length >= this.maxItems) this.flush();
    return result;
  }

  /** Adds an item nobody waits for (its write's failure is the writer's to report). */
  push(item: T): void {
    if (this.batch().items.push(item) >= this.maxItems) this.flush();
  }

  private batch(): NonNullable<Batcher<T, R>['pending']> {
    this.pending ??= {
      items: [],
      waiters: [],
      timer: this.windowMs === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), this.windowMs),
    };
    return this.pending;
  }

  /** The items not sent yet. */
  get waiting(): readonly T[] {
    return this.pending?.items ?? [];
  }

  /** Sends what is pending now. */
  flush(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = undefined;
    if (this.windowMs === 0) clearImmediate(batch.timer as NodeJS.Immediate);
    else clearTimeout(batch.timer as NodeJS.Timeout);
    const sent = this.write(batch.items).then(
      (results) => batch.waiters.forEach((waiter) => waiter.resolve(results[waiter.index] as R)),
      (err: unknown) => batch.waiters.forEach((waiter) => waiter.reject(err)),
    );
    const settled: Promise<void> = sent.finally(() => this.sending.delete(settled));
    this.sending.add(settled);
  }

  /** Sends what is pending and waits for every write under way. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all([...this.sending]);
  }
}
