-- Capture the backfill's bounds once: the first caller wins, later callers see the same bounds.
-- The generation names this run of the backfill (the done-ledger's rows are keyed by it).
-- KEYS[1] meta, KEYS[2] registry; ARGV: max_id, min_id, now, name, generation
if redis.call('HEXISTS', KEYS[1], 'cursor') == 1 then
  return 0
end
local max_id = tonumber(ARGV[1])
local min_id = tonumber(ARGV[2])
local total = max_id - min_id + 1
if total < 0 then total = 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[1], 'min_id', ARGV[2], 'max_id', ARGV[1],
  'total_ids', tostring(total), 'started_at', ARGV[3], 'last_activity', ARGV[3], 'generation', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
