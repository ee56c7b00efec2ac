import type { ConsumeMessage } from 'amqplib';
import { RECEIPT_OUTCOMES } from '../receipts/receipts.js';
import { connectAmqp } from './amqp-connection.js';
import { DEFAULT_AMQP_URL, amqpUrl, readConfig } from './settings.js';
import { CliError, errorText, parseOptions, redact, UsageError, withOptionalValue, type Terminal } from './terminal.js';

export const RECEIPTS_USAGE = `Usage: push-center receipts --follow [--outcome <o>] [--target <t>] [--json] [options]

Shows what happens to notifications as it happens: every final outcome the nodes publish to the
receipts exchange (AMQP_RECEIPTS_EXCHANGE, PROTOCOL §6), one line each, until Ctrl-C. It binds a
queue of its own (exclusive, deleted when it stops), so it takes nothing from other consumers.

  time          outcome    target   who           id                    node      sockets / reason

Options:
  -f, --follow             follow the stream (required: the stream has no history; the receipt of one
                           notification is GET /v1/notifications/<id>)
  -o, --outcome <o>        only this outcome (repeatable): delivered, stored, dead, dropped
  -t, --target <t>         only this target kind (repeatable): session, group, broadcast, unknown
      --json               one JSON receipt per line, as published
      --amqp [url]         RabbitMQ (url default: $AMQP_URL, else ${DEFAULT_AMQP_URL})
      --exchange <name>    default: $AMQP_RECEIPTS_EXCHANGE, else pushcenter.receipts
  -h, --help               this text

Examples:
  push-center receipts --follow --outcome dead
  push-center receipts --follow --json | jq -c 'select(.session == "alice")'

Exit status: 0 stopped by Ctrl-C or SIGTERM; 1 failed (RabbitMQ away, no such exchange); 2 bad usage.
`;

const OPTIONS = {
  follow: { type: 'boolean', short: 'f' },
  outcome: { type: 'string', short: 'o', multiple: true },
  target: { type: 'string', short: 't', multiple: true },
  json: { type: 'boolean' },
  amqp: { type: 'string' },
  exchange: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const STREAMED = RECEIPT_OUTCOMES.filter((o) => o !== 'accepted');
const TARGETS = ['session', 'group', 'broadcast', 'unknown'];

/** `push-center receipts`: resolves with the exit code once interrupted. */
export async function runReceipts(args: string[], term: Terminal): Promise<number> {
  const values = parseOptions(withOptionalValue(args, '--amqp'), OPTIONS);
  if (values.help) {
    term.stdout.write(RECEIPTS_USAGE);
    return 0;
  }
  if (!values.follow) {
    throw new UsageError('add --follow: the stream shows outcomes as they happen (for one notification: GET /v1/notifications/<id>)');
  }
  const outcomes = checked('--outcome', values.outcome, STREAMED);
  const targets = checked('--target', values.target, TARGETS);
  const config = readConfig(term.env, ['AMQP_URL', 'AMQP_RECEIPTS_EXCHANGE']);
  const url = amqpUrl(values.amqp || config.amqp.url || DEFAULT_AMQP_URL);
  const exchange = values.exchange ?? config.amqp.receiptsExchange;
  if (exchange === '') throw new UsageError('no receipts exchange: AMQP_RECEIPTS_EXCHANGE is empty (the stream is off); give --exchange');

  const connection = await connectAmqp(url);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.checkExchange(exchange);
    } catch (err) {
      throw new CliError(`the receipts exchange '${exchange}' does not exist on RabbitMQ at ${redact(url)} (${errorText(err)}). ` +
        'A node declares it when it starts with AMQP_URL set and AMQP_RECEIPTS_EXCHANGE not empty; or check --exchange.');
    }
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    for (const outcome of outcomes ?? ['*']) {
      for (const target of targets ?? ['*']) await channel.bindQueue(queue, exchange, `${outcome}.${target}`);
    }
    const stopped = new Promise<void>((resolve) => {
      if (term.interrupted?.aborted) resolve();
      term.interrupted?.addEventListener('abort', () => resolve(), { once: true });
      connection.once('close', () => resolve());
    });
    await channel.consume(queue, (msg) => {
      if (msg) term.stdout.write(values.json ? `${msg.content.toString()}\n` : line(msg));
    }, { noAck: true });
    if (!values.json) term.stderr.write(`following ${exchange} on ${redact(url)}; Ctrl-C stops\n`);
    await stopped;
    if (!term.interrupted?.aborted) throw new CliError('the connection to RabbitMQ closed');
    return 0;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

function checked(option: string, given: string[] | undefined, allowed: readonly string[]): string[] | undefined {
  for (const value of given ?? []) {
    if (!allowed.includes(value)) throw new UsageError(`${option} ${JSON.stringify(value)}: one of ${allowed.join(', ')}`);
  }
  return given;
}

/** One receipt as a line for a terminal. */
function line(msg: ConsumeMessage): string {
  let receipt: Record<string, unknown>;
  try {
    receipt = JSON.parse(msg.content.toString()) as Record<string, unknown>;
  } catch {
    return `(not JSON) ${msg.fields.routingKey} ${msg.content.toString().slice(0, 200)}\n`;
  }
  const at = typeof receipt.at === 'number' ? new Date(receipt.at).toISOString().slice(11, 23) : '?';
  const who = typeof receipt.session === 'string' ? receipt.session : '';
  const extra = [
    typeof receipt.sockets === 'number' ? `${receipt.sockets} sockets` : '',
    typeof receipt.reason === 'string' ? receipt.reason : '',
  ].filter(Boolean).join(' ');
  return `${[at, pad(receipt.outcome, 9), pad(receipt.target, 8), pad(who, 13), pad(receipt.id, 21), pad(receipt.node, 9), extra]
    .join(' ').trimEnd()}\n`;
}

function pad(value: unknown, width: number): string {
  const text = typeof value === 'string' ? value : '';
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}
