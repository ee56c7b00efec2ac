import type { ConfirmChannel, Message, Options } from 'amqplib';

/** Why RabbitMQ did not take a message. */
export interface PublishFailure {
  /**
   * `nacked`: the broker refused it (basic.nack); `closed`: the channel closed before the confirm came;
   * `unroutable`: no queue took it (basic.return), e.g. because the queue was deleted.
   */
  readonly reason: 'nacked' | 'closed' | 'unroutable';
  readonly exchange: string;
  readonly routingKey: string;
  readonly messageId: string | undefined;
  /** amqplib's error; undefined for `unroutable`. */
  readonly cause: unknown;
}

export interface ConfirmPublisherOptions {
  /** The error a publish the broker did not take rejects with (the caller's wording and error class). */
  failure: (failure: PublishFailure) => Error;
  /** Called on each basic.return, after the publish it belongs to was marked as unroutable. */
  onReturn?: (msg: Message) => void;
}

/** A publish sent and not confirmed yet. */
interface Pending {
  readonly messageId: string | undefined;
  readonly body: Buffer;
  /** RabbitMQ returned it as unroutable (basic.return comes before its basic.ack). */
  returned: boolean;
  readonly settle: (err: Error | undefined) => void;
}

interface DrainWait {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * Publishes on a confirm channel: each message `mandatory`, so that one the broker cannot route fails
 * instead of being confirmed and lost.
 *
 * Guarantees:
 * - each publish's `confirmed` settles once: resolved by the broker's confirm, rejected with
 *   `options.failure(...)` when the broker nacks or returns the message or the channel closes first, or
 *   with the error given to `failAll`;
 * - a `confirmed` that no one awaits any more rejects without an unhandled rejection;
 * - `drained()` resolves on the channel's next 'drain', or rejects with the error given to
 *   `failDrainWaits` or `failAll`.
 *
 * It does not limit how long a confirm takes: callers bound their wait (`withTimeout`).
 */
export class ConfirmPublisher {
  private readonly pending = new Set<Pending>();
  private readonly drainWaits = new Set<DrainWait>();

  constructor(readonly channel: ConfirmChannel, private readonly options: ConfirmPublisherOptions) {
    channel.on('drain', () => {
      for (const wait of [...this.drainWaits]) wait.resolve();
    });
    channel.on('return', (msg: Message) => this.onReturn(msg));
  }

  /**
   * Publishes one message. `ok` false means amqplib's write buffer is full: wait for `drained()` before
   * the next. Throws synchronously when amqplib cannot send it (channel closed, headers it cannot encode).
   */
  publish(
    exchange: string, routingKey: string, body: Buffer, properties: Options.Publish,
  ): { ok: boolean; confirmed: Promise<void> } {
    let settle!: (err: Error | undefined) => void;
    const confirmed = new Promise<void>((resolve, reject) => {
      settle = (err) => (err ? reject(err) : resolve());
    });
    // Callers may stop awaiting (timeout, an earlier failure); the outcome is then of no interest.
    confirmed.catch(() => undefined);
    const pending: Pending = { messageId: properties.messageId, body, returned: false, settle };
    this.pending.add(pending);
    let ok: boolean;
    try {
      ok = this.channel.publish(exchange, routingKey, body, { ...properties, mandatory: true }, (err: unknown) => {
        this.pending.delete(pending);
        if (err) {
          const nacked = err instanceof Error && /nack/i.test(err.message);
          settle(this.fail(nacked ? 'nacked' : 'closed', exchange, routingKey, properties, err));
        } else if (pending.returned) {
          settle(this.fail('unroutable', exchange, routingKey, properties, undefined));
        } else {
          settle(undefined);
        }
      });
    } catch (err) {
      this.pending.delete(pending);
      throw err;
    }
    return { ok, confirmed };
  }

  /** Resolves on the channel's next 'drain'. */
  drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const wait: DrainWait = {
        resolve: () => {
          this.drainWaits.delete(wait);
          resolve();
        },
        reject: (err: Error) => {
          this.drainWaits.delete(wait);
          reject(err);
        },
      };
      this.drainWaits.add(wait);
    });
  }

  /** No 'drain' will come (the channel is gone or going): what waits for one rejects with `err`. */
  failDrainWaits(err: Error): void {
    for (const wait of [...this.drainWaits]) wait.reject(err);
  }

  /** Nothing more will be confirmed: every publish not confirmed yet and every drain wait reject with `err`. */
  failAll(err: Error): void {
    for (const pending of [...this.pending]) {
      this.pending.delete(pending);
      pending.settle(err);
    }
    this.failDrainWaits(err);
  }

  private onReturn(msg: Message): void {
    for (const pending of this.pending) {
      if (!pending.returned && pending.messageId === msg.properties.messageId && pending.body.equals(msg.content)) {
        pending.returned = true;
        break;
      }
    }
    this.options.onReturn?.(msg);
  }

  private fail(
    reason: PublishFailure['reason'], exchange: string, routingKey: string, properties: Options.Publish, cause: unknown,
  ): Error {
    return this.options.failure({ reason, exchange, routingKey, messageId: properties.messageId, cause });
  }
}
