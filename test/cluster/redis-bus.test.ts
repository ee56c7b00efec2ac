import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { RedisBus } from '../../src/cluster/redis-bus.js';
import { notification, recordingHandler, sleep, WARN } from './bus.behaviour.js';
import { RedisNodes } from './redis-nodes.js';

/** What the node bus does on Redis: its channels and the frames on them. */

const redis = RedisNodes.use();

describe('RedisBus on Redis', () => {
  it('sends nothing back for a volatile forward', async () => {
    const [a, b] = await Promise.all([redis.startNode('A', { forwardTimeoutMs: 10_000 }), redis.startNode('B')]);
    let release: () => void = () => {};
    const owner = recordingHandler(() => new Promise((resolve) => (release = () => resolve('delivered'))));
    b.bus.onForward(owner.handler);
    const backToA = await redis.listenOn(redis.busChannel('A'));

    expect(await a.bus.forward('B', 's1', notification('m1', false))).toBe('delivered');
    await vi.waitFor(() => expect(owner.calls).toHaveLength(1), { timeout: 1_000 });
    release();
    await sleep(100);
    expect(backToA).toEqual([]);
  });

  it('ignores malformed frames on its channel and keeps working', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    const owner = recordingHandler();
    b.bus.onForward(owner.handler);
    const { sessions: _sessions, ...withoutSessions } = notification('bad');
    const garbage = [
      'not json',
      'null',
      '42',
      '[]',
      '{}',
      '{"type":"deliver"}',
      JSON.stringify({ type: 'deliver', from: 'A', corr: 'c1', session: 's1', notification: withoutSessions }),
      JSON.stringify({ type: 'deliver', from: '', corr: 'c2', session: 's1', notification: notification('bad') }),
      JSON.stringify({ type: 'deliver', from: 'A', corr: 'c3', session: 7, notification: notification('bad') }),
      JSON.stringify({ type: 'outcome', corr: 'c4', outcome: 'maybe' }),
      JSON.stringify({ type: 'shout', corr: 'c5' }),
    ];
    for (const frame of garbage) expect(await redis.admin.publish(redis.busChannel('B'), frame)).toBe(1);
    // Well-formed, but answers nothing A is waiting for.
    await redis.admin.publish(redis.busChannel('A'), JSON.stringify({ type: 'outcome', corr: 'unknown', outcome: 'delivered' }));

    expect(await a.bus.forward('B', 's1', notification('good'))).toBe('delivered');
    expect(owner.calls.map((call) => call.notification.id)).toEqual(['good']);
    const warnings = b.logs.filter((line) => line.level === WARN && line.msg === 'ignored a malformed frame on the node bus');
    expect(warnings).toHaveLength(garbage.length);
  });

  it('hears only its own channel on the subscriber it shares with the directory', async () => {
    const [a, b] = await Promise.all([redis.startNode('A'), redis.startNode('B')]);
    const owner = recordingHandler();
    b.bus.onForward(owner.handler);
    // Directory announcements travel on the same connection; the bus takes none of them for a frame.
    await a.directory.setLocalSockets('s1', 1);
    await b.directory.setLocalSockets('s1', 1);

    expect(await a.bus.forward('B', 's1', notification('m1'))).toBe('delivered');
    expect(owner.calls).toHaveLength(1);
    expect(b.logs.filter((line) => line.msg === 'ignored a malformed frame on the node bus')).toEqual([]);
  });

  it('rejects invalid settings with a reason', async () => {
    const [client, subscriber] = [await redis.connectClient(), await redis.connectClient()];
    const options = { nodeId: 'A', keyPrefix: redis.prefix, forwardTimeoutMs: 1000, logger: pino({ level: 'silent' }) };
    expect(() => new RedisBus(client, subscriber, { ...options, forwardTimeoutMs: 0 })).toThrow(/forwardTimeoutMs/);
    expect(() => new RedisBus(client, subscriber, { ...options, nodeId: '' })).toThrow(/nodeId/);
  });
});
