import { connect, type Channel, type ChannelModel } from 'amqplib';
import { CliError, errorText, redact } from './terminal.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface ConnectOptions {
  /**
   * TCP_NODELAY. For a connection that waits for an answer after a frame that has none (an ack, then
   * basic.get): with Nagle's algorithm the second frame would wait for the broker's delayed TCP ack,
   * 40 ms each time.
   */
  noDelay?: boolean;
}

/** Connects as `push-center-cli`; fails with what to check. */
export async function connectAmqp(url: string, options: ConnectOptions = {}): Promise<ChannelModel> {
  let connection: ChannelModel;
  try {
    connection = await connect(url, {
      clientProperties: { connection_name: 'push-center-cli' },
      timeout: CONNECT_TIMEOUT_MS,
      noDelay: options.noDelay === true,
    });
  } catch (err) {
    throw new CliError(`cannot connect to RabbitMQ at ${redact(url)}: ${errorText(err)}. ` +
      'Check that RabbitMQ runs there and that the user, password and vhost are right (--amqp <url> or AMQP_URL).');
  }
  // Failures surface on the channels and in 'close'; without a listener an 'error' would throw.
  connection.on('error', () => undefined);
  return connection;
}

/**
 * Checks that a queue exists, never declares it: the nodes declare their queues with their arguments
 * (TTL, dead-lettering), and a declaration with other arguments would be refused. Resolves with the
 * number of messages ready in it. `option` names the option and variable that choose the queue; `note`
 * is added to the message when the queue does not exist.
 */
export async function checkQueue(
  connection: ChannelModel, queue: string, url: string, option: string, note = '',
): Promise<number> {
  const { messageCount } = await passiveCheck(connection, (probe) => probe.checkQueue(queue), {
    what: `the queue '${queue}'`,
    url,
    missing: `A push-center node declares it when it starts with AMQP_URL set: start one first, or check ${option}.${note}`,
  });
  return messageCount;
}

/** Checks that the exchange in front of the shards exists (see `checkQueue`); `option` as there. */
export async function checkExchange(connection: ChannelModel, exchange: string, url: string, option: string): Promise<void> {
  await passiveCheck(connection, (probe) => probe.checkExchange(exchange), {
    what: `the exchange '${exchange}'`,
    url,
    missing: 'A push-center node declares it when it starts with AMQP_URL set and AMQP_QUEUE_SHARDS above 1: start one ' +
      `first, or check ${option} and AMQP_QUEUE_SHARDS (with one shard the nodes consume a queue of that name).`,
  });
}

/** Runs a passive check on a channel of its own, which a refusal closes; a missing object fails with `missing`. */
async function passiveCheck<T>(
  connection: ChannelModel, check: (probe: Channel) => Promise<T>, text: { what: string; url: string; missing: string },
): Promise<T> {
  const probe = await connection.createChannel();
  // A failed check closes the channel with an error; the rejection below carries it.
  probe.on('error', () => undefined);
  let result: T;
  try {
    result = await check(probe);
  } catch (err) {
    const reason = errorText(err);
    if (/NOT_FOUND|404/.test(reason)) {
      throw new CliError(`${text.what} does not exist on RabbitMQ at ${redact(text.url)}. ${text.missing}`);
    }
    throw new CliError(`cannot check ${text.what} on RabbitMQ at ${redact(text.url)}: ${reason}`);
  }
  await probe.close().catch(() => undefined);
  return result;
}
