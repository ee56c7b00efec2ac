import { describe, expect, it } from 'vitest';
import { MemoryIdClaims, MemoryReceipts } from '../../src/receipts/memory-receipts.js';
import { describeIdClaims, describeReceiptStore } from './receipts.behaviour.js';

describeReceiptStore('MemoryReceipts', ({ now, ttlMs, max }) => ({
  engine: new MemoryReceipts({ now, ttlMs, maxReceipts: max }),
  settle: async () => {},
}));

describeIdClaims('MemoryIdClaims', ({ now, ttlMs, max }) => ({
  engine: new MemoryIdClaims({ now, windowMs: ttlMs, maxIds: max }),
  settle: async () => {},
}));

describe('the embedded engines are bounded', () => {
  it('keeps at most maxReceipts receipts, forgetting the oldest first', async () => {
    const receipts = new MemoryReceipts({ ttlMs: 60_000, maxReceipts: 3 });
    for (const id of ['a', 'b', 'c', 'd']) receipts.add(id, { at: 0, outcome: 'accepted' });
    expect(receipts.size).toBe(3);
    expect(await receipts.get('a')).toBeUndefined();
    expect(await receipts.get('d')).toBeDefined();
  });

  it('keeps at most maxIds claims, so an id claimed long ago may be claimed again', async () => {
    const claims = new MemoryIdClaims({ windowMs: 60_000, maxIds: 2 });
    for (const id of ['a', 'b', 'c']) expect(await claims.claim(id)).toBe(true);
    expect(await claims.claim('a')).toBe(true);
    expect(await claims.claim('c')).toBe(false);
  });
});
