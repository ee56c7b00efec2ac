import { generateKeyPairSync } from 'node:crypto';
import { io as connectSocket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { mintToken } from '../../src/gateway/jwt-auth.js';
import {
  closeClients,
  collect,
  connectClient,
  getJson,
  metric,
  nodeMetric,
  post,
  register,
  sleep,
  startNode,
  until,
  type Running,
} from '../support/harness.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const API_KEY = 'backend-key-1';

/** Handshakes refused for their token, all reasons together. */
async function authRefusals(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^pushcenter_socket_refusals_total\{reason="auth_[a-z_]+"\} (\d+)$/gm)]
    .reduce((sum, match) => sum + Number(match[1]), 0);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** connect_error message of a handshake that is refused, or 'connected'. */
async function handshake(url: string, auth: Record<string, unknown> = {}): Promise<string> {
  const socket = connectSocket(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth });
  try {
    return await new Promise<string>((resolve) => {
      socket.once('connect', () => resolve('connected'));
      socket.once('connect_error', (err) => resolve(err.message));
    });
  } finally {
    socket.close();
  }
}

afterEach(() => closeClients());

describe('sockets with JWT authentication (HS256)', () => {
  let node: Running;
  beforeAll(async () => {
    node = await startNode({ AUTH_JWT_SECRET: SECRET, API_KEYS: `${API_KEY},other-key` });
  });
  afterAll(async () => node?.close());

  const send = (body: unknown) => post(node.url, body, { authorization: `Bearer ${API_KEY}` });
  const sessionView = (id: string) => getJson(node.url, `/v1/sessions/${id}`, { authorization: `Bearer ${API_KEY}` });

  it('registers the socket from its token at once, and delivers the session its messages', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'alice', groups: ['team-a'] });
    const socket = await connectClient(node.url, { auth: { token } });
    const received = collect(socket);
    await until(async () => (await sessionView('alice')).body.online, (online) => online === true);
    await send({ id: 'for-alice', session: 'alice', data: 1 });
    await send({ id: 'for-team', group: 'team-a', data: 2 });
    await until(() => received.length, (n) => n === 2);
  });

  it('lets a token register its own session and groups, and refuses any other as forbidden', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'bob', groups: ['g1', 'g2'] });
    const socket = await connectClient(node.url, { auth: { token } });
    expect(await register(socket, { sessionId: 'bob', groups: ['g2'] })).toEqual({ ok: true, sessionId: 'bob', groups: ['g2'] });
    expect(await register(socket, { groups: ['g1'] })).toEqual({ ok: true, sessionId: 'bob', groups: ['g1'] });
    const before = await metric(node.url, 'pushcenter_socket_refusals_total', { reason: 'register_forbidden' });
    const other = await register(socket, { sessionId: 'carol' });
    expect(other).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    const outside = await register(socket, { sessionId: 'bob', groups: ['g1', 'admins'] });
    expect(outside).toMatchObject({ ok: false, error: { code: 'forbidden', message: expect.stringContaining('admins') } });
    expect(await metric(node.url, 'pushcenter_socket_refusals_total', { reason: 'register_forbidden' })).toBe(before + 2);
  });

  it('delivers none of another session\'s or group\'s messages to a socket refused for them', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'mallory', groups: [] });
    const socket = await connectClient(node.url, { auth: { token } });
    const received = collect(socket);
    await register(socket, { sessionId: 'victim', groups: ['secret-group'] });
    await send([
      { id: 'private', session: 'victim', data: 'secret', delivery: 'volatile' },
      { id: 'private-group', group: 'secret-group', data: 'secret' },
      { id: 'own', session: 'mallory', data: 'hello' },
    ]);
    await until(() => received.length, (n) => n >= 1);
    await sleep(200);
    expect(received.map((r) => r.envelope.id)).toEqual(['own']);
  });

  it.each([
    ['no token', async () => ({})],
    ['a token that is not a string', async () => ({ token: 42 })],
    ['a garbage token', async () => ({ token: 'not.a.jwt' })],
    ['an expired token', async () => ({
      token: await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(new TextEncoder().encode(SECRET)),
    })],
    ['a token signed with another secret', async () => ({ token: await mintToken({ secret: 'x'.repeat(40), sessionId: 'x' }) })],
    ['a tampered token', async () => {
      const [header, , signature] = (await mintToken({ secret: SECRET, sessionId: 'x' })).split('.');
      return { token: `${header}.${b64({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 })}.${signature}` };
    }],
    ['an alg:none token', async () => ({ token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x' })}.` })],
  ])('refuses the handshake with %s as unauthorized, and counts it', async (_name, auth) => {
    const before = await authRefusals(node.url);
    expect(await handshake(node.url, await auth())).toBe('unauthorized');
    expect(await authRefusals(node.url)).toBe(before + 1);
  });

  it('disconnects a socket whose token expires, telling it why', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'short', expiresInSec: 1 });
    const socket = await connectClient(node.url, { auth: { token } });
    const told = new Promise((resolve) => socket.once('token_expired', resolve));
    const gone = new Promise((resolve) => socket.once('disconnect', resolve));
    expect(await told).toMatchObject({ code: 'token_expired' });
    expect(await gone).toBe('io server disconnect');
    expect(await metric(node.url, 'pushcenter_socket_refusals_total', { reason: 'token_expired' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses HTTP publishes without a valid API key with 401, enqueuing nothing', async () => {
    const received = await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' });
    const without = await post(node.url, { session: 'nobody', data: 1 });
    const wrong = await post(node.url, { session: 'nobody', data: 1 }, { authorization: 'Bearer guessed' });
    const basic = await post(node.url, { session: 'nobody', data: 1 }, { authorization: `Basic ${API_KEY}` });
    for (const response of [without, wrong, basic]) {
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe('unauthorized');
    }
    expect(await metric(node.url, 'pushcenter_http_refusals_total', { reason: 'unauthorized' })).toBe(3);
    expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' })).toBe(received);
    expect((await sessionView('nobody')).body.inbox).toBe(0);
    expect((await post(node.url, { session: 'nobody', data: 1 }, { authorization: 'Bearer other-key' })).status).toBe(202);
  });
});

describe('sockets with JWT authentication (RS256 public key)', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  let node: Running;
  beforeAll(async () => {
    node = await startNode({ AUTH_JWT_PUBLIC_KEY: publicPem });
  });
  afterAll(async () => node?.close());

  it('accepts a token signed with the private key', async () => {
    const token = await mintToken({ privateKeyPem: privatePem, alg: 'RS256', sessionId: 'rs-user' });
    expect(await handshake(node.url, { token })).toBe('connected');
  });

  it('refuses an HS256 token signed with the public key as its secret (algorithm confusion)', async () => {
    const token = await mintToken({ secret: publicPem, alg: 'HS256', sessionId: 'rs-user' });
    expect(await handshake(node.url, { token })).toBe('unauthorized');
  });
});

describe('limits', () => {
  let node: Running;
  beforeAll(async () => {
    node = await startNode({
      RATE_LIMIT_HTTP_PER_MIN: 5,
      RATE_LIMIT_CONNECTS_PER_10S: 8,
      RATE_LIMIT_REGISTERS_PER_10S: 6,
      SOCKET_MAX_FRAME_BYTES: 2048,
      CORS_ORIGINS: 'https://app.example.com',
    });
  });
  afterAll(async () => node?.close());

  it('answers 429 with Retry-After past the HTTP rate limit, and counts it', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 7; i++) {
      const response = await fetch(`${node.url}/healthz`);
      statuses.push(response.status);
      if (response.status === 429) {
        retryAfter = response.headers.get('retry-after');
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
      }
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(await nodeMetric(node, 'pushcenter_http_refusals_total', { reason: 'rate_limited' })).toBeGreaterThanOrEqual(2);
  });

  it('answers a flood of register calls with rate_limited, and the node stays up', async () => {
    const socket = await connectClientWhenAllowed(node.url);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => register(socket, { sessionId: `flood-${i}` })));
    const limited = answers.filter((a) => !a.ok && a.error.code === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.ok).length).toBeLessThanOrEqual(6);
    expect(await nodeMetric(node, 'pushcenter_socket_refusals_total', { reason: 'register_rate_limited' })).toBe(limited.length);
  });

  it('refuses malformed register payloads with invalid_request, and counts them', async () => {
    const socket = await connectClientWhenAllowed(node.url);
    const answers = [await register(socket, 12), await register(socket, { sessionId: ['a'] })];
    for (const answer of answers) expect(answer).toMatchObject({ ok: false, error: { code: expect.stringMatching(/invalid_request|rate_limited/) } });
  });

  it('disconnects a socket that sends an oversized frame; other sockets are unaffected', async () => {
    const bystander = await connectClientWhenAllowed(node.url);
    const offender = await connectClientWhenAllowed(node.url);
    const gone = new Promise<string>((resolve) => offender.once('disconnect', resolve));
    offender.emit('register', { sessionId: 'x'.repeat(10_000) });
    expect(await gone).toBe('transport close');
    await sleep(100);
    expect(bystander.connected).toBe(true);
    expect(await nodeMetric(node, 'pushcenter_socket_disconnects_total', { reason: 'transport_error' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses connections past the connect rate limit, and the sockets already in are unaffected', async () => {
    const first = await connectClientWhenAllowed(node.url);
    const answers: string[] = [];
    for (let i = 0; i < 12; i++) answers.push(await handshake(node.url));
    expect(answers).toContain('rate_limited');
    expect(first.connected).toBe(true);
    expect(await nodeMetric(node, 'pushcenter_socket_refusals_total', { reason: 'connect_rate_limited' })).toBeGreaterThan(0);
  });

  it('allows the configured origin for HTTP (CORS) and no other', async () => {
    const allowed = await fetch(`${node.url}/v1/notifications`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const other = await fetch(`${node.url}/v1/notifications`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'POST' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

/** Connects, waiting out the connect rate limit an earlier test used up. */
async function connectClientWhenAllowed(url: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await connectClient(url);
    } catch (err) {
      if ((err as Error).message !== 'rate_limited' || attempt > 60) throw err;
      await sleep(250);
    }
  }
}
