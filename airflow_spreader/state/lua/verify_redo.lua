-- Plan the pending ranges again: each piece (a batch-size cut of a pending range, cut in Python, where
-- 64-bit ids are exact) goes back in flight, unowned and due at once, as retry_failed does; the
-- verification starts over (a new pass, which counts only these ranges again, kept under recheck; the
-- done-ledger keys this pass's batches apart).
-- Returns the number of pieces, or -1 (not verified yet), -2 (stale: counted again since read),
-- -3 (ranges still in flight), -4 (nothing pending).
-- KEYS[1] verify, KEYS[2] pending, KEYS[3] inflight, KEYS[4] leases, KEYS[5] stats, KEYS[6] recheck
-- ARGV: expected rounds, minus the ids in the pieces (a string: exact), then the pieces' ranges
if redis.call('HGET', KEYS[1], 'complete') ~= '1' then return -1 end
if (redis.call('HGET', KEYS[1], 'rounds') or '0') ~= ARGV[1] then return -2 end
if redis.call('HLEN', KEYS[3]) > 0 then return -3 end
if redis.call('HLEN', KEYS[2]) == 0 then return -4 end
for i = 3, #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], cjson.encode({token = 0, lease = 0, attempts = 0, run_at = 0}))
  redis.call('ZADD', KEYS[4], 0, ARGV[i])
end
redis.call('HINCRBY', KEYS[5], 'ids_done', ARGV[2])  -- done again: progress shows them to do
redis.call('DEL', KEYS[6])
redis.call('RENAME', KEYS[2], KEYS[6])
redis.call('HDEL', KEYS[1], 'cursor', 'complete', 'rounds', 'pending_rows', 'next_for', 'checked_at', 'announced')
redis.call('HINCRBY', KEYS[1], 'passes', 1)
return #ARGV - 2
