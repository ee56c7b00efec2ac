/**
 * The queue port: the durable buffer of undelivered work between publishers and dispatchers.
 * Engines: `MemoryQueue` (embedded, in-process, not durable) and `AmqpQueue` (RabbitMQ).
 */

/** A message as it travels through the queue: the body stays raw until the dispatcher parses it. */
export interface QueueMessage {
  body: Buffer;
  /** The AMQP `messageId` property. */
  messageId?: string | undefined;
  /** Enqueue time, ms since epoch. */
  timestamp?: number | undefined;
  /** Set when push-center's own HTTP API published it (so it is counted as received once, at the API). */
  source?: 'http' | undefined;
  /**
   * The routing key on a sharded ingest (`shardKey`: the notification's first target), which picks
   * its shard; publishes without one go with the broadcasts' key.
   */
  shardKey?: string | undefined;
}

/** One message handed to the consumer; it stays in flight until exactly one of the settle calls. */
export interface Delivery {
  readonly message: QueueMessage;
  /** The broker delivered it before (to this or another node) and it was not acked. */
  readonly redelivered: boolean;
  /** The outcome is final: the queue forgets the message. */
  ack(): void;
  /**
   * The message is invalid: a copy goes to the dead-letter queue with the reason in header
   * `x-pushcenter-error`, then the original is acked. Never retried.
   */
  deadLetter(reason: string, detail: string): Promise<void>;
  /** Not finished here: back to the queue, to be delivered again (to any node). */
  requeue(): void;
  /**
   * The consumer has what it needs from `message` and will not dead-letter it: the queue may let go of
   * the message meanwhile (`message.body` is then empty), keeping only what `ack` and `requeue` need.
   * A message waiting for its outcome then holds only what the consumer made of it.
   */
  release(): void;
}

/** A message push-center gives up on after accepting it, on its way to the dead-letter queue. */
export interface DeadLetterCopy {
  /** The notification as it would be published again (`push-center dead-letters replay`). */
  message: QueueMessage;
  /** Header `x-pushcenter-error`, e.g. `inbox_full`. */
  reason: string;
  /** Header `x-pushcenter-error-detail`. */
  detail: string;
}

export type DeliveryHandler = (delivery: Delivery) => void;

/** The queue cannot take a publish now; HTTP answers 503 with `Retry-After`. */
export class QueueUnavailableError extends Error {
  constructor(message: string, readonly retryAfterSeconds = 5) {
    super(message);
    this.name = 'QueueUnavailableError';
  }
}

export interface NotificationQueue {
  readonly engine: 'memory' | 'amqp';
  /** Unsettled deliveries held by this node; never more than the prefetch. */
  readonly inflight: number;
  /** True while connected and consuming (paused by backpressure still counts as consuming). */
  readonly consuming: boolean;
  /** Connected to its broker (always true for the memory engine). */
  readonly connected: boolean;
  /** Enqueues durably: resolves only once every message is confirmed; throws `QueueUnavailableError`. */
  publish(messages: QueueMessage[]): Promise<void>;
  /**
   * Sends the copies to the dead-letter queue with their reasons; resolves once every one is as durable
   * as the engine allows (RabbitMQ: confirmed). Throws `QueueUnavailableError`.
   */
  deadLetter(copies: DeadLetterCopy[]): Promise<void>;
  /** Messages waiting in the dead-letter queue now (embedded: the ones kept in memory). */
  deadLetterDepth(): Promise<number>;
  /** Starts handing deliveries to the handler, at most `prefetch` unsettled at once. */
  consume(handler: DeliveryHandler): Promise<void>;
  /**
   * Backpressure: take no new deliveries until `resume()`; those in flight stay valid. Resolves once no
   * new delivery comes (RabbitMQ: the broker has the cancel).
   */
  pause(): Promise<void>;
  resume(): void;
  /** Shutdown, first step: take no new deliveries, for good; those in flight may still be settled. */
  stopConsuming(): Promise<void>;
  /** Releases the connection; deliveries still unsettled go back to the queue. */
  close(): Promise<void>;
}
