import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApiScope } from '../../src/config/config.js';
import { registerAccessControl } from '../../src/http/access.js';
import { MemoryQueue } from '../../src/ingest/memory-queue.js';
import { Metrics } from '../../src/observability/metrics.js';
import {
  closeClients,
  collect,
  getJson,
  nodeMetric,
  post,
  session,
  startNode,
  until,
  type Running,
} from '../support/harness.js';

/** One key per scope, and one listed without scopes (all of them). */
const KEYS = {
  publish: 'pub-7Hq2xK9dWm',
  read: 'read-Xp9mQ4raTz',
  admin: 'adm-Zr4tB8nvQe',
  all: 'all-Lg1wC3hsYu',
};
const WRONG = 'guessed-Vb6yN2kdPo';
const API_KEYS = ` ${KEYS.publish}:publish, ${KEYS.read}:read,${KEYS.admin}:admin , ${KEYS.all}`;
const UNSCOPED = '/v1/unscoped-test-route';

const CREDENTIALS = ['none', 'wrong', 'publish', 'read', 'admin', 'all'] as const;
type Credential = (typeof CREDENTIALS)[number];

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const HEADERS: Record<Credential, Record<string, string>> = {
  none: {},
  wrong: bearer(WRONG),
  publish: bearer(KEYS.publish),
  read: bearer(KEYS.read),
  admin: bearer(KEYS.admin),
  all: bearer(KEYS.all),
};

/** How the logs name a key: the first 8 hex digits of its SHA-256. */
const keyId = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 8);

interface Route {
  name: string;
  method: 'GET' | 'HEAD' | 'POST';
  path: string;
  /** The scope it needs; undefined: open. */
  scope?: ApiScope;
  ok: number;
}

const ROUTES: Route[] = [
  { name: 'POST /v1/notifications', method: 'POST', path: '/v1/notifications', scope: 'publish', ok: 202 },
  { name: 'GET /v1/sessions/:id', method: 'GET', path: '/v1/sessions/table-user', scope: 'read', ok: 200 },
  { name: 'HEAD /v1/sessions/:id', method: 'HEAD', path: '/v1/sessions/table-user', scope: 'read', ok: 200 },
  { name: 'GET /v1/dead-letters', method: 'GET', path: '/v1/dead-letters', scope: 'admin', ok: 200 },
  { name: 'GET /v1/cluster', method: 'GET', path: '/v1/cluster', scope: 'read', ok: 200 },
  // Past the key check, an unknown receipt is 404.
  { name: 'GET /v1/notifications/:id', method: 'GET', path: '/v1/notifications/table-unknown', scope: 'read', ok: 404 },
  { name: 'GET /v1/admin/overview', method: 'GET', path: '/v1/admin/overview', scope: 'admin', ok: 200 },
  { name: 'GET /v1/sessions/:id/inbox', method: 'GET', path: '/v1/sessions/table-user/inbox', scope: 'admin', ok: 200 },
  { name: 'GET /admin (the page: no data)', method: 'GET', path: '/admin', ok: 200 },
  { name: `GET ${UNSCOPED} (declares no scope)`, method: 'GET', path: UNSCOPED, scope: 'admin', ok: 200 },
  { name: 'GET /metrics', method: 'GET', path: '/metrics', ok: 200 },
  { name: 'GET /healthz', method: 'GET', path: '/healthz', ok: 200 },
  { name: 'GET /readyz', method: 'GET', path: '/readyz', ok: 200 },
];

/** The status each credential gets: 401 without a valid key, 403 without the scope. */
function expected(route: Route, credential: Credential): number {
  if (route.scope === undefined) return route.ok;
  if (credential === 'none' || credential === 'wrong') return 401;
  return credential === 'all' || credential === route.scope ? route.ok : 403;
}

const TABLE = ROUTES.flatMap((route) => CREDENTIALS.map((credential) => [route.name, credential, expected(route, credential), route] as const));

function request(url: string, route: Pick<Route, 'method' | 'path'>, headers: Record<string, string>, body?: unknown) {
  const json = route.method === 'POST';
  return fetch(`${url}${route.path}`, {
    method: route.method,
    headers: { ...headers, ...(json ? { 'content-type': 'application/json' } : {}) },
    // Volatile, to a session nobody holds: a publish that gets through changes nothing either.
    ...(json ? { body: JSON.stringify(body ?? { session: 'table-nobody', delivery: 'volatile', data: 1 }) } : {}),
  });
}

afterEach(() => closeClients());

describe('API keys with scopes', () => {
  let node: Running;
  const logLines: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    node = await startNode({ API_KEYS }, { logger }, (app) => {
      // A route somebody adds without thinking about access: it needs admin.
      app.http.get(UNSCOPED, async () => ({ ok: true }));
    });
  });
  afterAll(async () => node?.close());

  it.each(TABLE)('%s with %s key answers %i', async (_name, credential, status, route) => {
    const refusals = async () => ({
      unauthorized: await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'unauthorized' }),
      forbidden: await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'forbidden' }),
    });
    const before = await refusals();
    const response = await request(node.url, route, HEADERS[credential]);
    expect(response.status).toBe(status);
    const refused = status === 401 || status === 403;
    const body = refused && route.method !== 'HEAD' ? await response.json() as { error?: unknown } : undefined;
    if (status === 401) {
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      if (body) expect(body).toEqual({ error: { code: 'unauthorized', message: 'send a valid API key as "Authorization: Bearer <key>"' } });
    }
    if (status === 403) {
      expect(response.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="${route.scope}"`);
      if (body) expect(body).toEqual({ error: { code: 'forbidden', message: `this key lacks the ${route.scope} scope` } });
    }
    expect(await refusals()).toEqual({
      unauthorized: before.unauthorized + (status === 401 ? 1 : 0),
      forbidden: before.forbidden + (status === 403 ? 1 : 0),
    });
  });

  it('enqueues and changes nothing for a refused publish', async () => {
    const received = collect(await session(node.url, 'guarded'));
    const queue = node.app.queue as MemoryQueue;
    const http = () => nodeMetric(node, 'pushcenter_messages_received_total', { source: 'http' });
    const before = { received: await http(), deadLetters: queue.deadLetters.length };
    for (const headers of [{}, HEADERS.wrong, HEADERS.read, HEADERS.admin, { authorization: `Basic ${KEYS.publish}` }]) {
      const response = await post(node.url, { id: 'refused', session: 'guarded', data: 'secret' }, headers);
      expect([401, 403]).toContain(response.status);
    }
    expect(await http()).toBe(before.received);
    expect(await node.app.inbox.size('guarded')).toBe(0);
    expect((await post(node.url, { id: 'marker', session: 'guarded', data: 1 }, HEADERS.publish)).status).toBe(202);
    await until(() => received.length, (n) => n === 1);
    expect(received.map((r) => r.envelope.id)).toEqual(['marker']);
    expect(await http()).toBe(before.received + 1);
    expect(queue.deadLetters.length).toBe(before.deadLetters);
  });

  it('logs each refusal with the route, the reason and a key id, never the key', async () => {
    for (const credential of CREDENTIALS) {
      await request(node.url, { method: 'GET', path: '/v1/dead-letters' }, HEADERS[credential]);
      await request(node.url, { method: 'POST', path: '/v1/notifications' }, HEADERS[credential]);
    }
    const entries = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const refusals = entries.filter((entry) => entry.msg === 'HTTP request refused');
    expect(refusals).toContainEqual(expect.objectContaining({
      level: 30, route: 'GET /v1/dead-letters', reason: 'forbidden', keyId: keyId(KEYS.read),
    }));
    expect(refusals).toContainEqual(expect.objectContaining({
      route: 'POST /v1/notifications', reason: 'forbidden', keyId: keyId(KEYS.admin),
    }));
    expect(refusals).toContainEqual(expect.objectContaining({
      route: 'GET /v1/dead-letters', reason: 'unauthorized', keyId: keyId(WRONG),
    }));
    const anonymous = refusals.find((entry) => entry.reason === 'unauthorized' && entry.keyId === undefined);
    expect(anonymous).toMatchObject({ route: expect.stringMatching(/^(GET|POST|HEAD) \/v1\//) });
    const log = logLines.join('');
    for (const key of [...Object.values(KEYS), WRONG]) expect(log).not.toContain(key);
  });

  it('documents each /v1 route\'s scope and security in the OpenAPI description', async () => {
    const { status, body } = await getJson(node.url, '/docs/json');
    expect(status).toBe(200);
    const operations = {
      publish: body.paths['/v1/notifications'].post,
      read: body.paths['/v1/sessions/{id}'].get,
      admin: body.paths['/v1/dead-letters'].get,
      unscoped: body.paths[UNSCOPED].get,
    };
    for (const [scope, operation] of Object.entries(operations)) {
      expect(operation.security).toEqual([{ apiKey: [] }]);
      expect(operation.description).toContain(`API key scope: \`${scope === 'unscoped' ? 'admin' : scope}\``);
      expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403', '429']));
    }
    expect(body.paths['/healthz'].get.security).toBeUndefined();
    const receipt = body.paths['/v1/notifications/{id}'].get;
    expect(receipt.description).toContain('API key scope: `read`');
    expect(Object.keys(receipt.responses)).toEqual(expect.arrayContaining(['200', '404']));
    const header = operations.publish.parameters.find((p: { in: string; name: string }) => p.in === 'header' && p.name === 'idempotency-key');
    expect(header).toMatchObject({ required: false, schema: { type: 'string', maxLength: 255 } });
    expect(Object.keys(operations.publish.responses)).toEqual(expect.arrayContaining(['409', '422']));
    expect(body.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('refuses at registration a route that declares a scope that does not exist', () => {
    const app = Fastify();
    registerAccessControl(app, { apiKeys: [{ key: 'k', scopes: ['read'] }], perKeyPerMinute: 0, metricsToken: undefined, metrics: new Metrics() });
    expect(() => app.get('/v1/typo', { config: { scope: 'raed' as ApiScope } }, async () => 'x'))
      .toThrow(/scope "raed" is none of publish, read, admin/);
  });
});

describe('rate limits per API key and per address', () => {
  let node: Running;
  beforeAll(async () => {
    node = await startNode({ API_KEYS: 'limit-a-Qw3rTy,limit-b-As4dFg', RATE_LIMIT_HTTP_PER_KEY_PER_MIN: 3, RATE_LIMIT_HTTP_PER_MIN: 10 });
  });
  afterAll(async () => node?.close());

  const read = (key?: string) => fetch(`${node.url}/v1/sessions/limited`, { headers: key ? bearer(key) : {} });

  it('answers 429 with Retry-After to a key over its budget, and another key keeps its own', async () => {
    for (const key of ['limit-a-Qw3rTy', 'limit-b-As4dFg']) {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await read(key)).status);
      expect(statuses).toEqual([200, 200, 200]);
      const limited = await read(key);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await limited.json()).toEqual({ error: { code: 'rate_limited', message: expect.stringMatching(/^more than 3 requests a minute with this API key; retry in \d+ s$/) } });
    }
    expect(await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'key_rate_limited' })).toBe(2);
    expect(await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'rate_limited' })).toBe(0);
  });

  it('still limits each address, before any key is looked at', async () => {
    // Eight requests so far from this address, of ten a minute.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${node.url}/healthz`)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const anonymous = await read();
    expect(anonymous.status).toBe(429);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
    expect(await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'rate_limited' })).toBe(2);
    expect(await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'unauthorized' })).toBe(0);
  });
});

describe('METRICS_TOKEN and HTTP_DOCS=off', () => {
  const TOKEN = 'scrape-Tk9pLm2Wq';
  let node: Running;
  beforeAll(async () => {
    node = await startNode({ METRICS_TOKEN: TOKEN, HTTP_DOCS: 'off' });
  });
  afterAll(async () => node?.close());

  it('serves /metrics only with the token as a bearer token', async () => {
    for (const headers of [{}, bearer('not-the-token'), { authorization: TOKEN }]) {
      const response = await fetch(`${node.url}/metrics`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    }
    const scrape = await fetch(`${node.url}/metrics`, { headers: bearer(TOKEN) });
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^pushcenter_http_refusals_total\{reason="unauthorized"\} 3$/m);
  });

  it('leaves the other routes as they were: no API_KEYS, no key needed', async () => {
    expect((await getJson(node.url, '/v1/sessions/anyone')).status).toBe(200);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it('answers /docs and /docs/json 404, like any unknown route', async () => {
    for (const path of ['/docs', '/docs/json', '/docs/static/index.html']) {
      const { status, body } = await getJson(node.url, path);
      expect(status).toBe(404);
      expect(body.error.code).toBe('not_found');
    }
  });
});
