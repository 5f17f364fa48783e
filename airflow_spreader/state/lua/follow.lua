-- At the bottom of a pass, the key's MAX was read again: start a pass over the new ids above the top, or
-- record that the passes end here. Committed only if the cursor and the top are still as read (the
-- caller decided from them that the walk is at the bottom), so that of two plans looking at once only
-- one starts the pass; the other answers 'stale', reads again, and finds the walk no longer at the bottom.
-- The new range (top, new top] lies above every id ever planned, so nothing is planned twice.
-- Numbers arrive as strings computed in Python (Lua doubles lose 64-bit integers) and are stored as is.
-- KEYS[1] meta, KEYS[2] stop
-- ARGV: expected cursor, expected top, action ('extend', 'caught-up' or 'bound'), passes as read,
--       new top, new pass floor, ids added, MAX as read ('' for an empty table), now
if redis.call('EXISTS', KEYS[2]) == 1 then return 'stopped' end
local meta = redis.call('HMGET', KEYS[1], 'cursor', 'max_id', 'passes')
if meta[1] ~= ARGV[1] or meta[2] ~= ARGV[2] or (meta[3] or '1') ~= ARGV[4] then return 'stale' end
if ARGV[3] == 'extend' then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[5], 'max_id', ARGV[5], 'pass_floor', ARGV[6],
    'passes', tonumber(ARGV[4]) + 1, 'seen_max', ARGV[8], 'last_activity', ARGV[9])
  redis.call('HINCRBY', KEYS[1], 'total_ids', ARGV[7])  -- a string: exact 64-bit sum
  redis.call('HDEL', KEYS[1], 'looked_top')
  return 'extended'
end
redis.call('HSET', KEYS[1], 'looked_top', ARGV[2], 'looked_at', ARGV[9])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'seen_max', ARGV[8]) end
return ARGV[3]
