import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { ConfirmPublisher, type PublishFailure } from '../ingest/amqp/confirm-publisher.js';
import { enqueueProperties } from '../ingest/amqp/headers.js';
import type { Outgoing, Sender } from './sender.js';
import { orAfter, withTimeout } from '../util/timeout.js';
import { CliError, errorText, redact } from './terminal.js';

const CONNECT_TIMEOUT_MS = 10_000;
/** A batch RabbitMQ has not confirmed within this long fails (a broker that stalls without an alarm). */
const CONFIRM_TIMEOUT_MS = 30_000;
const BATCH_SIZE = 500;
const CLOSE_TIMEOUT_MS = 2000;

/**
 * Publishes to the queue push-center nodes consume, the way a backend should (README, "On RabbitMQ"):
 * default exchange, routing key = the queue, persistent, `contentType` application/json, `messageId`,
 * `timestamp`, on a confirm channel, `mandatory` so that a message RabbitMQ cannot route fails instead
 * of vanishing.
 *
 * The queue is checked, never declared: the nodes declare it with their arguments (TTL, dead-lettering),
 * and a declaration with other arguments would be refused.
 */
export class AmqpSender implements Sender {
  readonly target: string;
  readonly batchSize = BATCH_SIZE;
  private readonly publisher: ConfirmPublisher;
  private failure: CliError | undefined;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: ConfirmChannel,
    private readonly queue: string,
    url: string,
  ) {
    this.target = `queue '${queue}' on ${redact(url)}`;
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

  /** Connects and checks that the queue exists; fails with what to check. */
  static async open(url: string, queue: string): Promise<AmqpSender> {
    let connection: ChannelModel;
    try {
      connection = await connect(url, {
        clientProperties: { connection_name: 'push-center-cli' },
        timeout: CONNECT_TIMEOUT_MS,
      });
    } catch (err) {
      throw new CliError(`cannot connect to RabbitMQ at ${redact(url)}: ${errorText(err)}. ` +
        'Check that RabbitMQ runs there and that the user, password and vhost are right (--amqp <url> or AMQP_URL).');
    }
    connection.on('error', () => undefined);
    try {
      await checkQueue(connection, queue, url);
      const channel = await connection.createConfirmChannel();
      return new AmqpSender(connection, channel, queue, url);
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  async send(batch: Outgoing[]): Promise<string[]> {
    const confirms: Array<Promise<void>> = [];
    for (const item of batch) {
      if (this.failure) throw this.failure;
      const { confirmed, writable } = this.publish(item);
      confirms.push(confirmed);
      if (!writable) await this.publisher.drained();
    }
    await withTimeout(Promise.all(confirms), CONFIRM_TIMEOUT_MS, () => new CliError(
      `RabbitMQ did not confirm within ${CONFIRM_TIMEOUT_MS / 1000} s (${this.target}); check the broker's health and alarms`));
    return batch.map((item) => item.id);
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

  private publish(item: Outgoing): { confirmed: Promise<void>; writable: boolean } {
    try {
      const { ok, confirmed } = this.publisher.publish('', this.queue, Buffer.from(item.body),
        enqueueProperties({ messageId: item.id }));
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
      ? new CliError(`RabbitMQ could not route notification ${messageId} to ${this.target} (was the queue deleted?)`)
      : new CliError(`RabbitMQ did not take notification ${messageId}: ${errorText(cause)}`);
  }

  private fail(err: CliError): void {
    this.failure ??= err;
    this.publisher.failAll(this.failure);
  }
}

async function checkQueue(connection: ChannelModel, queue: string, url: string): Promise<void> {
  const probe = await connection.createChannel();
  // A failed check closes the channel with an error; the rejection below carries it.
  probe.on('error', () => undefined);
  try {
    await probe.checkQueue(queue);
  } catch (err) {
    const text = errorText(err);
    if (/NOT_FOUND|404/.test(text)) {
      throw new CliError(`the queue '${queue}' does not exist on RabbitMQ at ${redact(url)}. A push-center node ` +
        'declares it when it starts with AMQP_URL set: start one first, or check --queue / AMQP_QUEUE.');
    }
    throw new CliError(`cannot check the queue '${queue}' on RabbitMQ at ${redact(url)}: ${text}`);
  }
  await probe.close().catch(() => undefined);
}
