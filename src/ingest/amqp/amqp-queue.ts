import type { Channel } from 'amqplib';
import type { Config } from '../../config/config.js';
import type { Logger } from '../../observability/logger.js';
import { withTimeout } from '../../util/timeout.js';
import type { DeadLetterCopy, DeliveryHandler, NotificationQueue, QueueMessage } from '../queue.js';
import { QueueUnavailableError } from '../queue.js';
import { BROADCAST_SHARD_KEY } from '../shard-key.js';
import { ConfirmPublisher, type PublishFailure } from './confirm-publisher.js';
import { ReconnectingLink, type Link, type Opening } from './connection.js';
import { AmqpConsumer } from './consumer.js';
import { DeadLetters } from './dead-letter.js';
import { enqueueProperties } from './headers.js';
import { declareTopology, type TopologyOptions } from './topology.js';

/** Retry-After while RabbitMQ blocks publishers (memory or disk alarm): alarms usually last a while. */
const BLOCKED_RETRY_AFTER_S = 10;

/** The `amqp` settings (PROTOCOL §7), with the URL required, and what only this engine needs. */
export interface AmqpQueueOptions extends Omit<Config['amqp'], 'url' | 'receiptsExchange'>, TopologyOptions {
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

/**
 * The RabbitMQ engine of the queue port.
 *
 * Start it with `AmqpQueue.connect(options)`: it resolves once both connections are open and the
 * topology is declared (`declareTopology`), and rejects with a clear error otherwise
 * (`TopologyMismatchError` when a queue or exchange exists with other arguments,
 * `ShardExchangePluginError` when shards are asked for and the broker lacks the consistent-hash
 * exchange, an `Error` naming the broker address when it cannot connect). Once started, it never gives up: a lost connection or channel
 * is reopened with back-off, the topology redeclared and consumption resumed (still paused if it was
 * paused).
 *
 * Publishing and consuming use separate connections, so that consumers keep draining the queue while
 * a resource alarm holds publishers (`AmqpConsumer` is the consuming half). Invalid messages are moved to
 * the dead-letter queue (`DeadLetters`).
 */
export class AmqpQueue implements NotificationQueue {
  readonly engine = 'amqp';
  private readonly log: Logger;
  private readonly publishLink: ReconnectingLink<ConfirmPublisher>;
  private readonly consumer: AmqpConsumer;
  private readonly deadLetters: DeadLetters;
  private closing: Promise<void> | undefined;
  private up = false;

  /** Opens both connections and declares the topology; see the class comment. */
  static async connect(options: AmqpQueueOptions): Promise<AmqpQueue> {
    const queue = new AmqpQueue(options);
    try {
      await queue.publishLink.open();
      await queue.consumer.open();
    } catch (err) {
      await queue.close();
      throw err;
    }
    queue.log.info({ queue: options.queue, queueType: options.queueType, shards: options.queueShards, prefetch: options.prefetch },
      'connected to RabbitMQ');
    return queue;
  }

  private constructor(private readonly options: AmqpQueueOptions) {
    this.log = options.logger.child({ component: 'amqp-queue' });
    const { url, connectionName, reconnect } = options;
    const common = { url, connectionName, reconnect, logger: this.log };
    this.publishLink = new ReconnectingLink({
      ...common,
      role: 'publish',
      blockable: true,
      setUp: (opening, watch) => this.setUpPublisher(opening, watch),
      onUp: () => this.updateStatus(),
      onLost: ({ session }, reconnecting) => {
        session.failDrainWaits(new QueueUnavailableError('the connection to RabbitMQ was lost; reconnecting', 1));
        if (reconnecting) this.updateStatus();
      },
    });
    this.deadLetters = new DeadLetters({
      queue: options.queue,
      exchange: options.deadLetterExchange,
      publisher: () => this.usablePublisher().session,
      logger: this.log,
      publishTimeoutMs: options.publishTimeoutMs,
    });
    this.consumer = new AmqpConsumer({
      ...common,
      topology: options,
      prefetch: options.prefetch,
      deadLetters: this.deadLetters,
      onStatus: () => this.updateStatus(),
    });
  }

  get inflight(): number {
    return this.consumer.inflight;
  }

  get connected(): boolean {
    return this.closing === undefined && this.publishLink.current?.alive === true && this.consumer.connected;
  }

  get consuming(): boolean {
    return this.closing === undefined && this.consumer.consuming;
  }

  /**
   * Publishes each message persistent to the work queue (on a sharded ingest: to the exchange in front
   * of the shards, with the message's `shardKey` as routing key) and resolves once RabbitMQ confirmed
   * all of them. Throws `QueueUnavailableError` when not connected, when RabbitMQ blocks publishers, when it
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

  deadLetter(copies: DeadLetterCopy[]): Promise<void> {
    return this.deadLetters.send(copies);
  }

  /** Asked on a channel of its own: a failed check closes its channel, which must not be the publisher's. */
  async deadLetterDepth(): Promise<number> {
    const channel = await this.usablePublisher().connection.createChannel();
    channel.on('error', () => undefined);
    try {
      return (await channel.checkQueue(this.options.deadLetterQueue)).messageCount;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  consume(handler: DeliveryHandler): Promise<void> {
    return this.consumer.consume(handler);
  }

  pause(): Promise<void> {
    return this.consumer.pause();
  }

  resume(): void {
    this.consumer.resume();
  }

  stopConsuming(): Promise<void> {
    return this.consumer.stopConsuming();
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
    await Promise.all([this.publishLink.stop(), this.consumer.stop()]);
    await this.consumer.close();
    await this.publishLink.close(({ session }) => {
      session.failDrainWaits(new QueueUnavailableError('the node is shutting down', 1));
    });
    this.updateStatus();
  }

  private async setUpPublisher(opening: Opening, watch: (channel: Channel) => void): Promise<ConfirmPublisher> {
    const channel = await opening.connection.createConfirmChannel();
    watch(channel);
    let redeclaring: Promise<void> | undefined;
    const publisher = new ConfirmPublisher(channel, {
      failure: unavailable,
      onReturn: (msg) => {
        this.log.error({ exchange: msg.fields.exchange, routingKey: msg.fields.routingKey },
          'RabbitMQ returned an unroutable message (was the queue deleted?); declaring the topology again');
        if (redeclaring || !opening.alive) return;
        redeclaring = declareTopology(channel, this.options, opening.connection)
          .catch((err: unknown) => this.log.error({ err }, 'declaring the topology again failed'))
          .finally(() => {
            redeclaring = undefined;
          });
      },
    });
    await declareTopology(channel, this.options, opening.connection);
    return publisher;
  }

  private async publishAll(
    link: Link<ConfirmPublisher>, messages: QueueMessage[], run: { aborted: boolean },
  ): Promise<void> {
    const { queue, queueShards } = this.options;
    const confirms: Array<Promise<void>> = [];
    for (const message of messages) {
      if (run.aborted) return;
      this.assertUsable(link);
      const sent = queueShards === 1
        ? link.session.publish('', queue, message.body, enqueueProperties(message))
        : link.session.publish(queue, message.shardKey ?? BROADCAST_SHARD_KEY, message.body, enqueueProperties(message));
      confirms.push(sent.confirmed);
      if (!sent.ok) await link.session.drained();
    }
    await Promise.all(confirms);
  }

  private usablePublisher(): Link<ConfirmPublisher> {
    if (this.closing) throw new QueueUnavailableError('the node is shutting down', 1);
    const link = this.publishLink.current;
    if (!link?.alive) {
      const wait = Math.ceil((this.publishLink.nextAttemptAt - Date.now()) / 1000);
      throw new QueueUnavailableError('not connected to RabbitMQ; reconnecting', Math.min(30, Math.max(1, wait)));
    }
    this.assertUsable(link);
    return link;
  }

  private assertUsable(link: Link<ConfirmPublisher>): void {
    if (!link.alive || this.closing) {
      throw new QueueUnavailableError('the connection to RabbitMQ was lost; reconnecting', 1);
    }
    if (link.blocked !== undefined) {
      throw new QueueUnavailableError(`RabbitMQ is blocking publishers (${link.blocked})`, BLOCKED_RETRY_AFTER_S);
    }
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
