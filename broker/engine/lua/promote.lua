-- promote.lua: move retries whose backoff has elapsed back to their ready sets.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     at most this many tasks per call
-- Keys touched: dagb:delayed, task and run hashes, ready sets, dagb:seq, dagb:events,
--             and per class it dispatches its stream, dagb:fit:{class} (read) and
--             dagb:unfit:{class} (lib.lua dispatch_class).
-- Returns {promoted, dispatched}.
--
-- Invariant: a retry gets a new attempt number before it is ready again, so a late report
-- from the failed attempt is recognised as stale by complete.lua.

local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local promoted = 0
for _, member in ipairs(due) do
  redis.call('ZREM', K_DELAYED, member)
  local run, node = split_member(member)
  local tkey = k_task(run, node)
  if redis.call('HGET', tkey, 'state') == 'retry_wait' then
    redis.call('HINCRBY', tkey, 'attempt', 1)
    make_ready(run, node, tkey, 'retry_wait')
    promoted = promoted + 1
  end
end
return { promoted, dispatch_touched() }
