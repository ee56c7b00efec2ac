-- The first ARGV[2] items of the dead list are dead-lettered: trim them and add them to the session's
-- missed record, if this node still holds the drain lock.
-- KEYS: dead, missed, lock. ARGV: token, count, since (ms), missed ttl ms, lock ms. Returns 1, or 0 without the lock.
local dead, missed, lock = KEYS[1], KEYS[2], KEYS[3]
if redis.call('GET', lock) ~= ARGV[1] then
  return 0
end
redis.call('LTRIM', dead, tonumber(ARGV[2]), -1)
redis.call('HINCRBY', missed, 'count', tonumber(ARGV[2]))
local since = redis.call('HGET', missed, 'since')
if not since or tonumber(ARGV[3]) < tonumber(since) then
  redis.call('HSET', missed, 'since', ARGV[3])
end
redis.call('PEXPIRE', missed, ARGV[4])
redis.call('PEXPIRE', lock, ARGV[5])
return 1
