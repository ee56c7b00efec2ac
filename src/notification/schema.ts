import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { NotificationLimits } from '../config/config.js';

/** socket.io reserves these event names; a notification may not use them (PROTOCOL §2). */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  'error',
]);

export const EVENT_PATTERN = '^[A-Za-z0-9_.:-]{1,64}$';

/**
 * The notification as a business backend sends it (PROTOCOL §2), new fields and the original message
 * center's aliases alike. The same schema validates AMQP bodies and HTTP bodies, documents the HTTP
 * API and, through `Static`, is the TypeScript type of the wire format. The limits are configurable,
 * so the schema is built from them; its type does not depend on them.
 */
export function notificationInputSchema(limits: NotificationLimits) {
  const name = Type.String({ minLength: 1, maxLength: limits.maxIdLength });
  const names = (maxItems: number, description: string) =>
    Type.Union([name, Type.Array(name, { minItems: 1, maxItems })], { description });
  const sessions = names(limits.maxSessions, 'target session id(s)');
  const groups = names(limits.maxGroups, 'target group(s)');
  return Type.Object(
    {
      id: Type.Optional(Type.String({
        minLength: 1,
        maxLength: limits.maxIdLength,
        description: 'message id kept end to end; default: the AMQP messageId, else a new UUID',
      })),
      session: Type.Optional(sessions),
      group: Type.Optional(groups),
      broadcast: Type.Optional(Type.Boolean({ description: 'true: every connected socket' })),
      event: Type.Optional(Type.String({
        pattern: EVENT_PATTERN,
        description: 'socket.io event name the browser receives it under; default "message"',
      })),
      data: Type.Unknown({ description: 'the payload, any JSON; required' }),
      delivery: Type.Optional(Type.Union([Type.Literal('reliable'), Type.Literal('volatile')], {
        description: 'default reliable',
      })),
      ttl: Type.Optional(Type.Integer({
        minimum: 1,
        description: 'ms it may wait for an offline session; default and maximum: the queue TTL',
      })),
      socketSessionId: Type.Optional(Type.Unsafe<string | string[]>({ ...sessions, description: 'legacy: session' })),
      socketGroupFlag: Type.Optional(Type.Unsafe<string | string[]>({ ...groups, description: 'legacy: group' })),
      isVolatile: Type.Optional(Type.Boolean({ description: 'legacy: true means delivery "volatile"' })),
    },
    { additionalProperties: true, description: 'A notification (PROTOCOL §2); at least one of session, group, broadcast' },
  );
}

export type NotificationInput = Static<ReturnType<typeof notificationInputSchema>>;

/** A body of POST /v1/notifications: one notification or an array of them. */
export function notificationBatchSchema(limits: NotificationLimits): TSchema {
  const one = notificationInputSchema(limits);
  return Type.Union([one, Type.Array(one, { minItems: 1, maxItems: limits.maxBatch })]);
}

/** A validated notification, normalised: what the dispatcher routes. */
export interface Notification {
  id: string;
  sessions: string[];
  groups: string[];
  broadcast: boolean;
  event: string;
  data: unknown;
  reliable: boolean;
  /** Enqueue time, ms since epoch: the AMQP timestamp or the arrival time. */
  enqueuedAt: number;
  /** When it expires: enqueue time + ttl (capped at the queue TTL). */
  expiresAt: number;
  /** Its publisher gave it no id (body, AMQP `messageId`): this one is new, no other message has it. */
  idAssigned?: true;
}

/** What a browser receives as the single argument of the event (PROTOCOL §3). */
export interface Envelope {
  id: string;
  event: string;
  data: unknown;
  /** Enqueue time, ms since epoch. */
  sentAt: number;
  reliable: boolean;
  /** Set when the message came through a group. */
  group?: string;
  /** Set when the message was a broadcast to every socket. */
  broadcast?: true;
}

export function toEnvelope(notification: Notification, group?: string): Envelope {
  const envelope: Envelope = {
    id: notification.id,
    event: notification.event,
    data: notification.data,
    sentAt: notification.enqueuedAt,
    reliable: notification.reliable,
  };
  if (group !== undefined) envelope.group = group;
  return envelope;
}
