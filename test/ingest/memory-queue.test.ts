import { describe, expect, it } from 'vitest';
import { MemoryQueue } from '../../src/ingest/memory-queue.js';
import { QueueUnavailableError } from '../../src/ingest/queue.js';
import { describeQueue } from './queue.behaviour.js';

describeQueue('memory', async ({ prefetch }) => {
  const queue = new MemoryQueue({ prefetch, maxLength: 1000 });
  return {
    queue,
    deadLetters: async () => queue.deadLetters.map((d) => ({ body: d.message.body.toString(), reason: d.reason })),
    cleanup: () => queue.close(),
  };
});

describe('memory queue bound', () => {
  it('refuses a publish beyond EMBEDDED_QUEUE_MAX with a retryable error, keeping what it holds', async () => {
    const queue = new MemoryQueue({ prefetch: 1, maxLength: 3 });
    await queue.publish([1, 2, 3].map((n) => ({ body: Buffer.from(String(n)) })));
    await expect(queue.publish([{ body: Buffer.from('4') }])).rejects.toBeInstanceOf(QueueUnavailableError);
    expect(queue.length).toBe(3);
    await queue.close();
  });
});
