import { randomUUID } from 'node:crypto';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { NotificationLimits } from '../config/config.js';
import {
  RESERVED_EVENTS,
  notificationInputSchema,
  type Notification,
  type NotificationInput,
} from './schema.js';

/** Why a notification was refused: the `reason` label of `pushcenter_messages_invalid_total`. */
export type InvalidReason =
  | 'not_json'
  | 'too_large'
  | 'too_deep'
  | 'not_object'
  | 'missing_data'
  | 'no_target'
  | 'conflicting_fields'
  | 'invalid_id'
  | 'invalid_session'
  | 'invalid_group'
  | 'invalid_broadcast'
  | 'invalid_event'
  | 'reserved_event'
  | 'invalid_delivery'
  | 'invalid_ttl'
  | 'too_many_sessions'
  | 'too_many_groups';

export interface Invalid {
  reason: InvalidReason;
  /** For a person: what is wrong and what is allowed. */
  message: string;
}

export type ParseResult = { ok: true; notification: Notification } | { ok: false; error: Invalid };

/** What the transport knows about a message besides its body. */
export interface MessageMeta {
  /** The AMQP `messageId` property: the id when the body has none. */
  messageId?: string | undefined;
  /** Enqueue time, ms since epoch (AMQP `timestamp`); else `receivedAt` is used. */
  timestamp?: number | undefined;
  receivedAt: number;
}

/** Payloads nested deeper than this are refused: they would overflow the stack when serialised. */
export const MAX_DATA_DEPTH = 64;

const FIELD_REASON: Record<string, InvalidReason> = {
  id: 'invalid_id',
  session: 'invalid_session',
  socketSessionId: 'invalid_session',
  group: 'invalid_group',
  socketGroupFlag: 'invalid_group',
  broadcast: 'invalid_broadcast',
  event: 'invalid_event',
  delivery: 'invalid_delivery',
  isVolatile: 'invalid_delivery',
  ttl: 'invalid_ttl',
};

/**
 * Turns a body from RabbitMQ or HTTP into a `Notification`, or says precisely why not. One instance per
 * configuration; it is pure and cheap enough to run for every message on the hot path.
 */
export class NotificationParser {
  private readonly validate: ValidateFunction<NotificationInput>;
  private readonly fieldRules: Record<string, string>;

  constructor(readonly limits: NotificationLimits) {
    const ajv = new Ajv({ allErrors: false, strict: false });
    this.validate = ajv.compile<NotificationInput>(notificationInputSchema(limits));
    const names = (max: number) =>
      `a string of 1 to ${limits.maxIdLength} characters or an array of 1 to ${max} such strings`;
    this.fieldRules = {
      id: `a string of 1 to ${limits.maxIdLength} characters`,
      session: names(limits.maxSessions),
      group: names(limits.maxGroups),
      broadcast: 'true or false',
      event: 'a name matching ^[A-Za-z0-9_.:-]{1,64}$',
      delivery: '"reliable" or "volatile"',
      isVolatile: 'true or false',
      ttl: 'a whole number of milliseconds greater than 0',
    };
  }

  /** A raw body (AMQP message content): size, JSON, then the schema. */
  parseBytes(body: Buffer, meta: MessageMeta): ParseResult {
    if (body.length > this.limits.maxMessageBytes) {
      return invalid('too_large', `body is ${body.length} bytes; the limit is ${this.limits.maxMessageBytes}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return invalid('not_json', `body is not JSON: ${(err as Error).message}`);
    }
    return this.parseValue(value, meta);
  }

  /** An already parsed JSON value (one item of an HTTP body). */
  parseValue(value: unknown, meta: MessageMeta): ParseResult {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return invalid('not_object', 'a notification must be a JSON object');
    }
    if (!this.validate(value)) return this.describe(this.validate.errors ?? []);
    const input = value;

    const legacy =
      input.socketSessionId !== undefined || input.socketGroupFlag !== undefined || input.isVolatile !== undefined;
    if (input.session !== undefined && input.socketSessionId !== undefined) {
      return invalid('conflicting_fields', 'session and socketSessionId are the same field; send one of them');
    }
    if (input.group !== undefined && input.socketGroupFlag !== undefined) {
      return invalid('conflicting_fields', 'group and socketGroupFlag are the same field; send one of them');
    }
    if (
      input.delivery !== undefined &&
      input.isVolatile !== undefined &&
      (input.delivery === 'volatile') !== input.isVolatile
    ) {
      return invalid('conflicting_fields', `delivery "${input.delivery}" contradicts isVolatile ${input.isVolatile}`);
    }

    const sessions = unique(input.session ?? input.socketSessionId);
    const groups = unique(input.group ?? input.socketGroupFlag);
    const broadcast = input.broadcast === true;
    if (sessions.length === 0 && groups.length === 0 && !broadcast) {
      return invalid('no_target', 'at least one of session, group or broadcast: true is required');
    }
    const event = input.event ?? 'message';
    if (RESERVED_EVENTS.has(event)) {
      return invalid('reserved_event', `event "${event}" is reserved by socket.io; choose another name`);
    }

    let data: unknown = input.data;
    if (legacy && typeof data === 'string') data = parseEmbeddedJson(data);
    if (depthExceeds(data, MAX_DATA_DEPTH)) {
      return invalid('too_deep', `data is nested deeper than ${MAX_DATA_DEPTH} levels`);
    }

    const enqueuedAt =
      meta.timestamp !== undefined && Number.isFinite(meta.timestamp) && meta.timestamp > 0
        ? meta.timestamp
        : meta.receivedAt;
    const ttl = Math.min(input.ttl ?? this.limits.maxTtlMs, this.limits.maxTtlMs);
    const reliable = input.delivery !== undefined ? input.delivery === 'reliable' : input.isVolatile !== true;
    const given = input.id ?? (meta.messageId && meta.messageId.length <= this.limits.maxIdLength ? meta.messageId : undefined);
    const id = given ?? randomUUID();
    const notification: Notification = { id, sessions, groups, broadcast, event, data, reliable, enqueuedAt, expiresAt: enqueuedAt + ttl };
    if (given === undefined) notification.idAssigned = true;
    return { ok: true, notification };
  }

  private describe(errors: ErrorObject[]): { ok: false; error: Invalid } {
    const first = errors[0];
    if (!first) return invalid('not_object', 'the notification does not match the schema');
    if (first.keyword === 'required' && first.instancePath === '') {
      return invalid('missing_data', 'data is required (any JSON value, null included)');
    }
    const field = first.instancePath.split('/')[1] ?? '';
    const tooMany = errors.some((e) => e.keyword === 'maxItems' && e.instancePath === `/${field}`);
    const reason = FIELD_REASON[field] ?? 'not_object';
    if (tooMany && reason === 'invalid_session') {
      return invalid('too_many_sessions', `${field}: at most ${this.limits.maxSessions} sessions per message`);
    }
    if (tooMany && reason === 'invalid_group') {
      return invalid('too_many_groups', `${field}: at most ${this.limits.maxGroups} groups per message`);
    }
    const rule = this.fieldRules[field === 'socketSessionId' ? 'session' : field === 'socketGroupFlag' ? 'group' : field];
    return invalid(reason, rule ? `${field}: must be ${rule}` : `${first.instancePath || 'body'} ${first.message ?? 'is invalid'}`);
  }
}

function invalid(reason: InvalidReason, message: string): { ok: false; error: Invalid } {
  return { ok: false, error: { reason, message } };
}

function unique(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [value];
  return value.length > 1 ? [...new Set(value)] : value;
}

/** The original message center sent `data` as a string holding JSON; a JSON object or array is unpacked. */
function parseEmbeddedJson(text: string): unknown {
  const start = text.trimStart()[0];
  if (start !== '{' && start !== '[') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function depthExceeds(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max === 0) return true;
  if (Array.isArray(value)) {
    for (const child of value) if (depthExceeds(child, max - 1)) return true;
    return false;
  }
  // for…in rather than Object.values(): no array per object on the hot path. JSON.parse makes plain
  // objects, whose enumerable properties are all their own.
  const object = value as Record<string, unknown>;
  for (const key in object) if (depthExceeds(object[key], max - 1)) return true;
  return false;
}
