-- Renews the leases of running deliveries: resets each one's idle time
-- (XCLAIM JUSTID, which leaves the delivery count alone) only while it is
-- still this consumer's with the same delivery count.
-- KEYS[1] request stream
-- ARGV[1] group, ARGV[2] consumer, then pairs: entry id, deliveries
-- Returns the entry ids that are no longer this consumer's (lost).
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #p > 0 and p[1][2] == ARGV[2] and tonumber(p[1][4]) == tonumber(ARGV[i + 1]) then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
