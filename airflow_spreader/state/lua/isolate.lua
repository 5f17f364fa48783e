-- Commit one step of a failed range's bisection (state/quarantine.py), planned in Python from a snapshot,
-- if the facts it relied on still hold: the family's record and every piece of it read in flight are as
-- read. Ids travel as strings and are never turned into Lua numbers (doubles would round 64-bit ids).
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] failed, KEYS[4] stats, KEYS[5] families, KEYS[6] quarantine,
-- KEYS[7] meta
-- ARGV: root, expected family JSON ('' for none), new family JSON ('' to delete it), now, checks count,
--       then per check: range, expected in-flight JSON; then operations, three arguments each:
--       drop RANGE -          forget a piece in flight
--       queue RANGE JSON      put a piece in flight, unowned and due at once (the next cycle plans it first)
--       fail RANGE JSON       keep a range as a failed range
--       quarantine KEY JSON   quarantine one key
--       release KEY -         take a key out of quarantine (its root is kept whole instead)
--       count FIELD N         add N to a counter
local family = redis.call('HGET', KEYS[5], ARGV[1])
if (family or '') ~= ARGV[2] then return 'stale' end
local checks = tonumber(ARGV[5])
for i = 0, checks - 1 do
  if redis.call('HGET', KEYS[1], ARGV[6 + i * 2]) ~= ARGV[7 + i * 2] then return 'stale' end
end
for i = 6 + checks * 2, #ARGV, 3 do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'drop' then
    redis.call('HDEL', KEYS[1], a)
    redis.call('ZREM', KEYS[2], a)
  elseif op == 'queue' then
    redis.call('HSET', KEYS[1], a, b)
    redis.call('ZADD', KEYS[2], 0, a)
  elseif op == 'fail' then
    redis.call('HSET', KEYS[3], a, b)
  elseif op == 'quarantine' then
    if redis.call('HSET', KEYS[6], a, b) == 1 then redis.call('HINCRBY', KEYS[4], 'keys_quarantined', 1) end
  elseif op == 'release' then
    if redis.call('HDEL', KEYS[6], a) == 1 then redis.call('HINCRBY', KEYS[4], 'keys_quarantined', -1) end
  elseif op == 'count' then
    redis.call('HINCRBY', KEYS[4], a, b)
  else
    return redis.error_reply('isolate.lua: unknown operation ' .. op)
  end
end
if ARGV[3] == '' then redis.call('HDEL', KEYS[5], ARGV[1]) else redis.call('HSET', KEYS[5], ARGV[1], ARGV[3]) end
redis.call('HSET', KEYS[7], 'last_activity', ARGV[4])
return 'ok'
