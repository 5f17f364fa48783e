-- Put every failed range and every quarantined key back in flight, unowned and due at once, keeping its
-- attempt count and error. A quarantined key KEY comes back as the range KEY-KEY (built as text: ids are
-- never turned into Lua numbers). Returns {ranges, keys}.
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] failed, KEYS[4] stats, KEYS[5] quarantine
local function replay(range, info)
  redis.call('HSET', KEYS[1], range, cjson.encode({token = 0, lease = 0, attempts = info.attempts,
    error = info.error, run_at = 0}))
  redis.call('ZADD', KEYS[2], 0, range)
end
local items = redis.call('HGETALL', KEYS[3])
for i = 1, #items, 2 do replay(items[i], cjson.decode(items[i + 1])) end
local keys = redis.call('HGETALL', KEYS[5])
for i = 1, #keys, 2 do replay(keys[i] .. '-' .. keys[i], cjson.decode(keys[i + 1])) end
redis.call('DEL', KEYS[3], KEYS[5])
redis.call('HSET', KEYS[4], 'batches_failed', 0, 'ids_failed', 0, 'keys_quarantined', 0)
return {#items / 2, #keys / 2}
