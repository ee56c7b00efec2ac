-- KEYS: order, expiry, data, dead. ARGV: id, entry JSON, expiresAt, bound, now, grace ms.
-- Returns the number of entries given up (moved to the dead list, oldest first).
local order, expiry, data, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
if redis.call('ZSCORE', order, id) then
  return 0
end
local last = redis.call('ZRANGE', order, -1, -1, 'WITHSCORES')
local position = 1
if last[2] then
  position = tonumber(last[2]) + 1
end
redis.call('ZADD', order, string.format('%.0f', position), id)
redis.call('ZADD', expiry, ARGV[3], id)
redis.call('HSET', data, id, ARGV[2])

local evicted = 0
local excess = redis.call('ZCARD', order) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZRANGE', order, 0, excess - 1)
  for _, victim in ipairs(oldest) do
    -- Given up, not lost: the node dead-letters what the dead list holds, then trims it.
    redis.call('RPUSH', dead, 'inbox_full\n' .. redis.call('HGET', data, victim))
    redis.call('ZREM', expiry, victim)
    redis.call('HDEL', data, victim)
  end
  redis.call('ZREMRANGEBYRANK', order, 0, excess - 1)
  evicted = #oldest
end

local latest = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
if latest[2] then
  local ttl = math.max(tonumber(latest[2]) - tonumber(ARGV[5]), 0) + tonumber(ARGV[6])
  local time = redis.call('TIME')
  local redisNow = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local at = string.format('%.0f', redisNow + math.ceil(ttl))
  redis.call('PEXPIREAT', order, at)
  redis.call('PEXPIREAT', expiry, at)
  redis.call('PEXPIREAT', data, at)
end
return evicted
