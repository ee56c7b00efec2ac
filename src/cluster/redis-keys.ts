/**
 * Escapes an id (session, message, node) for use in Redis keys, members and channels, so that any two
 * different ids stay different in Redis. Redis sees UTF-8, in which unpaired UTF-16 surrogates would all
 * turn into U+FFFD; so `[A-Za-z0-9_.-]` stay as they are (typical ids remain readable in `redis-cli`) and
 * every other UTF-16 code unit, `%` included, becomes `%` and four hex digits. The result cannot end a
 * hash tag (no `}`) and holds no glob syntax for SCAN patterns.
 */
export function escapeKeyPart(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, (unit) => `%${unit.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Refuses a key prefix with a brace: Redis Cluster hashes a key by what stands between its first `{` and
 * the next `}`, so a brace in the prefix could move keys that must share a slot (one session's inbox keys)
 * into different slots, or all sessions into one.
 */
export function requireKeyPrefix(prefix: string): void {
  if (/[{}]/.test(prefix)) throw new RangeError(`keyPrefix must not contain { or } (it would change the keys' Redis Cluster hash slots), got ${JSON.stringify(prefix)}`);
}

/** The id `escapeKeyPart` escaped. */
export function unescapeKeyPart(escaped: string): string {
  return escaped.replace(/%([0-9a-f]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/*
 * The cluster's keys and channels (`<enc>` is an id escaped by `escapeKeyPart`, so any id is safe in a key
 * or channel):
 *
 *   <prefix>node:<enc nodeId>       STRING  the node's incarnation (random per start), PX = nodeTtlMs
 *   <prefix>session:<enc session>   HASH    nodeId -> "<sockets>:<incarnation>", PX = directoryTtlMs
 *   <prefix>nodes                   HASH    nodeId -> its latest status, JSON with its incarnation (`GET /v1/cluster`)
 *   <prefix>directory               channel session ids whose entries changed (`RedisDirectory`)
 *   <prefix>bus:<enc nodeId>        channel the frames addressed to that node (`RedisBus`)
 */
export class ClusterNames {
  readonly directoryChannel: string;
  readonly nodesKey: string;

  constructor(private readonly prefix: string) {
    this.directoryChannel = `${prefix}directory`;
    this.nodesKey = `${prefix}nodes`;
  }

  nodeKey(nodeId: string): string {
    return `${this.prefix}node:${escapeKeyPart(nodeId)}`;
  }

  sessionKey(sessionId: string): string {
    return `${this.prefix}session:${escapeKeyPart(sessionId)}`;
  }

  busChannel(nodeId: string): string {
    return `${this.prefix}bus:${escapeKeyPart(nodeId)}`;
  }
}
