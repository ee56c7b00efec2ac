import { createHash } from 'node:crypto';

/** The routing key of a notification with neither a session nor a group: a broadcast. */
export const BROADCAST_SHARD_KEY = 'broadcast';

/** AMQP carries a routing key as a short string: at most 255 bytes. */
const MAX_ROUTING_KEY_BYTES = 255;

/**
 * The routing key a notification is published with to the sharded ingest (PROTOCOL §9.1), which the
 * consistent-hash exchange hashes to pick its shard: its first session id, else its first group, else
 * `broadcast`. So every message to one session (or one group) alone goes to the same shard, and keeps
 * its order there; a message to several targets goes with its first one. A key longer than AMQP allows
 * is replaced by its SHA-256 in hex, which keeps it on one shard too.
 */
export function shardKey(target: { sessions?: readonly string[] | undefined; groups?: readonly string[] | undefined }): string {
  const key = target.sessions?.[0] ?? target.groups?.[0] ?? BROADCAST_SHARD_KEY;
  if (Buffer.byteLength(key) <= MAX_ROUTING_KEY_BYTES) return key;
  return createHash('sha256').update(key).digest('hex');
}
