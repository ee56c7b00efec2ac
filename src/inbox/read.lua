-- KEYS: order, expiry, data, dead. ARGV: now, count.
-- Returns { expired (moved to the dead list), entry JSONs oldest first }.
local order, expiry, data, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', ARGV[1])
if #expired > 0 then
  for _, id in ipairs(expired) do
    local entry = redis.call('HGET', data, id)
    if entry then
      redis.call('RPUSH', dead, 'inbox_expired\n' .. entry)
    end
    redis.call('ZREM', order, id)
    redis.call('HDEL', data, id)
  end
  redis.call('ZREMRANGEBYSCORE', expiry, '-inf', ARGV[1])
end

local entries = {}
local count = tonumber(ARGV[2])
if count > 0 then
  for _, id in ipairs(redis.call('ZRANGE', order, 0, count - 1)) do
    local entry = redis.call('HGET', data, id)
    if entry then
      entries[#entries + 1] = entry
    end
  end
end
return { #expired, entries }
