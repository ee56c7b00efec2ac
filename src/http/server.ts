import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

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

/**
 * The fastify server: JSON bodies are taken as raw bytes so the notification route parses and counts
 * them itself; errors are answered as `{ error: { code, message } }`.
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
}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    forceCloseConnections: true,
    trustProxy: options.trustProxy,
  });
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
  },
): void {
  app.get('/healthz', async () => ({ status: 'alive' }));

  app.get('/readyz', async (_request, reply) => {
    const { ready, checks } = deps.readiness();
    const failing = Object.entries(checks).filter(([, ok]) => !ok).map(([name]) => name);
    return reply.code(ready ? 200 : 503).send({ ready, checks, ...(ready ? {} : { notReady: failing }) });
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.header('content-type', deps.metrics.registry.contentType).send(body);
  });

  app.get<{ Params: { id: string } }>('/v1/sessions/:id', async (request) => deps.session(request.params.id));
}
