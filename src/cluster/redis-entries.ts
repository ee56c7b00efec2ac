import type { Logger } from '../observability/logger.js';
import { LuaScript } from '../util/lua-script.js';
import { getAll, requireReady, type RedisClient } from './redis-client.js';
import type { ClusterNames } from './redis-keys.js';

/**
 * The entries of a session's directory hash: field nodeId, value "<sockets>:<incarnation>". An entry
 * counts only while its node's liveness key holds the same incarnation (see `RedisDirectory`).
 */

/** A directory entry of another node, as read from the session's hash. */
export interface Entry {
  node: string;
  sockets: number;
  incarnation: string;
  /** The raw field value, for compare-and-delete. */
  raw: string;
}

const deleteFieldIfUnchanged = LuaScript.load(new URL('./delete-field-if-unchanged.lua', import.meta.url));

export function formatEntry(sockets: number, incarnation: string): string {
  return `${sockets}:${incarnation}`;
}

/** Reads the entries of other nodes that count, and tidies away those that do not. */
export class LiveEntries {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: ClusterNames,
    private readonly nodeId: string,
    private readonly logger: Logger,
  ) {}

  /** Entries of other nodes that count: a positive count and a liveness key with their incarnation. */
  async live(sessionId: string): Promise<Entry[]> {
    requireReady(this.redis);
    const key = this.names.sessionKey(sessionId);
    const fields = await this.redis.hgetall(key);
    const candidates: Entry[] = [];
    const stale: Array<{ node: string; raw: string }> = [];
    for (const [node, raw] of Object.entries(fields)) {
      if (node === this.nodeId) continue;
      const entry = parseEntry(node, raw);
      if (entry) candidates.push(entry);
      else stale.push({ node, raw });
    }
    const live: Entry[] = [];
    if (candidates.length > 0) {
      const incarnations = await getAll(this.redis, candidates.map((entry) => this.names.nodeKey(entry.node)));
      candidates.forEach((entry, i) => {
        if (incarnations[i] === entry.incarnation) live.push(entry);
        else stale.push(entry);
      });
    }
    if (stale.length > 0) this.removeStale(key, stale);
    return live;
  }

  /** Tidies the hash in the background; an entry that changed since it was read is left alone. */
  private removeStale(key: string, stale: Array<{ node: string; raw: string }>): void {
    const removals = stale.map(({ node, raw }) => deleteFieldIfUnchanged.run(this.redis, [key], [node, raw]));
    Promise.all(removals).then(
      () => this.logger.debug({ key, nodes: stale.map((entry) => entry.node) }, 'removed directory entries of gone nodes'),
      (err: unknown) => this.logger.debug({ err, key }, 'could not remove directory entries of gone nodes'),
    );
  }
}

function parseEntry(node: string, raw: string): Entry | undefined {
  const separator = raw.indexOf(':');
  if (separator <= 0) return undefined;
  const sockets = Number(raw.slice(0, separator));
  const incarnation = raw.slice(separator + 1);
  if (!Number.isSafeInteger(sockets) || sockets <= 0 || incarnation.length === 0) return undefined;
  return { node, sockets, incarnation, raw };
}
