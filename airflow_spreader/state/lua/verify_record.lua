-- Record the counts of one verification round, if the verification cursor is still as read (two plans
-- never count the same spans twice). Returns 1 when recorded, 0 when stale.
-- KEYS[1] verify, KEYS[2] pending
-- ARGV: expected cursor, new cursor, complete ('1' when nothing is left to count), rows pending
--       in this round (a string: exact 64-bit sum), now, then per span with pending rows: range, rows
if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'checked_at', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'rounds', 1)
redis.call('HINCRBY', KEYS[1], 'pending_rows', ARGV[4])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'complete', '1') end
return 1
