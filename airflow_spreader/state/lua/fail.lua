-- A batch's work raised. Count the attempt; on the final attempt move the range to the failed
-- ranges (kept with the error) so that the rest of the backfill goes on without it.
-- KEYS[1] inflight, KEYS[2] leases, KEYS[3] failed, KEYS[4] stats, KEYS[5] meta
-- ARGV: range, token, error, final (1/0), now, ids, attempt id
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local entry = cjson.decode(raw)
if tostring(entry.token) ~= ARGV[2] then return 'superseded' end
entry.attempts = (entry.attempts or 0) + 1
entry.error = ARGV[3]
entry.failed_in = ARGV[7]
redis.call('HINCRBY', KEYS[4], 'errors', 1)
redis.call('HSET', KEYS[5], 'last_activity', ARGV[5])
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode({error = ARGV[3], attempts = entry.attempts,
    failed_at = tonumber(ARGV[5])}))
  redis.call('HINCRBY', KEYS[4], 'batches_failed', 1)
  redis.call('HINCRBY', KEYS[4], 'ids_failed', ARGV[6])  -- a string: exact 64-bit sum
  return 'failed'
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return 'retry'
