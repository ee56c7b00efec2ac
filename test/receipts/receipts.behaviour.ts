import { describe, expect, it } from 'vitest';
import type { IdClaims, ReceiptStore } from '../../src/receipts/receipts.js';

/** What each engine is built with: a clock the test moves, the TTL and the bound. */
export interface Settings {
  now: () => number;
  ttlMs: number;
  max: number;
}

export interface Made<T> {
  engine: T;
  /** Waits until everything added is readable (engines may batch writes). */
  settle(): Promise<void>;
}

/** The receipt store's behaviour, the same on every engine. */
export function describeReceiptStore(name: string, make: (settings: Settings) => Made<ReceiptStore>): void {
  describe(name, () => {
    const start = 1_800_000_000_000;

    it('keeps the events of a notification, accepted first, then in time order, and its status is the latest outcome', async () => {
      const clock = start;
      const { engine, settle } = make({ now: () => clock, ttlMs: 60_000, max: 100 });
      engine.add('n-1', { at: start + 5, outcome: 'stored', node: 'a' });
      engine.add('n-1', { at: start + 9, outcome: 'delivered', node: 'b' });
      // The HTTP API may write `accepted` after the consuming node wrote an outcome.
      engine.add('n-1', { at: start + 1, outcome: 'accepted', node: 'c', target: { session: ['s1'] } });
      await settle();
      expect(await engine.get('n-1')).toEqual({
        id: 'n-1',
        status: 'delivered',
        target: { session: ['s1'] },
        events: [
          { at: start + 1, outcome: 'accepted', node: 'c' },
          { at: start + 5, outcome: 'stored', node: 'a' },
          { at: start + 9, outcome: 'delivered', node: 'b' },
        ],
      });
      expect(await engine.get('unknown')).toBeUndefined();
    });

    it('says dead, not stored, when a stored event was written after the entry was given up', async () => {
      const { engine, settle } = make({ now: () => start, ttlMs: 60_000, max: 100 });
      engine.add('late-store', { at: start, outcome: 'accepted' });
      engine.add('late-store', { at: start + 3, outcome: 'dead', reason: 'inbox_full' });
      engine.add('late-store', { at: start + 4, outcome: 'stored' });
      await settle();
      expect((await engine.get('late-store'))?.status).toBe('dead');
    });

    it('sums the sockets a group message reached over the nodes', async () => {
      const { engine, settle } = make({ now: () => start, ttlMs: 60_000, max: 100 });
      engine.add('g-1', { at: start, outcome: 'accepted', target: { group: ['room'] } });
      engine.add('g-1', { at: start + 1, outcome: 'delivered', node: 'a', sockets: 2 });
      engine.add('g-1', { at: start + 2, outcome: 'delivered', node: 'b', sockets: 3 });
      await settle();
      expect(await engine.get('g-1')).toMatchObject({ status: 'delivered', sockets: 5 });
    });

    it('forgets a receipt once its TTL ran out after its first event', async () => {
      let clock = start;
      const { engine, settle } = make({ now: () => clock, ttlMs: 1000, max: 100 });
      engine.add('old', { at: clock, outcome: 'accepted' });
      await settle();
      clock = start + 999;
      expect(await engine.get('old')).toBeDefined();
      clock = start + 1000;
      expect(await engine.get('old')).toBeUndefined();
    });

    it('keeps ids apart whatever they hold', async () => {
      const { engine, settle } = make({ now: () => start, ttlMs: 60_000, max: 100 });
      const tricky = ['a\nb', 'a', 'b', '{x}', 'ü*?[]', ' '];
      tricky.forEach((id, i) => engine.add(id, { at: start + i, outcome: 'dropped', reason: `r${i}` }));
      await settle();
      for (const [i, id] of tricky.entries()) {
        expect((await engine.get(id))?.events).toEqual([{ at: start + i, outcome: 'dropped', reason: `r${i}` }]);
      }
    });
  });
}

/** The id claims' behaviour, the same on every engine. */
export function describeIdClaims(name: string, make: (settings: Settings) => Made<IdClaims>): void {
  describe(name, () => {
    const start = 1_800_000_000_000;

    it('lets the first message with an id claim it; another with that id within the window is not first', async () => {
      let clock = start;
      const { engine } = make({ now: () => clock, ttlMs: 1000, max: 100 });
      expect(await engine.claim('m-1')).toBe(true);
      expect(await engine.claim('m-1')).toBe(false);
      expect(await engine.claim('m-2')).toBe(true);
      clock = start + 1000;
      // After the window the id is free again.
      expect(await engine.claim('m-1')).toBe(true);
    });

    it('lets exactly one of many claims of one id made at once win', async () => {
      const { engine } = make({ now: () => start, ttlMs: 60_000, max: 100 });
      const results = await Promise.all(Array.from({ length: 20 }, () => engine.claim('same')));
      expect(results.filter(Boolean)).toHaveLength(1);
    });
  });
}
