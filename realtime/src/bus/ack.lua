-- Records that a user's sockets acknowledged every message up to a seq of their shared numbering.
-- ARGV: 1 key prefix, 2 numbering period (ms), 3 user id, 4 epoch, 5 seq. An ack of an epoch that is
-- not the user's current one (a local numbering while Redis was away, or a numbering since
-- forgotten) is ignored. Acknowledgements live in `{prefix}ack:{period}` (user -> "epoch:seq"),
-- beside the numbering (see publish.lua).
-- Returns 1 when recorded (or already covered), 0 when ignored.
local prefix, period_ms, user, epoch, seq = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local period = math.floor(now_ms / period_ms)
local current = redis.call('HGET', prefix .. 'ep:' .. period, user)
  or redis.call('HGET', prefix .. 'ep:' .. (period - 1), user)
if current ~= epoch then return 0 end
local ack_now = prefix .. 'ack:' .. period
local acked = redis.call('HGET', ack_now, user) or redis.call('HGET', prefix .. 'ack:' .. (period - 1), user)
if acked then
  local separator = string.find(acked, ':', 1, true)
  if separator and string.sub(acked, 1, separator - 1) == epoch
    and tonumber(string.sub(acked, separator + 1)) >= seq then
    return 1
  end
end
redis.call('HSET', ack_now, user, epoch .. ':' .. ARGV[5])
redis.call('PEXPIRE', ack_now, 2 * period_ms + 60000)
return 1
