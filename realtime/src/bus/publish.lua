-- Numbers one published message for its recipients and appends it to the fan-out stream, atomically.
-- ARGV: 1 key prefix, 2 audience kind (users | role | topic | everyone), 3 role or topic name (for
-- everyone: the instance asking), 4 frame body, 5 now (Unix ms), 6 user hash TTL (ms), 7 stream
-- MAXLEN (approximate), 8 origin (the publishing instance when it delivered the message to its own
-- sockets already, else empty), 9.. user ids (kind users).
-- Every entry carries `n`, one more than the entry before it (`{prefix}entries`): a reader that sees
-- `n` jump, or start again, knows it missed entries (trimmed, or Redis restarted empty).
-- Kind everyone appends `{g: instance, n}`: every instance resyncs every session it holds.
-- Returns how many users it numbered (0: nobody; nothing is appended), or 1 for everyone.
local prefix, kind, target, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now_ms = tonumber(ARGV[5])
local stream = prefix .. 'stream'
if kind == 'everyone' then
  local n = redis.call('INCR', prefix .. 'entries')
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[7], '*', 'g', target, 'n', n)
  return 1
end
local users
if kind == 'users' then
  users = {}
  for i = 9, #ARGV do users[#users + 1] = ARGV[i] end
else
  -- Role and topic members carry their session's expiry (Unix ms) as score.
  local index = prefix .. kind .. ':' .. target
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. ARGV[5])
  users = redis.call('ZRANGE', index, 0, -1)
end
if #users == 0 then return 0 end
local parts = {}
for _, user in ipairs(users) do
  local key = prefix .. 'user:' .. user
  local epoch = redis.call('HGET', key, 'epoch')
  if not epoch then
    -- A new numbering: an epoch greater than any this prefix handed out, about now in ms.
    local last = tonumber(redis.call('GET', prefix .. 'epoch') or '0')
    local next_epoch = now_ms
    if next_epoch <= last then next_epoch = last + 1 end
    epoch = string.format('%d', next_epoch)
    redis.call('SET', prefix .. 'epoch', epoch)
    redis.call('HSET', key, 'epoch', epoch)
  end
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  redis.call('PEXPIRE', key, ARGV[6])
  parts[#parts + 1] = user .. ':' .. epoch .. ':' .. string.format('%d', seq)
end
local n = redis.call('INCR', prefix .. 'entries')
if ARGV[8] == '' then
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[7], '*', 'r', table.concat(parts, ','), 'b', body, 'n', n)
else
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[7], '*', 'r', table.concat(parts, ','), 'b', body,
    'o', ARGV[8], 'n', n)
end
return #users
