import type { Message } from 'amqplib';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AckTracker, type Clock, type Tracked } from '../../../src/ingest/amqp/ack-tracker.js';

const logger = pino({ level: 'silent' });
const FLUSH_MS = 5;
const STRAGGLER_MS = 10;

type Call =
  | { op: 'ack'; tag: number; multiple: boolean }
  | { op: 'nack'; tag: number; multiple: boolean; requeue: boolean };

/** Records what the tracker sends, as amqplib's channel would receive it. */
class FakeChannel {
  readonly calls: Call[] = [];
  /** Set to make the channel throw, as amqplib does once the channel is closed. */
  closed = false;

  ack(message: Message, allUpTo = false): void {
    if (this.closed) throw new Error('Channel closed');
    this.calls.push({ op: 'ack', tag: message.fields.deliveryTag, multiple: allUpTo });
  }

  nack(message: Message, allUpTo = false, requeue = true): void {
    if (this.closed) throw new Error('Channel closed');
    this.calls.push({ op: 'nack', tag: message.fields.deliveryTag, multiple: allUpTo, requeue });
  }
}

/** Time that passes only when a test says so; due timers run in deadline order. */
class FakeClock implements Clock {
  private time = 0;
  private timers: Array<{ at: number; callback: () => void }> = [];

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { at: this.time + ms, callback };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(timer: unknown): void {
    this.timers = this.timers.filter((t) => t !== timer);
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.clearTimeout(due);
      this.time = due.at;
      due.callback();
    }
    this.time = until;
  }
}

/**
 * What the broker makes of the calls: each tag delivered is settled once, by an ack or a nack. Like
 * RabbitMQ (which closes the channel with PRECONDITION_FAILED "unknown delivery tag"), it fails on a tag
 * that is not outstanding any more; a multiple-ack settles every tag up to it still outstanding.
 */
function brokerOutcome(delivered: number[], calls: Call[]): Map<number, 'ack' | 'nack'> {
  const outstanding = new Set(delivered);
  const outcome = new Map<number, 'ack' | 'nack'>();
  for (const call of calls) {
    if (!outstanding.has(call.tag)) throw new Error(`unknown delivery tag ${call.tag} in ${JSON.stringify(call)}`);
    const covered = call.multiple ? [...outstanding].filter((tag) => tag <= call.tag) : [call.tag];
    for (const tag of covered) {
      outstanding.delete(tag);
      outcome.set(tag, call.op);
    }
  }
  return outcome;
}

function setUp(options: { batchMax?: number } = {}) {
  const channel = new FakeChannel();
  const clock = new FakeClock();
  const tracker = new AckTracker(channel, {
    batchMax: options.batchMax ?? 100, flushMs: FLUSH_MS, stragglerMs: STRAGGLER_MS, logger, clock,
  });
  /** Tracks deliveries with tags 1..count; `d[tag]` is the delivery of that tag. */
  const deliver = (count: number): Tracked[] => {
    const d: Tracked[] = [];
    for (let tag = 1; tag <= count; tag++) d[tag] = tracker.track(tag);
    return d;
  };
  return { channel, clock, tracker, deliver };
}

describe('AckTracker (the acks of one consume channel)', () => {
  it('acks a contiguous finished prefix with one multiple-ack for its last tag', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(4);
    tracker.ack(d[1]!);
    tracker.ack(d[2]!);
    tracker.ack(d[3]!);
    clock.advance(FLUSH_MS);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 3, multiple: true }]);
  });

  it('holds an ack for flushMs, so that the acks that follow go in the same multiple-ack', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(2);
    tracker.ack(d[1]!);
    clock.advance(FLUSH_MS - 1);
    expect(channel.calls).toEqual([]);
    tracker.ack(d[2]!);
    clock.advance(1);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 2, multiple: true }]);
  });

  it('acks a finished delivery behind an unfinished one alone, once it waited stragglerMs', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(3);
    tracker.ack(d[2]!);
    tracker.ack(d[3]!);
    clock.advance(STRAGGLER_MS - 1);
    expect(channel.calls).toEqual([]);
    clock.advance(FLUSH_MS + 1);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 2, multiple: false }, { op: 'ack', tag: 3, multiple: false }]);
    expect(brokerOutcome([1, 2, 3], channel.calls).has(1)).toBe(false);
  });

  it('never acks a straggler twice: a later multiple-ack neither names it nor counts it again', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(4);
    tracker.ack(d[2]!);
    clock.advance(STRAGGLER_MS + FLUSH_MS);
    tracker.ack(d[1]!);
    clock.advance(FLUSH_MS);
    tracker.ack(d[3]!);
    clock.advance(FLUSH_MS);
    expect(channel.calls).toEqual([
      { op: 'ack', tag: 2, multiple: false },
      { op: 'ack', tag: 1, multiple: true },
      { op: 'ack', tag: 3, multiple: true },
    ]);
    expect(brokerOutcome([1, 2, 3, 4], channel.calls)).toEqual(new Map([[1, 'ack'], [2, 'ack'], [3, 'ack']]));
  });

  it('sends the prefix flushMs after its last ack even when a straggler flush is due later', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(2);
    tracker.ack(d[2]!);
    // The flush at FLUSH_MS finds the straggler too young and sets the next one STRAGGLER_MS later.
    clock.advance(FLUSH_MS + 1);
    tracker.ack(d[1]!);
    clock.advance(FLUSH_MS);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 2, multiple: true }]);
  });

  it('requeues at once: a nack with requeue, without waiting for a flush', () => {
    const { channel, tracker, deliver } = setUp();
    const d = deliver(2);
    tracker.requeue(d[2]!);
    expect(channel.calls).toEqual([{ op: 'nack', tag: 2, multiple: false, requeue: true }]);
  });

  it('never acks a requeued tag: its nack goes out before any multiple-ack that passes over it', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(3);
    tracker.ack(d[1]!);
    tracker.requeue(d[2]!);
    tracker.ack(d[3]!);
    clock.advance(FLUSH_MS);
    expect(channel.calls).toEqual([
      { op: 'nack', tag: 2, multiple: false, requeue: true },
      { op: 'ack', tag: 3, multiple: true },
    ]);
    expect(brokerOutcome([1, 2, 3], channel.calls)).toEqual(new Map([[1, 'ack'], [2, 'nack'], [3, 'ack']]));
  });

  it('sends a tag at most once: settling a delivery again is a no-op', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(2);
    tracker.requeue(d[1]!);
    tracker.requeue(d[1]!);
    tracker.ack(d[1]!);
    tracker.ack(d[2]!);
    clock.advance(FLUSH_MS);
    tracker.ack(d[2]!);
    tracker.requeue(d[2]!);
    clock.advance(STRAGGLER_MS * 2);
    expect(channel.calls).toEqual([
      { op: 'nack', tag: 1, multiple: false, requeue: true },
      { op: 'ack', tag: 2, multiple: true },
    ]);
  });

  it('flushes at once, without waiting, when batchMax acks wait', () => {
    const { channel, tracker, deliver } = setUp({ batchMax: 3 });
    const d = deliver(4);
    tracker.ack(d[1]!);
    tracker.ack(d[2]!);
    expect(channel.calls).toEqual([]);
    tracker.ack(d[3]!);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 3, multiple: true }]);
  });

  it('acks batchMax waiting stragglers alone at once, however young', () => {
    const { channel, tracker, deliver } = setUp({ batchMax: 2 });
    const d = deliver(3);
    tracker.ack(d[2]!);
    tracker.ack(d[3]!);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 2, multiple: false }, { op: 'ack', tag: 3, multiple: false }]);
  });

  it('sends every ack waiting, stragglers included, at once on flush(true)', () => {
    const { channel, tracker, deliver } = setUp();
    const d = deliver(3);
    tracker.ack(d[1]!);
    tracker.ack(d[3]!);
    tracker.flush(true);
    expect(channel.calls).toEqual([{ op: 'ack', tag: 1, multiple: true }, { op: 'ack', tag: 3, multiple: false }]);
  });

  it('sends nothing once disposed (the channel is gone): waiting acks are dropped, settles are no-ops', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(3);
    tracker.ack(d[1]!);
    tracker.dispose();
    clock.advance(STRAGGLER_MS * 10);
    tracker.ack(d[2]!);
    tracker.requeue(d[3]!);
    tracker.flush(true);
    expect(channel.calls).toEqual([]);
    expect(tracker.active).toBe(false);
    expect(tracker.held).toBe(0);
  });

  it('counts as held the deliveries the application has not settled', () => {
    const { tracker, deliver } = setUp();
    const d = deliver(3);
    expect(tracker.held).toBe(3);
    tracker.ack(d[1]!);
    tracker.requeue(d[2]!);
    tracker.ack(d[1]!);
    expect(tracker.held).toBe(1);
  });

  it('does not throw when the channel closed under it and refuses the ack or nack', () => {
    const { channel, clock, tracker, deliver } = setUp();
    const d = deliver(2);
    channel.closed = true;
    tracker.ack(d[1]!);
    expect(() => clock.advance(FLUSH_MS)).not.toThrow();
    expect(() => tracker.requeue(d[2]!)).not.toThrow();
    expect(tracker.held).toBe(0);
  });

  it('settles every tag exactly once, as the application did, whatever the order and timing', () => {
    // A deterministic pseudo-random sequence, so that a failure can be replayed.
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const { channel, clock, tracker } = setUp({ batchMax: 10 });
    const prefetch = 20;
    const total = 2000;
    const open: Tracked[] = [];
    const wanted = new Map<number, 'ack' | 'nack'>();
    let next = 1;
    while (wanted.size < total) {
      while (open.length < prefetch && next <= total) open.push(tracker.track(next++));
      const [delivery] = open.splice(Math.floor(random() * open.length), 1);
      if (random() < 0.1) {
        wanted.set(delivery!.tag, 'nack');
        tracker.requeue(delivery!);
      } else {
        wanted.set(delivery!.tag, 'ack');
        tracker.ack(delivery!);
      }
      if (random() < 0.3) clock.advance(Math.floor(random() * 2 * STRAGGLER_MS));
    }
    clock.advance(STRAGGLER_MS * 2 + FLUSH_MS);
    const delivered = Array.from({ length: total }, (_, i) => i + 1);
    expect(brokerOutcome(delivered, channel.calls)).toEqual(wanted);
    expect(channel.calls.some((call) => call.op === 'ack' && call.multiple)).toBe(true);
    expect(channel.calls.some((call) => call.op === 'ack' && !call.multiple)).toBe(true);
  });
});
