import type { ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../../observability/logger.js';
import { withTimeout } from '../../util/timeout.js';
import { QueueUnavailableError, type DeadLetterCopy } from '../queue.js';
import type { ConfirmPublisher } from './confirm-publisher.js';
import { ERROR_DETAIL_HEADER, ERROR_HEADER, ORIGINAL_QUEUE_HEADER, enqueueProperties, republishProperties } from './headers.js';

const DETAIL_MAX_CHARS = 1000;

export interface DeadLetterOptions {
  /**
   * The work queue (the exchange in front of the shards, on a sharded ingest): the copy's routing key,
   * and named in the header of what push-center gives up on after accepting it.
   */
  queue: string;
  /** Where the copies go: the dead-letter exchange, bound to the dead-letter queue. */
  exchange: string;
  /** The publisher to send a copy on now; throws `QueueUnavailableError` when none is usable. */
  publisher: () => ConfirmPublisher;
  logger: Logger;
  /** A copy the broker has not confirmed within this fails. Default 10000. */
  publishTimeoutMs?: number;
  /** After a copy failed, the original goes back to the queue this much later. Default 1000. */
  retryDelayMs?: number;
}

/** How the original delivery is settled once its copy is confirmed, or has failed. */
export interface Original {
  ack(): void;
  requeue(): void;
}

/**
 * Moves invalid messages to the dead-letter queue, and sends there what push-center gives up on after
 * accepting it (`send`, e.g. an inbox over its bound). For an invalid message a copy with the reason headers is published, and
 * only once the broker confirmed the copy is the original acked.
 *
 * Guarantees:
 * - the original is never acked without a confirmed copy: when the copy fails, the original goes back
 *   to the queue after `retryDelayMs` (not at once: it would come straight back and fail again while
 *   the publisher is down), to be judged again;
 * - the copy has the original body and properties, without `expiration` (so it lives by the dead-letter
 *   queue's limits) and `userId` (which the broker would check against our login), plus the headers
 *   `x-pushcenter-error` (the reason), `x-pushcenter-error-detail` (at most 1000 characters) and
 *   `x-pushcenter-original-queue`;
 * - a message whose headers amqplib cannot encode again is dead-lettered with the reason headers only.
 */
export class DeadLetters {
  private readonly log: Logger;
  private readonly publishTimeoutMs: number;
  private readonly retryDelayMs: number;

  constructor(private readonly options: DeadLetterOptions) {
    this.log = options.logger;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
    this.retryDelayMs = options.retryDelayMs ?? 1000;
  }

  /**
   * Dead-letters `msg`, taken from `fromQueue`, with `reason` and `detail`, then settles `original`
   * (see the class comment).
   */
  async move(msg: ConsumeMessage, fromQueue: string, reason: string, detail: string, original: Original): Promise<void> {
    try {
      await this.publishCopy(msg, fromQueue, reason, detail);
    } catch (err) {
      this.log.error({ err, messageId: msg.properties.messageId, reason },
        `dead-lettering failed; the message goes back to the queue in ${this.retryDelayMs} ms`);
      setTimeout(() => original.requeue(), this.retryDelayMs).unref();
      return;
    }
    original.ack();
  }

  /**
   * Publishes each copy persistent, as push-center publishes a notification, with the reason headers;
   * resolves once the broker confirmed all of them, rejects when one failed (some may be there then).
   */
  async send(copies: DeadLetterCopy[]): Promise<void> {
    const { queue, exchange } = this.options;
    const publisher = this.options.publisher();
    await Promise.all(copies.map(({ message, reason, detail }) => {
      const properties = enqueueProperties(message);
      properties.headers = { ...properties.headers, ...this.reasonHeaders(reason, detail, queue) };
      return this.confirmed(publisher.publish(exchange, queue, message.body, properties));
    }));
  }

  private reasonHeaders(reason: string, detail: string, fromQueue: string): Record<string, string> {
    return {
      [ERROR_HEADER]: reason,
      [ERROR_DETAIL_HEADER]: detail.length > DETAIL_MAX_CHARS ? `${detail.slice(0, DETAIL_MAX_CHARS)}…` : detail,
      [ORIGINAL_QUEUE_HEADER]: fromQueue,
    };
  }

  private confirmed(sent: { confirmed: Promise<void> }): Promise<void> {
    return withTimeout(sent.confirmed, this.publishTimeoutMs, () => new QueueUnavailableError(
      `RabbitMQ did not confirm the dead letter within ${this.publishTimeoutMs} ms`, 5));
  }

  private async publishCopy(msg: ConsumeMessage, fromQueue: string, reason: string, detail: string): Promise<void> {
    const { queue, exchange } = this.options;
    const publisher = this.options.publisher();
    const p = msg.properties;
    const ours = this.reasonHeaders(reason, detail, fromQueue);
    const properties: Options.Publish = { ...republishProperties(p), headers: { ...(p.headers ?? {}), ...ours } };
    let sent: { confirmed: Promise<void> };
    try {
      sent = publisher.publish(exchange, queue, msg.content, properties);
    } catch (err) {
      if (!(err instanceof TypeError)) throw err;
      // A header amqplib decoded but cannot encode again: keep the message, drop its other headers.
      this.log.warn({ err, messageId: p.messageId }, 'dead letter sent without its original headers');
      sent = publisher.publish(exchange, queue, msg.content, { ...properties, headers: ours });
    }
    await this.confirmed(sent);
  }
}
