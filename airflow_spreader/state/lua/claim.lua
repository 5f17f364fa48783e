-- Commit a cycle planned from a snapshot, if the facts it relied on still hold: the cursor is
-- unchanged and every replayed range is still in flight as read and still due. Completions of
-- other ranges do not conflict. Returns {1, first_token}, {0} on conflict, {-1} when stopped.
-- It also records the cycle's planned end, where the next cycle may begin (Tracker.claim_cycle).
-- With a claim id (a DAG run), the cycle is recorded under it with its first token, atomically with the
-- claim: a second claim of the same id (a retried plan task, or a retry after a lost reply) returns
-- {2} and changes nothing (the caller reads the record). Only the last ARGV[10] records are kept.
-- KEYS[1] meta, KEYS[2] leases, KEYS[3] inflight, KEYS[4] stats, KEYS[5] stop, KEYS[6] seq,
-- KEYS[7] claims, KEYS[8] claim order
-- ARGV: expected_cursor, new_cursor, lease, now, n_fresh, ids_fresh, planned_until, claim id ('' for none),
--       the cycle's JSON without tokens, records kept, then per batch
--       range, run_at, expected inflight JSON ('' for a fresh range)
local claim_id = ARGV[8]
if claim_id ~= '' and redis.call('HEXISTS', KEYS[7], claim_id) == 1 then return {2} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {-1} end
if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[1] then return {0} end
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[3])
local head = 10
local count = (#ARGV - head) / 3
local replays = 0
local lost = 0  -- replays still holding a token: their lease ran out (a task died), nobody handed them back
for i = 0, count - 1 do
  local range, expected = ARGV[head + 1 + i * 3], ARGV[head + 3 + i * 3]
  if expected ~= '' then
    replays = replays + 1
    if redis.call('HGET', KEYS[3], range) ~= expected then return {0} end
    local due = redis.call('ZSCORE', KEYS[2], range)
    if not due or tonumber(due) > now then return {0} end
  end
end
local first = redis.call('INCRBY', KEYS[6], count) - count + 1
for i = 0, count - 1 do
  local range, run_at, expected = ARGV[head + 1 + i * 3], tonumber(ARGV[head + 2 + i * 3]), ARGV[head + 3 + i * 3]
  local entry = {token = first + i, run_at = run_at, lease = lease, attempts = 0}
  if expected ~= '' then
    local old = cjson.decode(expected)
    if old.token ~= 0 then lost = lost + 1 end
    entry.attempts = old.attempts or 0
    entry.error = old.error
    entry.root = old.root  -- a piece of a failed range being bisected (state/quarantine.py)
    entry.depth = old.depth
  end
  redis.call('HSET', KEYS[3], range, cjson.encode(entry))
  redis.call('ZADD', KEYS[2], run_at + lease, range)
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'last_activity', ARGV[4], 'planned_until', ARGV[7])
redis.call('HINCRBY', KEYS[4], 'batches_planned', ARGV[5])
redis.call('HINCRBY', KEYS[4], 'ids_planned', ARGV[6])  -- a string: exact 64-bit sum
redis.call('HINCRBY', KEYS[4], 'batches_replanned', replays)
redis.call('HINCRBY', KEYS[4], 'cycles', 1)
if lost > 0 then redis.call('HINCRBY', KEYS[4], 'attempts_lost', lost) end
if claim_id ~= '' then
  -- The payload is never decoded here (cjson would round 64-bit ids): only the first token is added.
  redis.call('HSET', KEYS[7], claim_id, string.format('{"first_token":%d,"cycle":%s}', first, ARGV[9]))
  redis.call('LPUSH', KEYS[8], claim_id)
  while redis.call('LLEN', KEYS[8]) > tonumber(ARGV[10]) do
    redis.call('HDEL', KEYS[7], redis.call('RPOP', KEYS[8]))
  end
end
return {1, first}
