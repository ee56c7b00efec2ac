import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NotificationParser, InvalidReason } from '../notification/parse.js';
import { Type } from '@sinclair/typebox';
import { ERROR_SCHEMA } from '../http/errors.js';
import { notificationBatchSchema, type Notification } from '../notification/schema.js';
import type { Metrics } from '../observability/metrics.js';
import type { NotificationQueue, QueueMessage } from './queue.js';
import { QueueUnavailableError } from './queue.js';
import { shardKey } from './shard-key.js';

export interface ItemError {
  index: number;
  reason: InvalidReason | 'too_many_notifications' | 'empty_batch';
  message: string;
}

/**
 * `POST /v1/notifications` (PROTOCOL §6): one notification or an array of them, validated all together
 * (one invalid item refuses the whole request, nothing is enqueued), published to the queue, and
 * answered 202 only once the queue confirmed every message.
 */
export function registerNotificationRoute(
  app: FastifyInstance,
  deps: { parser: NotificationParser; queue: NotificationQueue; metrics: Metrics },
): void {
  const { parser, queue, metrics } = deps;
  const { limits } = parser;

  app.post('/v1/notifications', {
    schema: {
      tags: ['notifications'],
      summary: 'Publish one notification or an array of them',
      description: 'Answered 202 only once the queue confirmed every message (RabbitMQ publisher confirms). ' +
        'One invalid item refuses the whole request; nothing of it is enqueued.',
      body: notificationBatchSchema(limits),
      response: {
        202: Type.Object({ ids: Type.Array(Type.String()) }, { description: 'enqueued' }),
        400: { ...ERROR_SCHEMA, description: 'invalid: the reason for each bad item' },
        413: { ...ERROR_SCHEMA, description: 'too large' },
        415: { ...ERROR_SCHEMA, description: 'not application/json' },
        429: { ...ERROR_SCHEMA, description: 'rate limited' },
        503: { ...ERROR_SCHEMA, description: 'the queue cannot take it now; see Retry-After' },
      },
    },
    // The body arrives as bytes and is validated below against the same schema, item by item, so each
    // bad item is answered with its reason and counted.
    validatorCompiler: () => (value: unknown) => ({ value }),
    config: { scope: 'publish' },
  }, async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as Buffer;
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      metrics.received('http');
      metrics.messagesInvalid.inc({ reason: 'not_json' });
      return invalid(reply, [{ index: 0, reason: 'not_json', message: `body is not JSON: ${(err as Error).message}` }]);
    }
    const batch = Array.isArray(value);
    const items: unknown[] = batch ? (value as unknown[]) : [value];
    if (items.length === 0) {
      return invalid(reply, [{ index: 0, reason: 'empty_batch', message: 'the array holds no notification' }]);
    }
    if (items.length > limits.maxBatch) {
      return invalid(reply, [{
        index: limits.maxBatch,
        reason: 'too_many_notifications',
        message: `at most ${limits.maxBatch} notifications per request; this one has ${items.length}`,
      }]);
    }
    metrics.received('http', items.length);

    const now = Date.now();
    const accepted: Notification[] = [];
    const errors: ItemError[] = [];
    // Only a body larger than one message's limit can hold an item over it.
    const measure = body.length > limits.maxMessageBytes;
    items.forEach((item, index) => {
      const size = measure ? Buffer.byteLength(JSON.stringify(item)) : 0;
      const result = size > limits.maxMessageBytes
        ? { ok: false as const, error: { reason: 'too_large' as const, message: `notification is ${size} bytes; the limit is ${limits.maxMessageBytes}` } }
        : parser.parseValue(item, { messageId: randomUUID(), receivedAt: now });
      if (result.ok) accepted.push(result.notification);
      else errors.push({ index, ...result.error });
    });
    if (errors.length > 0) {
      for (const error of errors) metrics.messagesInvalid.inc({ reason: error.reason });
      if (!batch && errors[0]?.reason === 'too_large') {
        return reply.code(413).send({ error: { code: 'too_large', message: errors[0].message } });
      }
      return invalid(reply, errors, items.length);
    }

    try {
      await queue.publish(accepted.map(toQueueMessage));
    } catch (err) {
      if (err instanceof QueueUnavailableError) {
        return reply
          .code(503)
          .header('retry-after', String(err.retryAfterSeconds))
          .send({ error: { code: 'unavailable', message: `not enqueued: ${err.message}; retry later` } });
      }
      throw err;
    }
    return reply.code(202).send({ ids: accepted.map((n) => n.id) });
  });
}

/**
 * The queue carries the notification in the new format with its id, enqueue time and remaining TTL;
 * on a sharded ingest it is routed by its first target.
 */
export function toQueueMessage(n: Notification): QueueMessage {
  const body = {
    id: n.id,
    ...(n.sessions.length > 0 ? { session: n.sessions } : {}),
    ...(n.groups.length > 0 ? { group: n.groups } : {}),
    ...(n.broadcast ? { broadcast: true } : {}),
    event: n.event,
    data: n.data,
    delivery: n.reliable ? 'reliable' : 'volatile',
    ttl: Math.max(1, n.expiresAt - n.enqueuedAt),
  };
  return {
    body: Buffer.from(JSON.stringify(body)),
    messageId: n.id,
    timestamp: n.enqueuedAt,
    source: 'http',
    shardKey: shardKey(n),
  };
}

function invalid(reply: FastifyReply, reasons: ItemError[], total = 1): FastifyReply {
  const message = total > 1
    ? `${reasons.length} of ${total} notifications are invalid; nothing was enqueued`
    : `the notification is invalid: ${reasons[0]?.message ?? 'unknown reason'}`;
  return reply.code(400).send({ error: { code: 'invalid_notification', message, reasons } });
}
