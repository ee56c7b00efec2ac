import { describe, expect, it } from 'vitest';
import { DirectAcks } from '../../src/gateway/direct-acks.js';

describe("a socket's registry of direct-write acks", () => {
  it('hands out each callback once, by id, in any order', () => {
    const acks = new DirectAcks();
    const called: number[] = [];
    for (const id of [4, 5, 6, 7]) acks.add(id, () => called.push(id));
    acks.take(6)?.();
    acks.take(4)?.();
    expect(acks.take(6)).toBeUndefined();
    acks.take(7)?.();
    acks.take(5)?.();
    expect(called).toEqual([6, 4, 7, 5]);
    expect(acks.size).toBe(0);
  });

  it('knows nothing of ids it was not given', () => {
    const acks = new DirectAcks();
    acks.add(1, () => {});
    expect(acks.take(2)).toBeUndefined();
    expect(acks.size).toBe(1);
  });

  it('keeps adding after its newest entry was taken', () => {
    const acks = new DirectAcks();
    const called: number[] = [];
    acks.add(1, () => called.push(1));
    acks.add(2, () => called.push(2));
    acks.take(2)?.();
    acks.add(3, () => called.push(3));
    acks.take(3)?.();
    acks.take(1)?.();
    acks.add(4, () => called.push(4));
    acks.take(4)?.();
    expect(called).toEqual([2, 3, 1, 4]);
    expect(acks.size).toBe(0);
  });
});
