/**
 * The notifications every system in the bench carries: ~200 bytes of JSON, the publish time in
 * `data.t` (ms since epoch, all processes share one clock) and the sequence number in `data.s`, so a
 * client measures latency and counts distinct messages without parsing the id.
 */

export const PAYLOAD_BYTES = 200;
export const GROUP = 'all';

export function sessionId(index: number): string {
  return `s${index}`;
}

/** Message `seq` goes to this session: consecutive messages go to consecutive sessions (and workers). */
export function sessionFor(seq: number, sessions: number): string {
  return sessionId(seq % sessions);
}

export function messageId(seq: number): string {
  return `b${seq}`;
}

export interface BenchData {
  /** Publish time, ms since epoch. */
  t: number;
  /** Sequence number, unique in a run. */
  s: number;
  /** Padding to the payload size. */
  p: string;
}

// Sized so that a typical AMQP body (below) is PAYLOAD_BYTES long.
const SAMPLE = JSON.stringify({
  id: messageId(1_000_000),
  session: sessionId(1000),
  delivery: 'reliable',
  data: { t: 1_700_000_000_000, s: 1_000_000, p: '' },
});
const PADDING = 'x'.repeat(Math.max(0, PAYLOAD_BYTES - SAMPLE.length));

export function benchData(seq: number, now = Date.now()): BenchData {
  return { t: now, s: seq, p: PADDING };
}

export type Target = { session: string } | { group: string };

/** The AMQP body a business backend publishes (PROTOCOL §2). */
export function notificationBody(seq: number, target: Target, reliable: boolean, now = Date.now()): Buffer {
  return Buffer.from(JSON.stringify({
    id: messageId(seq),
    ...target,
    delivery: reliable ? 'reliable' : 'volatile',
    data: benchData(seq, now),
  }));
}

/** The envelope browsers get (PROTOCOL §3), as the peers that emit directly build it. */
export function envelope(seq: number, reliable: boolean, now = Date.now(), group?: string): Record<string, unknown> {
  const env: Record<string, unknown> = {
    id: messageId(seq),
    event: 'message',
    data: benchData(seq, now),
    sentAt: now,
    reliable,
  };
  if (group !== undefined) env.group = group;
  return env;
}
