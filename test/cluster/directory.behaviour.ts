import { describe, expect, it, vi } from 'vitest';
import type { SessionDirectory } from '../../src/cluster/directory.js';

/**
 * What every session directory engine promises (the `SessionDirectory` port), as one suite that each
 * engine's test file runs with several nodes of one cluster.
 */

/**
 * Starts a node's directory in the cluster of the running test: the test file makes a new, empty cluster
 * for each test, and closes what was started.
 */
export type StartDirectory = (nodeId: string) => Promise<SessionDirectory>;

/** Session ids that naive key building would mix up: separators, escapes, braces, glob syntax, surrogates. */
export const TRICKY_SESSION_IDS = ['', 'a:b', 'a%003ab', 'a%3Ab', '{x}', '*', '?', 'a b', 'ü', '\ud800', '\ufffd', 'session:a'];

const waitBriefly = { timeout: 1_000, interval: 10 };

export function describeDirectory(engine: string, start: StartDirectory): void {
  describe(`${engine} session directory`, () => {
    it('shows a session on every node that holds sockets of it, with the socket count', async () => {
      const [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
      await a.setLocalSockets('s1', 2);
      await b.setLocalSockets('s1', 1);

      for (const node of [a, b, c]) {
        const presence = await node.presence('s1');
        expect(presence.nodes.sort()).toEqual(['A', 'B']);
        expect(presence.sockets).toBe(3);
      }
      expect(await a.remoteNodes('s1')).toEqual(['B']);
      expect(await b.remoteNodes('s1')).toEqual(['A']);
      expect((await c.remoteNodes('s1')).sort()).toEqual(['A', 'B']);
      expect(await c.presence('nobody')).toEqual({ nodes: [], sockets: 0 });
    });

    it('removes a node from the session when its last socket is gone', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      await b.setLocalSockets('s1', 3);
      await b.setLocalSockets('s1', 1);
      expect(await a.presence('s1')).toEqual({ nodes: ['B'], sockets: 1 });

      await b.setLocalSockets('s1', 0);
      expect(await a.remoteNodes('s1')).toEqual([]);
      expect(await a.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    });

    it('sees every change of another node\'s entries, also where it answered from its cache before', async () => {
      const [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
      expect(await a.remoteNodes('moving')).toEqual([]);
      await b.setLocalSockets('moving', 1);
      await vi.waitFor(async () => expect(await a.remoteNodes('moving')).toEqual(['B']), waitBriefly);
      await b.setLocalSockets('moving', 0);
      await c.setLocalSockets('moving', 2);
      await vi.waitFor(async () => expect(await a.remoteNodes('moving')).toEqual(['C']), waitBriefly);
      await c.setLocalSockets('moving', 0);
      await vi.waitFor(async () => expect(await a.remoteNodes('moving')).toEqual([]), waitBriefly);
      expect(await a.remoteNodes('moving', { fresh: true })).toEqual([]);
    });

    it('answers knownRemoteNodes from what it knows without asking, or not at all', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      await b.setLocalSockets('s1', 1);
      // Once the change's announcement has come by (it may drop a lookup made before it), a lookup is known.
      await vi.waitFor(async () => {
        expect(await a.remoteNodes('s1')).toEqual(['B']);
        expect(a.knownRemoteNodes('s1')).toEqual(['B']);
      }, waitBriefly);
      // Never looked up: the answer may be unknown, but if there is one it is right.
      expect([undefined, []]).toContainEqual(a.knownRemoteNodes('elsewhere'));

      await b.setLocalSockets('s1', 0);
      await vi.waitFor(() => expect([undefined, []]).toContainEqual(a.knownRemoteNodes('s1')), waitBriefly);
    });

    it('keeps sessions whose ids differ only in special characters apart', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      for (const [i, id] of TRICKY_SESSION_IDS.entries()) await b.setLocalSockets(id, i + 1);

      for (const [i, id] of TRICKY_SESSION_IDS.entries()) {
        expect(await a.presence(id), JSON.stringify(id)).toEqual({ nodes: ['B'], sockets: i + 1 });
      }
    });

    it('stops counting a node that left, and records nothing for it afterwards', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      await a.setLocalSockets('s1', 1);
      await a.setLocalSockets('s2', 1);
      await b.setLocalSockets('s1', 1);

      await a.close();
      expect(a.connected).toBe(false);
      expect(await b.remoteNodes('s1')).toEqual([]);
      expect(await b.presence('s1')).toEqual({ nodes: ['B'], sockets: 1 });
      expect(await b.presence('s2')).toEqual({ nodes: [], sockets: 0 });
      // A socket leaving during shutdown does not bring the node back.
      await a.setLocalSockets('s1', 0);
      await a.setLocalSockets('s3', 1);
      expect(await b.presence('s3')).toEqual({ nodes: [], sockets: 0 });
    });

    it('lists the live nodes that report a status, each with its latest one, the same from every node', async () => {
      const [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
      const status = (sockets: number) => ({ startedAt: 1_700_000_000_000, sockets, sessions: sockets, inflight: 0, paused: false, version: '1.2.3' });
      let bSockets = 1;
      a.reportStatus(() => status(5));
      b.reportStatus(() => status(bSockets));
      expect(await a.nodes()).toContainEqual({ id: 'A', ...status(5) });
      await vi.waitFor(async () => {
        for (const node of [a, b, c]) expect(await node.nodes()).toEqual([{ id: 'A', ...status(5) }, { id: 'B', ...status(1) }]);
      }, { timeout: 3_000, interval: 20 });

      bSockets = 7;
      await vi.waitFor(async () => expect(await a.nodes()).toEqual([{ id: 'A', ...status(5) }, { id: 'B', ...status(7) }]), { timeout: 3_000, interval: 20 });
      await b.close();
      await vi.waitFor(async () => expect((await c.nodes()).map((n) => n.id)).toEqual(['A']), { timeout: 3_000, interval: 20 });
    });

    it('rejects a socket count that is not a whole number >= 0', async () => {
      const a = await start('A');
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expect(a.setLocalSockets('s1', bad), String(bad)).rejects.toThrow(RangeError);
      }
      expect(await a.presence('s1')).toEqual({ nodes: [], sockets: 0 });
    });
  });
}
