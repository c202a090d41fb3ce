-- A channel's position (latest offset, epoch), as the next publish would see it.
-- KEYS[1] meta hash   KEYS[2] new-stream epoch key   ARGV[1] fresh epoch   ARGV[2] check master ('1' or '')
-- Returns {top, epoch}.
local me = master_id(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local epoch = current_epoch(KEYS[1], ARGV[1], me)
  return {tonumber(redis.call('HGET', KEYS[1], 'top') or '0'), epoch}
end
return {0, new_stream_epoch(KEYS[2], ARGV[1], me)}
