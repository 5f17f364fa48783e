-- Close the open idle span of one kind (held, stopped, paused): move it to the capped log of spans.
-- KEYS[1] idle-open hash, KEYS[2] idle log; ARGV: kind, now, log cap. Returns 1 if a span was closed.
local began = redis.call('HGET', KEYS[1], ARGV[1])
if not began then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], cjson.encode({kind = ARGV[1], ['begin'] = tonumber(began), ['end'] = tonumber(ARGV[2])}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
