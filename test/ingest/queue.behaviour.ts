import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, NotificationQueue, QueueMessage } from '../../src/ingest/queue.js';
import { until } from '../support/harness.js';

export interface QueueUnderTest {
  queue: NotificationQueue;
  /** Dead letters as the engine keeps them: body and the reason header. */
  deadLetters(): Promise<Array<{ body: string; reason: string }>>;
  /** Releases the queue and removes everything the test created. */
  cleanup(): Promise<void>;
}

const message = (i: number, extra: Partial<QueueMessage> = {}): QueueMessage => ({
  body: Buffer.from(JSON.stringify({ n: i })),
  messageId: `m-${i}`,
  timestamp: 1_700_000_000_000 + i * 1000,
  ...extra,
});

const bodies = (deliveries: Delivery[]) => deliveries.map((d) => JSON.parse(d.message.body.toString()).n as number);

/**
 * The queue port's contract, run against every engine: what the dispatcher may rely on whichever
 * queue the node was configured with.
 */
export function describeQueue(name: string, create: (options: { prefetch: number }) => Promise<QueueUnderTest>): void {
  describe(`${name} queue`, () => {
    let current: QueueUnderTest | undefined;
    const open = async (prefetch = 10) => (current = await create({ prefetch }));
    afterEach(async () => {
      await current?.cleanup();
      current = undefined;
    });

    it('delivers published messages in order with their id, timestamp and source', async () => {
      const { queue } = await open();
      const got: Delivery[] = [];
      await queue.consume((d) => {
        got.push(d);
        d.ack();
      });
      await queue.publish([message(1), message(2, { source: 'http' }), message(3)]);
      await until(() => got.length, (n) => n === 3);
      expect(bodies(got)).toEqual([1, 2, 3]);
      expect(got[0]!.message).toMatchObject({ messageId: 'm-1', timestamp: 1_700_000_001_000 });
      expect(got[0]!.message.source).toBeUndefined();
      expect(got[1]!.message.source).toBe('http');
      expect(got[0]!.redelivered).toBe(false);
    });

    it('never holds more unsettled deliveries than the prefetch', async () => {
      const { queue } = await open(5);
      const got: Delivery[] = [];
      await queue.consume((d) => got.push(d));
      await queue.publish(Array.from({ length: 20 }, (_, i) => message(i)));
      await until(() => got.length, (n) => n === 5);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(got).toHaveLength(5);
      expect(queue.inflight).toBe(5);
      for (const d of got.splice(0, 2)) d.ack();
      await until(() => got.length, (n) => n === 5);
      expect(queue.inflight).toBe(5);
      for (const d of got.splice(0)) d.ack();
      await until(() => queue.inflight, (n) => n === 5);
    });

    it('redelivers a requeued message, flagged as redelivered', async () => {
      const { queue } = await open();
      const got: Delivery[] = [];
      await queue.consume((d) => {
        got.push(d);
        if (got.length === 1) d.requeue();
        else d.ack();
      });
      await queue.publish([message(7)]);
      await until(() => got.length, (n) => n === 2);
      expect(bodies(got)).toEqual([7, 7]);
      expect(got[1]!.redelivered).toBe(true);
      await until(() => queue.inflight, (n) => n === 0);
    });

    it('moves a dead-lettered message to the dead letters with its reason, and does not redeliver it', async () => {
      const { queue, deadLetters } = await open();
      const got: Delivery[] = [];
      await queue.consume((d) => {
        got.push(d);
        void d.deadLetter('not_json', 'body is not JSON');
      });
      await queue.publish([message(9)]);
      await until(() => deadLetters(), (letters) => letters.length === 1);
      expect((await deadLetters())[0]).toEqual({ body: '{"n":9}', reason: 'not_json' });
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(got).toHaveLength(1);
      expect(queue.inflight).toBe(0);
    });

    it('takes nothing new while paused, and continues on resume', async () => {
      const { queue } = await open();
      const got: Delivery[] = [];
      await queue.consume((d) => {
        got.push(d);
        d.ack();
      });
      await queue.pause();
      await queue.publish([message(1), message(2)]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(got).toHaveLength(0);
      queue.resume();
      await until(() => got.length, (n) => n === 2);
    });

    it('after stopConsuming takes nothing new, but in-flight deliveries can still be settled', async () => {
      const { queue } = await open();
      const got: Delivery[] = [];
      await queue.consume((d) => got.push(d));
      await queue.publish([message(1)]);
      await until(() => got.length, (n) => n === 1);
      await queue.stopConsuming();
      expect(queue.consuming).toBe(false);
      await queue.publish([message(2)]).catch(() => undefined);
      got[0]!.ack();
      await until(() => queue.inflight, (n) => n === 0);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(got).toHaveLength(1);
    });
  });
}
