import type { Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import { orAfter } from '../util/timeout.js';
import type { ForwardHandler, ForwardOutcome } from './bus.js';

/** What every bus engine does around a forward, on the sending node and on the owning node. */

/**
 * The reliable forwards a node waits on, by correlation id. Each settles exactly once: with the outcome
 * the owning node reports, or `not_delivered` when it does not report within the timeout or the bus
 * closes first.
 */
export class PendingForwards {
  private readonly waiting = new Map<string, (outcome: ForwardOutcome) => void>();

  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Sends with `send` and waits for the outcome reported under `corr`. The wait is registered first: the
   * outcome may overtake the reply to the send itself. A failed send rejects the forward.
   */
  async wait(corr: string, send: () => Promise<void>): Promise<ForwardOutcome> {
    const answered = new Promise<ForwardOutcome>((resolve, reject) => {
      this.waiting.set(corr, resolve);
      send().catch(reject);
    });
    try {
      return await orAfter(answered, this.timeoutMs, 'not_delivered' as const);
    } finally {
      this.waiting.delete(corr);
    }
  }

  /** Settles the forward with what the owning node reported; one no longer waited for is only logged. */
  settle(corr: string, outcome: ForwardOutcome): void {
    const resolve = this.waiting.get(corr);
    if (!resolve) {
      this.logger.debug({ corr }, 'outcome arrived after its forward timed out');
      return;
    }
    this.waiting.delete(corr);
    resolve(outcome);
  }

  /** Settles every waiting forward as `not_delivered` (the bus is closing). */
  settleAll(): void {
    for (const corr of [...this.waiting.keys()]) this.settle(corr, 'not_delivered');
  }
}

/** The node a forward reached, as `answerForward` needs it. */
export interface Receiver {
  handler: ForwardHandler | undefined;
  closed: boolean;
  logger: Logger;
}

/**
 * Runs the owning node's handler for a forwarded message; never rejects. `not_delivered` when the bus is
 * closing, when no handler is installed yet, or when the handler fails.
 */
export async function answerForward(receiver: Receiver, from: string, session: string, notification: Notification): Promise<ForwardOutcome> {
  const { handler, closed, logger } = receiver;
  if (closed) {
    logger.debug({ from, session, id: notification.id }, 'forwarded message arrived while closing');
  } else if (!handler) {
    logger.warn({ from, session, id: notification.id }, 'forwarded message arrived before a handler was installed');
  } else {
    try {
      return await handler(session, notification);
    } catch (err) {
      logger.warn({ err, from, session, id: notification.id }, 'forward handler failed');
    }
  }
  return 'not_delivered';
}
