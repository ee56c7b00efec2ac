import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { ConfirmPublisher, type PublishFailure } from '../ingest/amqp/confirm-publisher.js';
import { enqueueProperties } from '../ingest/amqp/headers.js';
import { BROADCAST_SHARD_KEY } from '../ingest/shard-key.js';
import { checkExchange, checkQueue, connectAmqp } from './amqp-connection.js';
import type { Outgoing, Sender } from './sender.js';
import { orAfter, withTimeout } from '../util/timeout.js';
import { CliError, errorText, redact } from './terminal.js';

/** A batch RabbitMQ has not confirmed within this long fails (a broker that stalls without an alarm). */
const CONFIRM_TIMEOUT_MS = 30_000;
const BATCH_SIZE = 500;
const CLOSE_TIMEOUT_MS = 2000;

/** Where the nodes take notifications from: `AMQP_QUEUE` and `AMQP_QUEUE_SHARDS`. */
export interface Ingest {
  /** The work queue, or with shards the exchange in front of them. */
  name: string;
  /** AMQP_QUEUE_SHARDS above 1: publish to the exchange `name`, routed by the notification's target. */
  sharded: boolean;
}

/**
 * Publishes to the queue push-center nodes consume, the way a backend should (README, "On RabbitMQ"):
 * default exchange, routing key = the queue (sharded: the exchange named like it, routing key = the
 * notification's target), persistent, `contentType` application/json, `messageId`, `timestamp`, on a
 * confirm channel, `mandatory` so that a message RabbitMQ cannot route fails instead of vanishing.
 *
 * The queue (or exchange) is checked, never declared: the nodes declare it with their arguments (TTL,
 * dead-lettering), and a declaration with other arguments would be refused.
 */
export class AmqpSender implements Sender {
  readonly target: string;
  readonly batchSize = BATCH_SIZE;
  private readonly publisher: ConfirmPublisher;
  private failure: CliError | undefined;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: ConfirmChannel,
    private readonly ingest: Ingest,
    url: string,
  ) {
    this.target = `${ingest.sharded ? 'exchange' : 'queue'} '${ingest.name}' on ${redact(url)}`;
    this.publisher = new ConfirmPublisher(channel, { failure: (failure) => this.notTaken(failure) });
    channel.on('error', () => undefined);
    channel.on('close', () => this.fail(new CliError(`RabbitMQ closed the channel to ${this.target}`)));
    connection.on('error', () => undefined);
    connection.on('close', (err?: Error) => this.fail(new CliError(
      `the connection to RabbitMQ at ${redact(url)} closed${err ? `: ${err.message}` : ''}`)));
    connection.on('blocked', (reason: string) => this.fail(new CliError(
      `RabbitMQ blocks publishers (${reason || 'resource alarm'}): a memory or disk alarm on the broker; ` +
      'publish again once it is cleared (rabbitmq-diagnostics alarms)')));
  }

  /** Connects and checks that the queue (or exchange) exists; fails with what to check. */
  static async open(url: string, ingest: Ingest): Promise<AmqpSender> {
    const connection = await connectAmqp(url);
    try {
      if (ingest.sharded) await checkExchange(connection, ingest.name, url, '--queue / AMQP_QUEUE');
      else {
        await checkQueue(connection, ingest.name, url, '--queue / AMQP_QUEUE', ' Nodes with AMQP_QUEUE_SHARDS above 1 ' +
          'take notifications through an exchange of that name instead: set AMQP_QUEUE_SHARDS as they have it.');
      }
      const channel = await connection.createConfirmChannel();
      return new AmqpSender(connection, channel, ingest, url);
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  async send(batch: Outgoing[]): Promise<string[]> {
    const confirms: Array<Promise<void>> = [];
    for (const item of batch) {
      if (this.failure) throw this.failure;
      const { confirmed, writable } = this.publish(Buffer.from(item.body), enqueueProperties({ messageId: item.id }), item.shardKey);
      confirms.push(confirmed);
      if (!writable) await this.publisher.drained();
    }
    await this.confirmedInTime(Promise.all(confirms));
    return batch.map((item) => item.id);
  }

  /**
   * Publishes one message with the properties given (a replayed dead letter keeps most of its own),
   * routed by `shardKey` when sharded; resolves once RabbitMQ confirmed it.
   */
  async publishOne(body: Buffer, properties: Options.Publish, shardKey: string | undefined): Promise<void> {
    if (this.failure) throw this.failure;
    await this.confirmedInTime(this.publish(body, properties, shardKey).confirmed);
  }

  /** Closes the connection; bounded, because a broker that blocks publishers may not answer the close either. */
  async close(): Promise<void> {
    this.failure ??= new CliError('closed');
    const closing = this.channel.close()
      .catch(() => undefined)
      .then(() => this.connection.close())
      .catch(() => undefined);
    await orAfter(closing, CLOSE_TIMEOUT_MS, undefined);
  }

  private confirmedInTime<T>(confirmed: Promise<T>): Promise<T> {
    return withTimeout(confirmed, CONFIRM_TIMEOUT_MS, () => new CliError(
      `RabbitMQ did not confirm within ${CONFIRM_TIMEOUT_MS / 1000} s (${this.target}); check the broker's health and alarms`));
  }

  private publish(
    body: Buffer, properties: Options.Publish, shardKey: string | undefined,
  ): { confirmed: Promise<void>; writable: boolean } {
    const { name, sharded } = this.ingest;
    try {
      const { ok, confirmed } = sharded
        ? this.publisher.publish(name, shardKey ?? BROADCAST_SHARD_KEY, body, properties)
        : this.publisher.publish('', name, body, properties);
      return { confirmed, writable: ok };
    } catch (err) {
      const confirmed = Promise.reject(
        this.failure ?? new CliError(`cannot publish to ${this.target}: ${errorText(err)}`));
      // A failed batch stops at its first rejection; the others' outcomes are of no interest then.
      confirmed.catch(() => undefined);
      return { confirmed, writable: true };
    }
  }

  private notTaken({ reason, messageId, cause }: PublishFailure): CliError {
    return reason === 'unroutable'
      ? new CliError(`RabbitMQ could not route notification ${messageId} to ${this.target} ` +
        `(was the ${this.ingest.sharded ? 'exchange unbound from its shard queues' : 'queue deleted'}?)`)
      : new CliError(`RabbitMQ did not take notification ${messageId}: ${errorText(cause)}`);
  }

  private fail(err: CliError): void {
    this.failure ??= err;
    this.publisher.failAll(this.failure);
  }
}
