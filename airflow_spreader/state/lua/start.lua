-- Capture the backfill's bounds once: the first caller wins, later callers see the same bounds.
-- The generation names this run of the backfill (the done-ledger's rows are keyed by it).
-- Numbers arrive as strings computed in Python (Lua doubles lose 64-bit integers) and are stored as is.
-- The token sequence is raised to the start's clock in milliseconds (13 digits: Lua's tostring and cjson
-- keep 14 exact), so that a token issued after this start is above every token issued before it (while
-- fewer than 1000 tokens a second are claimed), even after a reset or a loss of Redis's data.
-- The registry key lives in another cluster slot: the caller adds the name to it outside the script.
-- KEYS[1] meta, KEYS[2] seq; ARGV: max_id, min_id, now, total_ids, generation, now in milliseconds
if redis.call('HEXISTS', KEYS[1], 'cursor') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[1], 'min_id', ARGV[2], 'max_id', ARGV[1],
  'total_ids', ARGV[4], 'started_at', ARGV[3], 'last_activity', ARGV[3], 'generation', ARGV[5])
local seq = redis.call('GET', KEYS[2])
if not seq or #seq < #ARGV[6] or (#seq == #ARGV[6] and seq < ARGV[6]) then
  redis.call('SET', KEYS[2], ARGV[6])
end
return 1
