-- Records that an instance is alive and reaps the instances that stopped saying so without a
-- goodbye: they may have died with messages in their outbox that nobody will ever number, so every
-- instance must resync every session (one `{g: instances, n}` entry on the fan-out stream).
-- ARGV: 1 key prefix, 2 now (Unix ms), 3 this instance, 4 until when it counts as alive (Unix ms),
-- 5 '1' on its first refresh since it started (its own record still there means that the previous
-- run under the same name died without a goodbye), 6 stream MAXLEN (approximate).
-- Returns how many instances it reaped.
local prefix, now_ms, me = ARGV[1], ARGV[2], ARGV[3]
local alive = prefix .. 'alive'
local dead = {}
if ARGV[5] == '1' and redis.call('ZSCORE', alive, me) then dead[#dead + 1] = me end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', '(' .. now_ms)) do
  if id ~= me then
    redis.call('ZREM', alive, id)
    dead[#dead + 1] = id
  end
end
redis.call('ZADD', alive, ARGV[4], me)
if #dead > 0 then
  local n = redis.call('INCR', prefix .. 'entries')
  redis.call('XADD', prefix .. 'stream', 'MAXLEN', '~', ARGV[6], '*', 'g', table.concat(dead, ','), 'n', n)
end
return #dead
