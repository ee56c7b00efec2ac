import type { Channel, ChannelModel, GetMessage, MessageProperties, Options } from 'amqplib';
import {
  ENQUEUED_MS_HEADER,
  ERROR_DETAIL_HEADER,
  ERROR_HEADER,
  ORIGINAL_QUEUE_HEADER,
  SOURCE_HEADER,
  enqueuedAt,
  republishProperties,
} from '../ingest/amqp/headers.js';
import { orAfter } from '../util/timeout.js';
import { checkQueue, connectAmqp } from './amqp-connection.js';
import { CliError, errorText, redact } from './terminal.js';

const CLOSE_TIMEOUT_MS = 2000;

/** What a dead letter says about itself, from its headers and, when it parses, its body. */
export interface DeadLetter {
  /** `x-pushcenter-error`, else the reason of RabbitMQ's latest `x-death` (e.g. `expired`), else `unknown`. */
  reason: string;
  /** `x-pushcenter-error-detail`, or what `x-death` says. */
  detail: string;
  /** The body's targets (new or original field names); undefined when the body is not a JSON object. */
  target: Target | undefined;
  /** The body's `id`, else the `messageId` property. */
  id: string | undefined;
  /** The queue it was dead-lettered from. */
  originalQueue: string | undefined;
  /** Enqueue time in ms (`x-pushcenter-enqueued-ms`, else the AMQP timestamp). */
  enqueuedAt: number | undefined;
  /** When RabbitMQ dead-lettered it (`x-death`); push-center's own dead letters carry no such time. */
  deadLetteredAt: number | undefined;
}

export interface Target {
  session?: string[];
  group?: string[];
  broadcast?: true;
}

interface XDeath {
  reason?: unknown;
  queue?: unknown;
  count?: unknown;
  time?: unknown;
}

/** Reads a dead letter: never throws, whatever its body and headers. */
export function describeDeadLetter(msg: Pick<GetMessage, 'content' | 'properties'>): DeadLetter {
  const p = msg.properties;
  const headers = p.headers ?? {};
  const death = latestDeath(headers['x-death']);
  const ours = text(headers[ERROR_HEADER]);
  const body = parseObject(msg.content);
  const deathQueue = text(death?.queue);
  const deathReason = text(death?.reason) ?? text(headers['x-first-death-reason']);
  const count = typeof death?.count === 'number' && death.count > 1 ? `, ${death.count} times` : '';
  return {
    reason: ours ?? deathReason ?? 'unknown',
    detail: ours !== undefined
      ? (text(headers[ERROR_DETAIL_HEADER]) ?? '')
      : deathReason !== undefined
        ? `RabbitMQ dead-lettered it from queue '${deathQueue ?? '?'}' (${deathReason}${count})`
        : 'no reason header: not dead-lettered by push-center or by RabbitMQ',
    target: body && targetOf(body),
    id: text(body?.id) ?? text(p.messageId),
    originalQueue: text(headers[ORIGINAL_QUEUE_HEADER]) ?? deathQueue,
    enqueuedAt: enqueuedAt(p),
    deadLetteredAt: ours === undefined ? seconds(death?.time) : undefined,
  };
}

/** "session alice", "3 sessions: a, b, c", "group team-a + broadcast"; "?" when the body gave none. */
export function describeTarget(target: Target | undefined): string {
  if (!target) return '?';
  const parts: string[] = [];
  const names = (kind: string, list: string[] | undefined): void => {
    if (!list || list.length === 0) return;
    const shown = list.slice(0, 3).join(', ') + (list.length > 3 ? ', …' : '');
    parts.push(list.length === 1 ? `${kind} ${shown}` : `${list.length} ${kind}s: ${shown}`);
  };
  names('session', target.session);
  names('group', target.group);
  if (target.broadcast) parts.push('broadcast');
  return parts.length > 0 ? parts.join(' + ') : '?';
}

/**
 * The properties of a dead letter published back to the work queue: its own (messageId included),
 * without the reason headers, RabbitMQ's dead-lettering history (`x-death`, `x-first-death-*`,
 * `x-last-death-*`) and the HTTP-source mark (the copy comes in through RabbitMQ, and is counted so),
 * and with a fresh enqueue time: a node computes expiry from the enqueue time plus the ttl, so the
 * old one would expire it at once.
 */
export function replayProperties(p: MessageProperties, now: number): Options.Publish {
  const headers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(p.headers ?? {})) {
    if (!DROPPED_HEADERS.has(name) && !/^x-(first|last)-death-/.test(name)) headers[name] = value;
  }
  headers[ENQUEUED_MS_HEADER] = now;
  // AMQP timestamps are whole seconds.
  return { ...republishProperties(p), timestamp: Math.floor(now / 1000), headers };
}

const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  ERROR_HEADER, ERROR_DETAIL_HEADER, ORIGINAL_QUEUE_HEADER, SOURCE_HEADER, 'x-death',
]);

/**
 * Reads the dead-letter queue without taking anything from it unless told to: each message with
 * basic.get and no ack, held by this reader until `close`, when RabbitMQ puts every message not taken
 * back in its place (a classic queue keeps their order; RabbitMQ marks them `redelivered`). Read, a
 * message is invisible to other readers of the queue until then.
 *
 * It reads at most as many messages as the queue held when it was opened, so that what arrives
 * meanwhile (a replayed message dead-lettered again, say) is not read in the same run.
 */
export class DeadLetterReader {
  /** Messages read so far. */
  read = 0;
  private failure: CliError | undefined;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: Channel,
    readonly queue: string,
    /** Messages ready in the queue when it was opened: the most it reads. */
    readonly length: number,
    url: string,
  ) {
    channel.on('error', () => undefined);
    channel.on('close', () => {
      this.failure ??= new CliError(`RabbitMQ closed the channel to the dead-letter queue '${queue}' on ${redact(url)}`);
    });
    connection.on('close', (err?: Error) => {
      this.failure ??= new CliError(`the connection to RabbitMQ at ${redact(url)} closed${err ? `: ${err.message}` : ''}`);
    });
  }

  /** Connects and checks that the queue exists; fails with what to check. */
  static async open(url: string, queue: string): Promise<DeadLetterReader> {
    // An ack followed by a basic.get: without TCP_NODELAY each get would wait 40 ms (connectAmqp).
    const connection = await connectAmqp(url, { noDelay: true });
    try {
      const length = await checkQueue(connection, queue, url, '--dead-letter-queue / AMQP_DEAD_LETTER_QUEUE');
      const channel = await connection.createChannel();
      return new DeadLetterReader(connection, channel, queue, length, url);
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  /** The next message, held by this reader; undefined at the end (see the class comment). */
  async next(): Promise<GetMessage | undefined> {
    if (this.read >= this.length) return undefined;
    let msg: GetMessage | false;
    try {
      msg = await this.channel.get(this.queue, { noAck: false });
    } catch (err) {
      throw this.failure ?? new CliError(`cannot read the dead-letter queue '${this.queue}': ${errorText(err)}`);
    }
    if (msg === false) return undefined;
    this.read += 1;
    return msg;
  }

  /**
   * Removes a message read from the queue (basic.ack). The broker has done so at the latest when the
   * next `next()` resolves: the ack goes first on the same channel.
   */
  take(msg: GetMessage): void {
    if (this.failure) throw this.failure;
    try {
      this.channel.ack(msg);
    } catch (err) {
      throw this.failure ?? new CliError(`cannot remove a message from the dead-letter queue '${this.queue}': ${errorText(err)}`);
    }
  }

  /**
   * Closes the channel and the connection: what was read and not taken goes back to the queue, in its
   * place. Resolves with whether the channel closed cleanly, which means the broker processed every
   * ack sent before.
   */
  async close(): Promise<boolean> {
    const closing = this.channel.close().then(() => true, () => false).then(async (clean) => {
      await this.connection.close().catch(() => undefined);
      return clean;
    });
    return orAfter(closing, CLOSE_TIMEOUT_MS, false);
  }
}

function latestDeath(value: unknown): XDeath | undefined {
  // RabbitMQ puts the latest dead-lettering first.
  const first: unknown = Array.isArray(value) ? value[0] : undefined;
  return typeof first === 'object' && first !== null ? (first as XDeath) : undefined;
}

function text(value: unknown): string | undefined {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** An AMQP timestamp (seconds; amqplib decodes a table's as `{ '!': 'timestamp', value }`) in ms. */
function seconds(value: unknown): number | undefined {
  const raw = typeof value === 'object' && value !== null ? (value as { value?: unknown }).value : value;
  return typeof raw === 'number' && Number.isFinite(raw) && raw > 0 ? raw * 1000 : undefined;
}

function parseObject(content: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(content.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The targets, under the new or the original message center's field names (PROTOCOL §2.1). */
function targetOf(body: Record<string, unknown>): Target {
  const names = (value: unknown): string[] | undefined => {
    const list = (Array.isArray(value) ? value : [value]).filter((item): item is string => typeof item === 'string');
    return list.length > 0 ? list : undefined;
  };
  const target: Target = {};
  const session = names(body.session ?? body.socketSessionId);
  const group = names(body.group ?? body.socketGroupFlag);
  if (session) target.session = session;
  if (group) target.group = group;
  if (body.broadcast === true) target.broadcast = true;
  return target;
}
