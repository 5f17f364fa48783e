-- May this chain task start the next verification cycle? Once per round: when two runs' chains both
-- see the walk over (one started early, lead_seconds), only the first starts a cycle, so the chain
-- never doubles. Returns 1 (start it) or 0 (another chain did).
-- KEYS[1] verify; ARGV[1] the rounds counted so far
if (redis.call('HGET', KEYS[1], 'next_for') or '') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next_for', ARGV[1])
return 1
