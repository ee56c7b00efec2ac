import { pino, type Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { ForwardHandler, ForwardOutcome, NodeBus } from '../../src/cluster/bus.js';
import type { Notification } from '../../src/notification/schema.js';

/**
 * What every node bus engine promises (the `NodeBus` port), as one suite that each engine's test file
 * runs with several nodes of one cluster.
 */

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export const WARN = 40;

/** A node's bus, and what the node logged. */
export interface BusNode {
  bus: NodeBus;
  logs: LogLine[];
}

/**
 * Starts a node's bus in the cluster of the running test: the test file makes a new, empty cluster for
 * each test, and closes what was started. `forwardTimeoutMs` defaults to 2000.
 */
export type StartBus = (nodeId: string, options?: { forwardTimeoutMs?: number }) => Promise<BusNode>;

/** A logger that keeps every line, debug included, for the test to look at. */
export function captureLogs(): { logger: Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  return { logger, logs };
}

export function notification(id: string, reliable = true): Notification {
  const now = Date.now();
  return {
    id,
    sessions: ['s1'],
    groups: [],
    broadcast: false,
    event: 'message',
    data: { text: `hello ${id}` },
    reliable,
    enqueuedAt: now,
    expiresAt: now + 60_000,
  };
}

/** A forward handler that records its calls and answers with `answer`. */
export function recordingHandler(answer: (sessionId: string, n: Notification) => Promise<ForwardOutcome> = async () => 'delivered') {
  const calls: Array<{ sessionId: string; notification: Notification }> = [];
  const handler: ForwardHandler = (sessionId, n) => {
    calls.push({ sessionId, notification: n });
    return answer(sessionId, n);
  };
  return { handler, calls };
}

export const never = () => new Promise<ForwardOutcome>(() => {});
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function describeBus(engine: string, start: StartBus): void {
  describe(`${engine} node bus`, () => {
    it('brings back the owning node\'s outcome of a reliable forward', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      const owner = recordingHandler(async (_session, n) => (n.id === 'yes' ? 'delivered' : 'not_delivered'));
      b.bus.onForward(owner.handler);

      expect(await a.bus.forward('B', 's1', notification('yes'))).toBe('delivered');
      expect(await a.bus.forward('B', 's1', notification('no'))).toBe('not_delivered');
      expect(owner.calls).toEqual([
        { sessionId: 's1', notification: expect.objectContaining({ id: 'yes', data: { text: 'hello yes' }, reliable: true }) },
        { sessionId: 's1', notification: expect.objectContaining({ id: 'no' }) },
      ]);
    });

    it('hands the owning node the notification as it was sent, as a copy of its own', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      const owner = recordingHandler();
      b.bus.onForward(owner.handler);
      const sent = { ...notification('m1'), sessions: ['s1', 's2'], groups: ['g'], data: [1, 'two', { three: null }] };

      await a.bus.forward('B', 's2', sent);
      expect(owner.calls).toEqual([{ sessionId: 's2', notification: sent }]);
      expect(owner.calls[0]?.notification).not.toBe(sent);
    });

    it('reports not_delivered when the owning node\'s handler fails', async () => {
      const [a, b] = await Promise.all([start('A'), start('B')]);
      b.bus.onForward(async () => {
        throw new Error('socket exploded');
      });

      expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('not_delivered');
      expect(b.logs.some((line) => line.msg === 'forward handler failed')).toBe(true);
    });

    it('resolves not_delivered at once when no node listens under that id', async () => {
      const a = await start('A', { forwardTimeoutMs: 10_000 });
      const started = Date.now();
      expect(await a.bus.forward('gone', 's1', notification('m1'))).toBe('not_delivered');
      expect(await a.bus.forward('gone', 's1', notification('m2', false))).toBe('not_delivered');
      expect(Date.now() - started).toBeLessThan(500);
    });

    it('resolves not_delivered at once for a node whose bus has closed', async () => {
      const [a, b] = await Promise.all([start('A', { forwardTimeoutMs: 10_000 }), start('B')]);
      b.bus.onForward(async () => 'delivered');
      await b.bus.close();

      const started = Date.now();
      expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('not_delivered');
      expect(Date.now() - started).toBeLessThan(500);
    });

    it('resolves not_delivered after forwardTimeoutMs when the owning node does not answer, and ignores a late answer', async () => {
      const [a, b] = await Promise.all([start('A', { forwardTimeoutMs: 300 }), start('B')]);
      let answer: (outcome: ForwardOutcome) => void = () => {};
      b.bus.onForward(() => new Promise((resolve) => (answer = resolve)));

      const started = Date.now();
      expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('not_delivered');
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(Date.now() - started).toBeLessThan(1_500);

      answer('delivered');
      await vi.waitFor(() => expect(a.logs.some((line) => line.msg === 'outcome arrived after its forward timed out')).toBe(true), { timeout: 1_000 });
    });

    it('resolves a volatile forward once it is on the bus, without waiting for the owning node', async () => {
      const [a, b] = await Promise.all([start('A', { forwardTimeoutMs: 10_000 }), start('B')]);
      let release: () => void = () => {};
      const owner = recordingHandler(() => new Promise((resolve) => (release = () => resolve('delivered'))));
      b.bus.onForward(owner.handler);

      expect(await a.bus.forward('B', 's1', notification('m1', false))).toBe('delivered');
      await vi.waitFor(() => expect(owner.calls).toHaveLength(1), { timeout: 1_000 });
      expect(owner.calls[0]?.notification.reliable).toBe(false);
      release();
    });

    it('forwards to the target node only', async () => {
      const [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
      const atB = recordingHandler();
      const atC = recordingHandler();
      b.bus.onForward(atB.handler);
      c.bus.onForward(atC.handler);

      expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('delivered');
      expect(await a.bus.forward('C', 's1', notification('m2', false))).toBe('delivered');
      await vi.waitFor(() => expect(atC.calls).toHaveLength(1), { timeout: 1_000 });
      await sleep(50);
      expect(atB.calls.map((call) => call.notification.id)).toEqual(['m1']);
      expect(atC.calls.map((call) => call.notification.id)).toEqual(['m2']);
    });

    it('gives each of 1000 concurrent forwards its own outcome', async () => {
      const [a, b, c] = await Promise.all([start('A', { forwardTimeoutMs: 10_000 }), start('B'), start('C')]);
      // Answers come back in a shuffled order; the outcome depends on the message and on the node.
      const answer = (node: string) => async (_session: string, n: Notification): Promise<ForwardOutcome> => {
        await sleep(Math.random() * 50);
        return (Number(n.id.slice(2)) % 3 === 0) === (node === 'B') ? 'delivered' : 'not_delivered';
      };
      b.bus.onForward(answer('B'));
      c.bus.onForward(answer('C'));

      const targets = Array.from({ length: 1000 }, (_, i) => ({ node: i % 2 === 0 ? 'B' : 'C', id: `m-${i}` }));
      const outcomes = await Promise.all(targets.map(({ node, id }) => a.bus.forward(node, 's1', notification(id))));

      const expected = targets.map(({ node, id }) => ((Number(id.slice(2)) % 3 === 0) === (node === 'B') ? 'delivered' : 'not_delivered'));
      expect(outcomes).toEqual(expected);
      expect(new Set(outcomes)).toEqual(new Set(['delivered', 'not_delivered']));
    });

    it('settles pending forwards as not_delivered on close, and refuses new ones', async () => {
      const [a, b] = await Promise.all([start('A', { forwardTimeoutMs: 10_000 }), start('B')]);
      b.bus.onForward(never);
      const pending = a.bus.forward('B', 's1', notification('m1'));
      await sleep(50);

      const started = Date.now();
      await a.bus.close();
      expect(await pending).toBe('not_delivered');
      expect(Date.now() - started).toBeLessThan(1_000);
      await expect(a.bus.forward('B', 's1', notification('m2'))).rejects.toThrow(/closed/);
      await expect(a.bus.requestReplay('B', 's1')).rejects.toThrow(/closed/);
      expect(a.bus.connected).toBe(false);
    });

    it('answers not_delivered to a reliable forward that arrives before a handler is installed', async () => {
      const [a] = await Promise.all([start('A'), start('B')]);
      expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('not_delivered');
    });

    it('asks the target node only for a replay, and sends one to a node that is gone without complaint', async () => {
      const [a, b, c] = await Promise.all([start('A'), start('B'), start('C')]);
      const atB: string[] = [];
      const atC: string[] = [];
      b.bus.onReplay((sessionId) => atB.push(sessionId));
      c.bus.onReplay((sessionId) => atC.push(sessionId));

      await a.bus.requestReplay('B', 's1');
      await a.bus.requestReplay('gone', 's2');
      await vi.waitFor(() => expect(atB).toEqual(['s1']), { timeout: 1_000 });
      await sleep(50);
      expect(atB).toEqual(['s1']);
      expect(atC).toEqual([]);
    });

    it('refuses to start under the node id of a running node', async () => {
      await start('A');
      await expect(start('A')).rejects.toThrow(/node id "A" is already used by a running node/);
    });
  });
}
