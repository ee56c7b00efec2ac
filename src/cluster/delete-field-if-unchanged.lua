-- Deletes field ARGV[1] of hash KEYS[1] only if it still holds ARGV[2]: a reader never removes a newer entry.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
