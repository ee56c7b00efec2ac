import { describe, expect, it } from 'vitest';
import { LinkedList, type Linked } from '../../src/util/linked-list.js';

interface Entry extends Linked<Entry> {
  n: number;
}

const entry = (n: number): Entry => ({ n, prev: undefined, next: undefined });

function order(list: LinkedList<Entry>): number[] {
  const seen: number[] = [];
  for (let e = list.head; e; e = e.next) seen.push(e.n);
  return seen;
}

describe('LinkedList', () => {
  it('keeps entries oldest first and takes them out from the head, the middle or the tail', () => {
    const list = new LinkedList<Entry>();
    const [a, b, c, d] = [1, 2, 3, 4].map(entry) as [Entry, Entry, Entry, Entry];
    for (const e of [a, b, c, d]) list.push(e);
    expect(order(list)).toEqual([1, 2, 3, 4]);
    list.remove(b);
    expect(order(list)).toEqual([1, 3, 4]);
    list.remove(d);
    list.push(entry(5));
    expect(order(list)).toEqual([1, 3, 5]);
    list.remove(a);
    expect(order(list)).toEqual([3, 5]);
    expect(list.size).toBe(2);
    expect(b.prev).toBeUndefined();
    expect(b.next).toBeUndefined();
  });

  it('knows which entries it holds, also after they were taken out or drained', () => {
    const list = new LinkedList<Entry>();
    const [a, b] = [entry(1), entry(2)];
    expect(list.has(a)).toBe(false);
    list.push(a);
    list.push(b);
    expect(list.has(a) && list.has(b)).toBe(true);
    list.remove(a);
    expect(list.has(a)).toBe(false);
    list.drain();
    expect(list.has(b)).toBe(false);
  });

  it('drains every entry oldest first, unlinked, and is empty and usable after', () => {
    const list = new LinkedList<Entry>();
    for (const n of [7, 8, 9]) list.push(entry(n));
    const all = list.drain();
    expect(all.map((e) => e.n)).toEqual([7, 8, 9]);
    expect(all.every((e) => e.prev === undefined && e.next === undefined)).toBe(true);
    expect(list.size).toBe(0);
    expect(list.head).toBeUndefined();
    list.push(all[1]!);
    expect(order(list)).toEqual([8]);
  });
});
