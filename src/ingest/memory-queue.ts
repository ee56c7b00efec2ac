import type { DeadLetterCopy, Delivery, DeliveryHandler, NotificationQueue, QueueMessage } from './queue.js';
import { QueueUnavailableError } from './queue.js';

interface Entry {
  message: QueueMessage;
  redelivered: boolean;
}

/** A dead letter kept in memory, and when it came. */
export interface DeadLetter extends DeadLetterCopy {
  /** ms since epoch. */
  at: number;
}

export interface MemoryQueueOptions {
  prefetch: number;
  /** Messages waiting beyond this make `publish` fail with `QueueUnavailableError` (HTTP 503). */
  maxLength: number;
  /** Dead letters kept for inspection (`GET /v1/dead-letters`), newest last; older ones are counted only. */
  maxDeadLetters?: number;
}

/**
 * The embedded queue: a FIFO in this process with the same prefetch and settle semantics as the
 * RabbitMQ engine. Nothing survives a restart; what is waiting when the process stops is lost.
 */
export class MemoryQueue implements NotificationQueue {
  readonly engine = 'memory';
  readonly connected = true;
  /** The newest dead letters (`maxDeadLetters`), oldest first. */
  readonly deadLetters: DeadLetter[] = [];
  /** Every dead letter since start, by reason (including those no longer kept). */
  readonly deadLetterCounts = new Map<string, number>();
  private readonly waiting: Entry[] = [];
  private head = 0;
  private handler: DeliveryHandler | undefined;
  private paused = false;
  private stopped = false;
  private pumping = false;
  private unsettled = 0;

  constructor(private readonly options: MemoryQueueOptions) {}

  get inflight(): number {
    return this.unsettled;
  }

  get consuming(): boolean {
    return this.handler !== undefined && !this.stopped;
  }

  /** Messages waiting to be delivered. */
  get length(): number {
    return this.waiting.length - this.head;
  }

  async publish(messages: QueueMessage[]): Promise<void> {
    if (this.stopped) throw new QueueUnavailableError('the node is shutting down', 1);
    if (this.length + messages.length > this.options.maxLength) {
      throw new QueueUnavailableError(
        `the embedded queue holds ${this.length} messages (EMBEDDED_QUEUE_MAX=${this.options.maxLength})`,
      );
    }
    for (const message of messages) this.waiting.push({ message, redelivered: false });
    this.schedule();
  }

  async deadLetter(copies: DeadLetterCopy[]): Promise<void> {
    for (const copy of copies) this.keepDeadLetter(copy);
  }

  async deadLetterDepth(): Promise<number> {
    return this.deadLetters.length;
  }

  async consume(handler: DeliveryHandler): Promise<void> {
    this.handler = handler;
    this.schedule();
  }

  async pause(): Promise<void> {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  async stopConsuming(): Promise<void> {
    this.stopped = true;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.handler = undefined;
  }

  private schedule(): void {
    if (this.pumping) return;
    this.pumping = true;
    // Deliver from a fresh task so settle calls never recurse into the handler.
    setImmediate(() => {
      this.pumping = false;
      this.pump();
    });
  }

  private pump(): void {
    const handler = this.handler;
    while (handler && !this.paused && !this.stopped && this.unsettled < this.options.prefetch && this.length > 0) {
      const entry = this.waiting[this.head]!;
      this.waiting[this.head] = undefined as unknown as Entry;
      this.head += 1;
      this.compact();
      this.unsettled += 1;
      handler(this.delivery(entry));
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  private keepDeadLetter(copy: DeadLetterCopy): void {
    this.deadLetterCounts.set(copy.reason, (this.deadLetterCounts.get(copy.reason) ?? 0) + 1);
    this.deadLetters.push({ ...copy, at: Date.now() });
    const max = this.options.maxDeadLetters ?? 1000;
    if (this.deadLetters.length > max) this.deadLetters.splice(0, this.deadLetters.length - max);
  }

  private delivery(entry: Entry): Delivery {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.unsettled -= 1;
      this.schedule();
      return true;
    };
    return {
      message: entry.message,
      redelivered: entry.redelivered,
      ack: () => {
        settle();
      },
      deadLetter: async (reason, detail) => {
        if (!settle()) return;
        this.keepDeadLetter({ message: entry.message, reason, detail });
      },
      // The entry is what a requeue puts back: it is kept whole.
      release: () => {},
      requeue: () => {
        if (!settle()) return;
        // Back to the head, as RabbitMQ does, flagged as redelivered.
        if (this.head > 0) {
          this.head -= 1;
          this.waiting[this.head] = { message: entry.message, redelivered: true };
        } else {
          this.waiting.unshift({ message: entry.message, redelivered: true });
        }
      },
    };
  }
}
