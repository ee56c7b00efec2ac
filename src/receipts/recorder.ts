import type { Notification } from '../notification/schema.js';
import type { Metrics } from '../observability/metrics.js';
import { RECEIPT_OUTCOMES, targetOf, type ReceiptEvent, type ReceiptOutcome, type ReceiptStore } from './receipts.js';
import type { ReceiptStream, StreamedReceipt } from './receipt-stream.js';

/** What an outcome is about, as far as the node that learned it knows. */
export interface OutcomeDetail {
  target: StreamedReceipt['target'];
  /** The session, for a session notification. */
  session?: string;
  /** Several sessions: events name the session they are about. */
  manySessions?: boolean;
  /** Where it happened, when not on this node (a forward's owning node). */
  node?: string;
  sockets?: number;
  reason?: string;
}

/**
 * Where the nodes' parts report what happened to each notification (PROTOCOL §6): the receipt store (for
 * `GET /v1/notifications/:id`), the receipts stream (final outcomes) and `pushcenter_receipts_total`.
 * Either may be off; with both off, nothing is done per message.
 */
export class ReceiptRecorder {
  readonly on: boolean;
  /** The counter's children, bound once: a labelled `inc` hashes its labels every time. */
  private readonly counted: Record<ReceiptOutcome, { inc(): void }>;

  constructor(
    private readonly nodeId: string,
    readonly store: ReceiptStore | undefined,
    private readonly stream: ReceiptStream | undefined,
    metrics: Metrics,
  ) {
    this.on = store !== undefined || stream !== undefined;
    this.counted = Object.fromEntries(RECEIPT_OUTCOMES.map((o) => [o, metrics.receipts.labels({ outcome: o })])) as ReceiptRecorder['counted'];
  }

  /** The notification was accepted into the queue (by the HTTP API, or as the consumer first saw it). */
  accepted(n: Notification): void {
    if (!this.store) return;
    this.store.add(n.id, { at: n.enqueuedAt, outcome: 'accepted', node: this.nodeId, target: targetOf(n) });
    this.counted.accepted.inc();
  }

  /**
   * An outcome: `final` ones (everything but another node's share of a group's sockets) go to the stream
   * as well.
   */
  outcome(id: string, outcome: Exclude<ReceiptOutcome, 'accepted'>, detail: OutcomeDetail, final = true): void {
    if (!this.on) return;
    const at = Date.now();
    const node = detail.node ?? this.nodeId;
    if (this.store) {
      const event: ReceiptEvent = { at, outcome, node };
      if (detail.sockets !== undefined) event.sockets = detail.sockets;
      if (detail.reason !== undefined) event.reason = detail.reason;
      if (detail.manySessions && detail.session !== undefined) event.session = detail.session;
      this.store.add(id, event);
    }
    this.counted[outcome].inc();
    if (!final || !this.stream) return;
    const receipt: StreamedReceipt = { id, outcome, target: detail.target, at, node };
    if (detail.session !== undefined) receipt.session = detail.session;
    if (detail.sockets !== undefined) receipt.sockets = detail.sockets;
    if (detail.reason !== undefined) receipt.reason = detail.reason;
    this.stream.publish(receipt);
  }

  async close(): Promise<void> {
    await Promise.all([this.store?.close(), this.stream?.close()]);
  }
}

/** A notification's session outcome detail. */
export function sessionDetail(n: Notification, sessionId: string, extra: Omit<OutcomeDetail, 'target' | 'session'> = {}): OutcomeDetail {
  return { target: 'session', session: sessionId, manySessions: n.sessions.length > 1, ...extra };
}
