-- One batch of acked ids. KEYS: the shard keys the batch touches. ARGV: now (ms), ttl ms, ids kept per
-- shard at most, then for each key its members (JSON [session, id]) joined by newlines.
local now, ttl, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for k, key in ipairs(KEYS) do
  for member in string.gmatch(ARGV[3 + k], '[^\n]+') do
    redis.call('ZADD', key, now, member)
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ttl)
  -- Rank 0 is the oldest: everything below the newest `keep` goes.
  redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1)
  redis.call('PEXPIRE', key, ttl)
end
return 0
