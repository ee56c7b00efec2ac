import { shardKey } from '../ingest/shard-key.js';
import { AmqpSender, type Ingest } from './amqp-sender.js';
import { DeadLetterReader, describeDeadLetter, describeTarget, replayProperties, type DeadLetter } from './dead-letter-queue.js';
import { Progress, percent, rate } from './progress.js';
import { DEFAULT_AMQP_URL, amqpUrl, readConfig } from './settings.js';
import { CliError, parseOptions, UsageError, withOptionalValue, type OptionValues, type Terminal } from './terminal.js';

export const DEAD_LETTERS_USAGE = `Usage: push-center dead-letters list [--reason <r>] [--limit <n>] [--json] [options]
       push-center dead-letters replay [--reason <r>] [--limit <n>] [options]

What push-center gave up on (an inbox over its bound or past a ttl, an invalid message) and what
RabbitMQ expired in the work queue waits in the dead-letter queue, with its reason (PROTOCOL §4.1, §5).

  list     Shows the dead letters, oldest first: place in the queue, age, reason, target, id and
           detail; then a count per reason over the whole queue. It takes nothing: it reads each
           message with basic.get without acking it, and closing the channel puts every message back
           in its place (RabbitMQ then marks them redelivered).
  replay   Moves dead letters back to the work queue, oldest first, one at a time: the copy is
           published and confirmed by RabbitMQ before the dead letter is acked. The copy has the
           original body, messageId and headers, less the reason headers and RabbitMQ's x-death
           history, and a fresh enqueue time, so its ttl counts from the replay. Dead letters that do
           not match --reason stay where they are, in their order.
           Ctrl-C (or SIGTERM) finishes the message in hand and stops: nothing lost, nothing doubled.
           Killed, or cut off from RabbitMQ, it loses nothing either, and at most one dead letter,
           the one in hand, can then be in both queues (its id is printed when it can tell).

Options:
  -r, --reason <reason>        only dead letters with this reason (repeatable): inbox_full,
                               inbox_expired, expired (RabbitMQ: its time in the queue ran out),
                               not_json, missing_data, … (PROTOCOL §5)
  -n, --limit <n>              list: show at most n (the counts still cover the whole queue);
                               replay: replay at most n
      --json                   list: one JSON object per dead letter and line, then {"summary": …}
      --amqp [url]             RabbitMQ (url default: $AMQP_URL, else ${DEFAULT_AMQP_URL})
      --dead-letter-queue <q>  default: $AMQP_DEAD_LETTER_QUEUE, else pushcenter.dead
      --queue <q>              replay: the work queue the copies go to (default: $AMQP_QUEUE,
                               else pushcenter.notifications); with AMQP_QUEUE_SHARDS above 1 (as
                               the nodes have it), the exchange of that name in front of the
                               shards, each copy routed by its first session, else group
  -h, --help                   this text

Both read at most as many messages as the queue held when they started: dead letters that arrive
meanwhile wait for the next run (so a replayed message that is dead-lettered again is not replayed
twice in one run). A message read is invisible to the nodes' other readers until the run ends.
Invalid messages come back as invalid unless what refused them changed (a limit, say).

Examples:
  push-center dead-letters list --reason inbox_full --limit 20
  push-center dead-letters list --json | jq -c 'select(.reason == "expired") | .target'
  push-center dead-letters replay --reason inbox_full --reason inbox_expired

Exit status: 0 done; 1 failed or interrupted (the summary says what was done); 2 bad usage.
`;

const COMMON = {
  reason: { type: 'string', short: 'r', multiple: true },
  limit: { type: 'string', short: 'n' },
  amqp: { type: 'string' },
  'dead-letter-queue': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
const LIST_OPTIONS = { ...COMMON, json: { type: 'boolean' } } as const;
const REPLAY_OPTIONS = { ...COMMON, queue: { type: 'string' } } as const;

const SETTINGS = ['AMQP_URL', 'AMQP_QUEUE', 'AMQP_QUEUE_SHARDS', 'AMQP_DEAD_LETTER_QUEUE'];
const MAX_LIMIT = 10_000_000;
const REASON = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Off a terminal, replay logs a progress line every this many messages read. */
const PROGRESS_LINE_EVERY = 1000;
/** Widest target and id in the table; the detail takes the rest of the line. */
const COLUMN_MAX = 40;

/** `push-center dead-letters`: resolves with the exit code. */
export async function runDeadLetters(args: string[], term: Terminal): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand === '--help' || subcommand === '-h') return help(term);
  if (subcommand === 'list') return list(rest, term);
  if (subcommand === 'replay') return replay(rest, term);
  throw new UsageError(subcommand === undefined || subcommand.startsWith('-')
    ? 'say what to do: list or replay (e.g. push-center dead-letters list)'
    : `unknown subcommand '${subcommand}'; the subcommands are list, replay`);
}

function help(term: Terminal): number {
  term.stdout.write(DEAD_LETTERS_USAGE);
  return 0;
}

type CommonValues = OptionValues<typeof COMMON> & { queue?: string };

/** What both subcommands read from their options and the environment, checked. */
function settings(
  values: CommonValues, env: NodeJS.ProcessEnv,
): { matches: (reason: string) => boolean; limit: number; where: Where } {
  return { matches: reasonFilter(values.reason), limit: parseLimit(values.limit), where: where(values, env) };
}

interface Where {
  url: string;
  deadLetterQueue: string;
  queue: string;
  /** The queue count the nodes run with (AMQP_QUEUE_SHARDS): above 1, `queue` is the exchange in front of them. */
  shards: number;
}

function where(values: CommonValues, env: NodeJS.ProcessEnv): Where {
  const config = readConfig(env, values.amqp ? SETTINGS.filter((name) => name !== 'AMQP_URL') : SETTINGS);
  for (const option of ['dead-letter-queue', 'queue'] as const) {
    if (values[option] === '') throw new UsageError(`--${option}: give a queue name`);
  }
  return {
    url: amqpUrl(values.amqp || config.amqp.url || DEFAULT_AMQP_URL),
    deadLetterQueue: values['dead-letter-queue'] ?? config.amqp.deadLetterQueue,
    queue: values.queue ?? config.amqp.queue,
    shards: config.amqp.queueShards,
  };
}

/** Whether a reason is asked for: every one without --reason. */
function reasonFilter(reasons: string[] | undefined): (reason: string) => boolean {
  for (const reason of reasons ?? []) {
    if (!REASON.test(reason)) throw new UsageError(`--reason ${JSON.stringify(reason)}: a reason is 1 to 64 of A-Z a-z 0-9 _ . : -`);
  }
  if (!reasons) return () => true;
  const wanted = new Set(reasons);
  return (reason) => wanted.has(reason);
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return Infinity;
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_LIMIT) {
    throw new UsageError(`--limit ${JSON.stringify(text)}: must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  return limit;
}

// --- list -------------------------------------------------------------------------------------------

interface Row {
  position: number;
  letter: DeadLetter;
  bytes: number;
}

async function list(args: string[], term: Terminal): Promise<number> {
  const values = parseOptions(withOptionalValue(args, '--amqp'), LIST_OPTIONS);
  if (values.help) return help(term);
  const { matches, limit, where: { url, deadLetterQueue } } = settings(values, term.env);
  const json = values.json === true;

  const reader = await DeadLetterReader.open(url, deadLetterQueue);
  const now = Date.now();
  const counts = new Map<string, number>();
  const rows: Row[] = [];
  let matching = 0;
  // JSON lines stream to stdout: no progress line between them on the same terminal.
  const progress = new Progress(term.stderr, reader.length, !json || term.stdout.isTTY !== true, {
    describe: (done, total) => `reading ${done}/${total} (${percent(done, total)} %)`,
  });
  try {
    while (term.interrupted?.aborted !== true) {
      const msg = await reader.next();
      if (!msg) break;
      progress.add(1);
      const letter = describeDeadLetter(msg);
      counts.set(letter.reason, (counts.get(letter.reason) ?? 0) + 1);
      if (!matches(letter.reason) || ++matching > limit) continue;
      const row = { position: reader.read, letter, bytes: msg.content.length };
      if (json) term.stdout.write(`${JSON.stringify(jsonRow(row, now))}\n`);
      else rows.push(row);
    }
  } finally {
    progress.stop(false);
    // Puts back every message read.
    await reader.close();
  }

  const shown = Math.min(matching, limit);
  const byReason = [...counts].sort(([a, m], [b, n]) => n - m || a.localeCompare(b));
  if (json) {
    term.stdout.write(`${JSON.stringify({
      summary: { queue: deadLetterQueue, read: reader.read, matching, shown, byReason: Object.fromEntries(byReason) },
    })}\n`);
  } else {
    if (rows.length > 0) term.stdout.write(table(rows, now, term.stdout.isTTY === true ? term.stdout.columns : undefined));
    term.stdout.write(listSummary(deadLetterQueue, reader.read, matching, shown, byReason));
  }
  if (term.interrupted?.aborted) throw new CliError(`interrupted after reading ${reader.read} of ${reader.length}; the queue is unchanged`);
  return 0;
}

function jsonRow({ position, letter, bytes }: Row, now: number): Record<string, unknown> {
  const time = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const since = letter.enqueuedAt ?? letter.deadLetteredAt;
  return {
    position,
    reason: letter.reason,
    detail: letter.detail,
    target: letter.target ?? null,
    id: letter.id ?? null,
    originalQueue: letter.originalQueue ?? null,
    enqueuedAt: time(letter.enqueuedAt),
    deadLetteredAt: time(letter.deadLetteredAt),
    ageMs: since === undefined ? null : Math.max(0, now - since),
    bytes,
  };
}

/** The rows as a table; on a terminal (`width` given) each line is cut to fit. */
function table(rows: Row[], now: number, width: number | undefined): string {
  const cells = rows.map(({ position, letter }) => {
    const since = letter.enqueuedAt ?? letter.deadLetteredAt;
    return [String(position), since === undefined ? '?' : age(now - since), letter.reason,
      cut(describeTarget(letter.target), COLUMN_MAX), cut(letter.id ?? '?', COLUMN_MAX), letter.detail];
  });
  const header = ['#', 'AGE', 'REASON', 'TARGET', 'ID', 'DETAIL'];
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) => {
    const text = row.map((cell, i) => (i === 0 ? cell.padStart(widths[i]!) : i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ');
    return `${width === undefined ? text : cut(text, width)}\n`;
  };
  return [header, ...cells].map(line).join('');
}

function listSummary(queue: string, read: number, matching: number, shown: number, byReason: Array<[string, number]>): string {
  if (read === 0) return `the dead-letter queue '${queue}' is empty\n`;
  const selection = matching === read && shown === read ? '' : `; ${shown} shown of ${matching} matching`;
  const width = Math.max(...byReason.map(([reason]) => reason.length));
  return `${read} dead letter${read === 1 ? '' : 's'} in '${queue}'${selection}, by reason:\n` +
    byReason.map(([reason, count]) => `  ${reason.padEnd(width)}  ${count}\n`).join('');
}

/** "42s", "3m12s", "5h07m", "2d03h". */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

// --- replay -----------------------------------------------------------------------------------------

interface Tally {
  replayed: number;
  left: number;
}

/**
 * One dead letter at a time: get it (held, not acked), publish its copy to the work queue, wait for the
 * broker's confirm, ack it. A dead letter is acked only once its copy is confirmed, so a run cut short
 * at any point loses nothing; and the broker has processed each ack before the next get is answered
 * (same channel, in order), so the only dead letter that can be in both queues is the one in hand.
 * Dead letters that do not match stay unacked until the end, when closing the channel puts them back
 * in their places.
 */
async function replay(args: string[], term: Terminal): Promise<number> {
  const values = parseOptions(withOptionalValue(args, '--amqp'), REPLAY_OPTIONS);
  if (values.help) return help(term);
  const { matches, limit, where: { url, deadLetterQueue, queue, shards } } = settings(values, term.env);
  const ingest: Ingest = { name: queue, sharded: shards > 1 };
  /** Where the copies go, as messages name it. */
  const destination = ingest.sharded ? `the ${shards} shards behind exchange '${queue}'` : `'${queue}'`;

  const reader = await DeadLetterReader.open(url, deadLetterQueue);
  let sender: AmqpSender;
  try {
    sender = await AmqpSender.open(url, ingest);
  } catch (err) {
    await reader.close();
    throw err;
  }

  const tallies = new Map<string, Tally>();
  let replayed = 0;
  let left = 0;
  /** The dead letter whose copy may be in the work queue while the broker may still hold it too. */
  let inHand: DeadLetter | undefined;
  let failure: unknown;
  const progress = new Progress(term.stderr, reader.length, true, {
    describe: (done, total, elapsedMs) =>
      `read ${done}/${total} (${percent(done, total)} %): replayed ${replayed}, left ${left}, ${rate(done, elapsedMs)}`,
    lineEvery: PROGRESS_LINE_EVERY,
  });
  try {
    while (replayed < limit && term.interrupted?.aborted !== true) {
      const msg = await reader.next();
      if (!msg) break;
      // The ack of the one before went first on the same channel: the broker has processed it.
      inHand = undefined;
      const letter = describeDeadLetter(msg);
      const tally = tallies.get(letter.reason) ?? { replayed: 0, left: 0 };
      tallies.set(letter.reason, tally);
      if (matches(letter.reason)) {
        inHand = letter;
        // Routed as a node routes its target, so the copy joins the shard its session's messages use.
        const routing = letter.target && shardKey({ sessions: letter.target.session, groups: letter.target.group });
        await sender.publishOne(msg.content, replayProperties(msg.properties, Date.now()), routing);
        reader.take(msg);
        replayed += 1;
        tally.replayed += 1;
      } else {
        left += 1;
        tally.left += 1;
      }
      progress.add(1);
    }
  } catch (err) {
    failure = err;
  } finally {
    progress.stop(false);
    const [closed] = await Promise.all([reader.close(), sender.close()]);
    // A clean close of the channel means the broker processed every ack sent before it.
    if (closed) inHand = undefined;
  }

  const notRead = reader.length - reader.read;
  term.stdout.write(replaySummary({ deadLetterQueue, destination, read: reader.length, replayed, left: left + notRead, notRead,
    tallies, elapsedMs: progress.elapsedMs }));
  if (failure !== undefined) {
    const message = failure instanceof CliError ? failure.message : `unexpected error: ${(failure as Error).stack ?? String(failure)}`;
    throw new CliError(`${message}\n${inHandNote(inHand, deadLetterQueue, destination)}`);
  }
  if (term.interrupted?.aborted) {
    throw new CliError(`interrupted: ${replayed} replayed, ${left + notRead} left in '${deadLetterQueue}'. ` +
      `${inHandNote(inHand, deadLetterQueue, destination)} Run it again to go on.`);
  }
  return 0;
}

function inHandNote(letter: DeadLetter | undefined, deadLetterQueue: string, destination: string): string {
  if (!letter) return `Every dead letter read is in exactly one of '${deadLetterQueue}' and ${destination}.`;
  return `Every dead letter read is in exactly one of '${deadLetterQueue}' and ${destination}, but for the one in hand, ` +
    `id ${letter.id ?? '(none)'}: it is in '${deadLetterQueue}', and may also be in ${destination}.`;
}

interface ReplayOutcome {
  deadLetterQueue: string;
  /** Where the copies went, as messages name it. */
  destination: string;
  read: number;
  replayed: number;
  left: number;
  notRead: number;
  tallies: Map<string, Tally>;
  elapsedMs: number;
}

function replaySummary(o: ReplayOutcome): string {
  if (o.read === 0) return `the dead-letter queue '${o.deadLetterQueue}' is empty: nothing to replay\n`;
  const head = `replayed ${o.replayed} of ${o.read} dead letter${o.read === 1 ? '' : 's'} from '${o.deadLetterQueue}' ` +
    `to ${o.destination} in ${(o.elapsedMs / 1000).toFixed(2)} s (${rate(o.replayed, o.elapsedMs)}); ` +
    `${o.left} left in '${o.deadLetterQueue}'\n`;
  const rows: Array<[string, string, string]> = [...o.tallies]
    .sort(([a, x], [b, y]) => y.replayed + y.left - (x.replayed + x.left) || a.localeCompare(b))
    .map(([reason, tally]) => [reason, String(tally.replayed), String(tally.left)]);
  if (o.notRead > 0) rows.push(['(not read)', '', String(o.notRead)]);
  if (rows.length === 0) return head;
  const all: Array<[string, string, string]> = [['reason', 'replayed', 'left'], ...rows];
  const widths = [0, 1, 2].map((i) => Math.max(...all.map((row) => row[i]!.length)));
  return head + all.map(([reason, replayed, left]) =>
    `  ${reason.padEnd(widths[0]!)}  ${replayed.padStart(widths[1]!)}  ${left.padStart(widths[2]!)}\n`).join('');
}
