-- KEYS: lock. ARGV: token, ms. Takes the drain lock, or keeps it when this node holds it already (a
-- drain that failed, its unlock too, tries again with the same token). Returns 1 when held, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
