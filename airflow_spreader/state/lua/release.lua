-- Hand a range back unfinished (stop, shutdown): it is planned again first, with no lease wait.
-- KEYS[1] inflight, KEYS[2] leases; ARGV: range, token
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local entry = cjson.decode(raw)
if tostring(entry.token) ~= ARGV[2] then return 'superseded' end
entry.token = 0
entry.started_at = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 'released'
