-- Record one check of the governor's signals, atomically with what it implies: the time the decision
-- began (since), the total time held, a capped log of decisions, and, on a stop, the stop flag
-- (value 'governor': status tells a governor's stop from an operator's). Returns the previous decision.
-- It also counts the holds (the plan's rate factor halves per hold: core/adapt.py) and opens and closes the
-- idle spans 'held' and 'stopped' (state/idle.py: the ETA sets that time apart).
-- KEYS[1] governor hash, KEYS[2] governor log, KEYS[3] stop, KEYS[4] idle-open, KEYS[5] idle log;
-- ARGV: decision, verdict json, readings json, now, log cap, reason, idle log cap
local prev = redis.call('HGET', KEYS[1], 'decision') or 'none'
local now = tonumber(ARGV[4])
local stopping = ARGV[1] == 'stop' and redis.call('EXISTS', KEYS[3]) == 0
redis.call('HSET', KEYS[1], 'decision', ARGV[1], 'verdict', ARGV[2], 'readings', ARGV[3], 'checked_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'checks', 1)
if prev ~= ARGV[1] then
  if prev == 'hold' then
    local since = tonumber(redis.call('HGET', KEYS[1], 'since') or ARGV[4])
    redis.call('HINCRBYFLOAT', KEYS[1], 'held_seconds', now - since)
    local began = redis.call('HGET', KEYS[4], 'held')
    if began then
      redis.call('HDEL', KEYS[4], 'held')
      redis.call('LPUSH', KEYS[5], cjson.encode({kind = 'held', ['begin'] = tonumber(began), ['end'] = now}))
      redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[7]) - 1)
    end
  end
  if ARGV[1] == 'hold' then
    redis.call('HINCRBY', KEYS[1], 'holds', 1)
    redis.call('HSETNX', KEYS[4], 'held', ARGV[4])
  end
  redis.call('HSET', KEYS[1], 'since', ARGV[4])
end
if prev ~= ARGV[1] or stopping then
  redis.call('LPUSH', KEYS[2], cjson.encode({at = now, from = prev, to = ARGV[1], reason = ARGV[6]}))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
end
if stopping then redis.call('HSETNX', KEYS[4], 'stopped', ARGV[4]) end
if ARGV[1] == 'stop' then redis.call('SET', KEYS[3], 'governor') end
return prev
