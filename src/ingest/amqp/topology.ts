import type { EventEmitter } from 'node:events';
import type { Channel } from 'amqplib';
import { workQueues, type Config } from '../../config/config.js';

/** RabbitMQ's consistent-hash exchange, from the plugin `rabbitmq_consistent_hash_exchange`. */
export const CONSISTENT_HASH_EXCHANGE = 'x-consistent-hash';

/** What push-center declares (PROTOCOL §7, the `amqp` settings), and the bounds of the dead-letter queue. */
export interface TopologyOptions extends Pick<Config['amqp'],
  'queue' | 'queueShards' | 'queueTtlMs' | 'queueType' | 'deadLetterQueue' | 'deadLetterExchange'> {
  /** The dead-letter queue keeps at most this many messages, dropping the oldest. Default 100000. */
  deadLetterMaxLength?: number;
  /** Dead letters older than this are dropped. Default 7 days. */
  deadLetterTtlMs?: number;
  /**
   * The type of the exchange in front of the shards. Default `x-consistent-hash`; a test names a type
   * no plugin provides, to see how a broker without the plugin answers.
   */
  shardExchangeType?: string;
}

/** The connection a channel is on: RabbitMQ answers some refusals by closing it, not the channel. */
export type ConnectionEvents = Pick<EventEmitter, 'on' | 'off'>;

/**
 * RabbitMQ refused to declare a queue or exchange because it already exists with other arguments
 * (406 PRECONDITION_FAILED, "inequivalent arg"). The message names the object, the argument, both
 * values and how to fix it.
 */
export class TopologyMismatchError extends Error {
  constructor(
    message: string,
    readonly kind: 'queue' | 'exchange',
    readonly object: string,
    readonly argument: string,
    /** What push-center declared; undefined when it declared the object without the argument. */
    readonly declared: string | undefined,
    /** What the existing object has; undefined when it does not have the argument at all. */
    readonly existing: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TopologyMismatchError';
  }
}

/**
 * RabbitMQ does not know the exchange type of the shards: the consistent-hash exchange plugin is not
 * enabled. The message says how to enable it.
 */
export class ShardExchangePluginError extends Error {
  constructor(readonly exchange: string, readonly exchangeType: string, options?: ErrorOptions) {
    super(`RabbitMQ does not know the exchange type '${exchangeType}' that AMQP_QUEUE_SHARDS > 1 puts in front of ` +
      `the shard queues (exchange '${exchange}'): its plugin is not enabled. Enable it on every RabbitMQ node ` +
      '(`rabbitmq-plugins enable rabbitmq_consistent_hash_exchange`; it ships with RabbitMQ), or set AMQP_QUEUE_SHARDS=1.',
    options);
    this.name = 'ShardExchangePluginError';
  }
}

/**
 * Declares the topology:
 * - the work queue `queue`: durable, `x-message-ttl` = queueTtlMs, `x-queue-type` = queueType, and
 *   `x-dead-letter-exchange` = deadLetterExchange. With the dead-letter exchange, what the broker drops
 *   (messages that expire in the queue, `x-death` reason `expired`; quorum messages over the delivery
 *   limit from RabbitMQ 4.0 on) ends up in the dead-letter queue where an operator can see it, instead
 *   of vanishing silently.
 * - with `queueShards` > 1, instead of that queue: the shard queues `<queue>.shard-<i>`, each declared
 *   as the work queue would be, behind a durable exchange named `queue` of type `x-consistent-hash`
 *   that hashes each message's routing key to one of them (each bound with weight 1, so each takes an
 *   equal part of the hash ring). A broker without the plugin refuses the exchange type:
 *   `ShardExchangePluginError`.
 * - the dead-letter exchange (fanout, durable) bound to the dead-letter queue (durable, same queue type).
 *   Because the broker itself feeds it, the dead-letter queue is bounded: at most `deadLetterMaxLength`
 *   messages (oldest dropped) for at most `deadLetterTtlMs`.
 *
 * A queue or exchange that exists with other arguments makes the broker close the channel with 406;
 * that becomes a `TopologyMismatchError`.
 */
export async function declareTopology(channel: Channel, o: TopologyOptions, connection: ConnectionEvents): Promise<void> {
  try {
    await channel.assertExchange(o.deadLetterExchange, 'fanout', { durable: true });
    await channel.assertQueue(o.deadLetterQueue, {
      durable: true,
      arguments: {
        'x-queue-type': o.queueType,
        'x-max-length': o.deadLetterMaxLength ?? 100_000,
        'x-message-ttl': o.deadLetterTtlMs ?? 7 * 24 * 3600 * 1000,
      },
    });
    await channel.bindQueue(o.deadLetterQueue, o.deadLetterExchange, '');
    const queues = workQueues(o);
    for (const queue of queues) {
      await channel.assertQueue(queue, {
        durable: true,
        arguments: {
          'x-queue-type': o.queueType,
          'x-message-ttl': o.queueTtlMs,
          'x-dead-letter-exchange': o.deadLetterExchange,
        },
      });
    }
    if (o.queueShards === 1) return;
    await declareShardExchange(channel, o.queue, o.shardExchangeType ?? CONSISTENT_HASH_EXCHANGE, connection);
    // The consistent-hash exchange reads a binding's routing key as the queue's weight on the ring.
    for (const queue of queues) await channel.bindQueue(queue, o.queue, '1');
  } catch (err) {
    throw topologyMismatch(err, o) ?? err;
  }
}

/**
 * Declares the exchange in front of the shards. A broker that does not know the type closes the whole
 * connection (503 COMMAND_INVALID, "unknown exchange type"), so the declaration itself only learns that
 * its channel ended: the reason comes with the connection's close.
 */
async function declareShardExchange(
  channel: Channel, exchange: string, type: string, connection: ConnectionEvents,
): Promise<void> {
  let closedWith: unknown;
  const onClose = (err?: Error): void => {
    closedWith ??= err;
  };
  connection.on('error', onClose);
  connection.on('close', onClose);
  try {
    await channel.assertExchange(exchange, type, { durable: true });
  } catch (err) {
    const unknownType = [err, closedWith].some((reason) =>
      reason instanceof Error && reason.message.includes(`unknown exchange type '${type}'`));
    if (unknownType) throw new ShardExchangePluginError(exchange, type, { cause: closedWith ?? err });
    throw err;
  } finally {
    connection.off('error', onClose);
    connection.off('close', onClose);
  }
}

// RabbitMQ quotes a value twice when it prints it as a quoted atom, as for the exchange type 'x-consistent-hash'.
const INEQUIVALENT =
  /inequivalent arg '([^']+)' for (queue|exchange) '([^']+)' in vhost '[^']*': received (?:none|(?:the value )?''?([^']*)''?(?: of type '[^']*')?) but current is (?:(none)|(?:the value )?''?([^']*)''?)/;

/** Turns RabbitMQ's "inequivalent arg" refusal into an error that says what differs and how to fix it. */
function topologyMismatch(err: unknown, o: TopologyOptions): TopologyMismatchError | undefined {
  const match = INEQUIVALENT.exec(err instanceof Error ? err.message : String(err));
  if (!match) return undefined;
  const [, argument = '', kindText, object = '', declared, , existing] = match;
  const kind = kindText === 'exchange' ? 'exchange' : 'queue';
  const fixes: string[] = [];
  if (kind === 'queue' && workQueues(o).includes(object)) {
    if (argument === 'x-message-ttl' && existing !== undefined) fixes.push(`set AMQP_QUEUE_TTL_MS=${existing} to match it`);
    if (argument === 'x-queue-type') fixes.push(`set AMQP_QUEUE_TYPE=${existing ?? 'classic'} to match it`);
    if (argument === 'x-dead-letter-exchange' && existing !== undefined) {
      fixes.push(`set AMQP_DEAD_LETTER_EXCHANGE=${existing} to match it`);
    }
    fixes.push(`delete the queue so that push-center declares it anew (\`rabbitmqctl delete_queue ${object}\`; ` +
      'the messages in it are lost)', 'set AMQP_QUEUE to another queue name');
  } else if (kind === 'queue') {
    if (argument === 'x-queue-type') fixes.push(`set AMQP_QUEUE_TYPE=${existing ?? 'classic'} to match it`);
    fixes.push(`delete the dead-letter queue (\`rabbitmqctl delete_queue ${object}\`)`,
      'set AMQP_DEAD_LETTER_QUEUE to another queue name');
  } else if (object === o.queue) {
    fixes.push(`delete the exchange (management UI or \`rabbitmqadmin delete exchange name=${object}\`)`,
      'set AMQP_QUEUE to another name');
  } else {
    fixes.push('delete the exchange (management UI or `rabbitmqadmin delete exchange name=...`)',
      'set AMQP_DEAD_LETTER_EXCHANGE to another exchange name');
  }
  const has = existing === undefined ? `no ${argument}` : `${argument} = ${existing}`;
  const declares = declared === undefined ? `without ${argument}` : `with ${argument} = ${declared}`;
  const message = `RabbitMQ refused to declare ${kind} '${object}' (PRECONDITION_FAILED): it already exists with ` +
    `${has}, but push-center declares it ${declares}. To fix it, ${fixes.join(', or ')}.`;
  return new TopologyMismatchError(message, kind, object, argument, declared, existing, { cause: err });
}
