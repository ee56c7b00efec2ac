import { connect } from 'amqplib';
import type { App } from '../../src/app.js';
import { MemoryQueue } from '../../src/ingest/memory-queue.js';
import { AMQP_URL } from './services.js';

/**
 * The conservation checker of PROTOCOL §4.1, shared by the tests: given the ids published, it proves
 * each one ended delivered, waiting in an inbox, or in the dead-letter queue with a reason, and that
 * none is missing.
 */

/** A dead letter as the checker needs it: the message id and the reason header. */
export interface DeadLetterSeen {
  id: string | undefined;
  reason: string;
}

/** Where each published id was found. */
export interface Where {
  /** Ids a client received (duplicates included: every arrival). */
  delivered: Iterable<string>;
  /** Ids waiting in inboxes. */
  waiting: Iterable<string>;
  deadLettered: Iterable<DeadLetterSeen>;
}

export interface Balance {
  published: number;
  delivered: number;
  waiting: number;
  /** Dead letters of published ids, by reason. */
  dead: Record<string, number>;
  /** Published ids found nowhere: a silent loss. */
  missing: string[];
  /** Arrivals beyond the first, per id, summed (at-least-once allows them). */
  duplicates: number;
}

export function balance(published: readonly string[], where: Where): Balance {
  const arrivals = new Map<string, number>();
  for (const id of where.delivered) arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
  const waiting = new Set(where.waiting);
  const dead = new Map<string, string>();
  for (const letter of where.deadLettered) if (letter.id !== undefined) dead.set(letter.id, letter.reason);

  const result: Balance = { published: published.length, delivered: 0, waiting: 0, dead: {}, missing: [], duplicates: 0 };
  for (const id of published) {
    const times = arrivals.get(id) ?? 0;
    result.duplicates += Math.max(0, times - 1);
    if (times > 0) result.delivered += 1;
    else if (waiting.has(id)) result.waiting += 1;
    else if (dead.has(id)) result.dead[dead.get(id)!] = (result.dead[dead.get(id)!] ?? 0) + 1;
    else result.missing.push(id);
  }
  return result;
}

/** The balance, or an error naming the first missing ids. */
export function expectConserved(published: readonly string[], where: Where): Balance {
  const result = balance(published, where);
  if (result.missing.length > 0) {
    throw new Error(`${result.missing.length} of ${published.length} messages were lost silently ` +
      `(first: ${result.missing.slice(0, 5).join(', ')}); balance: ${JSON.stringify({ ...result, missing: undefined })}`);
  }
  return result;
}

/** Ids waiting in the session's inbox on the node's inbox engine. */
export async function waitingIds(app: App, sessionId: string): Promise<string[]> {
  return (await app.inbox.read(sessionId, 10_000_000)).map((entry) => entry.id);
}

/**
 * Takes the dead letters of the node's queue engine: the embedded queue's kept ones (read), or every
 * message of its RabbitMQ dead-letter queue (consumed).
 */
export async function takeDeadLetters(app: App): Promise<DeadLetterSeen[]> {
  if (app.queue instanceof MemoryQueue) {
    return app.queue.deadLetters.map((letter) => ({ id: letter.message.messageId, reason: letter.reason }));
  }
  const connection = await connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    const letters: DeadLetterSeen[] = [];
    for (;;) {
      const message = await channel.get(app.config.amqp.deadLetterQueue, { noAck: true });
      if (!message) return letters;
      const id = message.properties.messageId as string | undefined;
      letters.push({ id, reason: String(message.properties.headers?.['x-pushcenter-error'] ?? 'rabbitmq') });
    }
  } finally {
    await connection.close();
  }
}
