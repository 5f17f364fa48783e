-- Put every failed range back in flight, unowned and due at once, keeping its attempt count.
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] failed, KEYS[4] stats
local items = redis.call('HGETALL', KEYS[3])
local moved = 0
for i = 1, #items, 2 do
  local info = cjson.decode(items[i + 1])
  redis.call('HSET', KEYS[1], items[i], cjson.encode({token = 0, lease = 0, attempts = info.attempts,
    error = info.error, run_at = 0}))
  redis.call('ZADD', KEYS[2], 0, items[i])
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[4], 'batches_failed', 0, 'ids_failed', 0)
return moved
