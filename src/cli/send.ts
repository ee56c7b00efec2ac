import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import { shardKey } from '../ingest/shard-key.js';
import { NotificationParser, type InvalidReason } from '../notification/parse.js';
import type { Notification } from '../notification/schema.js';
import type { Ingest } from './amqp-sender.js';
import { Progress, rate } from './progress.js';
import type { Outgoing, Sender } from './sender.js';
import { DEFAULT_AMQP_URL, amqpUrl, readConfig } from './settings.js';
import { CliError, parseOptions, UsageError, withOptionalValue, type OptionValues, type Terminal } from './terminal.js';

export const SEND_USAGE = `Usage: push-center send <target> <payload> [options]

Builds a notification from the options, checks it as a node would (same reasons, same limits), and
publishes it over HTTP or to RabbitMQ. Prints the id of each notification sent, one per line (with
--count above 10, a summary line instead).

Target (at least one):
  -s, --session <id>       a session id (repeatable)
  -g, --group <name>       a group (repeatable)
  -b, --broadcast          every connected socket

Payload and delivery:
  -d, --data <value>       the payload: JSON when it parses as JSON, else sent as a string
                           ('{"a":1}', 42 and true are JSON; hello is the string "hello"; '"42"' the string "42")
      --data-file <path>   the payload from a file, or - for stdin (same rule; a trailing newline of text is dropped)
  -e, --event <name>       the socket.io event it arrives under (default: message)
      --volatile           delivery "volatile": dropped rather than kept for offline sessions (default: reliable)
      --ttl <ms>           how long it may wait for an offline session (default and maximum: the queue TTL)
      --id <id>            the notification id (default: a new UUID); with --count: <id>-1, <id>-2, ...
  -n, --count <n>          send n copies, each with its own id (default: 1)

Transport (default: --http http://localhost:3000, or --amqp when AMQP_URL is set):
      --http <url>         POST to <url>/v1/notifications, up to MAX_BATCH notifications per request
      --api-key <key>      sent as "Authorization: Bearer <key>" (default: $PUSHCENTER_API_KEY)
      --amqp [url]         publish to RabbitMQ on a confirm channel
                           (url default: $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672)
      --queue <name>       the queue the nodes consume (default: $AMQP_QUEUE, else pushcenter.notifications);
                           with AMQP_QUEUE_SHARDS above 1 (as the nodes have it), the exchange of that
                           name, with the notification's first session, else group, as routing key

  -h, --help               this text

Limits come from the same variables as the node's: MAX_MESSAGE_BYTES, MAX_SESSIONS_PER_MESSAGE,
MAX_GROUPS_PER_MESSAGE, MAX_ID_LENGTH, MAX_BATCH, HTTP_BODY_MAX_BYTES, AMQP_QUEUE_TTL_MS.

Examples:
  push-center send --session alice --data '{"title":"Hello","body":"Your order shipped"}'
  push-center send --group team-a --event news --volatile --data 'standup in 5'
  echo '{"build":"green"}' | push-center send --broadcast --data-file -
  push-center send --amqp amqp://guest:guest@rabbit:5672 --session bob --count 1000 --data 1

Exit status: 0 sent; 1 refused or failed (the message says how much was sent); 2 bad usage.
`;

const OPTIONS = {
  session: { type: 'string', short: 's', multiple: true },
  group: { type: 'string', short: 'g', multiple: true },
  broadcast: { type: 'boolean', short: 'b' },
  data: { type: 'string', short: 'd' },
  'data-file': { type: 'string' },
  event: { type: 'string', short: 'e' },
  volatile: { type: 'boolean' },
  ttl: { type: 'string' },
  id: { type: 'string' },
  count: { type: 'string', short: 'n' },
  http: { type: 'string' },
  'api-key': { type: 'string' },
  amqp: { type: 'string' },
  queue: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = OptionValues<typeof OPTIONS>;

const DEFAULT_HTTP_URL = 'http://localhost:3000';
const MAX_COUNT = 10_000_000;
/** Up to this many copies, every id is printed; above, a summary. */
const IDS_PRINTED_MAX = 10;
/** Batches in flight at once: keeps a node or the broker busy while the next batch is built. */
const CONCURRENCY = 4;

/**
 * The node's settings that shape what a publisher may send. The others (authentication, NODE_ENV, …)
 * are none of a publisher's business: a shell set up for a production node must not stop `send`.
 */
const PUBLISHER_SETTINGS = [
  'AMQP_QUEUE', 'AMQP_QUEUE_SHARDS', 'AMQP_QUEUE_TTL_MS', 'MAX_MESSAGE_BYTES', 'MAX_SESSIONS_PER_MESSAGE', 'MAX_GROUPS_PER_MESSAGE',
  'MAX_ID_LENGTH', 'MAX_BATCH', 'HTTP_BODY_MAX_BYTES',
];

type Transport =
  | { kind: 'http'; url: string; apiKey: string | undefined }
  | { kind: 'amqp'; url: string; ingest: Ingest };

/** `push-center send`: resolves with the exit code. */
export async function runSend(args: string[], term: Terminal): Promise<number> {
  const values = parseOptions(withOptionalValue(args, '--amqp'), OPTIONS);
  if (values.help) {
    term.stdout.write(SEND_USAGE);
    return 0;
  }
  const count = parseCount(values.count);
  const useAmqp = values.amqp !== undefined || (values.http === undefined && Boolean(term.env.AMQP_URL?.trim()));
  checkCombinations(values, useAmqp);
  const config = readConfig(term.env, useAmqp && !values.amqp ? [...PUBLISHER_SETTINGS, 'AMQP_URL'] : PUBLISHER_SETTINGS);
  const transport: Transport = useAmqp
    ? {
      kind: 'amqp',
      url: amqpUrl(values.amqp || config.amqp.url || DEFAULT_AMQP_URL),
      ingest: { name: values.queue ?? config.amqp.queue, sharded: config.amqp.queueShards > 1 },
    }
    : { kind: 'http', url: values.http ?? DEFAULT_HTTP_URL, apiKey: values['api-key'] ?? (term.env.PUSHCENTER_API_KEY || undefined) };

  const fields = await notificationFields(values, term.stdin);
  const parser = new NotificationParser(config.limits);
  const copies = new Copies(fields, count, values.id, config.limits.maxIdLength);
  // The copies differ only in their ids: the first and the last (the longest id) stand for all.
  const [first] = [...new Set([0, count - 1])].map((index) => check(parser, copies.at(index), transport.kind));
  copies.shardKey = shardKey(first!);

  const sender = await openSender(transport, config, Buffer.byteLength(copies.at(count - 1).body));
  try {
    return await sendAll(sender, copies, term);
  } finally {
    await sender.close();
  }
}

function parseCount(text: string | undefined): number {
  if (text === undefined) return 1;
  const count = Number(text);
  if (!/^\d+$/.test(text) || count < 1 || count > MAX_COUNT) {
    throw new UsageError(`--count ${JSON.stringify(text)}: must be a whole number from 1 to ${MAX_COUNT}`);
  }
  return count;
}

function checkCombinations(values: Values, useAmqp: boolean): void {
  if (values.http !== undefined && values.amqp !== undefined) {
    throw new UsageError('--http and --amqp: choose one transport');
  }
  if (values.data !== undefined && values['data-file'] !== undefined) {
    throw new UsageError('--data and --data-file: give the payload once');
  }
  if (useAmqp && values['api-key'] !== undefined) {
    throw new UsageError('--api-key is for --http; RabbitMQ authenticates with the user and password in the --amqp URL');
  }
  if (!useAmqp && values.queue !== undefined) {
    throw new UsageError('--queue is for --amqp (the HTTP API publishes to the queue its node is configured with)');
  }
}

/** The notification (PROTOCOL §2) without its id, in the new format, from the options. */
async function notificationFields(values: Values, stdin: NodeJS.ReadableStream): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = {};
  const sessions = values.session ?? [];
  const groups = values.group ?? [];
  if (sessions.length > 0) fields.session = sessions.length === 1 ? sessions[0] : sessions;
  if (groups.length > 0) fields.group = groups.length === 1 ? groups[0] : groups;
  if (values.broadcast) fields.broadcast = true;
  if (values.event !== undefined) fields.event = values.event;
  if (values.data !== undefined) fields.data = payload(values.data);
  const file = values['data-file'];
  if (file !== undefined) fields.data = payload((await readPayload(file, stdin)).replace(/\r?\n$/, ''));
  if (values.volatile) fields.delivery = 'volatile';
  // Anything but digits goes as given, so the parser refuses it with its own words.
  if (values.ttl !== undefined) fields.ttl = /^\d+$/.test(values.ttl) ? Number(values.ttl) : values.ttl;
  return fields;
}

function payload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function readPayload(file: string, stdin: NodeJS.ReadableStream): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`--data-file ${file}: cannot read it: ${(err as Error).message}`);
  }
}

/**
 * The n copies of the notification, built when needed (n may be millions): each with its own id, the
 * rest of the JSON serialised once.
 */
class Copies {
  private readonly rest: string;
  /** The copies' routing key on a sharded ingest: they share their targets. */
  shardKey: string | undefined;

  constructor(
    fields: Record<string, unknown>,
    readonly count: number,
    private readonly id: string | undefined,
    private readonly maxIdLength: number,
  ) {
    const json = JSON.stringify(fields);
    this.rest = json === '{}' ? '}' : `,${json.slice(1)}`;
  }

  at(index: number): Outgoing {
    const id = this.id === undefined ? newId(this.maxIdLength) : this.count === 1 ? this.id : `${this.id}-${index + 1}`;
    return { id, body: `{"id":${JSON.stringify(id)}${this.rest}`, ...(this.shardKey === undefined ? {} : { shardKey: this.shardKey }) };
  }
}

/** A UUID, or as many random characters as ids may have when `MAX_ID_LENGTH` is shorter than a UUID. */
function newId(maxLength: number): string {
  return maxLength >= 36 ? randomUUID() : randomBytes(maxLength).toString('base64url').slice(0, maxLength);
}

const HINTS: Partial<Record<InvalidReason, string>> = {
  no_target: 'Add --session, --group or --broadcast.',
  missing_data: 'Add --data or --data-file.',
};

/**
 * Refuses what the node would refuse, with the node's reason and words (HTTP route or AMQP consumer);
 * answers the notification as the node would read it.
 */
function check(parser: NotificationParser, copy: Outgoing, transport: Transport['kind']): Notification {
  const bytes = Buffer.from(copy.body);
  const { maxMessageBytes } = parser.limits;
  const result = transport === 'http' && bytes.length > maxMessageBytes
    ? { ok: false as const, error: { reason: 'too_large' as const, message: `notification is ${bytes.length} bytes; the limit is ${maxMessageBytes}` } }
    : parser.parseBytes(bytes, { receivedAt: Date.now() });
  if (result.ok) return result.notification;
  const { reason, message } = result.error;
  throw new CliError(`the notification is invalid (${reason}): ${message}. ${HINTS[reason] ?? ''}`.trimEnd() +
    '\nNothing was sent.');
}

async function openSender(transport: Transport, config: Config, largestBytes: number): Promise<Sender> {
  if (transport.kind === 'amqp') {
    const { AmqpSender } = await import('./amqp-sender.js');
    return AmqpSender.open(transport.url, transport.ingest);
  }
  const { HttpSender } = await import('./http-sender.js');
  return new HttpSender({
    url: transport.url,
    apiKey: transport.apiKey,
    maxBatch: config.limits.maxBatch,
    maxBodyBytes: config.httpBodyMaxBytes,
    largestBytes,
  });
}

/**
 * Sends every copy in batches, a few in flight; stops at the first failure. Prints the ids accepted
 * (or a summary), and on a failure says how many were accepted before it.
 */
async function sendAll(sender: Sender, copies: Copies, term: Terminal): Promise<number> {
  const total = copies.count;
  const listIds = total <= IDS_PRINTED_MAX;
  const batches = Math.ceil(total / sender.batchSize);
  const progress = new Progress(term.stderr, total, !listIds);
  const accepted: string[] = [];
  const ends: { first?: string; last?: string } = {};
  let sent = 0;
  let next = 0;
  let failure: unknown;

  const worker = async (): Promise<void> => {
    while (failure === undefined && next < batches) {
      const from = next * sender.batchSize;
      next += 1;
      const batch: Outgoing[] = [];
      for (let i = from; i < Math.min(total, from + sender.batchSize); i++) batch.push(copies.at(i));
      try {
        const ids = await sender.send(batch);
        sent += ids.length;
        progress.add(ids.length);
        if (listIds) accepted.push(...ids);
        if (from === 0) ends.first = ids[0];
        if (from + batch.length === total) ends.last = ids.at(-1);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, batches) }, worker));
  } finally {
    // Kept on stderr as the summary only when stdout (where the summary goes) is not the same terminal.
    progress.stop(failure === undefined && term.stdout.isTTY !== true);
  }

  for (const id of accepted) term.stdout.write(`${id}\n`);
  if (failure !== undefined) {
    if (failure instanceof CliError) {
      throw new CliError(`${failure.message}\n(${sent} of ${total} sent)`, failure.exitCode);
    }
    throw failure;
  }
  if (!listIds) {
    term.stdout.write(`sent ${total} notifications to ${sender.target} in ${(progress.elapsedMs / 1000).toFixed(2)} s ` +
      `(${rate(total, progress.elapsedMs)}); ids ${ends.first ?? '?'} … ${ends.last ?? '?'}\n`);
  }
  return 0;
}
