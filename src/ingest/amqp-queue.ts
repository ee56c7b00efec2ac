import { connect } from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import type { Logger } from '../observability/logger.js';
import type { Delivery, DeliveryHandler, NotificationQueue, QueueMessage } from './queue.js';
import { QueueUnavailableError } from './queue.js';
import type { Config } from '../config/config.js';
import { redact } from '../util/redact.js';
import { withTimeout } from '../util/timeout.js';
import { AckTracker, type Tracked } from './amqp/ack-tracker.js';
import { ConfirmPublisher, type PublishFailure } from './amqp/confirm-publisher.js';
import { DeadLetters } from './amqp/dead-letter.js';
import { enqueueProperties, toQueueMessage } from './amqp/headers.js';
import { TopologyMismatchError, declareTopology, type TopologyOptions } from './amqp/topology.js';

/** The `amqp` settings (SPEC §7), with the URL required, and what only this engine needs. */
export interface AmqpQueueOptions extends Omit<Config['amqp'], 'url'>, TopologyOptions {
  /** AMQP_URL; `?heartbeat=` and the vhost are honoured as amqplib parses them. */
  url: string;
  logger: Logger;
  /**
   * Called with `connected` whenever it changes, starting with `true` once `connect` succeeded (the
   * `pushcenter_dependency_up{dependency="amqp"}` gauge).
   */
  onStatus?: (up: boolean) => void;
  /** Back-off between reconnection attempts: doubles from `initialDelayMs` (500) up to `maxDelayMs` (30000). */
  reconnect?: { initialDelayMs: number; maxDelayMs: number };
  /**
   * Shown by RabbitMQ (management UI, `rabbitmqctl list_connections client_properties`) as
   * `<name>:publish` and `<name>:consume`. Default `push-center`.
   */
  connectionName?: string;
  /** A publish the broker has not confirmed within this fails with `QueueUnavailableError`. Default 10000. */
  publishTimeoutMs?: number;
}

const CONNECT_TIMEOUT_MS = 10_000;
/** Retry-After while RabbitMQ blocks publishers (memory or disk alarm): alarms usually last a while. */
const BLOCKED_RETRY_AFTER_S = 10;

type Role = 'publish' | 'consume';

interface Link {
  readonly role: Role;
  readonly connection: ChannelModel;
  /** False once the connection or channel closed (or failed during set-up); never true again. */
  alive: boolean;
}

interface PublishLink extends Link {
  readonly role: 'publish';
  channel: ConfirmChannel;
  /** Set while RabbitMQ blocks this connection (a resource alarm): the reason it gave. */
  blocked: string | undefined;
  publisher: ConfirmPublisher;
  redeclaring: Promise<void> | undefined;
}

interface ConsumeLink extends Link {
  readonly role: 'consume';
  channel: Channel;
  tracker: AckTracker;
  /** Set while a consumer is registered on the channel. */
  consumerTag: string | undefined;
}

/**
 * The RabbitMQ engine of the queue port.
 *
 * Start it with `AmqpQueue.connect(options)`: it resolves once both connections are open and the
 * topology is declared (`declareTopology`), and rejects with a clear error otherwise
 * (`TopologyMismatchError` when a queue or exchange exists with other arguments, an `Error` naming the
 * broker address when it cannot connect). Once started, it never gives up: a lost connection or channel
 * is reopened with back-off, the topology redeclared and consumption resumed (still paused if it was
 * paused).
 *
 * Publishing and consuming use separate connections, because RabbitMQ's memory and disk alarms block
 * publishing connections only: consumers keep draining the queue while publishers are held.
 */
export class AmqpQueue implements NotificationQueue {
  readonly engine = 'amqp';
  private readonly log: Logger;
  private readonly retry: Record<Role, { attempt: number; timer: NodeJS.Timeout | undefined; nextAt: number }> = {
    publish: { attempt: 0, timer: undefined, nextAt: 0 },
    consume: { attempt: 0, timer: undefined, nextAt: 0 },
  };
  private readonly opening = new Set<Promise<void>>();
  private readonly deadLetters: DeadLetters;
  private publisher: PublishLink | undefined;
  private consumer: ConsumeLink | undefined;
  private handler: DeliveryHandler | undefined;
  private paused = false;
  private stopped = false;
  private closing: Promise<void> | undefined;
  private up = false;
  /** Consumer registration and cancellation, one at a time, each acting on the state at its turn. */
  private consumerOps: Promise<void> = Promise.resolve();

  /** Opens both connections and declares the topology; see the class comment. */
  static async connect(options: AmqpQueueOptions): Promise<AmqpQueue> {
    const queue = new AmqpQueue(options);
    try {
      await queue.track(queue.openPublisher());
      await queue.track(queue.openConsumer());
    } catch (err) {
      await queue.close();
      throw err;
    }
    queue.log.info({ queue: options.queue, queueType: options.queueType, prefetch: options.prefetch },
      'connected to RabbitMQ');
    return queue;
  }

  private constructor(private readonly options: AmqpQueueOptions) {
    this.log = options.logger.child({ component: 'amqp-queue' });
    this.deadLetters = new DeadLetters({
      queue: options.queue,
      exchange: options.deadLetterExchange,
      publisher: () => this.usablePublisher().publisher,
      logger: this.log,
      publishTimeoutMs: options.publishTimeoutMs,
    });
  }

  get inflight(): number {
    return this.consumer?.tracker.held ?? 0;
  }

  get connected(): boolean {
    return this.closing === undefined && this.publisher?.alive === true && this.consumer?.alive === true;
  }

  get consuming(): boolean {
    const link = this.consumer;
    return this.closing === undefined && link?.alive === true && this.handler !== undefined && !this.stopped &&
      (this.paused || link.consumerTag !== undefined);
  }

  /**
   * Publishes each message persistent to the work queue and resolves once RabbitMQ confirmed all of
   * them. Throws `QueueUnavailableError` when not connected, when RabbitMQ blocks publishers, when it
   * nacks or returns a message, or when the confirms do not come within `publishTimeoutMs`; some of
   * the messages may then be enqueued all the same (a retry can duplicate them: delivery is at least once).
   */
  async publish(messages: QueueMessage[]): Promise<void> {
    const link = this.usablePublisher();
    if (messages.length === 0) return;
    const timeoutMs = this.options.publishTimeoutMs ?? 10_000;
    const run = { aborted: false };
    try {
      await withTimeout(this.publishAll(link, messages, run), timeoutMs, () => new QueueUnavailableError(
        `RabbitMQ did not confirm the publish within ${timeoutMs} ms`, 5));
    } finally {
      run.aborted = true;
    }
  }

  async consume(handler: DeliveryHandler): Promise<void> {
    this.handler = handler;
    this.stopped = false;
    await this.syncConsumer();
  }

  /** Cancels the consumer (RabbitMQ has no channel.flow); deliveries already received stay valid. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    void this.syncConsumer();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    void this.syncConsumer();
  }

  async stopConsuming(): Promise<void> {
    this.stopped = true;
    await this.syncConsumer();
  }

  /**
   * Sends the acks still batched, then closes channels and connections. What is unsettled goes back to
   * the queue (the broker requeues it); settling it afterwards is a no-op.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const state of Object.values(this.retry)) {
      if (state.timer) clearTimeout(state.timer);
      state.timer = undefined;
    }
    await Promise.allSettled([...this.opening]);
    await this.consumerOps;
    const consumer = this.consumer;
    const publisher = this.publisher;
    this.consumer = undefined;
    this.publisher = undefined;
    if (consumer) {
      consumer.tracker.flush(true);
      consumer.tracker.dispose();
      consumer.alive = false;
      await closeQuietly(consumer.channel);
      await closeQuietly(consumer.connection);
    }
    if (publisher) {
      publisher.alive = false;
      publisher.publisher?.failDrainWaits(new QueueUnavailableError('the node is shutting down', 1));
      await closeQuietly(publisher.channel);
      await closeQuietly(publisher.connection);
    }
    this.updateStatus();
  }

  private async publishAll(link: PublishLink, messages: QueueMessage[], run: { aborted: boolean }): Promise<void> {
    const confirms: Array<Promise<void>> = [];
    for (const message of messages) {
      if (run.aborted) return;
      this.assertUsable(link);
      const sent = link.publisher.publish('', this.options.queue, message.body, enqueueProperties(message));
      confirms.push(sent.confirmed);
      if (!sent.ok) await link.publisher.drained();
    }
    await Promise.all(confirms);
  }

  private usablePublisher(): PublishLink {
    if (this.closing) throw new QueueUnavailableError('the node is shutting down', 1);
    const link = this.publisher;
    if (!link?.alive) {
      const wait = Math.ceil((this.retry.publish.nextAt - Date.now()) / 1000);
      throw new QueueUnavailableError('not connected to RabbitMQ; reconnecting', Math.min(30, Math.max(1, wait)));
    }
    this.assertUsable(link);
    return link;
  }

  private assertUsable(link: PublishLink): void {
    if (!link.alive || this.closing) {
      throw new QueueUnavailableError('the connection to RabbitMQ was lost; reconnecting', 1);
    }
    if (link.blocked !== undefined) {
      throw new QueueUnavailableError(`RabbitMQ is blocking publishers (${link.blocked})`, BLOCKED_RETRY_AFTER_S);
    }
  }

  private async openConnection(role: Role): Promise<ChannelModel> {
    try {
      return await connect(this.options.url, {
        clientProperties: { connection_name: `${this.options.connectionName ?? 'push-center'}:${role}` },
        timeout: CONNECT_TIMEOUT_MS,
      });
    } catch (err) {
      throw new Error(`cannot connect to RabbitMQ at ${redact(this.options.url)} (AMQP_URL): ${errorText(err)}`,
        { cause: err });
    }
  }

  /** Listens for 'error' (so nothing crashes the process) and 'close' (the link is lost) on both. */
  private watch(emitter: ChannelModel | Channel, link: Link, what: string): void {
    emitter.on('error', (err: Error) => {
      this.log.warn({ err, role: link.role }, `RabbitMQ ${what} error`);
    });
    emitter.on('handler-error', (err: Error, event: string) => {
      this.log.error({ err, event, role: link.role }, `a listener on the RabbitMQ ${what} threw`);
    });
    emitter.on('close', (err?: Error) => this.lost(link, err));
  }

  private async openPublisher(): Promise<void> {
    const connection = await this.openConnection('publish');
    const link = { role: 'publish', connection, alive: true } as PublishLink;
    Object.assign(link, {
      blocked: undefined, redeclaring: undefined,
    });
    this.watch(connection, link, 'publish connection');
    connection.on('blocked', (reason: string) => {
      link.blocked = reason || 'resource alarm';
      this.log.warn({ reason }, 'RabbitMQ blocks publishing (memory or disk alarm): publishes fail with 503');
    });
    connection.on('unblocked', () => {
      link.blocked = undefined;
      this.log.info('RabbitMQ unblocked publishing');
    });
    try {
      const channel = await connection.createConfirmChannel();
      link.channel = channel;
      this.watch(channel, link, 'publish channel');
      link.publisher = new ConfirmPublisher(channel, { failure: unavailable, onReturn: (msg) => this.onReturn(link, msg) });
      await declareTopology(channel, this.options);
      this.assertOpened(link);
    } catch (err) {
      link.alive = false;
      await closeQuietly(connection);
      throw err;
    }
    this.publisher = link;
    this.updateStatus();
  }

  private async openConsumer(): Promise<void> {
    const connection = await this.openConnection('consume');
    const link = { role: 'consume', connection, alive: true, consumerTag: undefined } as ConsumeLink;
    this.watch(connection, link, 'consume connection');
    try {
      const channel = await connection.createChannel();
      link.channel = channel;
      // Half the prefetch: the broker has deliveries to send while a batch of acks waits.
      link.tracker = new AckTracker(channel, { batchMax: Math.max(1, Math.floor(this.options.prefetch / 2)), logger: this.log });
      this.watch(channel, link, 'consume channel');
      await declareTopology(channel, this.options);
      // Per consumer (global = false): quorum queues do not support global QoS.
      await channel.prefetch(this.options.prefetch, false);
      this.assertOpened(link);
    } catch (err) {
      link.alive = false;
      link.tracker?.dispose();
      await closeQuietly(connection);
      throw err;
    }
    this.consumer = link;
    this.updateStatus();
    void this.syncConsumer();
  }

  private assertOpened(link: Link): void {
    if (!link.alive) throw new Error(`the RabbitMQ ${link.role} connection closed while it was being set up`);
    if (this.closing) throw new Error('the queue was closed while connecting');
  }

  private onReturn(link: PublishLink, msg: Message): void {
    this.log.error({ exchange: msg.fields.exchange, routingKey: msg.fields.routingKey },
      'RabbitMQ returned an unroutable message (was the queue deleted?); declaring the topology again');
    if (link.redeclaring || !link.alive) return;
    link.redeclaring = declareTopology(link.channel, this.options)
      .catch((err: unknown) => this.log.error({ err }, 'declaring the topology again failed'))
      .finally(() => {
        link.redeclaring = undefined;
      });
  }

  /** The connection or a channel of the link closed: drop the link and reconnect (unless closing). */
  private lost(link: Link, err: Error | undefined): void {
    if (!link.alive) return;
    link.alive = false;
    let current = false;
    if (link.role === 'consume') {
      const consumer = link as ConsumeLink;
      consumer.tracker?.dispose();
      consumer.consumerTag = undefined;
      current = this.consumer === consumer;
      if (current) this.consumer = undefined;
    } else {
      const publisher = link as PublishLink;
      publisher.publisher?.failDrainWaits(new QueueUnavailableError('the connection to RabbitMQ was lost; reconnecting', 1));
      current = this.publisher === publisher;
      if (current) this.publisher = undefined;
    }
    void closeQuietly(link.connection);
    if (!current || this.closing) return;
    this.log.warn({ err, role: link.role }, `RabbitMQ ${link.role} connection lost; reconnecting`);
    this.updateStatus();
    this.scheduleReconnect(link.role);
  }

  private scheduleReconnect(role: Role): void {
    const state = this.retry[role];
    if (this.closing || state.timer) return;
    const { initialDelayMs, maxDelayMs } = this.options.reconnect ?? { initialDelayMs: 500, maxDelayMs: 30_000 };
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** state.attempt);
    // ±20 % jitter, so that nodes do not all reconnect at the same instant after a broker restart.
    const delay = Math.round(Math.min(maxDelayMs, base * (0.8 + 0.4 * Math.random())));
    state.attempt += 1;
    state.nextAt = Date.now() + delay;
    state.timer = setTimeout(() => {
      state.timer = undefined;
      const attempt = this.track(role === 'publish' ? this.openPublisher() : this.openConsumer());
      attempt.then(
        () => {
          state.attempt = 0;
          this.log.info({ role }, `RabbitMQ ${role} connection re-established`);
        },
        (err: unknown) => {
          if (this.closing) return;
          const level = err instanceof TopologyMismatchError ? 'error' : 'warn';
          this.log[level]({ err, role, attempt: state.attempt }, `reconnecting to RabbitMQ failed; retrying`);
          this.scheduleReconnect(role);
        },
      );
    }, delay);
  }

  private track(opening: Promise<void>): Promise<void> {
    this.opening.add(opening);
    const forget = (): void => {
      this.opening.delete(opening);
    };
    opening.then(forget, forget);
    return opening;
  }

  private updateStatus(): void {
    const up = this.connected;
    if (up === this.up) return;
    this.up = up;
    try {
      this.options.onStatus?.(up);
    } catch (err) {
      this.log.error({ err }, 'onStatus listener threw');
    }
  }

  private syncConsumer(): Promise<void> {
    const next = this.consumerOps.then(() => this.reconcileConsumer()).catch((err: unknown) => {
      // The channel closed meanwhile; the reconnection consumes again.
      this.log.warn({ err }, 'registering or cancelling the RabbitMQ consumer failed');
    });
    this.consumerOps = next;
    return next;
  }

  /** Brings the consumer registration in line with what is wanted now. */
  private async reconcileConsumer(): Promise<void> {
    const link = this.consumer;
    if (!link?.alive) return;
    const wanted = this.handler !== undefined && !this.paused && !this.stopped && this.closing === undefined;
    if (wanted && link.consumerTag === undefined) {
      const { consumerTag } = await link.channel.consume(this.options.queue, (msg) => this.onMessage(link, msg),
        { noAck: false });
      if (link.alive) link.consumerTag = consumerTag;
      this.log.debug({ consumerTag }, 'consuming');
    } else if (!wanted && link.consumerTag !== undefined) {
      const consumerTag = link.consumerTag;
      await link.channel.cancel(consumerTag);
      if (link.consumerTag === consumerTag) link.consumerTag = undefined;
      this.log.debug({ consumerTag }, 'consumer cancelled');
    }
  }

  private onMessage(link: ConsumeLink, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The server cancelled the consumer (e.g. the queue was deleted): consume again; if the queue is
      // gone that fails, the channel closes, and the reconnection declares the queue anew.
      this.log.warn('RabbitMQ cancelled the consumer; consuming again');
      link.consumerTag = undefined;
      void this.syncConsumer();
      return;
    }
    if (!link.alive) return;
    const tracked = link.tracker.track(msg.fields.deliveryTag);
    const delivery = this.toDelivery(link.tracker, tracked, msg);
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
        await this.deadLetters.move(original, reason, detail, {
          ack: () => tracker.ack(tracked),
          requeue: () => tracker.requeue(tracked),
        });
      },
    };
  }
}

const RELEASED_BODY = Buffer.alloc(0);

async function closeQuietly(closable: { close(): Promise<void> } | undefined): Promise<void> {
  try {
    await closable?.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A publish RabbitMQ did not take, as the queue port reports it (HTTP 503 with Retry-After). */
function unavailable(failure: PublishFailure): QueueUnavailableError {
  switch (failure.reason) {
    case 'nacked':
      return new QueueUnavailableError('RabbitMQ refused the message (basic.nack)', 5);
    case 'closed':
      return new QueueUnavailableError('the connection to RabbitMQ closed before the message was confirmed', 1);
    case 'unroutable': {
      const { exchange, routingKey } = failure;
      return new QueueUnavailableError(
        `RabbitMQ could not route the message to ${exchange === '' ? `queue '${routingKey}'` : `exchange '${exchange}'`}; ` +
          'the topology is being declared again', 1);
    }
  }
}
