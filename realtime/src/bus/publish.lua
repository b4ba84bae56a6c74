-- Numbers one published message for its recipients and appends it to the fan-out stream, atomically.
-- ARGV: 1 key prefix, 2 audience kind (users | role | topic | everyone), 3 role or topic name (for
-- everyone: the instance asking), 4 frame body, 5 numbering period (ms), 6 stream MAXLEN
-- (approximate), 7 origin (the publishing instance when it delivered the message to its own sockets
-- already, else empty), 8 traceparent (the trace of the work that published it, else empty),
-- 9.. user ids (kind users: the recipients; kind role: users left out).
--
-- Numberings live in two hashes per period of Redis time (`{prefix}seq:{period}`: user -> seq,
-- `{prefix}ep:{period}`: user -> epoch), one field per user: a user's first message in a period
-- carries their numbering over from the period before, so a numbering lives at least one period
-- past its last message and the keys expire whole (per-user keys would cost a key and a TTL per
-- recipient: three times the work for a message to 1,000 users). A new numbering gets an epoch
-- greater than any this prefix handed out, about now in ms.
--
-- Every entry carries `n`, one more than the entry before it (`{prefix}entries`): a reader that sees
-- `n` jump, or start again, knows it missed entries (trimmed, or Redis restarted empty).
-- Kind everyone appends `{g: instance, n}`: every instance resyncs every session it holds.
-- Entry of a message: `{u: "user,user,…", r: "epoch:seq:epoch:seq:…", b: body, o?: origin,
-- t?: traceparent, n}`.
-- Returns how many users it numbered (0: nobody; nothing is appended), or 1 for everyone.
local prefix, kind, target, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local period_ms = tonumber(ARGV[5])
local stream = prefix .. 'stream'
if kind == 'everyone' then
  local n = redis.call('INCR', prefix .. 'entries')
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*', 'g', target, 'n', n)
  return 1
end
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local users, first
if kind == 'users' then
  users, first = ARGV, 9
else
  -- Role and topic members carry their session's expiry (Unix ms) as score.
  local index = prefix .. kind .. ':' .. target
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now_ms)
  users, first = redis.call('ZRANGE', index, 0, -1), 1
  if #ARGV >= 9 then
    local left_out = {}
    for i = 9, #ARGV do left_out[ARGV[i]] = true end
    local kept = {}
    for _, user in ipairs(users) do
      if not left_out[user] then kept[#kept + 1] = user end
    end
    users = kept
  end
end
if #users < first then return 0 end
local period = math.floor(now_ms / period_ms)
local seq_now, epoch_now = prefix .. 'seq:' .. period, prefix .. 'ep:' .. period
local seq_before, epoch_before = prefix .. 'seq:' .. (period - 1), prefix .. 'ep:' .. (period - 1)
local numbers = {}
for i = first, #users do
  local user = users[i]
  local seq = redis.call('HINCRBY', seq_now, user, 1)
  local epoch
  if seq == 1 then
    local carried = redis.call('HGET', seq_before, user)
    if carried then
      seq = tonumber(carried) + 1
      epoch = redis.call('HGET', epoch_before, user)
      redis.call('HSET', seq_now, user, seq)
    else
      local last = tonumber(redis.call('GET', prefix .. 'epoch') or '0')
      epoch = now_ms
      if epoch <= last then epoch = last + 1 end
      epoch = string.format('%d', epoch)
      redis.call('SET', prefix .. 'epoch', epoch)
    end
    redis.call('HSET', epoch_now, user, epoch)
  else
    epoch = redis.call('HGET', epoch_now, user)
  end
  numbers[#numbers + 1] = epoch
  numbers[#numbers + 1] = seq
end
local lifetime = 2 * period_ms + 60000
redis.call('PEXPIRE', seq_now, lifetime)
redis.call('PEXPIRE', epoch_now, lifetime)
local n = redis.call('INCR', prefix .. 'entries')
local recipients = table.concat(users, ',', first, #users)
local fields = {'u', recipients, 'r', table.concat(numbers, ':'), 'b', body}
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'o'
  fields[#fields + 1] = ARGV[7]
end
if ARGV[8] ~= '' then
  fields[#fields + 1] = 't'
  fields[#fields + 1] = ARGV[8]
end
fields[#fields + 1] = 'n'
fields[#fields + 1] = n
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
return #users - first + 1
