import type { Notification } from '../notification/schema.js';

/**
 * What happened to a notification (PROTOCOL §6, `GET /v1/notifications/:id`): it was accepted (enqueued),
 * delivered (a client acked it, or it was handed to the sockets), stored (it waits in an inbox), dead
 * (dead-lettered with a reason) or dropped (volatile, or expired before it could be delivered).
 */
export const RECEIPT_OUTCOMES = ['accepted', 'delivered', 'stored', 'dead', 'dropped'] as const;
export type ReceiptOutcome = (typeof RECEIPT_OUTCOMES)[number];

/** Who a notification was for, as its publisher wrote it. */
export interface ReceiptTarget {
  session?: string[];
  group?: string[];
  broadcast?: true;
}

/** One thing that happened to a notification, on one node. */
export interface ReceiptEvent {
  /** ms since epoch. */
  at: number;
  outcome: ReceiptOutcome;
  /** The node that saw it happen (for `delivered`: where the client acked, or the sockets it reached). */
  node?: string;
  /** Sockets it was handed to on that node (volatile and group messages). */
  sockets?: number;
  /** Why it was dead-lettered or dropped, e.g. `inbox_full`, `no_sockets`. */
  reason?: string;
  /** The session this event is about, for a notification to several sessions. */
  session?: string;
  /** Only on `accepted`: who it was for. */
  target?: ReceiptTarget;
}

export interface Receipt {
  id: string;
  /** The latest outcome: `accepted` until anything else happened. */
  status: ReceiptOutcome;
  target: ReceiptTarget | undefined;
  /** Group and broadcast notifications: the sockets reached, summed over the nodes. */
  sockets?: number;
  events: ReceiptEvent[];
}

/**
 * The receipts port: where every node writes what it learned about a notification, and where any node
 * reads it back. Engines: `MemoryReceipts` (embedded, bounded) and `RedisReceipts` (shared by the nodes).
 */
export interface ReceiptStore {
  /**
   * Adds an event to the notification's receipt. Fire and forget: engines batch writes, and a failure
   * costs the receipt its event, never the delivery (the engine logs it and counts it).
   */
  add(id: string, event: ReceiptEvent): void;
  /** The receipt, or undefined when unknown or older than the receipts' TTL. */
  get(id: string): Promise<Receipt | undefined>;
  /** Writes what is pending and stops background work. */
  close(): Promise<void>;
}

/**
 * A notification's id is its identity (PROTOCOL §6, idempotency): the first broker message with an id
 * claims it; another message with the same id within the window (a backend republishing after a lost
 * confirm) is not delivered again. A redelivery of the same broker message is not a second claim: the
 * dispatcher does not ask for those.
 */
export interface IdClaims {
  /** True when `id` was not claimed within the window (it is claimed now). Rejects when unavailable. */
  claim(id: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The target of a notification as its receipt shows it. */
export function targetOf(n: Pick<Notification, 'sessions' | 'groups' | 'broadcast'>): ReceiptTarget {
  const target: ReceiptTarget = {};
  if (n.sessions.length > 0) target.session = n.sessions;
  if (n.groups.length > 0) target.group = n.groups;
  if (n.broadcast) target.broadcast = true;
  return target;
}

/**
 * The receipt made of its events, whatever order the nodes wrote them in: `accepted` first (the HTTP API
 * may write it after the consuming node wrote an outcome), then by time, `stored` before an outcome of
 * the same instant. The status is the latest of delivered, dead and dropped; else stored; else accepted
 * (a `stored` can be written just after the entry was already given up or delivered).
 */
export function receiptOf(id: string, events: ReceiptEvent[]): Receipt {
  const sorted = [...events].sort((a, b) => Number(b.outcome === 'accepted') - Number(a.outcome === 'accepted') ||
    a.at - b.at || stage(a) - stage(b));
  let target: ReceiptTarget | undefined;
  let status: ReceiptOutcome = 'accepted';
  let sockets: number | undefined;
  for (const event of sorted) {
    if (event.target !== undefined) target ??= event.target;
    if (stage(event) >= stage({ outcome: status })) status = event.outcome;
    if (event.sockets !== undefined) sockets = (sockets ?? 0) + event.sockets;
  }
  const fanOut = target !== undefined && (target.group !== undefined || target.broadcast === true);
  const shown = sorted.map(({ target: _target, ...event }) => event);
  return { id, status, target, ...(fanOut ? { sockets: sockets ?? 0 } : {}), events: shown };
}

function stage(event: Pick<ReceiptEvent, 'outcome'>): number {
  return event.outcome === 'accepted' ? 0 : event.outcome === 'stored' ? 1 : 2;
}
