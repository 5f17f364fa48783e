-- A batch's work has committed: forget the range and count it. A range re-planned while this
-- batch ran (its lease expired) is completed all the same, so the new holder skips it.
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] stats, KEYS[4] meta, KEYS[5] per-minute done, KEYS[6] sizing times
-- ARGV: range, token, ids, rows (or -1), now, minute bucket, bucket ttl seconds, the work's seconds (or -1)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local entry = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'batches_done', 1)
redis.call('HINCRBY', KEYS[3], 'ids_done', ARGV[3])  -- strings: exact 64-bit sums (Lua numbers are doubles)
if tonumber(ARGV[4]) >= 0 then redis.call('HINCRBY', KEYS[3], 'rows_done', ARGV[4]) end
redis.call('HSET', KEYS[4], 'last_activity', ARGV[5])
redis.call('HINCRBY', KEYS[5], ARGV[6], ARGV[3])
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[7]))
if tonumber(ARGV[8]) >= 0 then  -- the next plan sizes its task instances by the mean
  redis.call('HINCRBY', KEYS[6], 'batches', 1)
  redis.call('HINCRBYFLOAT', KEYS[6], 'seconds', ARGV[8])
end
if tostring(entry.token) ~= ARGV[2] then return 'done-superseded' end
return 'done'
