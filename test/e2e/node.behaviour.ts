import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectConserved, takeDeadLetters, waitingIds, type DeadLetterSeen } from '../support/conservation.js';
import {
  closeClients,
  collect,
  connectClient,
  getJson,
  metric,
  post,
  register,
  session,
  sleep,
  startNode,
  until,
  type Running,
} from '../support/harness.js';

/** The engines a node under test runs on: its settings, and what to remove after the suite. */
export interface Engines {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const ids = (received: Array<{ envelope: { id: string } }>) => received.map((r) => r.envelope.id);

/**
 * What a user sees of one node, whichever engines it runs on: the same suite runs on the embedded
 * engines and on RabbitMQ + Redis.
 */
export function describeNode(name: string, engines: () => Promise<Engines>): void {
  describe(name, () => {
    let node: Running;
    let used: Engines | undefined;

    beforeAll(async () => {
      used = await engines();
      // Two un-acked emits per socket: a burst to one session goes through its inbox (PROTOCOL §4.1).
      node = await startNode({ ACK_TIMEOUT_MS: 300, INBOX_MAX: 3, SOCKET_MAX_PENDING: 2, ...used.env });
    });
    afterEach(() => closeClients());
    afterAll(async () => {
      await node?.close();
      await used?.cleanup();
    });

    describe('register', () => {
      it('answers with the session and groups it registered', async () => {
        const socket = await connectClient(node.url);
        expect(await register(socket, { sessionId: 'reg-1', groups: 'g1' })).toEqual({
          ok: true,
          sessionId: 'reg-1',
          groups: ['g1'],
        });
      });

      it('accepts the original message center aliases socketId and groupFlag', async () => {
        const socket = await connectClient(node.url);
        expect(await register(socket, { socketId: 'reg-legacy', groupFlag: ['a', 'b'] })).toEqual({
          ok: true,
          sessionId: 'reg-legacy',
          groups: ['a', 'b'],
        });
      });

      it.each([
        ['no session id', {}],
        ['a number as session id', { sessionId: 42 }],
        ['a session id over 128 characters', { sessionId: 'x'.repeat(129) }],
        ['groups that are not strings', { sessionId: 's', groups: [1, 2] }],
        ['a payload that is not an object', 'hello'],
      ])('refuses %s with invalid_request', async (_name, payload) => {
        const socket = await connectClient(node.url);
        const response = await register(socket, payload);
        expect(response.ok).toBe(false);
        if (!response.ok) expect(response.error.code).toBe('invalid_request');
      });

      it('replaces the session and groups when a socket registers again', async () => {
        const socket = await session(node.url, 'rereg-old', ['old-group']);
        const received = collect(socket);
        await register(socket, { sessionId: 'rereg-new', groups: ['new-group'] });
        await post(node.url, [
          { id: 'to-old', session: 'rereg-old', data: 1, delivery: 'volatile' },
          { id: 'to-old-group', group: 'old-group', data: 1 },
          { id: 'to-new', session: 'rereg-new', data: 1 },
          { id: 'to-new-group', group: 'new-group', data: 1 },
        ]);
        await until(() => received.length, (n) => n >= 2);
        await sleep(100);
        expect(ids(received).sort()).toEqual(['to-new', 'to-new-group']);
        expect((await getJson(node.url, '/v1/sessions/rereg-old')).body.online).toBe(false);
      });
    });

    describe('session messages', () => {
      it('reach the registered socket as the envelope, with an ack callback when reliable', async () => {
        const socket = await session(node.url, 'alice');
        const received = collect(socket, 'message', { ack: false });
        const before = Date.now();
        const response = await post(node.url, { id: 'n-1', session: 'alice', data: { text: 'hi' } });
        expect(response).toMatchObject({ status: 202, body: { ids: ['n-1'] } });
        await until(() => received.length, (n) => n === 1);
        const [{ envelope, ack }] = received as [typeof received[0]];
        expect(envelope).toEqual({ id: 'n-1', event: 'message', data: { text: 'hi' }, sentAt: envelope.sentAt, reliable: true });
        expect(envelope.sentAt).toBeGreaterThanOrEqual(before - 5);
        expect(typeof ack).toBe('function');
        ack!();
      });

      it('arrive under the event the notification names', async () => {
        const socket = await session(node.url, 'evented');
        const received = collect(socket, 'order.shipped');
        await post(node.url, { session: 'evented', event: 'order.shipped', data: 7 });
        await until(() => received.length, (n) => n === 1);
        expect(received[0]!.envelope).toMatchObject({ event: 'order.shipped', data: 7 });
      });

      it('reach every tab of a multi-tab session', async () => {
        const tabs = await Promise.all([session(node.url, 'multi'), session(node.url, 'multi'), session(node.url, 'multi')]);
        const received = tabs.map((tab) => collect(tab));
        await post(node.url, { id: 'multi-1', session: 'multi', data: 'x' });
        await until(() => received.map((r) => r.length), (counts) => counts.every((n) => n === 1));
        expect((await getJson(node.url, '/v1/sessions/multi')).body).toMatchObject({ online: true, sockets: 3 });
      });

      it('do not reach other sessions', async () => {
        const mine = await session(node.url, 'only-me');
        const other = await session(node.url, 'not-me');
        const mineReceived = collect(mine);
        const otherReceived = collect(other);
        await post(node.url, { session: 'only-me', data: 1 });
        await until(() => mineReceived.length, (n) => n === 1);
        await sleep(50);
        expect(otherReceived).toHaveLength(0);
      });

      it('accept the original message center format unchanged', async () => {
        const socket = await session(node.url, 'legacy-session');
        const received = collect(socket);
        const response = await post(node.url, { socketSessionId: 'legacy-session', isVolatile: false, data: '{"title":"old"}' });
        expect(response.status).toBe(202);
        await until(() => received.length, (n) => n === 1);
        expect(received[0]!.envelope).toMatchObject({ data: { title: 'old' }, reliable: true });
      });

      it('volatile: reach a connected session without an ack callback', async () => {
        const socket = await session(node.url, 'vol-on');
        const received = collect(socket);
        await post(node.url, { session: 'vol-on', delivery: 'volatile', data: 1 });
        await until(() => received.length, (n) => n === 1);
        expect(received[0]!.envelope.reliable).toBe(false);
        expect(received[0]!.ack).toBeUndefined();
      });

      it('volatile: are dropped and counted when the session is offline', async () => {
        const before = await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'volatile', outcome: 'dropped' });
        await post(node.url, { session: 'vol-off', delivery: 'volatile', data: 1 });
        await until(
          () => metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'volatile', outcome: 'dropped' }),
          (n) => n === before + 1,
        );
        expect((await getJson(node.url, '/v1/sessions/vol-off')).body.inbox).toBe(0);
      });
    });

    describe('groups and broadcast', () => {
      it('a group message reaches every member once, with the group named, and no one else', async () => {
        const a = await session(node.url, 'ga', ['team']);
        const b = await session(node.url, 'gb', ['team', 'other']);
        const outsider = await session(node.url, 'gc', ['other']);
        const [ra, rb, rc] = [collect(a), collect(b), collect(outsider)];
        await post(node.url, { id: 'team-1', group: 'team', data: 'standup' });
        await until(() => ra.length + rb.length, (n) => n === 2);
        await sleep(50);
        expect(ra.map((r) => r.envelope)).toEqual([expect.objectContaining({ id: 'team-1', group: 'team' })]);
        expect(rb).toHaveLength(1);
        expect(rc).toHaveLength(0);
      });

      it('a broadcast reaches every connected socket', async () => {
        const sockets = await Promise.all([session(node.url, 'b1'), session(node.url, 'b2'), connectClient(node.url)]);
        const received = sockets.map((s) => collect(s, 'announce'));
        await post(node.url, { id: 'bc-1', broadcast: true, event: 'announce', data: 'hello all' });
        await until(() => received.map((r) => r.length), (counts) => counts.every((n) => n === 1));
      });
    });

    describe('reliable delivery', () => {
      it('is done when the client acks: nothing stays in the inbox', async () => {
        const socket = await session(node.url, 'acker');
        const received = collect(socket);
        const before = await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'delivered' });
        await post(node.url, { session: 'acker', data: 1 });
        await until(() => received.length, (n) => n === 1);
        await until(
          () => metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'delivered' }),
          (n) => n === before + 1,
        );
        await sleep(400);
        expect((await getJson(node.url, '/v1/sessions/acker')).body.inbox).toBe(0);
      });

      it('goes to the inbox when the client does not ack in time, and is replayed when it registers again', async () => {
        const silent = await session(node.url, 'no-ack');
        const first = collect(silent, 'message', { ack: false });
        await post(node.url, { id: 'unacked-1', session: 'no-ack', data: 'important' });
        await until(() => first.length, (n) => n === 1);
        await until(async () => (await getJson(node.url, '/v1/sessions/no-ack')).body.inbox, (n) => n === 1);
        silent.close();

        const again = await connectClient(node.url);
        const replayed = collect(again);
        await register(again, { sessionId: 'no-ack' });
        await until(() => replayed.length, (n) => n === 1);
        expect(replayed[0]!.envelope).toMatchObject({ id: 'unacked-1', data: 'important', reliable: true });
        await until(async () => (await getJson(node.url, '/v1/sessions/no-ack')).body.inbox, (n) => n === 0);
      });

      it('waits in the inbox while the session is offline and is replayed oldest first', async () => {
        await post(node.url, [
          { id: 'off-1', session: 'offline', data: 1 },
          { id: 'off-2', session: 'offline', data: 2 },
          { id: 'off-3', session: 'offline', data: 3 },
        ]);
        await until(async () => (await getJson(node.url, '/v1/sessions/offline')).body, (b) => b.inbox === 3);
        expect((await getJson(node.url, '/v1/sessions/offline')).body).toEqual({ online: false, sockets: 0, nodes: [], inbox: 3 });

        const socket = await connectClient(node.url);
        const received = collect(socket);
        await register(socket, { sessionId: 'offline' });
        await until(() => received.length, (n) => n === 3);
        expect(ids(received)).toEqual(['off-1', 'off-2', 'off-3']);
        await until(async () => (await getJson(node.url, '/v1/sessions/offline')).body.inbox, (n) => n === 0);
      });

      it('stays in the inbox when a replayed message is not acked', async () => {
        await post(node.url, { id: 'sticky', session: 'replay-no-ack', data: 1 });
        await until(async () => (await getJson(node.url, '/v1/sessions/replay-no-ack')).body.inbox, (n) => n === 1);
        const socket = await connectClient(node.url);
        const received = collect(socket, 'message', { ack: false });
        await register(socket, { sessionId: 'replay-no-ack' });
        await until(() => received.length, (n) => n === 1);
        await sleep(500);
        expect((await getJson(node.url, '/v1/sessions/replay-no-ack')).body.inbox).toBe(1);
      });

      it('expires in the inbox when its ttl runs out, and the expiry is counted', async () => {
        const before = await metric(node.url, 'pushcenter_inbox_total', { op: 'expired' });
        await post(node.url, { id: 'short-lived', session: 'ttl-session', data: 1, ttl: 150 });
        await until(async () => (await getJson(node.url, '/v1/sessions/ttl-session')).body.inbox, (n) => n === 1);
        await sleep(250);
        const socket = await connectClient(node.url);
        const received = collect(socket);
        await register(socket, { sessionId: 'ttl-session' });
        await sleep(200);
        expect(received).toHaveLength(0);
        expect(await metric(node.url, 'pushcenter_inbox_total', { op: 'expired' })).toBe(before + 1);
      });

      it('expires in the queue when its ttl runs out before dispatch, and the expiry is counted', async () => {
        const before = await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'expired' });
        await node.app.queue.pause();
        await post(node.url, { session: 'queued-too-long', data: 1, ttl: 50 });
        await sleep(120);
        node.app.queue.resume();
        await until(
          () => metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'expired' }),
          (n) => n === before + 1,
        );
        expect((await getJson(node.url, '/v1/sessions/queued-too-long')).body.inbox).toBe(0);
      });

      it('keeps at most INBOX_MAX messages for a session that is away, dead-lettering the oldest as inbox_full', async () => {
        const before = await metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' });
        const published = [1, 2, 3, 4, 5].map((i) => `bound-${i}`);
        await post(node.url, published.map((id, i) => ({ id, session: 'bounded', data: i })));
        await until(() => metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' }), (n) => n === before + 2);
        expect(await metric(node.url, 'pushcenter_inbox_total', { op: 'evicted' })).toBeGreaterThanOrEqual(2);
        const dead = await deadLettersOf(published);
        expect(dead.map((d) => `${d.id}:${d.reason}`).sort()).toEqual(['bound-1:inbox_full', 'bound-2:inbox_full']);

        const socket = await connectClient(node.url);
        const received = collect(socket);
        const gapsBefore = await metric(node.url, 'pushcenter_gap_notices_total');
        const answer = await register(socket, { sessionId: 'bounded' });
        expect(answer).toMatchObject({ ok: true, missed: { count: 2, since: expect.any(Number) } });
        await until(() => received.length, (n) => n === 3);
        expect(ids(received)).toEqual(['bound-3', 'bound-4', 'bound-5']);
        expect(await metric(node.url, 'pushcenter_gap_notices_total')).toBe(gapsBefore + 1);
        expectConserved(published, { delivered: ids(received), waiting: [], deadLettered: dead });

        // Told once: the next registration has nothing to report.
        expect(await register(socket, { sessionId: 'bounded' })).not.toHaveProperty('missed');
      });

      it('dead-letters a message whose ttl ran out in the inbox as inbox_expired, and tells the session', async () => {
        const before = await metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_expired' });
        await post(node.url, { id: 'expiring', session: 'ttl-gap', data: 1, ttl: 100 });
        await until(async () => (await getJson(node.url, '/v1/sessions/ttl-gap')).body.inbox, (n) => n === 1);
        await sleep(150);
        const socket = await connectClient(node.url);
        // The register's replay reads the inbox and finds the entry expired; the next one is told.
        await register(socket, { sessionId: 'ttl-gap' });
        await until(() => metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_expired' }), (n) => n === before + 1);
        expect(await deadLettersOf(['expiring'])).toEqual([{ id: 'expiring', reason: 'inbox_expired' }]);
        expect(await register(socket, { sessionId: 'ttl-gap' })).toMatchObject({ missed: { count: 1 } });
      });

      it('delivers a burst of 10 × INBOX_MAX to a connected, acking session in full and in order, serving others meanwhile', async () => {
        const flooded = await session(node.url, 'flooded');
        const floodReceived = collect(flooded);
        const neighbour = await session(node.url, 'neighbour');
        const neighbourReceived = collect(neighbour);
        const fullBefore = await metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' });
        const stored = await metric(node.url, 'pushcenter_inbox_total', { op: 'stored' });

        const burst = Array.from({ length: 30 }, (_, i) => `burst-${String(i).padStart(3, '0')}`);
        const posting = post(node.url, burst.map((id, i) => ({ id, session: 'flooded', data: i })));
        await post(node.url, { id: 'neighbour-1', session: 'neighbour', data: 1 });
        await posting;
        await until(() => neighbourReceived.length, (n) => n === 1);
        await until(() => floodReceived.length, (n) => n >= burst.length, 10_000);

        // Through the inbox (two un-acked at a time), yet nothing given up and nothing out of order.
        expect(await metric(node.url, 'pushcenter_inbox_total', { op: 'stored' })).toBeGreaterThan(stored);
        expect(await metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' })).toBe(fullBefore);
        const arrivals = [...new Set(ids(floodReceived))];
        // When the order breaks, what else happened meanwhile says why (a failed inbox write requeues).
        const why = JSON.stringify(Object.fromEntries(await Promise.all(['failed', 'stored', 'expired'].map(async (outcome) =>
          [outcome, await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome })]))));
        expect(arrivals, why).toEqual(burst);
        await until(async () => (await getJson(node.url, '/v1/sessions/flooded')).body.inbox, (n) => n === 0);
        expectConserved(burst, { delivered: ids(floodReceived), waiting: await waitingIds(node.app, 'flooded'), deadLettered: [] });
      });
    });

    /** The dead letters of these ids (taken from the dead-letter queue; others' are dropped). */
    async function deadLettersOf(wanted: string[]): Promise<DeadLetterSeen[]> {
      const letters = await until(
        async () => (await takeDeadLetters(node.app)).filter((letter) => wanted.includes(letter.id ?? '')),
        (found) => found.length > 0,
      );
      return letters;
    }

    describe('receipts', () => {
      const receipt = async (id: string) => (await getJson(node.url, `/v1/notifications/${encodeURIComponent(id)}`)).body;
      const outcomes = (r: { events: Array<{ outcome: string }> }) => r.events.map((e) => e.outcome);
      const me = () => node.app.config.nodeId;

      it('says delivered, where and when, once the client acked', async () => {
        const socket = await session(node.url, 'rc-now');
        const received = collect(socket);
        expect((await post(node.url, { id: 'rc-now-1', session: 'rc-now', data: 1 })).status).toBe(202);
        await until(() => received.length, (n) => n === 1);
        const r = await until(() => receipt('rc-now-1'), (b) => b.status === 'delivered');
        expect(r).toEqual({
          id: 'rc-now-1',
          status: 'delivered',
          target: { session: ['rc-now'] },
          events: [
            { at: expect.any(Number), outcome: 'accepted', node: me() },
            { at: expect.any(Number), outcome: 'delivered', node: me() },
          ],
        });
      });

      it('says stored, then delivered once the session registered and acked, in that order', async () => {
        await post(node.url, { id: 'rc-later-1', session: 'rc-later', data: 1 });
        await until(() => receipt('rc-later-1'), (b) => b.status === 'stored');
        const socket = await connectClient(node.url);
        const received = collect(socket);
        await register(socket, { sessionId: 'rc-later' });
        await until(() => received.length, (n) => n === 1);
        const r = await until(() => receipt('rc-later-1'), (b) => b.status === 'delivered');
        expect(outcomes(r)).toEqual(['accepted', 'stored', 'delivered']);
      });

      it('says dead with the reason for what the inbox gave up', async () => {
        const published = [1, 2, 3, 4, 5].map((i) => `rc-full-${i}`);
        await post(node.url, published.map((id, i) => ({ id, session: 'rc-full', data: i })));
        const first = await until(() => receipt('rc-full-1'), (b) => b.status === 'dead');
        // Its `stored` may be written just after (the same store evicted it): the dead event is what counts.
        expect(first.events.find((e: { outcome: string }) => e.outcome === 'dead')).toEqual({ at: expect.any(Number), outcome: 'dead', node: me(), reason: 'inbox_full' });
        expect((await receipt('rc-full-5')).status).toBe('stored');
      });

      it('says dropped, and why, for a volatile message nobody could take', async () => {
        await post(node.url, { id: 'rc-gone', session: 'rc-nobody', data: 1, delivery: 'volatile' });
        const r = await until(() => receipt('rc-gone'), (b) => b.status === 'dropped');
        expect(r.events.at(-1)).toMatchObject({ outcome: 'dropped', reason: 'no_sockets' });
      });

      it('counts the sockets a group message reached', async () => {
        const members = [await session(node.url, 'rc-m1', ['rc-room']), await session(node.url, 'rc-m2', ['rc-room'])];
        const got = members.map((m) => collect(m));
        await post(node.url, { id: 'rc-group', group: 'rc-room', data: 1 });
        await until(() => got.map((g) => g.length), (n) => n.every((x) => x === 1));
        // The HTTP API's accepted event may land a batch after the outcome.
        const r = await until(() => receipt('rc-group'), (b) => b.status === 'delivered' && b.target !== null);
        expect(r).toMatchObject({ target: { group: ['rc-room'] }, sockets: 2 });
      });

      it('answers 404 for a notification it knows nothing of', async () => {
        const { status, body } = await getJson(node.url, '/v1/notifications/never-sent');
        expect(status).toBe(404);
        expect(body.error.code).toBe('not_found');
      });
    });

    describe('idempotent publishing', () => {
      const postWithKey = (body: unknown, key: string) => post(node.url, body, { 'idempotency-key': key });

      it('answers a retry with the first request\'s ids and enqueues nothing', async () => {
        const socket = await session(node.url, 'idem-retry');
        const received = collect(socket);
        const body = [{ session: 'idem-retry', data: 1 }, { session: 'idem-retry', data: 2 }];
        const first = await postWithKey(body, 'retry-key-1');
        const again = await postWithKey(body, 'retry-key-1');
        expect(first.status).toBe(202);
        expect(again.status).toBe(202);
        expect(again.body.ids).toEqual(first.body.ids);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        await until(() => received.length, (n) => n >= 2);
        await sleep(150);
        expect(received.map((r) => r.envelope.id)).toEqual(first.body.ids);
      });

      it('enqueues once for two requests with one key arriving at once', async () => {
        const socket = await session(node.url, 'idem-race');
        const received = collect(socket);
        const body = { session: 'idem-race', data: 'once' };
        const [a, b] = await Promise.all([postWithKey(body, 'race-key'), postWithKey(body, 'race-key')]);
        expect([a.status, b.status]).toEqual([202, 202]);
        expect(a.body.ids).toEqual(b.body.ids);
        await until(() => received.length, (n) => n >= 1);
        await sleep(150);
        expect(received).toHaveLength(1);
      });

      it('refuses the key with another body: 422 naming the problem', async () => {
        expect((await postWithKey({ session: 'idem-other', data: 1 }, 'reused-key')).status).toBe(202);
        const reused = await postWithKey({ session: 'idem-other', data: 2 }, 'reused-key');
        expect(reused.status).toBe(422);
        expect(reused.body.error).toEqual({ code: 'idempotency_key_reused', message: expect.stringContaining('different body') });
      });

      it('refuses a malformed key with 400', async () => {
        const bad = await postWithKey({ session: 'idem-bad', data: 1 }, 'has space');
        expect(bad.status).toBe(400);
        expect(bad.body.error.code).toBe('invalid_idempotency_key');
      });

      it('delivers a notification id accepted twice once', async () => {
        const socket = await session(node.url, 'idem-id');
        const received = collect(socket);
        const before = await metric(node.url, 'pushcenter_duplicate_publishes_total');
        await post(node.url, { id: 'same-id-twice', session: 'idem-id', data: 1 });
        await post(node.url, { id: 'same-id-twice', session: 'idem-id', data: 1 });
        await until(() => metric(node.url, 'pushcenter_duplicate_publishes_total'), (n) => n === before + 1);
        await sleep(100);
        expect(received).toHaveLength(1);
      });
    });

    describe('HTTP API', () => {
      it('lists this node in the cluster view, with its sockets and sessions', async () => {
        await session(node.url, 'cluster-view');
        const { status, body } = await getJson(node.url, '/v1/cluster');
        expect(status).toBe(200);
        const me = body.find((n: { id: string }) => n.id === node.app.config.nodeId);
        expect(me).toEqual({
          id: node.app.config.nodeId,
          startedAt: expect.any(Number),
          sockets: expect.any(Number),
          sessions: expect.any(Number),
          inflight: expect.any(Number),
          paused: false,
          version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        });
        expect(me.sockets).toBeGreaterThanOrEqual(1);
        expect(me.sessions).toBeGreaterThanOrEqual(1);
      });

      it('lists the dead letters kept in memory in embedded mode, and says where they are otherwise', async () => {
        const before = await metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' });
        await post(node.url, [1, 2, 3, 4, 5].map((i) => ({ id: `listed-${i}`, session: 'listed', data: i })));
        await until(() => metric(node.url, 'pushcenter_dead_letters_total', { reason: 'inbox_full' }), (n) => n === before + 2);
        const { status, body } = await getJson(node.url, '/v1/dead-letters?reason=inbox_full&limit=2');
        if (node.app.queue.engine === 'amqp') {
          expect(status).toBe(404);
          expect(body.error).toEqual({ code: 'not_embedded', message: expect.stringContaining(node.app.config.amqp.deadLetterQueue) });
          return;
        }
        expect(status).toBe(200);
        expect(body.counts.inbox_full).toBeGreaterThanOrEqual(2);
        expect(body.letters).toEqual([1, 2].map((i) => ({
          at: expect.any(Number),
          reason: 'inbox_full',
          detail: 'the inbox of session "listed" was over its bound',
          id: `listed-${i}`,
          notification: { id: `listed-${i}`, session: 'listed', event: 'message', data: i, delivery: 'reliable' },
        })));
        expect((await getJson(node.url, '/v1/dead-letters?limit=0')).status).toBe(400);
      });

      it('refuses an invalid notification with 400 and the reason, enqueuing nothing of the request', async () => {
        const before = await metric(node.url, 'pushcenter_messages_invalid_total', { reason: 'no_target' });
        const received = await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'stored' });
        const response = await post(node.url, [
          { session: 'never', data: 1 },
          { data: 'no target' },
          { session: 'never', event: 'connect', data: 1 },
        ]);
        expect(response.status).toBe(400);
        expect(response.body.error.code).toBe('invalid_notification');
        expect(response.body.error.reasons).toEqual([
          { index: 1, reason: 'no_target', message: expect.stringContaining('at least one of session, group') },
          { index: 2, reason: 'reserved_event', message: expect.stringContaining('reserved') },
        ]);
        expect(await metric(node.url, 'pushcenter_messages_invalid_total', { reason: 'no_target' })).toBe(before + 1);
        await sleep(50);
        expect((await getJson(node.url, '/v1/sessions/never')).body.inbox).toBe(0);
        expect(await metric(node.url, 'pushcenter_deliveries_total', { target: 'session', mode: 'reliable', outcome: 'stored' })).toBe(received);
      });

      it('refuses a body that is not JSON with 400', async () => {
        const response = await post(node.url, '{"session": ');
        expect(response.status).toBe(400);
        expect(response.body.error.reasons[0].reason).toBe('not_json');
      });

      it('refuses a notification over the size limit with 413', async () => {
        const response = await post(node.url, { session: 's', data: 'x'.repeat(70_000) });
        expect(response.status).toBe(413);
        expect(response.body.error.code).toBe('too_large');
      });

      it('refuses another content type with 415', async () => {
        const response = await fetch(`${node.url}/v1/notifications`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
        expect(response.status).toBe(415);
      });

      it('answers health and readiness', async () => {
        expect(await getJson(node.url, '/healthz')).toEqual({ status: 200, body: { status: 'alive' } });
        const ready = await getJson(node.url, '/readyz');
        expect(ready).toMatchObject({ status: 200, body: { ready: true, checks: { consuming: true } } });
        expect(Object.values(ready.body.checks).every((ok) => ok === true)).toBe(true);
      });

      it('exposes every metric of the contract with the counts that happened', async () => {
        const text = await (await fetch(`${node.url}/metrics`)).text();
        for (const name of [
          'pushcenter_connected_sockets',
          'pushcenter_sessions',
          'pushcenter_messages_received_total',
          'pushcenter_messages_invalid_total',
          'pushcenter_deliveries_total',
          'pushcenter_delivery_latency_seconds',
          'pushcenter_inflight_messages',
          'pushcenter_consumer_paused',
          'pushcenter_backpressure_events_total',
          'pushcenter_inbox_total',
          'pushcenter_duplicates_suppressed_total',
          'pushcenter_dependency_up',
          'nodejs_eventloop_lag_p99_seconds',
        ]) {
          expect(text).toContain(`# TYPE ${name}`);
        }
        const received = await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' });
        await post(node.url, [{ session: 'counted', data: 1 }, { session: 'counted', data: 2 }]);
        expect(await metric(node.url, 'pushcenter_messages_received_total', { source: 'http' })).toBe(received + 2);
        await session(node.url, 'gauge-check');
        expect(await metric(node.url, 'pushcenter_connected_sockets')).toBeGreaterThanOrEqual(1);
        expect(await metric(node.url, 'pushcenter_sessions')).toBeGreaterThanOrEqual(1);
        expect(await metric(node.url, 'pushcenter_delivery_latency_seconds_count', { mode: 'reliable' })).toBeGreaterThan(0);
        expect(await metric(node.url, 'pushcenter_consumer_paused')).toBe(0);
      });
    });
  });
}
