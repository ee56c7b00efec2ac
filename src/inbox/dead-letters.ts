import type { DeadLetterCopy, NotificationQueue } from '../ingest/queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ReceiptRecorder } from '../receipts/recorder.js';
import type { GiveUpReason, InboxEntry, InboxEvents } from './inbox.js';

/**
 * Where inbox entries go when the inbox gives up on them: the dead-letter queue, with the reason
 * (PROTOCOL §4.1), counted in `pushcenter_dead_letters_total` and, as before, `pushcenter_inbox_total`.
 */
export function inboxDeadLetters(
  queue: Pick<NotificationQueue, 'deadLetter'>, metrics: Metrics, logger: Logger, receipts?: ReceiptRecorder,
): InboxEvents {
  return {
    async gaveUp(sessionId, reason, entries) {
      await queue.deadLetter(entries.map((entry) => deadLetterOf(sessionId, reason, entry)));
      for (const entry of entries) receipts?.outcome(entry.id, 'dead', { target: 'session', session: sessionId, reason });
      metrics.deadLetters.inc({ reason }, entries.length);
      metrics.inbox.inc({ op: reason === 'inbox_full' ? 'evicted' : 'expired' }, entries.length);
      logger.warn({ session: sessionId, reason, count: entries.length, first: entries[0]?.id },
        'inbox entries dead-lettered');
    },
  };
}

/**
 * The entry as a notification to this session again, so that the dead letter can be read and
 * republished like any other; its enqueue time is the original one.
 */
function deadLetterOf(sessionId: string, reason: GiveUpReason, entry: InboxEntry): DeadLetterCopy {
  const { id, event, data, sentAt, expiresAt } = entry;
  const body = { id, session: sessionId, event, data, delivery: 'reliable' };
  const detail = reason === 'inbox_full'
    ? `the inbox of session ${JSON.stringify(sessionId)} was over its bound`
    : `its ttl ran out at ${new Date(expiresAt).toISOString()} in the inbox of session ${JSON.stringify(sessionId)}`;
  return { message: { body: Buffer.from(JSON.stringify(body)), messageId: id, timestamp: sentAt }, reason, detail };
}
