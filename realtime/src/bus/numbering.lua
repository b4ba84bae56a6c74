-- A user's numbering now, their acknowledgement in it, and (with `carry`) the carrying over of
-- both into the current period so they live on (see publish.lua).
-- ARGV: 1 key prefix, 2 numbering period (ms), 3 '1' to carry over, 4.. user ids.
-- Returns, per user, {epoch, seq, acked} (empty strings: no numbering; acked 0 when none).
local prefix, period_ms, carry = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local period = math.floor(now_ms / period_ms)
local function keys(p)
  return prefix .. 'seq:' .. p, prefix .. 'ep:' .. p, prefix .. 'ack:' .. p
end
local seq_now, epoch_now, ack_now = keys(period)
local seq_before, epoch_before, ack_before = keys(period - 1)
local answers = {}
for i = 4, #ARGV do
  local user = ARGV[i]
  local seq = redis.call('HGET', seq_now, user)
  local epoch, acked
  if seq then
    epoch = redis.call('HGET', epoch_now, user)
    acked = redis.call('HGET', ack_now, user) or redis.call('HGET', ack_before, user)
  else
    seq = redis.call('HGET', seq_before, user)
    if seq then
      epoch = redis.call('HGET', epoch_before, user)
      acked = redis.call('HGET', ack_before, user)
      if carry then
        redis.call('HSET', seq_now, user, seq)
        redis.call('HSET', epoch_now, user, epoch)
        if acked then redis.call('HSET', ack_now, user, acked) end
      end
    end
  end
  -- An acknowledgement is `epoch:seq`; one of another epoch counts for nothing.
  local acked_seq = '0'
  if acked and epoch then
    local separator = string.find(acked, ':', 1, true)
    if separator and string.sub(acked, 1, separator - 1) == epoch then
      acked_seq = string.sub(acked, separator + 1)
    end
  end
  answers[#answers + 1] = {epoch or '', seq or '', acked_seq}
end
if carry then
  local lifetime = 2 * period_ms + 60000
  for _, key in ipairs({seq_now, epoch_now, ack_now}) do
    if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, lifetime) end
  end
end
return answers
