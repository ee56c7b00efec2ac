import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryAckLog, type MemoryAckLogOptions } from '../../src/inbox/memory-ack-log.js';
import { describeAckLog } from './ack-log.behaviour.js';

describeAckLog('MemoryAckLog', (settings) => new MemoryAckLog(settings));

describe('MemoryAckLog bounds', () => {
  const start = 1_700_000_000_000;
  let clock = start;
  const opened: MemoryAckLog[] = [];

  beforeEach(() => {
    clock = start;
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((log) => log.close()));
  });

  function open(options: MemoryAckLogOptions = {}): MemoryAckLog {
    const log = new MemoryAckLog({ now: () => clock, ...options });
    opened.push(log);
    return log;
  }

  it('keeps the newest perSession ids of a session, an id recorded again as the newest, each session on its own', async () => {
    const log = open({ perSession: 3 });
    for (const id of ['m-1', 'm-2', 'm-3', 'm-1', 'm-4']) {
      clock += 1;
      await log.record('busy', id);
    }
    await log.record('quiet', 'q-1');
    const has = async (ids: string[]) => (await Promise.all(ids.map((id) => log.has('busy', id)))).map((found, i) => (found ? ids[i] : '-'));
    expect(await has(['m-1', 'm-2', 'm-3', 'm-4'])).toEqual(['m-1', '-', 'm-3', 'm-4']);
    expect(await log.has('quiet', 'q-1')).toBe(true);
  });

  it('defaults to 2 000 ids per session', async () => {
    const log = open();
    for (let i = 0; i <= 2_000; i += 1) await log.record('s1', `m-${i}`);

    expect(await log.has('s1', 'm-0')).toBe(false);
    expect(await log.has('s1', 'm-1')).toBe(true);
    expect(await log.has('s1', 'm-2000')).toBe(true);
  });

  it('forgets the least recently recorded session beyond maxSessions', async () => {
    const log = open({ maxSessions: 2 });
    await log.record('a', 'm');
    await log.record('b', 'm');
    await log.record('a', 'n');
    await log.record('c', 'm');

    expect(log.sessionCount).toBe(2);
    expect(await log.has('a', 'm')).toBe(true);
    expect(await log.has('b', 'm')).toBe(false);
    expect(await log.has('c', 'm')).toBe(true);
  });

  it('releases sessions whose latest record is ttlMs old, on the sweep and on has', async () => {
    const log = open({ ttlMs: 1_000 });
    await log.record('idle', 'm');
    clock = start + 500;
    await log.record('recent', 'm');
    await log.record('asked', 'm');

    clock = start + 1_000;
    log.sweep();
    expect(log.sessionCount).toBe(2);
    expect(await log.has('recent', 'm')).toBe(true);

    clock = start + 1_500;
    expect(await log.has('asked', 'm')).toBe(false);
    expect(log.sessionCount).toBe(1);
    log.sweep();
    expect(log.sessionCount).toBe(0);
  });

  it('sweeps on its own every sweepIntervalMs', async () => {
    const log = open({ ttlMs: 1_000, sweepIntervalMs: 10 });
    await log.record('idle', 'm');

    clock = start + 1_000;
    await vi.waitFor(() => expect(log.sessionCount).toBe(0), { timeout: 3_000, interval: 10 });
  });

  it('refuses bounds that would remember nothing', () => {
    expect(() => new MemoryAckLog({ perSession: 0 })).toThrow(RangeError);
    expect(() => new MemoryAckLog({ ttlMs: 0 })).toThrow(RangeError);
    expect(() => new MemoryAckLog({ maxSessions: 1.5 })).toThrow(RangeError);
  });
});
