import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import type { NodeStatus } from '../cluster/directory.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { registerAccessControl, type AccessOptions } from './access.js';
import { ERROR_SCHEMA } from './errors.js';

export interface Readiness {
  ready: boolean;
  /** Each configured dependency and the consumer: true when fine. */
  checks: Record<string, boolean>;
}

export interface SessionView {
  online: boolean;
  sockets: number;
  nodes: string[];
  inbox: number;
}

/** `GET /v1/dead-letters` in embedded mode. */
export interface DeadLettersView {
  counts: Record<string, number>;
  kept: number;
  letters: Array<{ at: number; reason: string; detail: string; id?: string; notification: unknown }>;
}

/**
 * The fastify server: JSON bodies are taken as raw bytes so the notification route parses and counts
 * them itself; errors are answered as `{ error: { code, message } }`. Who may call which route is
 * decided for every route registered on it later (`registerAccessControl`).
 */
export async function createHttpServer(options: {
  bodyLimit: number;
  logger: Logger;
  metrics: Metrics;
  trustProxy: boolean;
  /** Requests per client address per minute; 0: no limit. */
  rateLimitPerMinute: number;
  /** Allowed browser origins; empty: same origin only; `*`: any. */
  corsOrigins: string[];
  /** The package version, shown in the API documentation. */
  version: string;
  /** Serve the OpenAPI description and Swagger UI at `/docs` (`HTTP_DOCS`). */
  docs: boolean;
  /** API keys and their scopes, the per-key rate limit, the metrics token. */
  access: AccessOptions;
}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    forceCloseConnections: true,
    trustProxy: options.trustProxy,
  });
  if (options.docs) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'push-center',
          description: 'Publish notifications to browser sessions and groups; inspect sessions; operate the node.',
          version: options.version,
        },
        components: {
          securitySchemes: {
            apiKey: { type: 'http', scheme: 'bearer', description: 'a key of API_KEYS, when set; each route names the scope it needs' },
            ...(options.access.metricsToken === undefined
              ? {}
              : { metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' } }),
          },
        },
        tags: [
          { name: 'notifications', description: 'publish' },
          { name: 'sessions', description: 'where a session is connected, what waits for it' },
          { name: 'operations', description: 'health, readiness, metrics' },
        ],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  }
  if (options.corsOrigins.length > 0) {
    await app.register(cors, { origin: options.corsOrigins.includes('*') ? '*' : options.corsOrigins });
  }
  if (options.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: options.rateLimitPerMinute,
      timeWindow: 60_000,
      errorResponseBuilder: (_request, context) => {
        options.metrics.httpRefusals.inc({ reason: 'rate_limited' });
        return {
          statusCode: 429,
          error: { code: 'rate_limited', message: `more than ${context.max} requests a minute from your address; retry in ${context.after}` },
        };
      },
    });
  }
  // After the rate limit, whose per-route hook must run first, and before any route.
  registerAccessControl(app, { ...options.access, metrics: options.metrics });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 429) return reply.code(429).send(error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      options.metrics.messagesInvalid.inc({ reason: 'too_large' });
      options.metrics.httpRefusals.inc({ reason: 'too_large' });
      return reply.code(413).send({
        error: { code: 'too_large', message: `request body over ${options.bodyLimit} bytes (HTTP_BODY_MAX_BYTES)` },
      });
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      options.metrics.httpRefusals.inc({ reason: 'unsupported_media_type' });
      return reply.code(415).send({ error: { code: 'unsupported_media_type', message: 'send content-type: application/json' } });
    }
    if (status >= 500) request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.code(status).send({
      error: { code: status >= 500 ? 'internal' : 'bad_request', message: status >= 500 ? 'internal error' : error.message },
    });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url}` } }),
  );
  return app;
}

export function registerOperationsRoutes(
  app: FastifyInstance,
  deps: {
    metrics: Metrics;
    readiness: () => Readiness;
    session: (id: string) => Promise<SessionView>;
    /** The live nodes and their latest status. */
    cluster: () => Promise<NodeStatus[]>;
    /** Embedded: the dead letters kept in memory; cluster: where they are instead. */
    deadLetters: (query: { reason?: string | undefined; limit: number }) => DeadLettersView | { elsewhere: string };
    maxIdLength: number;
  },
): void {
  app.get('/healthz', {
    schema: {
      tags: ['operations'],
      summary: 'Liveness: 200 while the process runs',
      response: { 200: Type.Object({ status: Type.Literal('alive') }) },
    },
  }, async () => ({ status: 'alive' as const }));

  const readiness = Type.Object({
    ready: Type.Boolean(),
    checks: Type.Record(Type.String(), Type.Boolean(), { description: 'each configured dependency, and consuming' }),
    notReady: Type.Optional(Type.Array(Type.String())),
  });
  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness: 200 when every configured dependency is connected and the node consumes',
      response: { 200: readiness, 503: readiness },
    },
  }, async (_request, reply) => {
    const { ready, checks } = deps.readiness();
    const failing = Object.entries(checks).filter(([, ok]) => !ok).map(([name]) => name);
    return reply.code(ready ? 200 : 503).send({ ready, checks, ...(ready ? {} : { notReady: failing }) });
  });

  app.get('/metrics', {
    schema: { tags: ['operations'], summary: 'Prometheus metrics (text format)' },
    config: { metricsToken: true },
  }, async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.header('content-type', deps.metrics.registry.contentType).send(body);
  });

  app.get<{ Params: { id: string } }>('/v1/sessions/:id', {
    schema: {
      tags: ['sessions'],
      summary: 'Where a session is connected, cluster-wide, and how many messages wait in its inbox',
      params: Type.Object({ id: Type.String({ minLength: 1, maxLength: deps.maxIdLength }) }),
      response: {
        200: Type.Object({
          online: Type.Boolean(),
          sockets: Type.Integer({ description: 'sockets of the session on all nodes' }),
          nodes: Type.Array(Type.String(), { description: 'nodes holding its sockets' }),
          inbox: Type.Integer({ description: 'messages waiting for it' }),
        }),
        400: ERROR_SCHEMA,
      },
    },
    config: { scope: 'read' },
  }, async (request) => deps.session(request.params.id));

  app.get('/v1/cluster', {
    config: { scope: 'read' },
    schema: {
      tags: ['operations'],
      summary: 'The nodes alive now, as of their latest heartbeat (this node: now); the same from any node',
      response: {
        200: Type.Array(Type.Object({
          id: Type.String(),
          startedAt: Type.Integer({ description: 'ms since epoch' }),
          sockets: Type.Integer({ description: 'sockets connected to it' }),
          sessions: Type.Integer({ description: 'sessions with a socket on it' }),
          inflight: Type.Integer({ description: 'broker messages it holds unacked' }),
          paused: Type.Boolean({ description: 'backpressure holds its consumption' }),
          version: Type.String(),
        })),
        503: ERROR_SCHEMA,
      },
    },
  }, async (request, reply) => {
    try {
      return await deps.cluster();
    } catch (err) {
      request.log.warn({ err }, 'cluster view unavailable');
      return reply.code(503).send({ error: { code: 'unavailable', message: 'the cluster store (Redis) cannot be reached now' } });
    }
  });

  const letter = Type.Object({
    at: Type.Integer({ description: 'when it was dead-lettered, ms since epoch' }),
    reason: Type.String(),
    detail: Type.String(),
    id: Type.Optional(Type.String()),
    notification: Type.Unknown({ description: 'the message body, parsed when it is JSON, else as text' }),
  });
  app.get<{ Querystring: { reason?: string; limit?: number } }>('/v1/dead-letters', {
    schema: {
      tags: ['operations'],
      summary: 'Embedded mode: the dead letters kept in memory (newest last) and the count per reason since start',
      querystring: Type.Object({
        reason: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
      }),
      response: {
        200: Type.Object({
          counts: Type.Record(Type.String(), Type.Integer(), { description: 'dead letters since start, by reason' }),
          kept: Type.Integer({ description: 'dead letters kept in memory (the newest 1000)' }),
          letters: Type.Array(letter),
        }),
        400: ERROR_SCHEMA,
        404: ERROR_SCHEMA,
      },
    },
    config: { scope: 'admin' },
  }, async (request, reply) => {
    const view = deps.deadLetters({ reason: request.query.reason, limit: request.query.limit ?? 100 });
    if ('elsewhere' in view) return reply.code(404).send({ error: { code: 'not_embedded', message: view.elsewhere } });
    return view;
  });
}

const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/demo': { file: 'demo.html', type: 'text/html; charset=utf-8' },
  '/admin': { file: 'admin.html', type: 'text/html; charset=utf-8' },
  '/push-center-client.js': { file: 'push-center-client.js', type: 'text/javascript; charset=utf-8' },
  '/push-center-client.js.map': { file: 'push-center-client.js.map', type: 'application/json' },
};

/**
 * The demo page and the browser SDK bundle, from `public/`. The bundle is built by `npm run build`
 * (`npm start` builds it); until then its route says so.
 */
export function registerStaticRoutes(app: FastifyInstance, publicDir: URL): void {
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/demo'));
  for (const [path, { file, type }] of Object.entries(STATIC_FILES)) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) => {
      try {
        const body = await readFile(new URL(file, publicDir));
        return reply.header('content-type', type).header('cache-control', 'no-cache').send(body);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        return reply.code(404).send({
          error: { code: 'not_built', message: `${file} is missing: run \`npm run build\` (or \`npm run build:client\`)` },
        });
      }
    });
  }
}
