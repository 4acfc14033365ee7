-- Releases a delivery this consumer holds, so another host takes it at
-- once: its idle time is set past any min_idle and its delivery count
-- lowered by one (the claim that follows raises it again: a handback is
-- not an attempt).
-- KEYS[1] request stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] deliveries,
-- ARGV[5] the idle time to give it, ms (past any min_idle)
-- Returns 1 if released, 0 if it was not this consumer's.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] or tonumber(p[1][4]) ~= tonumber(ARGV[4]) then
  return 0
end
local retry = math.max(tonumber(ARGV[4]) - 1, 0)
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[5], 'RETRYCOUNT', retry, 'JUSTID')
return 1
