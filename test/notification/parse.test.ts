import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { MAX_DATA_DEPTH, NotificationParser, type ParseResult } from '../../src/notification/parse.js';

const limits = { ...loadConfig({}).limits, maxSessions: 3, maxGroups: 2, maxTtlMs: 60_000 };
const parser = new NotificationParser(limits);
const meta = { receivedAt: 1_700_000_000_000 };

function ok(value: unknown, extra = {}) {
  const result = parser.parseValue(value, { ...meta, ...extra });
  if (!result.ok) throw new Error(`expected valid, got ${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

function reason(result: ParseResult): string {
  return result.ok ? 'valid' : result.error.reason;
}

describe('a valid notification', () => {
  it('is normalised with its defaults', () => {
    const n = ok({ id: 'm1', session: 's1', data: { hello: 'world' } });
    expect(n).toEqual({
      id: 'm1',
      sessions: ['s1'],
      groups: [],
      broadcast: false,
      event: 'message',
      data: { hello: 'world' },
      reliable: true,
      enqueuedAt: meta.receivedAt,
      expiresAt: meta.receivedAt + 60_000,
    });
  });

  it('takes lists of sessions and groups, without duplicates', () => {
    const n = ok({ session: ['a', 'b', 'a'], group: ['g'], data: 1 });
    expect(n.sessions).toEqual(['a', 'b']);
    expect(n.groups).toEqual(['g']);
  });

  it('takes its id from the AMQP messageId when the body has none, else generates one', () => {
    expect(ok({ session: 's', data: null }, { messageId: 'amqp-7' }).id).toBe('amqp-7');
    const generated = ok({ session: 's', data: null }).id;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(ok({ session: 's', data: null }).id).not.toBe(generated);
  });

  it('uses the AMQP timestamp as the enqueue time', () => {
    const n = ok({ session: 's', data: 1, ttl: 500 }, { timestamp: 1_600_000_000_000 });
    expect(n.enqueuedAt).toBe(1_600_000_000_000);
    expect(n.expiresAt).toBe(1_600_000_000_500);
  });

  it('caps ttl at the queue TTL', () => {
    expect(ok({ session: 's', data: 1, ttl: 10_000_000 }).expiresAt).toBe(meta.receivedAt + 60_000);
  });

  it('accepts broadcast and volatile delivery with a custom event', () => {
    const n = ok({ broadcast: true, delivery: 'volatile', event: 'news:update', data: 'x' });
    expect(n).toMatchObject({ broadcast: true, reliable: false, event: 'news:update' });
  });

  it('keeps unknown fields out of the notification', () => {
    const n = ok(JSON.parse('{"session":"s","data":1,"title":"ignored","__proto__":{"polluted":true}}'));
    expect(Object.keys(n)).not.toContain('title');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('the original message center format', () => {
  it('maps socketSessionId, socketGroupFlag and isVolatile', () => {
    const n = ok({ socketSessionId: 'legacy-1', socketGroupFlag: 'grp', isVolatile: true, data: 'plain' });
    expect(n).toMatchObject({ sessions: ['legacy-1'], groups: ['grp'], reliable: false, data: 'plain' });
  });

  it('defaults isVolatile false to reliable', () => {
    expect(ok({ socketSessionId: 'x', isVolatile: false, data: 1 }).reliable).toBe(true);
  });

  it('parses a data string that holds JSON', () => {
    const n = ok({ socketSessionId: 'x', data: '{"title":"Hi","count":2}' });
    expect(n.data).toEqual({ title: 'Hi', count: 2 });
    expect(ok({ socketSessionId: 'x', data: '[1,2]' }).data).toEqual([1, 2]);
  });

  it('keeps a data string that is not JSON as it is', () => {
    expect(ok({ socketSessionId: 'x', data: '{not json' }).data).toBe('{not json');
  });

  it('leaves string data of the new format alone', () => {
    expect(ok({ session: 'x', data: '{"a":1}' }).data).toBe('{"a":1}');
  });
});

describe('an invalid notification is refused with its reason', () => {
  const base = { session: 's', data: 1 };
  const cases: Array<[string, unknown, string]> = [
    ['not an object', [1, 2], 'not_object'],
    ['null', null, 'not_object'],
    ['no data', { session: 's' }, 'missing_data'],
    ['no target', { data: 1 }, 'no_target'],
    ['broadcast false and nothing else', { broadcast: false, data: 1 }, 'no_target'],
    ['a number as session', { session: 5, data: 1 }, 'invalid_session'],
    ['an empty session id', { session: '', data: 1 }, 'invalid_session'],
    ['an empty session list', { session: [], data: 1 }, 'invalid_session'],
    ['too many sessions', { session: ['a', 'b', 'c', 'd'], data: 1 }, 'too_many_sessions'],
    ['too many groups', { group: ['a', 'b', 'c'], data: 1 }, 'too_many_groups'],
    ['a session id over the length limit', { session: 'x'.repeat(129), data: 1 }, 'invalid_session'],
    ['a group of the wrong type', { group: { a: 1 }, data: 1 }, 'invalid_group'],
    ['a legacy session of the wrong type', { socketSessionId: 7, data: 1 }, 'invalid_session'],
    ['broadcast as a string', { broadcast: 'yes', data: 1 }, 'invalid_broadcast'],
    ['an id over 128 characters', { ...base, id: 'i'.repeat(129) }, 'invalid_id'],
    ['an empty id', { ...base, id: '' }, 'invalid_id'],
    ['an event with spaces', { ...base, event: 'bad event' }, 'invalid_event'],
    ['an event over 64 characters', { ...base, event: 'e'.repeat(65) }, 'invalid_event'],
    ['the reserved event connect', { ...base, event: 'connect' }, 'reserved_event'],
    ['the reserved event disconnect', { ...base, event: 'disconnect' }, 'reserved_event'],
    ['an unknown delivery', { ...base, delivery: 'sometimes' }, 'invalid_delivery'],
    ['isVolatile as a string', { ...base, isVolatile: 'true' }, 'invalid_delivery'],
    ['a zero ttl', { ...base, ttl: 0 }, 'invalid_ttl'],
    ['a fractional ttl', { ...base, ttl: 1.5 }, 'invalid_ttl'],
    ['a string ttl', { ...base, ttl: '100' }, 'invalid_ttl'],
    ['session and socketSessionId together', { ...base, socketSessionId: 't' }, 'conflicting_fields'],
    ['delivery contradicting isVolatile', { ...base, delivery: 'reliable', isVolatile: true }, 'conflicting_fields'],
  ];
  it.each(cases)('%s', (_name, value, expected) => {
    expect(reason(parser.parseValue(value, meta))).toBe(expected);
  });

  it('says what is allowed', () => {
    const result = parser.parseValue({ session: 5, data: 1 }, meta);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(/session: must be a string of 1 to 128 characters/);
  });

  it('refuses a body that is not JSON', () => {
    expect(reason(parser.parseBytes(Buffer.from('{"session": "s", data'), meta))).toBe('not_json');
  });

  it('refuses a body over the size limit before parsing it', () => {
    const body = Buffer.from(JSON.stringify({ session: 's', data: 'x'.repeat(limits.maxMessageBytes) }));
    expect(reason(parser.parseBytes(body, meta))).toBe('too_large');
  });

  it('refuses data nested deeper than the limit', () => {
    let data: unknown = 1;
    for (let i = 0; i <= MAX_DATA_DEPTH; i++) data = [data];
    expect(reason(parser.parseValue({ session: 's', data }, meta))).toBe('too_deep');
  });

  it('counts the depth through objects and arrays alike, and takes data right at the limit', () => {
    const nest = (levels: number): unknown => {
      let data: unknown = { leaf: true };
      for (let i = 1; i < levels; i++) data = i % 2 === 0 ? [1, data] : { before: 'x', child: data, after: [] };
      return data;
    };
    expect(parser.parseValue({ session: 's', data: nest(MAX_DATA_DEPTH) }, meta).ok).toBe(true);
    expect(reason(parser.parseValue({ session: 's', data: nest(MAX_DATA_DEPTH + 1) }, meta))).toBe('too_deep');
    const body = Buffer.from(JSON.stringify({ session: 's', data: nest(MAX_DATA_DEPTH + 1) }));
    expect(reason(parser.parseBytes(body, meta))).toBe('too_deep');
  });

  it('parses a valid body from bytes', () => {
    const result = parser.parseBytes(Buffer.from('{"session":"s","data":{"n":1}}'), meta);
    expect(result.ok && result.notification.data).toEqual({ n: 1 });
  });
});
