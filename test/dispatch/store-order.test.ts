import { describe, expect, it } from 'vitest';
import { StoreOrder, type InOrder } from '../../src/dispatch/store-order.js';

class Item implements InOrder<Item> {
  orderPrev: Item | undefined = undefined;
  orderNext: Item | undefined = undefined;
  inOrder = false;
  whenFirst: (() => void) | undefined = undefined;
  constructor(readonly sessionId: string, readonly name: string) {}
}

describe('StoreOrder', () => {
  it('lets an item write at once when nothing older of its session is undecided', () => {
    const order = new StoreOrder<Item>();
    const a = new Item('s', 'a');
    const other = new Item('t', 'x');
    order.join(other);
    order.join(a);
    expect(order.turn(a)).toBeUndefined();
    expect(order.turn(other)).toBeUndefined();
  });

  it('wakes a waiting item once every older one of its session left, in whatever order they left', async () => {
    const order = new StoreOrder<Item>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => new Item('s', name)) as [Item, Item, Item, Item];
    for (const item of [a, b, c, d]) order.join(item);
    const woke: string[] = [];
    void order.turn(d)!.then(() => woke.push('d'));
    void order.turn(c)!.then(() => woke.push('c'));
    order.leave(b);
    await Promise.resolve();
    expect(woke).toEqual([]);
    order.leave(a);
    await Promise.resolve();
    expect(woke).toEqual(['c']);
    order.leave(c);
    order.leave(c);
    await Promise.resolve();
    expect(woke).toEqual(['c', 'd']);
    order.leave(d);
    expect(order.size).toBe(0);
  });
});
