import type { ConsumeMessage, MessageProperties, Options } from 'amqplib';
import type { QueueMessage } from '../queue.js';

/** Set on messages push-center's HTTP API published, so they are counted as received once (at the API). */
export const SOURCE_HEADER = 'x-pushcenter-source';
/** The reason a message was dead-lettered (PROTOCOL §5), e.g. `not_json`. */
export const ERROR_HEADER = 'x-pushcenter-error';
export const ERROR_DETAIL_HEADER = 'x-pushcenter-error-detail';
/** The queue a dead-lettered message was taken from. */
export const ORIGINAL_QUEUE_HEADER = 'x-pushcenter-original-queue';
/**
 * Enqueue time in ms. The AMQP `timestamp` property only holds whole seconds, which is too coarse for
 * latency metrics and TTLs, so push-center's own publishes carry the exact time here as well.
 */
export const ENQUEUED_MS_HEADER = 'x-pushcenter-enqueued-ms';

/**
 * The properties push-center publishes a notification with (the engine and the CLI alike): persistent,
 * JSON, its id, and the enqueue time (`message.timestamp`, default now) in seconds and in ms.
 */
export function enqueueProperties(message: Omit<QueueMessage, 'body'>): Options.Publish {
  const enqueuedAt = message.timestamp ?? Date.now();
  const headers: Record<string, unknown> = { [ENQUEUED_MS_HEADER]: enqueuedAt };
  if (message.source === 'http') headers[SOURCE_HEADER] = 'http';
  return {
    persistent: true,
    contentType: 'application/json',
    messageId: message.messageId,
    // AMQP timestamps are whole seconds.
    timestamp: Math.floor(enqueuedAt / 1000),
    headers,
  };
}

/** The queue message of a delivery; the enqueue time in ms whatever unit the publisher used. */
export function toQueueMessage(msg: ConsumeMessage): QueueMessage {
  const p = msg.properties;
  const headers = p.headers ?? {};
  return {
    body: msg.content,
    messageId: typeof p.messageId === 'string' && p.messageId !== '' ? p.messageId : undefined,
    timestamp: enqueuedAt(p),
    source: headers[SOURCE_HEADER] === 'http' ? 'http' : undefined,
  };
}

/** When the message was enqueued, in ms; undefined when its publisher did not say. */
export function enqueuedAt(p: Pick<MessageProperties, 'timestamp' | 'headers'>): number | undefined {
  return enqueueTime(p.timestamp, p.headers?.[ENQUEUED_MS_HEADER]);
}

/**
 * The properties of a message push-center publishes again (a dead-letter copy, a replayed dead letter):
 * persistent, with the original's content type and encoding, ids, timestamp, type, app id and priority,
 * without `expiration` (the copy lives by its new queue's limits) and `userId` (which the broker would
 * check against our login). The headers are the caller's to set.
 */
export function republishProperties(p: MessageProperties): Options.Publish {
  return definedOnly({
    persistent: true,
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    messageId: p.messageId,
    timestamp: p.timestamp,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    type: p.type,
    appId: p.appId,
    priority: p.priority,
  });
}

function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/**
 * AMQP timestamps are seconds, but some backends put ms in them: below 1e11 (the year 5138 in seconds,
 * 1973 in ms) it is taken as seconds.
 */
function enqueueTime(timestamp: unknown, exactMs: unknown): number | undefined {
  if (typeof exactMs === 'number' && Number.isFinite(exactMs) && exactMs >= 1e11) return exactMs;
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp <= 0) return undefined;
  return timestamp < 1e11 ? timestamp * 1000 : timestamp;
}
