import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Server } from 'socket.io';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildClientBundle } from '../../src/client/bundle.js';
import {
  PushCenterClient,
  type Envelope,
  type Missed,
  type PushCenterClientOptions,
  type PushCenterError,
  type Registration,
  type TokenExpired,
} from '../../src/client/index.js';
import { mintToken } from '../../src/gateway/jwt-auth.js';
import type { RegisterRequest, RegisterResponse } from '../../src/gateway/protocol.js';
import { getJson, metric, post, sleep, startNode, until, type Running } from '../support/harness.js';

const ACK_TIMEOUT_MS = 300;
const SECRET = 'client-sdk-test-secret-of-at-least-32-chars';
const DELIVERED_RELIABLE = { target: 'session', mode: 'reliable', outcome: 'delivered' } as const;

/** A client and everything its lifecycle reported. */
interface Observed {
  client: PushCenterClient;
  registered: Registration[];
  gaps: Missed[];
  disconnected: string[];
  reconnecting: number[];
  errors: PushCenterError[];
  expired: TokenExpired[];
}

const clients = new Set<PushCenterClient>();

/** A client with fast reconnection, observed; closed after each test. */
function observe(options: PushCenterClientOptions): Observed {
  const client = new PushCenterClient({
    ...options,
    socketOptions: { reconnectionDelay: 50, reconnectionDelayMax: 200, ...options.socketOptions },
  });
  clients.add(client);
  const seen: Observed = { client, registered: [], gaps: [], disconnected: [], reconnecting: [], errors: [], expired: [] };
  client.lifecycle
    .on('registered', (r) => seen.registered.push(r))
    .on('gap', (missed) => seen.gaps.push(missed))
    .on('disconnected', (reason) => seen.disconnected.push(reason))
    .on('reconnecting', (attempt) => seen.reconnecting.push(attempt))
    .on('error', (error) => seen.errors.push(error))
    .on('token_expired', (info) => seen.expired.push(info));
  return seen;
}

/** Every envelope a handler got, in order. */
function record(client: PushCenterClient, event?: string): Envelope[] {
  const got: Envelope[] = [];
  const handler = (envelope: Envelope) => void got.push(envelope);
  if (event === undefined) client.on(handler);
  else client.on(event, handler);
  return got;
}

async function inbox(url: string, sessionId: string): Promise<number> {
  return (await getJson(url, `/v1/sessions/${sessionId}`)).body.inbox as number;
}

afterEach(() => {
  for (const client of clients) client.close();
  clients.clear();
});

describe('PushCenterClient without auth', () => {
  let node: Running;

  beforeAll(async () => {
    // The same id sent twice must reach the client for its de-duplication to be tested: the node's own
    // (PROTOCOL §6, a notification id is its identity) is off here.
    node = await startNode({ ACK_TIMEOUT_MS, IDEMPOTENCY_TTL_MS: 0 });
  });
  afterAll(() => node?.close());

  it('connects and registers its session and groups, and says so', async () => {
    const { client, registered, gaps } = observe({ url: node.url, sessionId: 'c-reg', groups: ['g1', 'g2'] });
    expect(await client.connect()).toEqual({ sessionId: 'c-reg', groups: ['g1', 'g2'] });
    expect(registered).toEqual([{ sessionId: 'c-reg', groups: ['g1', 'g2'] }]);
    expect(gaps).toEqual([]);
    expect(client.registration).toEqual({ sessionId: 'c-reg', groups: ['g1', 'g2'] });
    expect((await getJson(node.url, '/v1/sessions/c-reg')).body).toMatchObject({ online: true, sockets: 1 });
  });

  it('rejects connect() and reports an error when the server refuses the registration', async () => {
    const { client, errors } = observe({ url: node.url });
    await expect(client.connect()).rejects.toMatchObject({ code: 'invalid_request' });
    expect(errors.map((e) => e.code)).toEqual(['invalid_request']);
  });

  it('hands a session message to the handler as the envelope', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-msg' });
    const got = record(client);
    await client.connect();
    const before = Date.now();
    await post(node.url, { id: 'c-msg-1', session: 'c-msg', data: { text: 'hi' } });
    await until(() => got.length, (n) => n === 1);
    expect(got[0]).toEqual({ id: 'c-msg-1', event: 'message', data: { text: 'hi' }, sentAt: expect.any(Number), reliable: true });
    expect(got[0]!.sentAt).toBeGreaterThanOrEqual(before - 5);
  });

  it('acks a reliable message once the handler has finished: it never reaches the inbox', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-ack' });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    client.on(async () => {
      started += 1;
      await gate;
    });
    await client.connect();
    const before = await metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE);
    await post(node.url, { id: 'c-ack-1', session: 'c-ack', data: 1 });
    await until(() => started, (n) => n === 1);
    await sleep(100);
    expect(await metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE)).toBe(before);
    release();
    await until(() => metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE), (n) => n === before + 1);
    await sleep(ACK_TIMEOUT_MS + 100);
    expect(await inbox(node.url, 'c-ack')).toBe(0);
  });

  it('does not ack when the handler throws: the message goes to the inbox and comes back after the next registration', async () => {
    const { client, errors } = observe({ url: node.url, sessionId: 'c-throw' });
    const calls: string[] = [];
    client.on((envelope) => {
      calls.push(envelope.id);
      if (calls.length === 1) throw new Error('not now');
    });
    await client.connect();
    await post(node.url, { id: 'c-throw-1', session: 'c-throw', data: 1 });
    await until(() => inbox(node.url, 'c-throw'), (n) => n === 1);
    expect(calls).toEqual(['c-throw-1']);
    expect(errors).toEqual([expect.objectContaining({ code: 'handler_failed', envelope: expect.objectContaining({ id: 'c-throw-1' }) })]);

    await client.setGroups([]);
    await until(() => calls.length, (n) => n === 2);
    expect(calls).toEqual(['c-throw-1', 'c-throw-1']);
    await until(() => inbox(node.url, 'c-throw'), (n) => n === 0);
  });

  it('hands a message over once when the same id comes twice, and acks both copies', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-dup' });
    const got = record(client);
    await client.connect();
    const before = await metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE);
    await post(node.url, { id: 'c-dup-1', session: 'c-dup', data: 'first' });
    await until(() => got.length, (n) => n === 1);
    await post(node.url, { id: 'c-dup-1', session: 'c-dup', data: 'again' });
    await until(() => metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE), (n) => n === before + 2);
    await sleep(ACK_TIMEOUT_MS + 100);
    expect(got.map((e) => e.data)).toEqual(['first']);
    expect(await inbox(node.url, 'c-dup')).toBe(0);
  });

  it('acks a copy that arrives while the first is being handled once the first is done, without handing it over', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-race' });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls: unknown[] = [];
    client.on(async (envelope) => {
      calls.push(envelope.data);
      await gate;
    });
    await client.connect();
    const before = await metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE);
    await post(node.url, [
      { id: 'c-race-1', session: 'c-race', data: 'first' },
      { id: 'c-race-1', session: 'c-race', data: 'copy' },
    ]);
    await until(() => calls.length, (n) => n === 1);
    await sleep(100);
    expect(await metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE)).toBe(before);
    release();
    await until(() => metric(node.url, 'pushcenter_deliveries_total', DELIVERED_RELIABLE), (n) => n === before + 2);
    expect(calls).toEqual(['first']);
  });

  it('works over HTTP long-polling too', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-polling', transports: ['polling'] });
    const got = record(client);
    await client.connect();
    await post(node.url, { id: 'c-poll-1', session: 'c-polling', data: 1 });
    await until(() => got.length, (n) => n === 1);
    await sleep(ACK_TIMEOUT_MS + 100);
    expect(await inbox(node.url, 'c-polling')).toBe(0);
  });

  it('hands a message only to the handlers of its event', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-events' });
    const messages = record(client);
    const shipped = record(client, 'order.shipped');
    const shippedToo = record(client, 'order.shipped');
    await client.connect();
    await post(node.url, [
      { id: 'c-ev-1', session: 'c-events', event: 'order.shipped', data: 7 },
      { id: 'c-ev-2', session: 'c-events', data: 8 },
    ]);
    await until(() => shipped.length + shippedToo.length + messages.length, (n) => n === 3);
    expect(shipped.map((e) => e.id)).toEqual(['c-ev-1']);
    expect(shippedToo.map((e) => e.id)).toEqual(['c-ev-1']);
    expect(messages.map((e) => e.id)).toEqual(['c-ev-2']);
  });

  it('stops calling a handler removed with off(), and does not ack what no handler took', async () => {
    const { client, errors } = observe({ url: node.url, sessionId: 'c-off' });
    const got: string[] = [];
    const handler = (envelope: Envelope) => void got.push(envelope.id);
    client.on('news', handler);
    await client.connect();
    client.off('news', handler);
    await post(node.url, { id: 'c-off-1', session: 'c-off', event: 'news', data: 1 });
    await until(() => inbox(node.url, 'c-off'), (n) => n === 1);
    expect(got).toEqual([]);
    expect(errors.map((e) => e.code)).toContain('no_handler');
  });

  it('receives group messages, with the group named', async () => {
    const { client } = observe({ url: node.url, sessionId: 'c-member', groups: ['c-team'] });
    const got = record(client);
    await client.connect();
    await post(node.url, { id: 'c-group-1', group: 'c-team', data: 'standup' });
    await until(() => got.length, (n) => n === 1);
    expect(got[0]).toMatchObject({ id: 'c-group-1', group: 'c-team', data: 'standup' });
  });

  it('setGroups registers again with the new groups', async () => {
    const { client, registered } = observe({ url: node.url, sessionId: 'c-groups', groups: ['c-old'] });
    const got = record(client);
    await client.connect();
    expect(await client.setGroups(['c-new'])).toEqual({ sessionId: 'c-groups', groups: ['c-new'] });
    expect(registered.map((r) => r.groups)).toEqual([['c-old'], ['c-new']]);
    await post(node.url, [
      { id: 'c-to-old', group: 'c-old', data: 1 },
      { id: 'c-to-new', group: 'c-new', data: 1 },
    ]);
    await until(() => got.length, (n) => n === 1);
    await sleep(100);
    expect(got.map((e) => e.id)).toEqual(['c-to-new']);
  });

  it('reconnects and registers again by itself when the server closes the connection', async () => {
    const { client, registered, disconnected, reconnecting } = observe({ url: node.url, sessionId: 'c-back', groups: ['c-back-g'] });
    const got = record(client);
    await client.connect();
    node.app.gateway.disconnectAll();
    await until(() => registered.length, (n) => n === 2);
    expect(disconnected).toEqual(['transport close']);
    expect(reconnecting.length).toBeGreaterThanOrEqual(1);
    expect(registered[1]).toEqual({ sessionId: 'c-back', groups: ['c-back-g'] });
    await post(node.url, [
      { id: 'c-back-1', session: 'c-back', data: 1 },
      { id: 'c-back-2', group: 'c-back-g', data: 2 },
    ]);
    await until(() => got.length, (n) => n === 2);
    expect(await inbox(node.url, 'c-back')).toBe(0);
  });

  it('comes back after the node restarts on the same port, and gets what was stored meanwhile', async () => {
    const first = await startNode({ ACK_TIMEOUT_MS });
    const port = new URL(first.url).port;
    const { client, registered } = observe({ url: first.url, sessionId: 'c-restart' });
    const got = record(client);
    await client.connect();
    await first.close();
    const second = await startNode({ ACK_TIMEOUT_MS, PORT: port });
    try {
      // Stored in the new node's inbox while the client is still away (or delivered, if it is back).
      await post(second.url, { id: 'c-restart-1', session: 'c-restart', data: 1 });
      await until(() => registered.length, (n) => n === 2);
      await until(() => got.length, (n) => n === 1);
      expect(got[0]!.id).toBe('c-restart-1');
      await until(() => inbox(second.url, 'c-restart'), (n) => n === 0);
    } finally {
      client.close();
      await second.close();
    }
  });
});

describe('PushCenterClient with JWT auth', () => {
  let node: Running;

  beforeAll(async () => {
    node = await startNode({ ACK_TIMEOUT_MS, AUTH_JWT_SECRET: SECRET });
  });
  afterAll(() => node?.close());

  it('registers the session and groups of its token without being told them', async () => {
    let calls = 0;
    const token = () => {
      calls += 1;
      return mintToken({ secret: SECRET, sessionId: 'j-user', groups: ['j-team'] });
    };
    const { client } = observe({ url: node.url, token });
    const got = record(client);
    expect(await client.connect()).toEqual({ sessionId: 'j-user', groups: ['j-team'] });
    expect(calls).toBe(1);
    await post(node.url, [
      { id: 'j-1', session: 'j-user', data: 1 },
      { id: 'j-2', group: 'j-team', data: 2 },
    ]);
    await until(() => got.length, (n) => n === 2);
  });

  it('when the token function fails, reports it and tries again by itself', async () => {
    let calls = 0;
    const token = async () => {
      calls += 1;
      if (calls === 1) throw new Error('identity provider down');
      return mintToken({ secret: SECRET, sessionId: 'j-retry' });
    };
    const { client, registered, errors, reconnecting } = observe({ url: node.url, token });
    await expect(client.connect()).rejects.toMatchObject({ code: 'token_unavailable' });
    await until(() => registered.length, (n) => n === 1);
    expect(registered[0]!.sessionId).toBe('j-retry');
    expect(errors.map((e) => e.code)).toEqual(['token_unavailable']);
    expect(reconnecting).toEqual([1]);
    expect(calls).toBe(2);
  });

  it('rejects connect() with unauthorized when the token is refused', async () => {
    const { client, errors } = observe({ url: node.url, token: 'not-a-jwt' });
    await expect(client.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(errors.map((e) => e.code)).toEqual(['unauthorized']);
  });

  it('setGroups is refused with forbidden for a group the token does not allow', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'j-narrow', groups: ['j-a'] });
    const { client } = observe({ url: node.url, token, groups: [] });
    expect(await client.connect()).toEqual({ sessionId: 'j-narrow', groups: [] });
    expect(await client.setGroups(['j-a'])).toEqual({ sessionId: 'j-narrow', groups: ['j-a'] });
    await expect(client.setGroups(['j-b'])).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('when its token expires, fetches a new one from the token function and comes back registered', async () => {
    let calls = 0;
    const token = () => {
      calls += 1;
      return mintToken({ secret: SECRET, sessionId: 'j-renew', expiresInSec: calls === 1 ? 2 : 3600 });
    };
    const { client, registered, disconnected, expired, reconnecting } = observe({ url: node.url, token });
    const got = record(client);
    await client.connect();
    await until(() => registered.length, (n) => n === 2, 5000);
    expect(expired).toEqual([expect.objectContaining({ code: 'token_expired' })]);
    expect(disconnected).toEqual(['io server disconnect']);
    expect(reconnecting).toEqual([1]);
    expect(calls).toBe(2);
    await post(node.url, { id: 'j-renew-1', session: 'j-renew', data: 1 });
    await until(() => got.length, (n) => n === 1);
  });

  it('when its token expires without a token function, reports it and stays disconnected', async () => {
    const token = await mintToken({ secret: SECRET, sessionId: 'j-static', expiresInSec: 2 });
    const { client, registered, disconnected, expired } = observe({ url: node.url, token });
    await client.connect();
    await until(() => disconnected.length, (n) => n === 1, 5000);
    expect(expired).toHaveLength(1);
    await sleep(300);
    expect(registered).toHaveLength(1);
    expect(client.registration).toBeUndefined();
    expect((await getJson(node.url, '/v1/sessions/j-static')).body.online).toBe(false);
  });
});

/** A bare socket.io server whose `register` answers come from `answer`: the other end of PROTOCOL §3.2, without a node. */
async function startRegisterServer(
  answer: (request: RegisterRequest, calls: number) => RegisterResponse,
): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer();
  const io = new Server(http);
  let calls = 0;
  io.on('connection', (socket) => {
    socket.on('register', (request: RegisterRequest, ack: (response: RegisterResponse) => void) => ack(answer(request, ++calls)));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, close: () => io.close() };
}

describe('PushCenterClient and the gap notice (PROTOCOL §4.1)', () => {
  const since = Date.UTC(2025, 0, 2, 3, 4, 5);

  it('reports a register answer that carries missed as one gap event, after registered', async () => {
    // Only the first answer carries it, as the server sends it once.
    const server = await startRegisterServer((request, calls) => ({
      ok: true,
      sessionId: request.sessionId!,
      groups: [request.groups ?? []].flat(),
      ...(calls === 1 ? { missed: { count: 3, since } } : {}),
    }));
    try {
      const { client, registered, gaps } = observe({ url: server.url, sessionId: 'g-away', groups: ['g-team'] });
      const order: string[] = [];
      client.lifecycle.on('registered', () => order.push('registered')).on('gap', () => order.push('gap'));
      expect(await client.connect()).toEqual({ sessionId: 'g-away', groups: ['g-team'], missed: { count: 3, since } });
      expect(gaps).toEqual([{ count: 3, since }]);
      expect(order).toEqual(['registered', 'gap']);

      expect(await client.setGroups([])).toEqual({ sessionId: 'g-away', groups: [] });
      expect(registered).toHaveLength(2);
      expect(gaps).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('emits no gap when the answer has no missed, or a count of 0', async () => {
    const server = await startRegisterServer((request, calls) => ({
      ok: true,
      sessionId: request.sessionId!,
      groups: [],
      ...(calls === 2 ? { missed: { count: 0, since } } : {}),
    }));
    try {
      const { client, registered, gaps } = observe({ url: server.url, sessionId: 'g-here' });
      expect(await client.connect()).toEqual({ sessionId: 'g-here', groups: [] });
      expect(await client.setGroups([])).toEqual({ sessionId: 'g-here', groups: [] });
      expect(registered).toHaveLength(2);
      expect(gaps).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('browser bundle', () => {
  it('is one ES module exporting PushCenterClient, with no Node built-ins in it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'push-center-bundle-'));
    try {
      const { outfile, metafile } = await buildClientBundle(join(dir, 'push-center-client.js'));
      const code = await readFile(outfile, 'utf8');
      expect(code).not.toMatch(/\brequire\s*\(/);
      expect(code).not.toMatch(/from\s*["'](node:|ws["'])/);
      expect(Object.keys(metafile.inputs).filter((input) => /node_modules\/(ws|xmlhttprequest-ssl)\//.test(input))).toEqual([]);
      expect(code).toMatch(/sourceMappingURL=push-center-client\.js\.map/);
      const module = (await import(pathToFileURL(outfile).href)) as Record<string, unknown>;
      expect(typeof module.PushCenterClient).toBe('function');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
