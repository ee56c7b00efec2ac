import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AckLog } from '../../src/inbox/ack-log.js';
import { TRICKY_SESSION_IDS } from './inbox.behaviour.js';

/**
 * What every acked-id log engine promises (the `AckLog` port), as one suite that each engine's test
 * file runs. Time is moved through the `now` option, never by sleeping.
 */

/** The options the suite varies; an engine's factory adds its own (connections, key prefixes). */
export interface AckLogSettings {
  ttlMs: number;
  now: () => number;
}

export type AckLogFactory = (settings: AckLogSettings) => AckLog | Promise<AckLog>;

/** Message ids that naive member building would mix up. */
export const TRICKY_MESSAGE_IDS = ['\uD800', '\uD801', 'a:b', 'a%003ab', '{m}', '}{', '', '*'];

export function describeAckLog(name: string, createLog: AckLogFactory): void {
  describe(`${name} (acked-id log behaviour)`, () => {
    const start = 1_700_000_000_000;
    let clock = start;
    const opened: AckLog[] = [];

    beforeEach(() => {
      clock = start;
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((log) => log.close()));
    });

    async function open(settings: Partial<AckLogSettings> = {}): Promise<AckLog> {
      const log = await createLog({ ttlMs: 60_000, now: () => clock, ...settings });
      opened.push(log);
      return log;
    }

    /** Which of `ids` the log still has for the session. */
    async function remembered(log: AckLog, sessionId: string, ids: string[]): Promise<string[]> {
      const found = await Promise.all(ids.map((id) => log.has(sessionId, id)));
      return ids.filter((_, i) => found[i]);
    }

    it('has nothing for a session that never recorded anything', async () => {
      const log = await open();
      expect(await log.has('nobody', 'm-1')).toBe(false);
    });

    it('has what the session recorded, and nothing else', async () => {
      const log = await open();
      await log.record('s1', 'm-1');
      await log.record('s1', 'm-2');

      expect(await log.has('s1', 'm-1')).toBe(true);
      expect(await log.has('s1', 'm-2')).toBe(true);
      expect(await log.has('s1', 'm-3')).toBe(false);
      expect(await log.has('s2', 'm-1')).toBe(false);
    });

    it('keeps sessions apart, whatever characters their ids contain', async () => {
      const log = await open();
      for (const session of TRICKY_SESSION_IDS) await log.record(session, `only-${session}`);

      for (const session of TRICKY_SESSION_IDS) {
        const others = TRICKY_SESSION_IDS.filter((other) => other !== session).map((other) => `only-${other}`);
        expect(await remembered(log, session, [`only-${session}`, ...others]), `session ${JSON.stringify(session)}`).toEqual([
          `only-${session}`,
        ]);
      }
    });

    it('keeps message ids apart that differ only in unusual characters', async () => {
      const log = await open();
      const [first, ...rest] = TRICKY_MESSAGE_IDS;
      await log.record('{x}', first!);
      expect(await remembered(log, '{x}', TRICKY_MESSAGE_IDS)).toEqual([first]);

      for (const id of rest) await log.record('{x}', id);
      expect(await remembered(log, '{x}', TRICKY_MESSAGE_IDS)).toEqual(TRICKY_MESSAGE_IDS);
      expect(await remembered(log, 'x', TRICKY_MESSAGE_IDS)).toEqual([]);
    });

    it('remembers an id until ttlMs after it was recorded', async () => {
      const log = await open({ ttlMs: 10_000 });
      await log.record('s1', 'm-1');

      clock = start + 9_999;
      expect(await log.has('s1', 'm-1')).toBe(true);
      clock = start + 10_000;
      expect(await log.has('s1', 'm-1')).toBe(false);
    });

    it('forgets old ids of a session that keeps recording, and keeps the recent ones', async () => {
      const log = await open({ ttlMs: 10_000 });
      await log.record('s1', 'old');
      clock = start + 6_000;
      await log.record('s1', 'recent');
      await log.record('s1', 'old-again');
      clock = start + 12_000;
      await log.record('s1', 'new');

      expect(await remembered(log, 's1', ['old', 'recent', 'old-again', 'new'])).toEqual(['recent', 'old-again', 'new']);
    });

    it('remembers an id recorded again for ttlMs from the latest record', async () => {
      const log = await open({ ttlMs: 10_000 });
      await log.record('s1', 'm-1');
      clock = start + 8_000;
      await log.record('s1', 'm-1');

      clock = start + 15_000;
      expect(await log.has('s1', 'm-1')).toBe(true);
      clock = start + 18_000;
      expect(await log.has('s1', 'm-1')).toBe(false);
    });

    it('remembers every one of many records made at once', async () => {
      const log = await open();
      const records: Promise<void>[] = [];
      for (let i = 0; i < 600; i += 1) records.push(log.record(`s-${i % 7}`, `m-${i}`));
      await Promise.all(records);

      for (let i = 0; i < 600; i += 1) expect(await log.has(`s-${i % 7}`, `m-${i}`), `m-${i}`).toBe(true);
      expect(await log.has('s-1', 'm-0')).toBe(false);
    });

    it('settles the records still pending when closed', async () => {
      const log = await open();
      const records = [log.record('s1', 'm-1'), log.record('s2', 'm-2')];
      await log.close();
      await expect(Promise.all(records)).resolves.toBeDefined();
    });
  });
}
