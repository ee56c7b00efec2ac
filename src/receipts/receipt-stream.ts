import type { Channel } from 'amqplib';
import { ReconnectingLink } from '../ingest/amqp/connection.js';
import type { Logger } from '../observability/logger.js';
import type { ReceiptOutcome } from './receipts.js';

/** What a receipt stream message says (PROTOCOL §6): one final outcome of one notification. */
export interface StreamedReceipt {
  id: string;
  outcome: Exclude<ReceiptOutcome, 'accepted'>;
  /** What the notification was for: the routing key's second part. `unknown` for a body that did not parse. */
  target: 'session' | 'group' | 'broadcast' | 'unknown';
  /** The session the outcome is about (session notifications). */
  session?: string;
  at: number;
  node: string;
  sockets?: number;
  reason?: string;
}

/** Where final outcomes are published for backends to consume. */
export interface ReceiptStream {
  /** Fire and forget: when it cannot be sent now it is dropped, and `onDropped` counts it. */
  publish(receipt: StreamedReceipt): void;
  close(): Promise<void>;
}

export interface AmqpReceiptStreamOptions {
  url: string;
  /** The topic exchange (`AMQP_RECEIPTS_EXCHANGE`), declared durable. */
  exchange: string;
  logger: Logger;
  connectionName?: string;
  /** A receipt that could not be sent (not connected, or the connection's buffer is full). */
  onDropped: (receipt: StreamedReceipt) => void;
}

interface StreamSession {
  readonly channel: Channel;
  /** The channel's write buffer is full: receipts are dropped until it drains. */
  full: boolean;
}

/**
 * The receipts stream on RabbitMQ: each receipt published persistent to a topic exchange with routing key
 * `<outcome>.<target>`, on a connection of its own (not the publishers': an alarm that blocks them must
 * not queue receipts in this node's memory). Unconfirmed and dropped rather than buffered when RabbitMQ
 * cannot take it now: the stream tells a backend as it happens, `GET /v1/notifications/:id` is the record.
 */
export class AmqpReceiptStream implements ReceiptStream {
  private readonly link: ReconnectingLink<StreamSession>;

  private constructor(private readonly options: AmqpReceiptStreamOptions) {
    this.link = new ReconnectingLink<StreamSession>({
      role: 'receipts',
      url: options.url,
      logger: options.logger,
      connectionName: options.connectionName,
      blockable: true,
      setUp: async (opening, watch) => {
        const channel = await opening.connection.createChannel();
        watch(channel);
        await channel.assertExchange(options.exchange, 'topic', { durable: true });
        const session: StreamSession = { channel, full: false };
        channel.on('drain', () => {
          session.full = false;
        });
        return session;
      },
      onUp: () => undefined,
      onLost: () => undefined,
    });
  }

  static async connect(options: AmqpReceiptStreamOptions): Promise<AmqpReceiptStream> {
    const stream = new AmqpReceiptStream(options);
    await stream.link.open();
    return stream;
  }

  publish(receipt: StreamedReceipt): void {
    const link = this.link.current;
    if (!link?.alive || link.blocked !== undefined || link.session.full) {
      this.options.onDropped(receipt);
      return;
    }
    const sent = link.session.channel.publish(this.options.exchange, `${receipt.outcome}.${receipt.target}`,
      Buffer.from(JSON.stringify(receipt)), {
        persistent: true,
        contentType: 'application/json',
        messageId: receipt.id,
        timestamp: Math.floor(receipt.at / 1000),
      });
    if (!sent) link.session.full = true;
  }

  async close(): Promise<void> {
    await this.link.stop();
    await this.link.close(() => undefined);
  }
}
