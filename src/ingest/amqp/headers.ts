import type { ConsumeMessage, Options } from 'amqplib';
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
    timestamp: enqueueTime(p.timestamp, headers[ENQUEUED_MS_HEADER]),
    source: headers[SOURCE_HEADER] === 'http' ? 'http' : undefined,
  };
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
