import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NotificationParser, InvalidReason } from '../notification/parse.js';
import { Type } from '@sinclair/typebox';
import { ERROR_SCHEMA } from '../http/errors.js';
import { notificationBatchSchema, type Notification } from '../notification/schema.js';
import type { Metrics } from '../observability/metrics.js';
import { fingerprintOf, scopedKey, type IdempotencyKeys, type IdempotentResult } from '../http/idempotency.js';
import { RECEIPT_OUTCOMES, type ReceiptStore } from '../receipts/receipts.js';
import type { ReceiptRecorder } from '../receipts/recorder.js';
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
  deps: {
    parser: NotificationParser;
    queue: NotificationQueue;
    metrics: Metrics;
    receipts: ReceiptRecorder;
    /** Undefined: `Idempotency-Key` is not honoured (`IDEMPOTENCY_TTL_MS=0`). */
    idempotencyKeys: IdempotencyKeys | undefined;
  },
): void {
  const { parser, queue, metrics, receipts, idempotencyKeys } = deps;
  const { limits } = parser;

  app.post('/v1/notifications', {
    schema: {
      tags: ['notifications'],
      summary: 'Publish one notification or an array of them',
      description: 'Answered 202 only once the queue confirmed every message (RabbitMQ publisher confirms). ' +
        'One invalid item refuses the whole request; nothing of it is enqueued. With an Idempotency-Key, a repeat ' +
        'of the request (same API key, same key, same body) within IDEMPOTENCY_TTL_MS answers the first one\'s ' +
        'status and ids and enqueues nothing (header Idempotent-Replayed: true).',
      headers: Type.Object({
        'idempotency-key': Type.Optional(Type.String({
          minLength: 1,
          maxLength: IDEMPOTENCY_KEY_MAX,
          description: 'a key of your choice (e.g. a UUID) naming this request, so a retry of it is not enqueued twice',
        })),
      }),
      body: notificationBatchSchema(limits),
      response: {
        202: Type.Object({ ids: Type.Array(Type.String()) }, { description: 'enqueued' }),
        400: { ...ERROR_SCHEMA, description: 'invalid: the reason for each bad item, or a malformed Idempotency-Key' },
        409: { ...ERROR_SCHEMA, description: 'a request with this Idempotency-Key is still under way; see Retry-After' },
        413: { ...ERROR_SCHEMA, description: 'too large' },
        415: { ...ERROR_SCHEMA, description: 'not application/json' },
        422: { ...ERROR_SCHEMA, description: 'this Idempotency-Key was used with another body' },
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
    const idempotencyKey = request.headers['idempotency-key'];
    if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey))) {
      return reply.code(400).send({ error: {
        code: 'invalid_idempotency_key',
        message: `Idempotency-Key must be 1 to ${IDEMPOTENCY_KEY_MAX} visible ASCII characters (e.g. a UUID)`,
      } });
    }
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

    const publish = async (): Promise<IdempotentResult | QueueUnavailableError> => {
      try {
        await queue.publish(accepted.map(toQueueMessage));
      } catch (err) {
        if (err instanceof QueueUnavailableError) return err;
        throw err;
      }
      for (const n of accepted) receipts.accepted(n);
      return { status: 202, ids: accepted.map((n) => n.id) };
    };
    const outcome = idempotencyKeys && idempotencyKey !== undefined
      ? await once(idempotencyKeys, scopedKey(request.apiKeyScope, idempotencyKey), fingerprintOf(body), publish)
      : await publish();
    if (outcome instanceof QueueUnavailableError) {
      return reply
        .code(503)
        .header('retry-after', String(outcome.retryAfterSeconds))
        .send({ error: { code: 'unavailable', message: `not enqueued: ${outcome.message}; retry later` } });
    }
    if ('conflict' in outcome) {
      if (outcome.conflict === 'mismatch') {
        return reply.code(422).send({ error: {
          code: 'idempotency_key_reused',
          message: 'this Idempotency-Key was used with a different body; a retry must send the same body, a new request a new key',
        } });
      }
      return reply.code(409).header('retry-after', '1').send({ error: {
        code: 'idempotency_in_progress',
        message: 'a request with this Idempotency-Key is still under way; retry shortly to get its answer',
      } });
    }
    if ('replayed' in outcome) reply.header('idempotent-replayed', 'true');
    return reply.code(outcome.status).send({ ids: outcome.ids });
  });
}

const IDEMPOTENCY_KEY_MAX = 255;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** How long a request waits for another one with its key to finish before answering 409. */
const IDEMPOTENCY_WAIT_MS = 10_000;
const IDEMPOTENCY_POLL_MS = 25;

/**
 * Runs `publish` once per key: the first request with it publishes; a repeat gets the first answer (or
 * waits for it while the first is under way); a repeat with another body is refused.
 */
async function once(
  keys: IdempotencyKeys,
  key: string,
  fingerprint: string,
  publish: () => Promise<IdempotentResult | QueueUnavailableError>,
): Promise<(IdempotentResult & { replayed?: true }) | QueueUnavailableError | { conflict: 'mismatch' | 'in_progress' }> {
  const deadline = Date.now() + IDEMPOTENCY_WAIT_MS;
  for (;;) {
    const state = await keys.begin(key, fingerprint);
    if (state.kind === 'mismatch') return { conflict: 'mismatch' };
    if (state.kind === 'done') return { ...state.result, replayed: true };
    if (state.kind === 'new') break;
    if (Date.now() > deadline) return { conflict: 'in_progress' };
    await new Promise((resolve) => setTimeout(resolve, IDEMPOTENCY_POLL_MS));
  }
  let outcome: IdempotentResult | QueueUnavailableError;
  try {
    outcome = await publish();
  } catch (err) {
    await keys.abandon(key, fingerprint).catch(() => undefined);
    throw err;
  }
  if (outcome instanceof QueueUnavailableError) await keys.abandon(key, fingerprint);
  else await keys.finish(key, fingerprint, outcome);
  return outcome;
}

/** `GET /v1/notifications/:id` (PROTOCOL §6): the notification's receipt. */
export function registerReceiptRoute(app: FastifyInstance, deps: { maxIdLength: number; store: ReceiptStore | undefined }): void {
  const event = Type.Object({
    at: Type.Number({ description: 'ms since epoch' }),
    outcome: Type.Union(RECEIPT_OUTCOMES.map((o) => Type.Literal(o))),
    node: Type.Optional(Type.String()),
    sockets: Type.Optional(Type.Number()),
    reason: Type.Optional(Type.String()),
    session: Type.Optional(Type.String({ description: 'for a notification to several sessions: the one this event is about' })),
  });
  const target = Type.Object({
    session: Type.Optional(Type.Array(Type.String())),
    group: Type.Optional(Type.Array(Type.String())),
    broadcast: Type.Optional(Type.Literal(true)),
  });
  app.get('/v1/notifications/:id', {
    schema: {
      tags: ['notifications'],
      summary: "A notification's receipt: what happened to it, where and when",
      description: 'Kept for RECEIPTS_TTL_MS after its first event. status is the latest outcome (accepted until anything else happened); ' +
        'group and broadcast receipts sum the sockets reached over the nodes.',
      params: Type.Object({ id: Type.String({ minLength: 1, maxLength: deps.maxIdLength }) }),
      response: {
        200: Type.Object({
          id: Type.String(),
          status: Type.Union(RECEIPT_OUTCOMES.map((o) => Type.Literal(o))),
          target: Type.Union([target, Type.Null()]),
          sockets: Type.Optional(Type.Number()),
          events: Type.Array(event),
        }),
        404: { ...ERROR_SCHEMA, description: 'unknown, or older than RECEIPTS_TTL_MS' },
      },
    },
    config: { scope: 'read' },
  }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const receipt = deps.store ? await deps.store.get(id) : undefined;
    if (!receipt) {
      const message = deps.store
        ? `no receipt for notification ${JSON.stringify(id)}: unknown, or older than RECEIPTS_TTL_MS`
        : 'receipts are off on this node (RECEIPTS_TTL_MS=0)';
      return reply.code(404).send({ error: { code: 'not_found', message } });
    }
    return { ...receipt, target: receipt.target ?? null };
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
