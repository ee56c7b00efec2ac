import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineList, type Timed } from '../../src/util/deadline-list.js';

interface Entry extends Timed<Entry> {
  name: string;
}

const entry = (name: string): Entry => ({ name, at: 0, prev: undefined, next: undefined });

describe('DeadlineList (entries that expire a fixed time after they were added)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function list(delayMs = 100) {
    const expired: string[] = [];
    const deadlines = new DeadlineList<Entry>(delayMs, (e) => expired.push(`${e.name}@${Date.now()}`), () => Date.now());
    return { deadlines, expired };
  }

  it('keeps entries oldest first and tells when each was added', () => {
    const { deadlines } = list();
    const a = entry('a');
    deadlines.add(a);
    vi.advanceTimersByTime(10);
    deadlines.add(entry('b'));
    expect(deadlines.size).toBe(2);
    expect(deadlines.head).toBe(a);
    expect(deadlines.head?.next?.name).toBe('b');
    expect(deadlines.head!.next!.at - a.at).toBe(10);
  });

  it('takes an entry out from anywhere, once: taking it out again answers false', () => {
    const { deadlines } = list();
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    for (const e of [a, b, c]) deadlines.add(e);
    expect(deadlines.remove(b)).toBe(true);
    expect(deadlines.remove(b)).toBe(false);
    expect(deadlines.drain().map((e) => e.name)).toEqual(['a', 'c']);
    expect(deadlines.remove(a)).toBe(false);
    expect(deadlines.size).toBe(0);
  });

  it('expires each entry at its own deadline, oldest first, with one timer armed again for the next', () => {
    const { deadlines, expired } = list(100);
    const start = Date.now();
    deadlines.add(entry('a'));
    vi.advanceTimersByTime(30);
    deadlines.add(entry('b'));
    deadlines.add(entry('c'));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(70);
    expect(expired).toEqual([`a@${start + 100}`]);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(30);
    expect(expired).toEqual([`a@${start + 100}`, `b@${start + 130}`, `c@${start + 130}`]);
    expect(deadlines.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not expire what was taken out, and stops its timer when drained', () => {
    const { deadlines, expired } = list(100);
    const a = entry('a');
    deadlines.add(a);
    deadlines.add(entry('b'));
    deadlines.remove(a);
    vi.advanceTimersByTime(100);
    expect(expired.map((e) => e.split('@')[0])).toEqual(['b']);
    deadlines.add(entry('c'));
    expect(deadlines.drain().map((e) => e.name)).toEqual(['c']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(200);
    expect(expired).toHaveLength(1);
  });
});
