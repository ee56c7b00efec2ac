-- One batch of receipt events. KEYS: per shard its events hash and its index (sorted set of ids by
-- their first event's time). ARGV: now (ms), ttl ms, receipts kept per shard at most, then per shard
-- the number of events and that many pairs of id and event JSON.
local now, ttl, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
-- Forgetting is bounded per call: a backlog of old receipts goes over several writes.
local function forget(events, index, ids)
  if #ids > 0 then
    redis.call('HDEL', events, unpack(ids))
    redis.call('ZREM', index, unpack(ids))
  end
end
for s = 1, #KEYS, 2 do
  local events, index = KEYS[s], KEYS[s + 1]
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local id, event = ARGV[a], ARGV[a + 1]
    a = a + 2
    local known = redis.call('HGET', events, id)
    if known then
      redis.call('HSET', events, id, known .. '\n' .. event)
    else
      redis.call('HSET', events, id, event)
      redis.call('ZADD', index, now, id)
    end
  end
  forget(events, index, redis.call('ZRANGEBYSCORE', index, '-inf', now - ttl, 'LIMIT', 0, 500))
  local over = redis.call('ZCARD', index) - keep
  if over > 0 then
    forget(events, index, redis.call('ZRANGE', index, 0, math.min(over, 500) - 1))
  end
  redis.call('PEXPIRE', events, ttl)
  redis.call('PEXPIRE', index, ttl)
end
return 0
