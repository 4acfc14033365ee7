-- Completes one delivery, atomically: fenced on owner and delivery count.
-- KEYS[1] request stream, KEYS[2] done marker, KEYS[3] the caller's reply stream
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] deliveries,
-- ARGV[5] rid, ARGV[6] reply body, ARGV[7] ttl ms (marker and reply stream),
-- ARGV[8] reply stream cap
-- Returns OK (the reply was written), DUP (someone completed this rid
-- already) or FENCED (the delivery is no longer this consumer's).
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
local mine = #p > 0 and p[1][2] == ARGV[3] and tonumber(p[1][4]) == tonumber(ARGV[4])
local done = redis.call('EXISTS', KEYS[2]) == 1
if done then
  if mine then
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
    redis.call('XDEL', KEYS[1], ARGV[2])
  end
  return 'DUP'
end
if not mine then
  return 'FENCED'
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'rid', ARGV[5], 'body', ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. ARGV[4], 'PX', ARGV[7])
return 'OK'
