import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { orAfter, withTimeout } from '../../src/util/timeout.js';

describe('waiting with a limit', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('withTimeout settles like the promise when it is in time, and leaves no timer behind', async () => {
    await expect(withTimeout(Promise.resolve(7), 100, () => new Error('late'))).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error('failed')), 100, () => new Error('late'))).rejects.toThrow('failed');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('withTimeout rejects with the timeout error once the time is up', async () => {
    const waiting = withTimeout(new Promise<number>(() => {}), 100, () => new Error('no answer within 100 ms'));
    const outcome = expect(waiting).rejects.toThrow('no answer within 100 ms');
    await vi.advanceTimersByTimeAsync(100);
    await outcome;
  });

  it('orAfter resolves with the fallback once the time is up, and with the value before', async () => {
    const late = orAfter(new Promise<string>(() => {}), 100, 'timeout');
    await vi.advanceTimersByTimeAsync(100);
    expect(await late).toBe('timeout');
    await expect(orAfter(Promise.resolve('answer'), 100, 'timeout')).resolves.toBe('answer');
    expect(vi.getTimerCount()).toBe(0);
  });
});
