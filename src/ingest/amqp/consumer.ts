import type { Channel, ConsumeMessage } from 'amqplib';
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
  /** Declared on each new channel before consuming from `topology.queue`. */
  topology: TopologyOptions;
  /** Unsettled deliveries RabbitMQ hands this consumer at most. */
  prefetch: number;
  deadLetters: DeadLetters;
  /** Called when `connected` may have changed. */
  onStatus: () => void;
}

/** What is set up on the consume connection. */
interface ConsumeSession {
  readonly channel: Channel;
  readonly tracker: AckTracker;
  /** Set while a consumer is registered on the channel. */
  consumerTag: string | undefined;
}

/**
 * The consuming half of the RabbitMQ engine, on a connection of its own: the consumer registration
 * and the deliveries it hands out.
 *
 * Guarantees:
 * - the consumer is registered while a handler is set and it is neither paused, stopped nor closing;
 *   changes are applied one at a time, each to the state at its turn, and again after a reconnection;
 * - a delivery is settled once: the first of `ack`, `requeue` and `deadLetter` counts, the others are
 *   no-ops, and so is any settle after its channel is gone (the broker has requeued it);
 * - a delivery the handler throws on, or that comes when no handler is set, is requeued.
 */
export class AmqpConsumer {
  private readonly link: ReconnectingLink<ConsumeSession>;
  private readonly log: Logger;
  private handler: DeliveryHandler | undefined;
  private paused = false;
  private stopped = false;
  private closing = false;
  /** Consumer registration and cancellation, one at a time, each acting on the state at its turn. */
  private ops: Promise<void> = Promise.resolve();

  constructor(private readonly options: AmqpConsumerOptions) {
    const { url, connectionName, reconnect, logger } = options;
    this.log = logger;
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
        session.consumerTag = undefined;
        if (reconnecting) options.onStatus();
      },
    });
  }

  get connected(): boolean {
    return this.link.current?.alive === true;
  }

  /** Unsettled deliveries; never more than the prefetch. */
  get inflight(): number {
    return this.link.current?.session.tracker.held ?? 0;
  }

  /** Connected, with a handler, not stopped, and registered (or paused on purpose). */
  get consuming(): boolean {
    const link = this.link.current;
    return link?.alive === true && this.handler !== undefined && !this.stopped &&
      (this.paused || link.session.consumerTag !== undefined);
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
   * Cancels the consumer (RabbitMQ has no channel.flow); deliveries already received stay valid.
   * Resolves once the broker has the cancel (a failure is logged; the reconnection settles it).
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
    await declareTopology(channel, this.options.topology);
    // Per consumer (global = false): quorum queues do not support global QoS.
    await channel.prefetch(this.options.prefetch, false);
    // Half the prefetch: the broker has deliveries to send while a batch of acks waits.
    const batchMax = Math.max(1, Math.floor(this.options.prefetch / 2));
    return { channel, tracker: new AckTracker(channel, { batchMax, logger: this.log }), consumerTag: undefined };
  }

  private sync(): Promise<void> {
    const next = this.ops.then(() => this.reconcile()).catch((err: unknown) => {
      // The channel closed meanwhile; the reconnection consumes again.
      this.log.warn({ err }, 'registering or cancelling the RabbitMQ consumer failed');
    });
    this.ops = next;
    return next;
  }

  /** Brings the consumer registration in line with what is wanted now. */
  private async reconcile(): Promise<void> {
    const link = this.link.current;
    if (!link?.alive) return;
    const session = link.session;
    const wanted = this.handler !== undefined && !this.paused && !this.stopped && !this.closing;
    if (wanted && session.consumerTag === undefined) {
      const { consumerTag } = await session.channel.consume(this.options.topology.queue,
        (msg) => this.onMessage(link, msg), { noAck: false });
      if (link.alive) session.consumerTag = consumerTag;
      this.log.debug({ consumerTag }, 'consuming');
    } else if (!wanted && session.consumerTag !== undefined) {
      const consumerTag = session.consumerTag;
      await session.channel.cancel(consumerTag);
      if (session.consumerTag === consumerTag) session.consumerTag = undefined;
      this.log.debug({ consumerTag }, 'consumer cancelled');
    }
  }

  private onMessage(link: Link<ConsumeSession>, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The server cancelled the consumer (e.g. the queue was deleted): consume again; if the queue is
      // gone that fails, the channel closes, and the reconnection declares the queue anew.
      this.log.warn('RabbitMQ cancelled the consumer; consuming again');
      link.session.consumerTag = undefined;
      void this.sync();
      return;
    }
    if (!link.alive) return;
    const tracker = link.session.tracker;
    const delivery = this.toDelivery(tracker, tracker.track(msg.fields.deliveryTag), msg);
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

  private toDelivery(tracker: AckTracker, tracked: Tracked, consumed: ConsumeMessage): Delivery {
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
        await this.options.deadLetters.move(original, reason, detail, {
          ack: () => tracker.ack(tracked),
          requeue: () => tracker.requeue(tracked),
        });
      },
    };
  }
}
