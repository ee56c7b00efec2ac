import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ERROR_SCHEMA } from './errors.js';

/** What the admin page shows about this node's consumer (`GET /v1/admin/overview`). */
export interface ConsumerView {
  engine: 'memory' | 'amqp';
  connected: boolean;
  consuming: boolean;
  paused: boolean;
  inflight: number;
  prefetch: number;
}

export interface AdminOverview {
  node: string;
  consumer: ConsumerView;
  deadLetters: {
    /** In the dead-letter queue now; null when the broker cannot be asked. */
    waiting: number | null;
    /** Dead-lettered by this node since it started, by reason. */
    byReason: Record<string, number>;
  };
}

/** An inbox entry as the admin page lists it: what it is, not all it carries. */
export interface InboxEntryView {
  id: string;
  event: string;
  sentAt: number;
  expiresAt: number;
  /** The first 200 characters of its data as JSON. */
  preview: string;
}

/**
 * The routes behind the admin page (`/admin`): one node's consumer and dead letters, and what waits in a
 * session's inbox. The cluster's nodes come from `GET /v1/cluster`, a session's whereabouts from
 * `GET /v1/sessions/:id`.
 */
export function registerAdminRoutes(
  app: FastifyInstance,
  deps: {
    overview: () => Promise<AdminOverview>;
    inbox: (sessionId: string, limit: number) => Promise<{ size: number; entries: InboxEntryView[] }>;
    maxIdLength: number;
  },
): void {
  app.get('/v1/admin/overview', {
    config: { scope: 'admin' },
    schema: {
      tags: ['operations'],
      summary: "This node's consumer and dead letters, for the admin page",
      response: {
        200: Type.Object({
          node: Type.String(),
          consumer: Type.Object({
            engine: Type.Union([Type.Literal('memory'), Type.Literal('amqp')]),
            connected: Type.Boolean(),
            consuming: Type.Boolean(),
            paused: Type.Boolean({ description: 'backpressure holds consumption' }),
            inflight: Type.Integer(),
            prefetch: Type.Integer(),
          }),
          deadLetters: Type.Object({
            waiting: Type.Union([Type.Integer(), Type.Null()], { description: 'in the dead-letter queue now' }),
            byReason: Type.Record(Type.String(), Type.Integer(), { description: 'dead-lettered by this node since it started' }),
          }),
        }),
      },
    },
  }, async () => deps.overview());

  // Admin, not read: it shows what the messages say.
  app.get<{ Params: { id: string }; Querystring: { limit?: number } }>('/v1/sessions/:id/inbox', {
    config: { scope: 'admin' },
    schema: {
      tags: ['sessions'],
      summary: "What waits in a session's inbox, oldest first (for the admin page)",
      params: Type.Object({ id: Type.String({ minLength: 1, maxLength: deps.maxIdLength }) }),
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }) }),
      response: {
        200: Type.Object({
          size: Type.Integer({ description: 'messages waiting' }),
          entries: Type.Array(Type.Object({
            id: Type.String(),
            event: Type.String(),
            sentAt: Type.Integer(),
            expiresAt: Type.Integer(),
            preview: Type.String({ description: 'the start of its data, as JSON' }),
          })),
        }),
        400: ERROR_SCHEMA,
      },
    },
  }, async (request) => deps.inbox(request.params.id, request.query.limit ?? 20));
}
