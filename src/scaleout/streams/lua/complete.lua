-- Completes a batch of deliveries of one request stream in one step, each
-- fenced on its owner and its delivery count.
-- KEYS[1] request stream, then per delivery: its caller's reply stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] ttl ms (reply streams),
-- ARGV[4] reply stream cap, ARGV[5] and ARGV[6] the lowest and
-- the highest entry id of the batch, then per delivery: entry id,
-- deliveries, rid, reply body
-- Returns one letter per delivery, in order: O (its reply was written), D
-- (its entry was completed already: a duplicate) or F (fenced: the entry
-- is there, but the delivery is no longer this consumer's).
-- No marker per request is kept: an entry is completed exactly when it is
-- acknowledged, and it is deleted then, so "the entry is gone" is what
-- says "completed already" (an entry id is never reused, and each request
-- is one entry). The replies to one reply stream go in one
-- entry, a field per reply: the rid as its name, the body as its value.
local group, me, ttl, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = (#ARGV - 6) / 4
if n < 1 then
  return ''
end
-- What this consumer holds from the batch's lowest id to its highest, in
-- one XPENDING rather than one a delivery: id -> delivery count. A
-- delivery is this consumer's own if it is there with its count.
local held = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], group, ARGV[5], ARGV[6], 1000000, me)) do
  held[p[1]] = tonumber(p[4])
end
local status, acked, gone, replies, streams = {}, {}, {}, {}, {}
for i = 1, n do
  local a = 6 + (i - 1) * 4
  local id, deliveries = ARGV[a + 1], ARGV[a + 2]
  local to = KEYS[1 + i]
  if gone[id] or held[id] ~= tonumber(deliveries) then
    -- Completed in this batch, or deleted by an earlier completion.
    local completed = gone[id] or #redis.call('XRANGE', KEYS[1], id, id) == 0
    status[i] = completed and 'D' or 'F'
  else
    acked[#acked + 1] = id
    gone[id] = true
    status[i] = 'O'
    local r = replies[to]
    if not r then
      r = {}
      replies[to] = r
      streams[#streams + 1] = to
    end
    r[#r + 1] = ARGV[a + 3]
    r[#r + 1] = ARGV[a + 4]
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
for _, to in ipairs(streams) do
  redis.call('XADD', to, 'MAXLEN', '~', cap, '*', unpack(replies[to]))
  redis.call('PEXPIRE', to, ttl)
end
return table.concat(status)
