import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { API_SCOPES, type ApiKey, type ApiScope } from '../config/config.js';
import { RateLimiter } from '../gateway/rate-limiter.js';
import type { Metrics } from '../observability/metrics.js';
import { ERROR_SCHEMA } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The API-key scope the route needs when `API_KEYS` is set (PROTOCOL §6). A `/v1` route that
     * declares none needs `admin`.
     */
    scope?: ApiScope;
    /** The route needs `METRICS_TOKEN` when it is set. */
    metricsToken?: boolean;
  }
  interface FastifyRequest {
    /** Which API key the request came with (its digest): '' when `API_KEYS` is not set. */
    apiKeyScope: string;
  }
}

export interface AccessOptions {
  apiKeys: ApiKey[];
  /** Requests per API key per minute; 0: no limit. */
  perKeyPerMinute: number;
  metricsToken: string | undefined;
}

/** A key of `API_KEYS` as the check holds it: its digest, not the key. */
interface HeldKey {
  digest: Buffer;
  id: string;
  scopes: ReadonlySet<ApiScope>;
  /** Its own budget of `RATE_LIMIT_HTTP_PER_KEY_PER_MIN`. */
  budget: string;
}

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/**
 * Who may call which route (PROTOCOL §6), decided in this one place. Every route added after this call
 * is looked at as it is added: with `API_KEYS` set, one that declares a `scope` in its `config`, and
 * every `/v1` route (`admin` when it declares none: a route nobody thought about is not left open), gets
 * the key check; with `METRICS_TOKEN` set, one that declares `metricsToken` gets the token check. The
 * checks run after the per-address rate limit, which must be registered before, so that guessing keys
 * is rate limited too. Call it before any route is registered.
 */
export function registerAccessControl(app: FastifyInstance, options: AccessOptions & { metrics: Metrics }): void {
  const { metrics, perKeyPerMinute } = options;
  const keys = options.apiKeys.map(({ key, scopes }, index): HeldKey => {
    const hashed = digest(key);
    return { digest: hashed, id: keyId(hashed), scopes: new Set(scopes), budget: String(index) };
  });
  const budgets = new RateLimiter(perKeyPerMinute, 60_000);
  app.decorateRequest('apiKeyScope', '');
  const metricsToken = options.metricsToken === undefined ? undefined : digest(options.metricsToken);

  const refuse = (
    request: FastifyRequest,
    reply: FastifyReply,
    refusal: { status: number; code: string; reason: string; message: string; keyId?: string | undefined },
  ): FastifyReply => {
    metrics.httpRefusals.inc({ reason: refusal.reason });
    request.log.info({
      route: `${request.method} ${request.routeOptions.url ?? ''}`,
      reason: refusal.reason,
      keyId: refusal.keyId,
      address: request.ip,
    }, 'HTTP request refused');
    return reply.code(refusal.status).send({ error: { code: refusal.code, message: refusal.message } });
  };

  const keyCheck = (scope: ApiScope): Hook => async (request, reply) => {
    const given = bearer(request.headers.authorization);
    const key = given === undefined ? undefined : find(keys, given);
    if (key === undefined) {
      reply.header('www-authenticate', 'Bearer');
      return refuse(request, reply, {
        status: 401,
        code: 'unauthorized',
        reason: 'unauthorized',
        message: 'send a valid API key as "Authorization: Bearer <key>"',
        // The id of a key that is not (or no longer) in API_KEYS tells who still uses it.
        keyId: given === undefined ? undefined : keyId(given),
      });
    }
    if (!key.scopes.has(scope)) {
      reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${scope}"`);
      return refuse(request, reply, {
        status: 403, code: 'forbidden', reason: 'forbidden', message: `this key lacks the ${scope} scope`, keyId: key.id,
      });
    }
    request.apiKeyScope = key.digest.toString('base64url');
    if (!budgets.take(key.budget)) {
      const retryAfter = budgets.retryAfterSeconds();
      reply.header('retry-after', String(retryAfter));
      return refuse(request, reply, {
        status: 429,
        code: 'rate_limited',
        reason: 'key_rate_limited',
        message: `more than ${perKeyPerMinute} requests a minute with this API key; retry in ${retryAfter} s`,
        keyId: key.id,
      });
    }
    return undefined;
  };

  const tokenCheck = (token: Buffer): Hook => async (request, reply) => {
    const given = bearer(request.headers.authorization);
    if (given !== undefined && timingSafeEqual(given, token)) return undefined;
    reply.header('www-authenticate', 'Bearer');
    return refuse(request, reply, {
      status: 401, code: 'unauthorized', reason: 'unauthorized', message: 'send METRICS_TOKEN as "Authorization: Bearer <token>"',
    });
  };

  app.addHook('onRoute', (route) => {
    const scope = requiredScope(route);
    if (scope !== undefined) {
      document(route, scope, keys.length > 0);
      if (keys.length > 0) addOnRequest(route, keyCheck(scope));
    } else if (route.config?.metricsToken && metricsToken !== undefined) {
      route.schema = { ...route.schema, security: [{ metricsToken: [] }] };
      addOnRequest(route, tokenCheck(metricsToken));
    }
  });
}

/** The scope a route needs: what it declares; `admin` for a `/v1` route that declares none. */
function requiredScope(route: RouteOptions): ApiScope | undefined {
  const declared = route.config?.scope;
  if (declared === undefined) return route.url === '/v1' || route.url.startsWith('/v1/') ? 'admin' : undefined;
  if (!API_SCOPES.includes(declared)) {
    throw new Error(`route ${String(route.method)} ${route.url}: scope ${JSON.stringify(declared)} is none of ${API_SCOPES.join(', ')}`);
  }
  return declared;
}

/** The scope in the route's OpenAPI description; with keys, its security and refusals too. */
function document(route: RouteOptions, scope: ApiScope, keyed: boolean): void {
  const schema: FastifySchema = route.schema ?? {};
  const note = `API key scope: \`${scope}\` (when API_KEYS is set).`;
  route.schema = {
    ...schema,
    description: schema.description === undefined ? note : `${schema.description} ${note}`,
    ...(keyed
      ? {
        security: [{ apiKey: [] }],
        response: {
          401: { ...ERROR_SCHEMA, description: 'no valid API key' },
          403: { ...ERROR_SCHEMA, description: `the key lacks the ${scope} scope` },
          429: { ...ERROR_SCHEMA, description: 'rate limited (per client address, or per API key); see Retry-After' },
          ...(schema.response as Record<string, unknown> | undefined),
        },
      }
      : {}),
  };
}

/** Appends the check to the route's own onRequest hooks, after those added before (the rate limit's). */
function addOnRequest(route: RouteOptions, hook: Hook): void {
  const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
  route.onRequest = [...existing, hook] as RouteOptions['onRequest'];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** How logs name a key: the first 8 hex digits of its SHA-256 (`printf %s KEY | sha256sum | cut -c1-8`). */
function keyId(hashed: Buffer): string {
  return hashed.subarray(0, 4).toString('hex');
}

/** The digest of the bearer token, or undefined without one. */
function bearer(header: string | undefined): Buffer | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return match?.[1] ? digest(match[1]) : undefined;
}

/** Compares digests in constant time, so the comparison leaks neither key contents nor lengths. */
function find(keys: HeldKey[], given: Buffer): HeldKey | undefined {
  let found: HeldKey | undefined;
  for (const key of keys) if (timingSafeEqual(given, key.digest)) found = key;
  return found;
}
