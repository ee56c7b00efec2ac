import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GiveUpReason, Inbox, InboxEntry, InboxEvents } from '../../src/inbox/inbox.js';

/**
 * What every inbox engine promises (the `Inbox` port, SPEC §4), as one suite that each engine's test
 * file runs. Time is moved through the `now` option, never by sleeping.
 */

/** The options the suite varies; an engine's factory adds its own (connections, key prefixes). */
export interface InboxSettings {
  maxPerSession: number;
  maxPerConnectedSession: number;
  now: () => number;
}

export type InboxFactory = (settings: InboxSettings, events: InboxEvents) => Inbox | Promise<Inbox>;

/** Every entry an inbox gave up, call by call: the stand-in for the dead-letter queue. */
export interface RecordedEvents extends InboxEvents {
  /** Entries given up per call, for `inbox_expired` and `inbox_full`. */
  expiredCalls: number[];
  evictedCalls: number[];
  expiredTotal(): number;
  evictedTotal(): number;
  /** Every entry given up, with its session and reason, in the order they came. */
  givenUp: Array<{ sessionId: string; reason: GiveUpReason; id: string }>;
  /** While set, `gaveUp` rejects with it (the dead-letter queue is down). */
  failWith: Error | undefined;
}

export function recordEvents(): RecordedEvents {
  const sum = (calls: number[]) => calls.reduce((total, n) => total + n, 0);
  const events: RecordedEvents = {
    expiredCalls: [],
    evictedCalls: [],
    givenUp: [],
    failWith: undefined,
    async gaveUp(sessionId, reason, entries) {
      if (events.failWith) throw events.failWith;
      (reason === 'inbox_full' ? events.evictedCalls : events.expiredCalls).push(entries.length);
      for (const entry of entries) events.givenUp.push({ sessionId, reason, id: entry.id });
    },
    expiredTotal: () => sum(events.expiredCalls),
    evictedTotal: () => sum(events.evictedCalls),
  };
  return events;
}

/** An entry as the dispatcher stores it, alive for `ttlMs` from `now`. */
export function inboxEntry(id: string, now: number, ttlMs = 60_000, data: unknown = { id }): InboxEntry {
  return { id, event: 'message', data, sentAt: now, reliable: true, expiresAt: now + ttlMs };
}

export const ids = (entries: InboxEntry[]): string[] => entries.map((entry) => entry.id);

/** Session ids that naive key building would mix up: separators, hash-tag braces, glob syntax, escapes. */
export const TRICKY_SESSION_IDS = [
  'a',
  'a:b',
  'a:b:data',
  '{x}',
  'x',
  '{x',
  'x}',
  '}{',
  '',
  '*',
  '[ab]',
  'a%003ab',
  'ünïcødé ✓ 😀',
  '\uD800',
  '\uD801',
];

export function describeInbox(name: string, createInbox: InboxFactory): void {
  describe(`${name} (inbox behaviour)`, () => {
    const start = 1_700_000_000_000;
    let clock = start;
    const opened: Inbox[] = [];

    beforeEach(() => {
      clock = start;
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((inbox) => inbox.close()));
    });

    async function open(maxPerSession = 100, maxPerConnectedSession = 1000): Promise<{ inbox: Inbox; events: RecordedEvents }> {
      const events = recordEvents();
      const inbox = await createInbox({ maxPerSession, maxPerConnectedSession, now: () => clock }, events);
      opened.push(inbox);
      return { inbox, events };
    }

    const entry = (id: string, ttlMs?: number, data?: unknown) => inboxEntry(id, clock, ttlMs, data);

    it('has nothing for a session that never stored anything', async () => {
      const { inbox } = await open();
      expect(await inbox.read('nobody', 10)).toEqual([]);
      expect(await inbox.size('nobody')).toBe(0);
    });

    it('returns the stored entries oldest first, exactly as they were stored', async () => {
      const { inbox, events } = await open();
      const stored: InboxEntry[] = [
        entry('m-2', 60_000, { text: 'first', nested: { list: [1, 2, 3], flag: true } }),
        { ...entry('m-1', 30_000, 'ünïcødé ✓ 😀'), group: 'team-a', event: 'order.created' },
        entry('m-3', 90_000, null),
      ];
      for (const e of stored) await inbox.store('s1', e);

      expect(await inbox.read('s1', 10)).toEqual(stored);
      expect(events.expiredCalls).toEqual([]);
      expect(events.evictedCalls).toEqual([]);
    });

    it('reads at most `limit` entries, the oldest, and leaves them in place until removed', async () => {
      const { inbox } = await open();
      for (const id of ['a', 'b', 'c', 'd']) await inbox.store('s1', entry(id));

      expect(ids(await inbox.read('s1', 2))).toEqual(['a', 'b']);
      expect(ids(await inbox.read('s1', 2))).toEqual(['a', 'b']);
      expect(await inbox.size('s1')).toBe(4);
      expect(await inbox.read('s1', 0)).toEqual([]);
    });

    it('stores a redelivered message once, in its original place', async () => {
      const { inbox } = await open();
      await inbox.store('s1', entry('a', 60_000, 'original'));
      await inbox.store('s1', entry('b'));
      await inbox.store('s1', entry('a', 90_000, 'redelivered'));

      const entries = await inbox.read('s1', 10);
      expect(ids(entries)).toEqual(['a', 'b']);
      expect(entries[0]?.data).toBe('original');
      expect(await inbox.size('s1')).toBe(2);
    });

    it('evicts the oldest entries beyond the bound and counts them', async () => {
      const { inbox, events } = await open(3);
      for (const id of ['1', '2', '3', '4', '5']) await inbox.store('s1', entry(id));

      expect(ids(await inbox.read('s1', 10))).toEqual(['3', '4', '5']);
      expect(await inbox.size('s1')).toBe(3);
      expect(events.evictedCalls).toEqual([1, 1]);
    });

    it('gives up the oldest entries beyond the bound, whole, as inbox_full', async () => {
      const { inbox, events } = await open(2);
      const stored = ['1', '2', '3', '4'].map((id) => entry(id, 60_000, { text: `m${id}` }));
      const handed: InboxEntry[] = [];
      const gaveUp = events.gaveUp;
      events.gaveUp = async (sessionId, reason, entries) => {
        handed.push(...entries);
        await gaveUp(sessionId, reason, entries);
      };
      for (const e of stored) await inbox.store('s:1', e);

      expect(events.givenUp).toEqual([
        { sessionId: 's:1', reason: 'inbox_full', id: '1' },
        { sessionId: 's:1', reason: 'inbox_full', id: '2' },
      ]);
      expect(handed).toEqual(stored.slice(0, 2));
    });

    it('holds up to the connected bound while the session has sockets, and the away bound again after', async () => {
      const { inbox, events } = await open(2, 5);
      for (const id of ['1', '2', '3', '4', '5']) await inbox.store('s1', entry(id), { connected: true });
      expect(await inbox.size('s1')).toBe(5);
      expect(events.givenUp).toEqual([]);

      await inbox.store('s1', entry('6'), { connected: true });
      expect(events.givenUp.map((g) => g.id)).toEqual(['1']);

      await inbox.store('s1', entry('7'));
      expect(ids(await inbox.read('s1', 10))).toEqual(['6', '7']);
      expect(events.givenUp.map((g) => `${g.reason}:${g.id}`)).toEqual(['1', '2', '3', '4', '5'].map((id) => `inbox_full:${id}`));
    });

    it('gives expired entries up as inbox_expired', async () => {
      const { inbox, events } = await open();
      await inbox.store('s1', entry('short', 1_000));
      await inbox.store('s1', entry('long', 5_000));
      clock = start + 1_000;
      await inbox.read('s1', 10);
      expect(events.givenUp).toEqual([{ sessionId: 's1', reason: 'inbox_expired', id: 'short' }]);
    });

    it('tells what a session missed once: how many were given up, since the first one was sent', async () => {
      const { inbox } = await open(1);
      expect(await inbox.takeMissed('s1')).toBeUndefined();
      await inbox.store('s1', inboxEntry('a', start + 10, 1_000));
      await inbox.store('s1', inboxEntry('b', start + 20));
      await inbox.store('s1', inboxEntry('c', start + 30));
      await inbox.store('other', inboxEntry('x', start + 5));
      await inbox.store('other', inboxEntry('y', start + 6));

      expect(await inbox.takeMissed('s1')).toEqual({ count: 2, since: start + 10 });
      expect(await inbox.takeMissed('s1')).toBeUndefined();

      clock = start + 100_000;
      await inbox.read('s1', 10);
      expect(await inbox.takeMissed('s1')).toEqual({ count: 1, since: start + 30 });
      expect(await inbox.takeMissed('other')).toEqual({ count: 1, since: start + 5 });
    });

    it('does not evict anything when a redelivered message arrives at a full inbox', async () => {
      const { inbox, events } = await open(2);
      await inbox.store('s1', entry('a'));
      await inbox.store('s1', entry('b'));
      await inbox.store('s1', entry('a'));

      expect(ids(await inbox.read('s1', 10))).toEqual(['a', 'b']);
      expect(events.evictedCalls).toEqual([]);
    });

    it('keeps an entry until the moment it expires', async () => {
      const { inbox, events } = await open();
      await inbox.store('s1', entry('a', 1_000));

      clock = start + 999;
      expect(ids(await inbox.read('s1', 10))).toEqual(['a']);
      clock = start + 1_000;
      expect(await inbox.read('s1', 10)).toEqual([]);
      expect(events.expiredCalls).toEqual([1]);
    });

    it('drops expired entries on read, counts them, and keeps the rest in order', async () => {
      const { inbox, events } = await open();
      await inbox.store('s1', entry('short-1', 1_000));
      await inbox.store('s1', entry('long-1', 5_000));
      await inbox.store('s1', entry('short-2', 1_000));
      await inbox.store('s1', entry('long-2', 5_000));

      clock = start + 2_000;
      expect(ids(await inbox.read('s1', 10))).toEqual(['long-1', 'long-2']);
      expect(await inbox.size('s1')).toBe(2);
      expect(events.expiredCalls).toEqual([2]);

      expect(ids(await inbox.read('s1', 10))).toEqual(['long-1', 'long-2']);
      expect(events.expiredCalls).toEqual([2]);
    });

    it('also drops the expired entries that lie beyond the read limit', async () => {
      const { inbox, events } = await open();
      await inbox.store('s1', entry('alive', 5_000));
      await inbox.store('s1', entry('stale-1', 1_000));
      await inbox.store('s1', entry('stale-2', 1_000));

      clock = start + 1_000;
      expect(ids(await inbox.read('s1', 1))).toEqual(['alive']);
      expect(await inbox.size('s1')).toBe(1);
      expect(events.expiredTotal()).toBe(2);
    });

    it('removes an acked entry and reports whether it was there', async () => {
      const { inbox } = await open();
      for (const id of ['a', 'b', 'c']) await inbox.store('s1', entry(id));

      expect(await inbox.remove('s1', 'b')).toBe(true);
      expect(await inbox.remove('s1', 'b')).toBe(false);
      expect(await inbox.remove('s1', 'unknown')).toBe(false);
      expect(await inbox.remove('other-session', 'a')).toBe(false);
      expect(ids(await inbox.read('s1', 10))).toEqual(['a', 'c']);
    });

    it('removes several acked entries in one step and says how many were there', async () => {
      const { inbox } = await open();
      for (const id of ['a', 'b', 'c', 'd']) await inbox.store('s1', entry(id));

      expect(await inbox.removeAll('s1', ['a', 'c', 'unknown', 'a'])).toBe(2);
      expect(await inbox.removeAll('s1', [])).toBe(0);
      expect(await inbox.removeAll('other', ['b'])).toBe(0);
      expect(ids(await inbox.read('s1', 10))).toEqual(['b', 'd']);
    });

    it('appends a message stored again after it was removed', async () => {
      const { inbox } = await open();
      for (const id of ['a', 'b']) await inbox.store('s1', entry(id));
      await inbox.remove('s1', 'a');
      await inbox.store('s1', entry('a'));

      expect(ids(await inbox.read('s1', 10))).toEqual(['b', 'a']);
    });

    it('keeps the order of later messages after the newest one was removed', async () => {
      const { inbox } = await open();
      for (const id of ['a', 'b', 'c']) await inbox.store('s1', entry(id));
      await inbox.remove('s1', 'c');
      await inbox.store('s1', entry('d'));
      await inbox.store('s1', entry('e'));

      expect(ids(await inbox.read('s1', 10))).toEqual(['a', 'b', 'd', 'e']);
    });

    it('counts the waiting messages in size', async () => {
      const { inbox } = await open();
      await inbox.store('s1', entry('a'));
      await inbox.store('s1', entry('b'));
      expect(await inbox.size('s1')).toBe(2);
      await inbox.remove('s1', 'a');
      expect(await inbox.size('s1')).toBe(1);
      await inbox.remove('s1', 'b');
      expect(await inbox.size('s1')).toBe(0);
    });

    it('keeps sessions apart, whatever characters their ids contain', async () => {
      const { inbox } = await open();
      for (const session of TRICKY_SESSION_IDS) {
        await inbox.store(session, entry('shared-id', 60_000, { session }));
        await inbox.store(session, entry(`only-${session}`));
      }

      for (const session of TRICKY_SESSION_IDS) {
        const entries = await inbox.read(session, 10);
        expect(ids(entries), `session ${JSON.stringify(session)}`).toEqual(['shared-id', `only-${session}`]);
        expect(entries[0]?.data).toEqual({ session });
      }
    });

    it('keeps messages apart whose ids differ only in unusual characters', async () => {
      const { inbox } = await open();
      const messageIds = ['\uD800', '\uD801', 'a:b', 'a%003ab', '{m}', ''];
      for (const id of messageIds) await inbox.store('s1', entry(id));

      expect(ids(await inbox.read('s1', 10))).toEqual(messageIds);
      expect(await inbox.remove('s1', '\uD800')).toBe(true);
      expect(ids(await inbox.read('s1', 10))).toEqual(messageIds.slice(1));
    });

    it('leaves other sessions alone when one session evicts, expires or removes', async () => {
      const { inbox, events } = await open(2);
      await inbox.store('a:b', entry('m', 1_000));
      await inbox.store('{x}', entry('m', 5_000));
      await inbox.store('x', entry('m', 5_000));

      await inbox.store('x', entry('n'));
      await inbox.store('x', entry('o'));
      expect(events.evictedTotal()).toBe(1);
      expect(await inbox.remove('{x}', 'm')).toBe(true);
      clock = start + 1_000;
      expect(await inbox.read('a:b', 10)).toEqual([]);
      expect(events.expiredTotal()).toBe(1);

      expect(ids(await inbox.read('x', 10))).toEqual(['n', 'o']);
      expect(await inbox.size('{x}')).toBe(0);
      expect(await inbox.size('a')).toBe(0);
    });
  });
}
