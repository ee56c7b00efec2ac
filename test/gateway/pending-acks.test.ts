import { describe, expect, it } from 'vitest';
import { PendingAcks } from '../../src/gateway/pending-acks.js';

const noop = () => undefined;

describe('PendingAcks (one socket\'s un-acked reliable emits)', () => {
  it('keeps them oldest first and tells when the oldest went out', () => {
    const list = new PendingAcks();
    expect(list.size).toBe(0);
    expect(list.oldestSentAt).toBeUndefined();
    const a = list.add(noop, 100);
    list.add(noop, 200);
    const c = list.add(noop, 300);
    expect(list.size).toBe(3);
    expect(list.oldestSentAt).toBe(100);
    list.remove(a);
    expect(list.oldestSentAt).toBe(200);
    list.remove(c);
    expect(list.size).toBe(1);
    expect(list.oldestSentAt).toBe(200);
  });

  it('takes an entry out from anywhere, once: removing it again changes nothing', () => {
    const list = new PendingAcks();
    const a = list.add(noop, 1);
    const b = list.add(noop, 2);
    const c = list.add(noop, 3);
    list.remove(b);
    list.remove(b);
    expect(list.size).toBe(2);
    expect(list.drain().map((entry) => entry.sentAt)).toEqual([1, 3]);
    list.remove(a);
    list.remove(c);
    expect(list.size).toBe(0);
    const d = list.add(noop, 4);
    list.remove(a);
    expect(list.size).toBe(1);
    expect(list.oldestSentAt).toBe(4);
    list.remove(d);
    expect(list.size).toBe(0);
    expect(list.oldestSentAt).toBeUndefined();
  });

  it('drains every entry, oldest first, and is empty after', () => {
    const list = new PendingAcks();
    const settled: number[] = [];
    for (const at of [5, 6, 7]) list.add(() => settled.push(at), at);
    for (const entry of list.drain()) entry.settle(false);
    expect(settled).toEqual([5, 6, 7]);
    expect(list.size).toBe(0);
    expect(list.drain()).toEqual([]);
  });
});
