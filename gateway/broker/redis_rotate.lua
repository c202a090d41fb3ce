-- Compare-and-set a channel's epoch: when several processes notice a loss at once, it changes once.
-- KEYS[1] meta hash   ARGV[1] the epoch seen   ARGV[2] the new one   ARGV[3] check master ('1' or '')
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  set_epoch(KEYS[1], ARGV[2], master_id(ARGV[3]))
end
