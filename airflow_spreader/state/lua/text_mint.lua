-- Mint text-key handles (state/text_keys.py). KEYS[1]: the sorted set of "HEX:VALUE" members (score 0, in
-- lexicographic order = handle order, HEX being 32 fixed-width hex digits; VALUE "=text" or "-" below all).
-- ARGV[1], ARGV[2]: the minted neighbours (HEX) expected just below and just above the first handle, or ''
-- not to check; then HEX, VALUE pairs. A handle already minted keeps its value. Returns the first handle's
-- value (its own or the one found), or false when a neighbour changed (someone minted in between: read again).
local z = KEYS[1]
local function value_of(hex)
  local found = redis.call('ZRANGEBYLEX', z, '[' .. hex .. ':', '(' .. hex .. ';', 'LIMIT', 0, 1)[1]
  if found then return string.sub(found, 34) end
  return nil
end
if ARGV[1] ~= '' then
  local hex = ARGV[3]
  local below = redis.call('ZREVRANGEBYLEX', z, '(' .. hex .. ':', '-', 'LIMIT', 0, 1)[1]
  local above = redis.call('ZRANGEBYLEX', z, '(' .. hex .. ';', '+', 'LIMIT', 0, 1)[1]
  local mine = value_of(hex)
  if mine then return mine end
  if not below or string.sub(below, 1, 32) ~= ARGV[1] or not above or string.sub(above, 1, 32) ~= ARGV[2] then
    return false
  end
end
local first = nil
for i = 3, #ARGV, 2 do
  local kept = value_of(ARGV[i])
  if not kept then
    redis.call('ZADD', z, 0, ARGV[i] .. ':' .. ARGV[i + 1])
    kept = ARGV[i + 1]
  end
  if i == 3 then first = kept end
end
return first
