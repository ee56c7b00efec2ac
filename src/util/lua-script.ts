import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../cluster/redis-client.js';

/**
 * A Lua script kept in a `.lua` file next to the module that runs it, run by its SHA1 (EVALSHA) and sent
 * in full only when Redis does not have it cached. On a Redis Cluster both go to the master serving the
 * keys' slot (each master caches scripts of its own), so the keys of one call must share a slot. `npm run build` copies the `.lua` files into `dist/`
 * beside the compiled modules, so the same `new URL('./x.lua', import.meta.url)` finds them there.
 */
export class LuaScript {
  private readonly sha: string;

  private constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Reads the file when the module loads: a missing script fails at start-up, not at its first use. */
  static load(file: URL): LuaScript {
    return new LuaScript(readFileSync(file, 'utf8'));
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // Redis restarted, failed over or ran SCRIPT FLUSH: EVAL runs the script and caches it again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
