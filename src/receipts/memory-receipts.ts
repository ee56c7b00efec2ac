import { requireCount } from '../inbox/ack-log.js';
import { receiptOf, type IdClaims, type Receipt, type ReceiptEvent, type ReceiptStore } from './receipts.js';

export interface MemoryReceiptsOptions {
  /** How long a receipt is kept after its first event (ms). */
  ttlMs: number;
  /** Receipts kept at the most; beyond it the oldest is forgotten. */
  maxReceipts: number;
  now?: () => number;
}

/**
 * The embedded receipts: one record per notification, kept in the order of their first event, so the
 * oldest is always first (forgotten first when over the bound, checked against the TTL when read).
 */
export class MemoryReceipts implements ReceiptStore {
  private readonly receipts = new Map<string, { firstAt: number; events: ReceiptEvent[] }>();
  private readonly now: () => number;

  constructor(private readonly options: MemoryReceiptsOptions) {
    requireCount('maxReceipts', options.maxReceipts);
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.receipts.size;
  }

  add(id: string, event: ReceiptEvent): void {
    const known = this.receipts.get(id);
    if (known && this.alive(known.firstAt)) {
      known.events.push(event);
      return;
    }
    this.receipts.delete(id);
    this.receipts.set(id, { firstAt: this.now(), events: [event] });
    for (const [oldId, receipt] of this.receipts) {
      if (this.receipts.size <= this.options.maxReceipts && this.alive(receipt.firstAt)) break;
      this.receipts.delete(oldId);
    }
  }

  async get(id: string): Promise<Receipt | undefined> {
    const known = this.receipts.get(id);
    if (!known) return undefined;
    if (!this.alive(known.firstAt)) {
      this.receipts.delete(id);
      return undefined;
    }
    return receiptOf(id, known.events);
  }

  async close(): Promise<void> {}

  private alive(firstAt: number): boolean {
    return this.now() - firstAt < this.options.ttlMs;
  }
}

export interface MemoryIdClaimsOptions {
  /** How long a claimed id stays claimed (ms): `IDEMPOTENCY_TTL_MS`. */
  windowMs: number;
  /** Ids remembered at the most; beyond it the oldest claim is forgotten (the window shrinks). */
  maxIds: number;
  now?: () => number;
}

/** The embedded id claims: ids in the order they were claimed, the oldest forgotten first. */
export class MemoryIdClaims implements IdClaims {
  private readonly claimed = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: MemoryIdClaimsOptions) {
    requireCount('maxIds', options.maxIds);
    this.now = options.now ?? Date.now;
  }

  async claim(id: string): Promise<boolean> {
    const now = this.now();
    const at = this.claimed.get(id);
    if (at !== undefined && now - at < this.options.windowMs) return false;
    this.claimed.delete(id);
    this.claimed.set(id, now);
    for (const [oldId, oldAt] of this.claimed) {
      if (this.claimed.size <= this.options.maxIds && now - oldAt < this.options.windowMs) break;
      this.claimed.delete(oldId);
    }
    return true;
  }

  async close(): Promise<void> {}
}
