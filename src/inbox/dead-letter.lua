-- The first ARGV[2] items of the dead list are dead-lettered: trim them and add them to the session's
-- missed record, if this node still holds the drain lock and the list still starts with them (items are
-- only appended and trimmed from the head, so a trim already done shows as another first item).
-- KEYS: dead, missed, lock. ARGV: token, count, since (ms), missed ttl ms, lock ms, first item.
-- Returns 1; 0 without the lock; 2 when the list no longer starts with the first item (nothing done).
local dead, missed, lock = KEYS[1], KEYS[2], KEYS[3]
if redis.call('GET', lock) ~= ARGV[1] then
  return 0
end
if redis.call('LINDEX', dead, 0) ~= ARGV[6] then
  return 2
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
