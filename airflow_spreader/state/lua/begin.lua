-- A batch asks to start. It runs only while it still holds the range (same token) and the
-- backfill is not stopped; on stop it hands the range back for re-planning, untouched.
-- A batch that failed earlier in the same task attempt waits for the task's retry.
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] stop, KEYS[4] meta; ARGV: range, token, now, attempt id
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local entry = cjson.decode(raw)
if tostring(entry.token) ~= ARGV[2] then return 'superseded' end
if ARGV[4] ~= '' and entry.failed_in == ARGV[4] then return 'failed-this-try' end
if redis.call('EXISTS', KEYS[3]) == 1 then
  entry.token = 0
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  return 'stopped'
end
local now = tonumber(ARGV[3])
entry.started_at = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('ZADD', KEYS[2], now + tonumber(entry.lease), ARGV[1])
redis.call('HSET', KEYS[4], 'last_activity', ARGV[3])
return 'run'
