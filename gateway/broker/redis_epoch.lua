-- How a channel's epoch is found, shared by the broker's scripts (put above each by gateway/broker/redis.py).
--
-- On a Cluster (`check` = '1') each epoch is stamped with the master that set it: the `master_replid` of
-- INFO replication, which a replica promoted to master replaces with a new one. Replication is
-- asynchronous, so a promoted replica may lack the old master's last writes, whose offsets subscribers
-- may already have: were the new master to hand out those offsets again in the same epoch, a listener
-- would drop them as duplicates and a resume would "recover" the wrong publications. So the first
-- script that finds an epoch stamped by another master replaces it (compare-and-set, atomically, in the
-- channel's slot): everything the new master writes is in a new epoch, and anyone holding the old one
-- learns `recovered: false` instead of a silent hole. On one Redis (`check` = '') nothing is stamped:
-- a restart with its data (AOF) keeps the epochs, as it always did.

local function master_id(check)
  if check ~= '1' then return '' end
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end

local function set_epoch(key, epoch, me)
  redis.call('HSET', key, 'epoch', epoch)
  if me ~= '' then redis.call('HSET', key, 'master', me) end
end

-- The epoch in hash `key`'s `epoch` field; `fresh` instead (stored) when it has none or another master set it.
local function current_epoch(key, fresh, me)
  local found = redis.call('HMGET', key, 'epoch', 'master')
  if found[1] and (me == '' or found[2] == me) then return found[1] end
  set_epoch(key, fresh, me)
  return fresh
end

-- The epoch a new stream starts in: one Redis keeps one string for all channels (the layout of every
-- earlier version); a Cluster one stamped hash per slot, so this stays within the channel's slot.
local function new_stream_epoch(key, fresh, me)
  if me == '' then
    redis.call('SET', key, fresh, 'NX')
    return redis.call('GET', key)
  end
  return current_epoch(key, fresh, me)
end
