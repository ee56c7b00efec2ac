-- One batch of id claims. KEYS: the claim sets (sorted sets of ids by claim time) the batch touches.
-- ARGV: now (ms), window ms, ids kept per set at most, then per key the number of ids and the ids.
-- Returns 1 for each id claimed now, 0 for one claimed within the window, in ARGV order.
local now, window, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
local claimed = {}
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    claimed[#claimed + 1] = redis.call('ZADD', key, 'NX', now, ARGV[a])
    a = a + 1
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1)
  redis.call('PEXPIRE', key, window)
end
return claimed
