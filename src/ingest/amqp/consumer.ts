import type { Channel, ConsumeMessage } from 'amqplib';
import { workQueues } from '../../config/config.js';
import type { Logger } from '../../observability/logger.js';
import type { Delivery, DeliveryHandler } from '../queue.js';
import { AckTracker, type Tracked } from './ack-tracker.js';
import { ReconnectingLink, type Link, type Opening, type ReconnectingLinkOptions } from './connection.js';
import type { DeadLetters } from './dead-letter.js';
import { toQueueMessage } from './headers.js';
import { declareTopology, type TopologyOptions } from './topology.js';

const RELEASED_BODY = Buffer.alloc(0);

export interface AmqpConsumerOptions
  extends Pick<ReconnectingLinkOptions<ConsumeSession>, 'url' | 'connectionName' | 'reconnect' | 'logger'> {
  /** Declared on each new channel before consuming from the work queue, or from each of its shards. */
  topology: TopologyOptions;
  /** Unsettled deliveries RabbitMQ hands this node at most, over all shards (`splitPrefetch`). */
  prefetch: number;
  deadLetters: DeadLetters;
  /** Called when `connected` may have changed. */
  onStatus: () => void;
}

/** What is set up on the consume connection. */
interface ConsumeSession {
  readonly channel: Channel;
  readonly tracker: AckTracker;
  /** Per work queue (shard), the tag of its consumer on the channel while one is registered. */
  readonly consumerTags: Array<string | undefined>;
  /** The per-consumer prefetch last set on the channel (basic.qos applies to consumers registered after it). */
  qos: number | undefined;
}

/**
 * The prefetch of each shard's consumer: `prefetch` split as evenly as whole numbers allow, so that
 * together they are exactly `prefetch`. RabbitMQ limits unacked deliveries per consumer (quorum queues
 * know no per-channel limit), so the node's bound holds only if the parts add up to it.
 */
export function splitPrefetch(prefetch: number, shards: number): number[] {
  if (prefetch < shards) throw new RangeError(`a prefetch of ${prefetch} cannot be split over ${shards} shards`);
  const base = Math.floor(prefetch / shards);
  return Array.from({ length: shards }, (_, index) => base + (index < prefetch % shards ? 1 : 0));
}

/**
 * The consuming half of the RabbitMQ engine, on a connection of its own: the consumer registration
 * and the deliveries it hands out. On a sharded ingest it registers one consumer per shard queue, all
 * on one channel, so that one ack tracker (delivery tags are per channel) settles them all.
 *
 * Guarantees:
 * - a consumer is registered on every work queue while a handler is set and it is neither paused,
 *   stopped nor closing; changes are applied one at a time, each to the state at its turn, and again
 *   after a reconnection;
 * - the shards' prefetches add up to `prefetch`: the node never holds more unsettled deliveries;
 * - a delivery is settled once: the first of `ack`, `requeue` and `deadLetter` counts, the others are
 *   no-ops, and so is any settle after its channel is gone (the broker has requeued it);
 * - a delivery the handler throws on, or that comes when no handler is set, is requeued.
 */
export class AmqpConsumer {
  private readonly link: ReconnectingLink<ConsumeSession>;
  private readonly log: Logger;
  /** The queues consumed: the work queue, or its shards. */
  private readonly queues: string[];
  /** The prefetch of each queue's consumer. */
  private readonly prefetches: number[];
  private handler: DeliveryHandler | undefined;
  private paused = false;
  private stopped = false;
  private closing = false;
  /** Consumer registration and cancellation, one at a time, each acting on the state at its turn. */
  private ops: Promise<void> = Promise.resolve();

  constructor(private readonly options: AmqpConsumerOptions) {
    const { url, connectionName, reconnect, logger } = options;
    this.log = logger;
    this.queues = workQueues(options.topology);
    this.prefetches = splitPrefetch(options.prefetch, this.queues.length);
    this.link = new ReconnectingLink({
      url, connectionName, reconnect, logger,
      role: 'consume',
      setUp: (opening, watch) => this.setUp(opening, watch),
      onUp: () => {
        options.onStatus();
        void this.sync();
      },
      onLost: ({ session }, reconnecting) => {
        session.tracker.dispose();
        session.consumerTags.fill(undefined);
        if (reconnecting) options.onStatus();
      },
    });
  }

  get connected(): boolean {
    return this.link.current?.alive === true;
  }

  /** Unsettled deliveries, from every shard; never more than the prefetch. */
  get inflight(): number {
    return this.link.current?.session.tracker.held ?? 0;
  }

  /** Connected, with a handler, not stopped, and registered on every work queue (or paused on purpose). */
  get consuming(): boolean {
    const link = this.link.current;
    return link?.alive === true && this.handler !== undefined && !this.stopped &&
      (this.paused || link.session.consumerTags.every((tag) => tag !== undefined));
  }

  /** Opens the connection once; see `ReconnectingLink.open`. */
  open(): Promise<void> {
    return this.link.open();
  }

  async consume(handler: DeliveryHandler): Promise<void> {
    this.handler = handler;
    this.stopped = false;
    await this.sync();
  }

  /**
   * Cancels the consumers (RabbitMQ has no channel.flow); deliveries already received stay valid.
   * Resolves once the broker has every cancel (a failure is logged; the reconnection settles it).
   */
  pause(): Promise<void> {
    if (this.paused) return this.ops;
    this.paused = true;
    return this.sync();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    void this.sync();
  }

  async stopConsuming(): Promise<void> {
    this.stopped = true;
    await this.sync();
  }

  /** Shutdown, first step: no reconnection and no new registration; resolves once an attempt under way settled. */
  stop(): Promise<void> {
    this.closing = true;
    return this.link.stop();
  }

  /** Shutdown, second step: sends the acks still batched, then closes the channel and the connection. */
  async close(): Promise<void> {
    await this.ops;
    await this.link.close(({ session }) => {
      session.tracker.flush(true);
      session.tracker.dispose();
    });
  }

  private async setUp(opening: Opening, watch: (channel: Channel) => void): Promise<ConsumeSession> {
    const channel = await opening.connection.createChannel();
    watch(channel);
    await declareTopology(channel, this.options.topology, opening.connection);
    // Half a shard's prefetch: the broker has deliveries to send while a batch of acks waits.
    const batchMax = Math.max(1, Math.floor(Math.min(...this.prefetches) / 2));
    return {
      channel,
      tracker: new AckTracker(channel, { batchMax, logger: this.log }),
      consumerTags: this.queues.map(() => undefined),
      qos: undefined,
    };
  }

  private sync(): Promise<void> {
    const next = this.ops.then(() => this.reconcile()).catch((err: unknown) => {
      // The channel closed meanwhile; the reconnection consumes again.
      this.log.warn({ err }, 'registering or cancelling the RabbitMQ consumer failed');
    });
    this.ops = next;
    return next;
  }

  /** Brings the consumer registrations in line with what is wanted now. */
  private async reconcile(): Promise<void> {
    const link = this.link.current;
    if (!link?.alive) return;
    const session = link.session;
    const wanted = this.handler !== undefined && !this.paused && !this.stopped && !this.closing;
    for (const [index, queue] of this.queues.entries()) {
      const registered = session.consumerTags[index];
      if (wanted && registered === undefined) {
        // Per consumer (global = false): quorum queues do not support global QoS.
        const prefetch = this.prefetches[index]!;
        if (session.qos !== prefetch) {
          await session.channel.prefetch(prefetch, false);
          session.qos = prefetch;
        }
        const { consumerTag } = await session.channel.consume(queue,
          (msg) => this.onMessage(link, index, msg), { noAck: false });
        if (link.alive) session.consumerTags[index] = consumerTag;
        this.log.debug({ consumerTag, queue, prefetch }, 'consuming');
      } else if (!wanted && registered !== undefined) {
        await session.channel.cancel(registered);
        if (session.consumerTags[index] === registered) session.consumerTags[index] = undefined;
        this.log.debug({ consumerTag: registered, queue }, 'consumer cancelled');
      }
    }
  }

  private onMessage(link: Link<ConsumeSession>, index: number, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The server cancelled the consumer (e.g. the queue was deleted): consume again; if the queue is
      // gone that fails, the channel closes, and the reconnection declares the queue anew.
      this.log.warn({ queue: this.queues[index] }, 'RabbitMQ cancelled the consumer; consuming again');
      link.session.consumerTags[index] = undefined;
      void this.sync();
      return;
    }
    if (!link.alive) return;
    const tracker = link.session.tracker;
    const delivery = this.toDelivery(tracker, tracker.track(msg.fields.deliveryTag), msg, this.queues[index]!);
    const handler = this.handler;
    if (!handler) {
      delivery.requeue();
      return;
    }
    try {
      handler(delivery);
    } catch (err) {
      this.log.error({ err, messageId: delivery.message.messageId }, 'delivery handler threw; message requeued');
      delivery.requeue();
    }
  }

  private toDelivery(tracker: AckTracker, tracked: Tracked, consumed: ConsumeMessage, queue: string): Delivery {
    let settled = false;
    const claim = (): boolean => {
      if (settled) return false;
      settled = true;
      return true;
    };
    // Held for a dead-letter copy until released; the tracker keeps only the tag.
    let msg: ConsumeMessage | undefined = consumed;
    const message = toQueueMessage(consumed);
    return {
      message,
      redelivered: consumed.fields.redelivered,
      ack: () => {
        if (claim()) tracker.ack(tracked);
      },
      requeue: () => {
        if (claim()) tracker.requeue(tracked);
      },
      release: () => {
        msg = undefined;
        message.body = RELEASED_BODY;
      },
      deadLetter: async (reason, detail) => {
        if (msg === undefined) throw new Error('dead-letter after release: the message was let go of');
        const original = msg;
        // A delivery from a channel that is gone was requeued by the broker: it is judged again.
        if (!claim() || !tracker.active) return;
        await this.options.deadLetters.move(original, queue, reason, detail, {
          ack: () => tracker.ack(tracked),
          requeue: () => tracker.requeue(tracked),
        });
      },
    };
  }
}
