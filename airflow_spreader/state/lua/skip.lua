-- Skip the top of the ids not yet planned: move the cursor from ARGV[1] down to ARGV[2] and count the
-- ids in between as skipped, only if the cursor is still as read (a plan claiming meanwhile wins).
-- Returns 1, or 0 when the cursor moved. KEYS[1] meta, KEYS[2] stats
-- ARGV: expected cursor, new cursor, ids skipped (a string: exact 64-bit), now
if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'last_activity', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'ids_skipped', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'ranges_skipped', 1)
return 1
