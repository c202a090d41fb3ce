-- One publish, atomically: the next offsets, the stream append (trimmed), the epoch, the live fan-out.
-- Every key has the channel's {hash tag} (the new-stream epoch key one of the same slot) and the live
-- channel too, so on a Cluster the whole script runs in the channel's slot and its SPUBLISH reaches
-- that slot's shard. The pub envelope's literal pieces (PUB_OPEN ... PUB_CLOSE) are declared above this
-- script by gateway/envelope.py, which owns the envelope's layout, and the epoch functions by
-- redis_epoch.lua.
--
-- KEYS[1] meta hash (top, epoch, master)   KEYS[2] stream   KEYS[3] idempotency key
-- KEYS[4] new-stream epoch key
-- ARGV[1] fresh epoch (used if one is made) ARGV[2] history size (exact MAXLEN)   ARGV[3] key TTL seconds
-- ARGV[4] ts (JSON number)          ARGV[5] channel name                   ARGV[6] idempotency TTL, 0 = none
-- ARGV[7] pub/sub channel           ARGV[8] n                              ARGV[9..8+n] payloads (JSON)
-- ARGV[9+n] publish command (PUBLISH, or SPUBLISH on a Cluster)           ARGV[10+n] check master ('1' or '')
-- Returns {first offset, last offset, epoch, replayed (1 when the idempotency key was seen before)}.

local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local idem_ttl = tonumber(ARGV[6])
local n = tonumber(ARGV[8])
local publish, me = ARGV[9 + n], master_id(ARGV[10 + n])

if idem_ttl > 0 then
  local seen = redis.call('GET', idem)
  if seen then
    local first, last = string.match(seen, '^(%d+),(%d+)$')
    return {tonumber(first), tonumber(last), redis.call('HGET', meta, 'epoch') or '', 1}
  end
end

local epoch
if redis.call('EXISTS', meta) == 1 then
  epoch = current_epoch(meta, ARGV[1], me)
else
  -- A new stream (or one whose meta expired): its old entries would clash with offsets from 1.
  redis.call('DEL', stream)
  epoch = new_stream_epoch(KEYS[4], ARGV[1], me)
  set_epoch(meta, epoch, me)
end

local last = redis.call('HINCRBY', meta, 'top', n)
local first = last - n + 1
local head = PUB_OPEN .. ARGV[5] .. PUB_OFFSET
local tail = PUB_EPOCH .. epoch .. PUB_TS .. ARGV[4] .. PUB_DATA
for i = 1, n do
  local offset = first + i - 1
  local data = ARGV[8 + i]
  redis.call('XADD', stream, 'MAXLEN', ARGV[2], offset .. '-1', 'd', data, 't', ARGV[4])
  redis.call(publish, ARGV[7], head .. offset .. tail .. data .. PUB_CLOSE)
end
redis.call('EXPIRE', meta, ARGV[3])
redis.call('EXPIRE', stream, ARGV[3])
if idem_ttl > 0 then
  redis.call('SET', idem, first .. ',' .. last, 'EX', idem_ttl)
end
return {first, last, epoch, 0}
