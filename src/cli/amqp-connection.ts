import { connect, type ChannelModel } from 'amqplib';
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
 * number of messages ready in it. `option` names the option and variable that choose the queue.
 */
export async function checkQueue(connection: ChannelModel, queue: string, url: string, option: string): Promise<number> {
  const probe = await connection.createChannel();
  // A failed check closes the channel with an error; the rejection below carries it.
  probe.on('error', () => undefined);
  let messageCount: number;
  try {
    ({ messageCount } = await probe.checkQueue(queue));
  } catch (err) {
    const text = errorText(err);
    if (/NOT_FOUND|404/.test(text)) {
      throw new CliError(`the queue '${queue}' does not exist on RabbitMQ at ${redact(url)}. A push-center node ` +
        `declares it when it starts with AMQP_URL set: start one first, or check ${option}.`);
    }
    throw new CliError(`cannot check the queue '${queue}' on RabbitMQ at ${redact(url)}: ${text}`);
  }
  await probe.close().catch(() => undefined);
  return messageCount;
}
