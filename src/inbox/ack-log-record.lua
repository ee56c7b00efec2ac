-- One batch of acked ids. KEYS: one acked-id key per session. ARGV: ids kept per session, ttl ms, then
-- for each key: how many ids, then that many pairs of score (ms) and escaped id.
local keep, ttl = tonumber(ARGV[1]), ARGV[2]
local i = 3
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  -- Rank 0 is the lowest score: everything below the newest `keep` goes.
  redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1)
  redis.call('PEXPIRE', key, ttl)
end
return 0
