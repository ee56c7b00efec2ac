import type { Channel, Message } from 'amqplib';
import { LinkedList, type Linked } from '../../util/linked-list.js';
import type { Logger } from '../../observability/logger.js';

/** Time and timers, so that the batching can be tested without waiting. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export interface AckTrackerOptions {
  /** Flush at once when this many acks wait; half the prefetch keeps the broker busy meanwhile. */
  batchMax: number;
  /** Acks of a contiguous finished prefix are held this long to be sent as one multiple-ack. Default 5. */
  flushMs?: number;
  /**
   * A finished delivery stuck behind an unfinished one (so not in the prefix) is acked on its own after
   * this long, so a slow message at the head does not keep finished ones occupying prefetch slots.
   * Default 10.
   */
  stragglerMs?: number;
  logger: Logger;
  /** Default: `Date.now` and the real timers. */
  clock?: Clock;
}

/**
 * A delivery outstanding at the broker. It keeps the tag only: acks and nacks need nothing else, and the
 * message itself (its properties, headers and body) then lives only as long as the delivery needs it.
 */
export interface Tracked extends Linked<Tracked> {
  readonly tag: number;
  acked: boolean;
  ackedAt: number;
}

/**
 * The unacked deliveries of one consume channel, and the batching of their acks.
 *
 * Guarantees:
 * - a delivery tag is sent to the broker at most once (one ack or one nack), and only on the channel it
 *   came from: once the channel is gone (`dispose`) every settle is a no-op, because the broker has
 *   already requeued what was unacked;
 * - a multiple-ack for tag T is sent only when every tag ≤ T still outstanding at the broker was acked
 *   by the application. Requeued (nacked) and individually acked tags are no longer outstanding at the
 *   broker, so a later multiple-ack passes over them without acking them again;
 * - a requeue is sent at once, never batched;
 * - no ack waits long: a finished prefix goes out `flushMs` after its last ack, a finished delivery
 *   behind an unfinished one goes out alone at the first flush after it waited `stragglerMs`, and the
 *   flush comes at once when `batchMax` acks wait (all of them go out then, if none is in a prefix).
 */
export class AckTracker {
  /** Outstanding at the broker, in delivery-tag order; a list, not a Map, so that the churn allocates nothing. */
  private readonly outstanding = new LinkedList<Tracked>();
  private readonly batchMax: number;
  private readonly flushMs: number;
  private readonly stragglerMs: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private ackedCount = 0;
  private heldCount = 0;
  private timer: unknown;
  private timerAt = 0;
  private alive = true;

  constructor(private readonly channel: Pick<Channel, 'ack' | 'nack'>, options: AckTrackerOptions) {
    this.batchMax = options.batchMax;
    this.flushMs = options.flushMs ?? 5;
    this.stragglerMs = options.stragglerMs ?? 10;
    this.log = options.logger;
    this.clock = options.clock ?? realClock;
  }

  /** Deliveries the application has not settled yet. */
  get held(): number {
    return this.heldCount;
  }

  /** False once disposed: the channel is gone. */
  get active(): boolean {
    return this.alive;
  }

  /** A new delivery; tags must come in the order the channel delivered them. */
  track(deliveryTag: number): Tracked {
    const tracked: Tracked = { tag: deliveryTag, acked: false, ackedAt: 0, prev: undefined, next: undefined };
    this.outstanding.push(tracked);
    this.heldCount += 1;
    return tracked;
  }

  ack(tracked: Tracked): void {
    if (!this.owns(tracked)) return;
    tracked.acked = true;
    tracked.ackedAt = this.clock.now();
    this.heldCount -= 1;
    this.ackedCount += 1;
    if (this.ackedCount >= this.batchMax) this.flush(false);
    else this.arm(this.flushMs);
  }

  /** Back to the queue now (nack with requeue); never delayed, so it is never swallowed by a batch. */
  requeue(tracked: Tracked): void {
    if (!this.owns(tracked)) return;
    this.outstanding.remove(tracked);
    this.heldCount -= 1;
    this.send(() => this.channel.nack(byTag(tracked.tag), false, true));
  }

  /**
   * Acks the longest contiguous acked prefix with one multiple-ack, then, one by one, the acked
   * deliveries behind an unfinished one that waited long enough (all of them when `everything`).
   */
  flush(everything: boolean): void {
    this.disarm();
    if (!this.alive || this.ackedCount === 0) return;
    let last: Tracked | undefined;
    while (this.outstanding.head?.acked) {
      last = this.outstanding.head;
      this.outstanding.remove(last);
      this.ackedCount -= 1;
    }
    if (last) {
      const upTo = last;
      this.send(() => this.channel.ack(byTag(upTo.tag), true));
    }
    if (this.ackedCount === 0) return;
    const force = everything || this.ackedCount >= this.batchMax;
    const cutoff = this.clock.now() - this.stragglerMs;
    for (let tracked = this.outstanding.head; tracked; ) {
      const next = tracked.next;
      if (tracked.acked && (force || tracked.ackedAt <= cutoff)) {
        this.outstanding.remove(tracked);
        this.ackedCount -= 1;
        const tag = tracked.tag;
        this.send(() => this.channel.ack(byTag(tag), false));
      }
      tracked = next;
    }
    if (this.ackedCount > 0) this.arm(this.stragglerMs);
  }

  /** The channel is gone: forget everything, send nothing more. */
  dispose(): void {
    this.alive = false;
    this.disarm();
    this.outstanding.drain();
    this.ackedCount = 0;
    this.heldCount = 0;
  }

  private owns(tracked: Tracked): boolean {
    return this.alive && !tracked.acked && this.outstanding.has(tracked);
  }

  /** Flushes within `ms`: an earlier deadline replaces a later one (a slot held is throughput lost). */
  private arm(ms: number): void {
    const at = this.clock.now() + ms;
    if (this.timer !== undefined) {
      if (this.timerAt <= at) return;
      this.clock.clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.flush(false);
    }, ms);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private send(operation: () => void): void {
    try {
      operation();
    } catch (err) {
      // The channel closed under us; the broker requeues what it had not been told about.
      this.log.debug({ err }, 'ack/nack not sent: the channel is closed');
    }
  }
}

/**
 * What amqplib's `ack` and `nack` read of a message: its delivery tag (`message.fields.deliveryTag`,
 * amqplib 0.10 to 2.x), so that the tracker need not keep the whole message for them.
 */
function byTag(deliveryTag: number): Message {
  return { fields: { deliveryTag } } as unknown as Message;
}
