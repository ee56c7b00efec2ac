import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../src/cluster/redis-url.js';
import { ConfigError, defaultHeapWatermark, loadConfig, readDefaults, shardQueueName, workQueues } from '../../src/config/config.js';
import { redact } from '../../src/util/redact.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('defaults to the embedded deployment with the documented values', () => {
    const config = loadConfig({});
    expect(config.amqp.url).toBeUndefined();
    expect(config.redis.url).toBeUndefined();
    expect(config).toMatchObject({
      port: 3000,
      ackTimeoutMs: 10_000,
      inboxMax: 1000,
      logLevel: 'info',
      amqp: { queue: 'pushcenter.notifications', queueTtlMs: 600_000, queueType: 'classic', deadLetterQueue: 'pushcenter.dead' },
      auth: { mode: 'none' },
    });
    expect(config.limits.maxTtlMs).toBe(600_000);
    expect(config.nodeId).toMatch(/^[A-Za-z0-9_.:-]+$/);
  });

  it('uses every part of the socket fast path unless SOCKET_FAST_PATH says off or lists the parts', () => {
    expect(loadConfig({}).socket.fastPath).toEqual({ eventWriter: true, groupWriter: true, ackReader: true });
    expect(loadConfig({ SOCKET_FAST_PATH: 'off' }).socket.fastPath).toEqual({ eventWriter: false, groupWriter: false, ackReader: false });
    expect(loadConfig({ SOCKET_FAST_PATH: 'event_writer, ack_reader' }).socket.fastPath)
      .toEqual({ eventWriter: true, groupWriter: false, ackReader: true });
    expect(problems({ SOCKET_FAST_PATH: 'fast' })).toEqual([
      'SOCKET_FAST_PATH="fast": must be on, off or a list of event_writer, group_writer, ack_reader',
    ]);
  });

  it('reads its defaults from config/default.json', () => {
    expect(readDefaults().AMQP_QUEUE).toBe('pushcenter.notifications');
    expect(loadConfig({}, { PORT: 4100 }).port).toBe(4100);
  });

  it('lets the environment override the defaults file', () => {
    const config = loadConfig({ PORT: '8080', AMQP_PREFETCH: '50', API_KEYS: 'a, b ,', CORS_ORIGINS: 'https://x.example' });
    expect(config.port).toBe(8080);
    expect(config.amqp.prefetch).toBe(50);
    expect(config.apiKeys.map((entry) => entry.key)).toEqual(['a', 'b']);
    expect(config.corsOrigins).toEqual(['https://x.example']);
  });

  it('reads API_KEYS as key or key:scope+scope entries, a key without scopes having all three', () => {
    expect(loadConfig({ API_KEYS: 'backend-7Hq2:publish,dashboard-Xp9:read+admin,legacy-key' }).apiKeys).toEqual([
      { key: 'backend-7Hq2', scopes: ['publish'] },
      { key: 'dashboard-Xp9', scopes: ['read', 'admin'] },
      { key: 'legacy-key', scopes: ['publish', 'read', 'admin'] },
    ]);
    expect(loadConfig({ API_KEYS: ' k1 , k2:admin + read ,,' }).apiKeys).toEqual([
      { key: 'k1', scopes: ['publish', 'read', 'admin'] },
      { key: 'k2', scopes: ['read', 'admin'] },
    ]);
    expect(loadConfig({}).apiKeys).toEqual([]);
  });

  it('refuses a malformed API_KEYS entry by its position and a redacted form, never the whole key', () => {
    const secret = 'Sup3rSecretKeyValue';
    const found = problems({
      API_KEYS: `${secret}:write, :read, ${secret}:read, back end-Key9:publish, ok-key:, k:read:admin, key-Zz9:read++admin`,
    });
    expect(found).toEqual([
      'API_KEYS entry 1 ("Sup3…", 19 characters): unknown scope "write"; scopes are publish, read, admin, joined with + (e.g. dashboard-Xp9:read+admin)',
      'API_KEYS entry 2: the key before ":" is empty; an entry is key or key:scope+scope (e.g. API_KEYS=backend-7Hq2:publish,dashboard-Xp9:read+admin)',
      'API_KEYS entry 4 ("bac…", 13 characters): the key holds whitespace; a key is visible ASCII characters other than "," and ":" (e.g. from openssl rand -hex 24)',
      'API_KEYS entry 5 ("o…", 6 characters): no scope after ":"; list scopes (publish, read, admin, joined with +), or drop the ":" for all of them',
      'API_KEYS entry 6 ("…", 1 character): more than one ":"; a key may not hold ":", and scopes follow the first one',
      'API_KEYS entry 7 ("k…", 7 characters): unknown scope ""; scopes are publish, read, admin, joined with + (e.g. dashboard-Xp9:read+admin)',
    ]);
    // Entry 3 repeats entry 1's key, but entry 1 is refused already; a repeat of an accepted key:
    expect(problems({ API_KEYS: 'dup-Key-1:read,dup-Key-1:admin' }))
      .toEqual(['API_KEYS entry 2 ("du…", 9 characters): the same key as entry 1; list each key once, with all its scopes (key:publish+read)']);
    expect(problems({ API_KEYS: 'caf\u00e9-key' })[0]).toMatch(/^API_KEYS entry 1 .*: the key holds a character outside visible ASCII/);
    expect(problems({ API_KEYS: 'a:raed' })).toHaveLength(1);
    for (const problem of found) expect(problem).not.toContain(secret.slice(0, 5));
  });

  it('reads METRICS_TOKEN, HTTP_DOCS and the per-key rate limit', () => {
    const defaults = loadConfig({});
    expect(defaults).toMatchObject({ metricsToken: undefined, httpDocs: true, rateLimits: { httpPerKeyPerMinute: 60_000 } });
    expect(loadConfig({ METRICS_TOKEN: 'scrape-me', RATE_LIMIT_HTTP_PER_KEY_PER_MIN: '0' }))
      .toMatchObject({ metricsToken: 'scrape-me', rateLimits: { httpPerKeyPerMinute: 0 } });
    expect(loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'none' }).httpDocs).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'none', HTTP_DOCS: 'on' }).httpDocs).toBe(true);
    expect(loadConfig({ HTTP_DOCS: 'off' }).httpDocs).toBe(false);
    expect(problems({ HTTP_DOCS: 'yes', METRICS_TOKEN: 'two words', RATE_LIMIT_HTTP_PER_KEY_PER_MIN: '-1' })).toEqual([
      'METRICS_TOKEN (9 characters): must be visible ASCII characters without whitespace',
      'HTTP_DOCS="yes": must be one of on, off',
      'RATE_LIMIT_HTTP_PER_KEY_PER_MIN="-1": must be a whole number from 0 to 10000000',
    ]);
  });

  it('names every bad variable and what it accepts', () => {
    const found = problems({ PORT: 'eighty', AMQP_QUEUE_TYPE: 'stream', LOG_LEVEL: 'loud', AMQP_URL: 'http://x' });
    expect(found).toHaveLength(4);
    expect(found.join('\n')).toMatch(/PORT="eighty": must be a whole number from 0 to 65535/);
    expect(found.join('\n')).toMatch(/AMQP_QUEUE_TYPE="stream": must be one of classic, quorum/);
    expect(found.join('\n')).toMatch(/LOG_LEVEL="loud"/);
    expect(found.join('\n')).toMatch(/AMQP_URL: must be a URL starting with amqp:\/\/ or amqps:\/\//);
  });

  it('puts the heap watermark at three quarters of the V8 heap limit unless a size is given', () => {
    const limit = getHeapStatistics().heap_size_limit;
    expect(loadConfig({}).backpressure.heapBytes).toBe(Math.floor(limit * 0.75));
    expect(loadConfig({ BACKPRESSURE_HEAP_MB: 'auto' }).backpressure.heapBytes).toBe(Math.floor(limit * 0.75));
    expect(loadConfig({ BACKPRESSURE_HEAP_MB: '300' }).backpressure.heapBytes).toBe(300 * 1024 * 1024);
    expect(defaultHeapWatermark(400 * 1024 * 1024)).toBe(300 * 1024 * 1024);
    expect(problems({ BACKPRESSURE_HEAP_MB: 'lots' })).toEqual(['BACKPRESSURE_HEAP_MB="lots": must be auto or a whole number from 16 to 65536']);
    expect(problems({ BACKPRESSURE_HEAP_MB: '8' })).toHaveLength(1);
  });

  it('bounds a connected session\'s inbox by 100 × INBOX_MAX unless told, never below INBOX_MAX', () => {
    expect(loadConfig({}).inboxMaxConnected).toBe(100_000);
    expect(loadConfig({ INBOX_MAX: '50' }).inboxMaxConnected).toBe(5_000);
    expect(loadConfig({ INBOX_MAX: '50', INBOX_MAX_CONNECTED: '70' }).inboxMaxConnected).toBe(70);
    expect(problems({ INBOX_MAX: '50', INBOX_MAX_CONNECTED: '20' }))
      .toEqual(['INBOX_MAX_CONNECTED="20": must be a whole number from 50 to 100000000']);
  });

  it('remembers acked ids for 3 minutes to suppress duplicates, 0 turning it off', () => {
    expect(loadConfig({}).duplicateWindowMs).toBe(180_000);
    expect(loadConfig({ DUPLICATE_WINDOW_MS: '0' }).duplicateWindowMs).toBe(0);
    expect(problems({ DUPLICATE_WINDOW_MS: '-1' })).toEqual(['DUPLICATE_WINDOW_MS="-1": must be a whole number from 0 to 86400000']);
  });

  it('caps the prefetch of a quorum queue at 2000 per shard', () => {
    expect(problems({ AMQP_QUEUE_TYPE: 'quorum', AMQP_PREFETCH: '5000' })[0]).toMatch(/AMQP_PREFETCH.*1 to 2000/);
    expect(loadConfig({ AMQP_QUEUE_TYPE: 'quorum', AMQP_PREFETCH: '5000', AMQP_QUEUE_SHARDS: '4' }).amqp.prefetch).toBe(5000);
    expect(problems({ AMQP_QUEUE_TYPE: 'quorum', AMQP_PREFETCH: '9000', AMQP_QUEUE_SHARDS: '4' })[0])
      .toMatch(/AMQP_PREFETCH.*1 to 8000/);
  });

  it('reads AMQP_QUEUE_SHARDS, one by default, and names the shard queues after AMQP_QUEUE', () => {
    expect(loadConfig({}).amqp.queueShards).toBe(1);
    expect(workQueues(loadConfig({}).amqp)).toEqual(['pushcenter.notifications']);
    const sharded = loadConfig({ AMQP_QUEUE: 'work', AMQP_QUEUE_SHARDS: '3' }).amqp;
    expect(sharded.queueShards).toBe(3);
    expect(workQueues(sharded)).toEqual(['work.shard-0', 'work.shard-1', 'work.shard-2']);
    expect(shardQueueName('work', 12)).toBe('work.shard-12');
  });

  it('refuses a bad AMQP_QUEUE_SHARDS, naming it and what it accepts', () => {
    for (const value of ['0', '-2', 'four', '1.5', '65']) {
      expect(problems({ AMQP_QUEUE_SHARDS: value })).toEqual([
        `AMQP_QUEUE_SHARDS=${JSON.stringify(value)}: must be a whole number from 1 to 64`,
      ]);
    }
  });

  it('refuses a prefetch smaller than the shard count, and a queue name too long for its shards', () => {
    expect(problems({ AMQP_QUEUE_SHARDS: '8', AMQP_PREFETCH: '5' })).toEqual([
      "AMQP_PREFETCH=5: must be at least AMQP_QUEUE_SHARDS (8): each shard's consumer takes a part of the prefetch",
    ]);
    expect(loadConfig({ AMQP_QUEUE_SHARDS: '8', AMQP_PREFETCH: '8' }).amqp.prefetch).toBe(8);
    expect(loadConfig({ AMQP_QUEUE: 'q'.repeat(255) }).amqp.queue).toHaveLength(255);
    expect(problems({ AMQP_QUEUE: 'q'.repeat(250), AMQP_QUEUE_SHARDS: '16' })).toEqual([
      'AMQP_QUEUE: at most 246 characters with AMQP_QUEUE_SHARDS=16: its shard queues are named like "….shard-15"',
    ]);
    expect(loadConfig({ AMQP_QUEUE: 'q'.repeat(246), AMQP_QUEUE_SHARDS: '16' }).amqp.queueShards).toBe(16);
  });

  it('refuses to run in production without authentication unless told so', () => {
    expect(problems({ NODE_ENV: 'production' })[0]).toMatch(/AUTH_MODE=none/);
    expect(problems({ NODE_ENV: 'production', AUTH_MODE: 'none' })).toEqual([]);
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: 's'.repeat(32) })).toEqual([]);
  });

  it('refuses a short HS256 secret and two keys at once', () => {
    expect(problems({ AUTH_JWT_SECRET: 'short' })[0]).toMatch(/at least 32 characters/);
    expect(problems({ AUTH_JWT_SECRET: 's'.repeat(32), AUTH_JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----x' })
      .join()).toMatch(/set only one/);
  });

  it('takes one Redis, or a Redis Cluster as redis+cluster://host:port,host:port… in REDIS_URL', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redis).toMatchObject({ url: 'redis://127.0.0.1:6379', cluster: false, adapter: 'classic' });
    const cluster = loadConfig({ REDIS_URL: 'redis+cluster://10.0.0.1:7000,10.0.0.2:7001' }).redis;
    expect(cluster).toMatchObject({ cluster: true, adapter: 'sharded' });
    expect(parseRedisUrl('rediss+cluster://app:p%40ss@redis-a.example:7000, [::1]:7001,redis-c/')).toEqual({
      cluster: true,
      nodes: [{ host: 'redis-a.example', port: 7000 }, { host: '::1', port: 7001 }, { host: 'redis-c', port: 6379 }],
      username: 'app',
      password: 'p@ss',
      tls: true,
    });
    expect(parseRedisUrl('redis+cluster://:secret@h:1')).toMatchObject({ username: undefined, password: 'secret', tls: false });
  });

  it('names REDIS_URL and what is wrong with it, never showing its password', () => {
    expect(problems({ REDIS_URL: 'http://x' })).toEqual([
      'REDIS_URL: must be redis://… or rediss://… for one Redis, or redis+cluster://host:port,host:port… (rediss+cluster:// for TLS) for a Redis Cluster',
    ]);
    expect(problems({ REDIS_URL: 'redis+cluster://u:hunter2@h1:7000,h2:port' })).toEqual([
      'REDIS_URL: node 2 of the redis+cluster:// URL, "h2:port", is not host:port (a port from 1 to 65535)',
    ]);
    expect(problems({ REDIS_URL: 'redis+cluster://u:hunter2@' })[0]).toMatch(/lists at least one node/);
    expect(problems({ REDIS_URL: 'redis+cluster://h1:7000/2' })[0]).toMatch(/no path, query or fragment/);
    expect(problems({ REDIS_URL: 'redis+cluster://h1:70000' })[0]).toMatch(/node 1 .* is not host:port/);
    expect(redact('redis+cluster://u:hunter2@h1:7000,h2:7001')).toBe('redis+cluster://u:***@h1:7000,h2:7001');
    expect(redact('redis+cluster://h1:7000,h2:7001')).toBe('redis+cluster://h1:7000,h2:7001');
  });

  it('runs groups on the sharded adapter on a Redis Cluster, and refuses the classic one there', () => {
    expect(loadConfig({ REDIS_URL: 'redis+cluster://h1:7000', REDIS_ADAPTER: 'sharded' }).redis.adapter).toBe('sharded');
    expect(problems({ REDIS_URL: 'redis+cluster://h1:7000', REDIS_ADAPTER: 'classic' })).toEqual([
      'REDIS_ADAPTER=classic: a Redis Cluster (REDIS_URL=redis+cluster://…) takes the sharded adapter only, since a classic ' +
        'PUBLISH is copied to every master of the cluster; unset REDIS_ADAPTER or set it to sharded',
    ]);
    expect(loadConfig({ REDIS_URL: 'redis://h1:6379', REDIS_ADAPTER: 'sharded' }).redis.adapter).toBe('sharded');
  });
});
