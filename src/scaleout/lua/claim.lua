-- Takes over deliveries idle for longer than min_idle, a bounded batch:
-- XAUTOCLAIM gives them to this consumer and adds one to each delivery
-- count, so two hosts racing cannot both win one.
-- KEYS[1] request stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count
-- Returns { {id, fields, deliveries, idle ms before the claim}..., }, then
-- the ids XAUTOCLAIM found deleted (someone trimmed the stream).
local before = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])) do
  before[p[1]] = p[3]
end
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(r[2]) do
  local id = entry[1]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p > 0 then
    out[#out + 1] = { id, entry[2], p[1][4], before[id] or -1 }
  end
end
return { out, r[3] or {} }
