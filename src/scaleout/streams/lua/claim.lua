-- Takes over deliveries idle for longer than min_idle, a bounded batch.
-- XPENDING names them with their idle time; XCLAIM (with the same min idle
-- time) gives them to this consumer and adds one to each delivery count,
-- so two hosts racing cannot both win one. (XAUTOCLAIM would choose the
-- set itself, and then their idle times before the claim are unknown.)
-- KEYS[1] request stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count
-- Returns { {id, fields, deliveries, idle ms before the claim}..., }, then
-- the ids whose entries were gone (someone trimmed the stream: XCLAIM
-- drops them from the pending list).
local count = math.min(tonumber(ARGV[4]), 1000)
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', count)
if #pending == 0 then
  return { {}, {} }
end
local ids, idle = {}, {}
for i, p in ipairs(pending) do
  ids[i] = p[1]
  idle[p[1]] = p[3]
end
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], unpack(ids))
local out, got = {}, {}
for _, entry in ipairs(claimed) do
  if type(entry) == 'table' and entry[2] then
    local id = entry[1]
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if #p > 0 then
      got[id] = true
      out[#out + 1] = { id, entry[2], p[1][4], idle[id] }
    end
  end
end
-- The rest had no entry left (not returned, or returned without fields):
-- XCLAIM dropped them from the pending list, or they are dropped here.
local deleted = {}
for _, id in ipairs(ids) do
  if not got[id] then
    deleted[#deleted + 1] = id
    redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
return { out, deleted }
