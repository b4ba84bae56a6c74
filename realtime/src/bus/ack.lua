-- Records that a user's sockets acknowledged every message up to a seq of their shared numbering.
-- ARGV: 1 the user's hash key, 2 epoch, 3 seq. An ack of an epoch that is not the hash's current one
-- (a local numbering while Redis was away, or a numbering since forgotten) is ignored.
-- Returns 1 when recorded (or already covered), 0 when ignored.
local key = ARGV[1]
if redis.call('HGET', key, 'epoch') ~= ARGV[2] then return 0 end
local acked = tonumber(redis.call('HGET', key, 'acked') or '0')
if tonumber(ARGV[3]) > acked then redis.call('HSET', key, 'acked', ARGV[3]) end
return 1
