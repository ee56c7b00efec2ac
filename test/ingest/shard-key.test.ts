import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { toQueueMessage } from '../../src/ingest/http-route.js';
import { BROADCAST_SHARD_KEY, shardKey } from '../../src/ingest/shard-key.js';
import { NotificationParser } from '../../src/notification/parse.js';

const parser = new NotificationParser(loadConfig({ MAX_ID_LENGTH: '1024' }).limits);

/** The shard key the HTTP route publishes a notification with. */
function routedBy(notification: Record<string, unknown>): string | undefined {
  const parsed = parser.parseValue({ data: 1, ...notification }, { messageId: 'id-1', receivedAt: Date.now() });
  if (!parsed.ok) throw new Error(parsed.error.message);
  return toQueueMessage(parsed.notification).shardKey;
}

describe('the shard key (PROTOCOL §9)', () => {
  it('is the first session, else the first group, else the broadcasts\' key', () => {
    expect(shardKey({ sessions: ['alice', 'bob'], groups: ['team'] })).toBe('alice');
    expect(shardKey({ sessions: [], groups: ['team', 'ops'] })).toBe('team');
    expect(shardKey({ groups: ['team'] })).toBe('team');
    expect(shardKey({ sessions: [], groups: [] })).toBe(BROADCAST_SHARD_KEY);
    expect(BROADCAST_SHARD_KEY).toBe('broadcast');
  });

  it('replaces a key over AMQP\'s 255 bytes by its SHA-256 in hex, and keeps one that fits', () => {
    const fits = 'é'.repeat(127);
    expect(Buffer.byteLength(fits)).toBe(254);
    expect(shardKey({ sessions: [fits] })).toBe(fits);
    const long = 'é'.repeat(128);
    expect(shardKey({ sessions: [long] })).toBe(createHash('sha256').update(long).digest('hex'));
    expect(shardKey({ sessions: [long] })).toBe(shardKey({ groups: [long] }));
  });

  it('is what the HTTP route publishes with, whichever field names the notification uses', () => {
    expect(routedBy({ session: 'alice' })).toBe('alice');
    expect(routedBy({ session: ['alice', 'bob'], group: 'team' })).toBe('alice');
    expect(routedBy({ session: ['alice', 'alice', 'bob'] })).toBe('alice');
    expect(routedBy({ group: ['team', 'ops'], broadcast: true })).toBe('team');
    expect(routedBy({ broadcast: true })).toBe('broadcast');
    expect(routedBy({ socketSessionId: 'legacy', isVolatile: true })).toBe('legacy');
    expect(routedBy({ socketGroupFlag: ['legacy-group'] })).toBe('legacy-group');
  });
});
