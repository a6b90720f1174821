-- clear_queue.lua: an admin empties the ready set of a class, and its parked set (ready
-- tasks no live runner fits); their tasks are cancelled.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     resource class
-- ARGV[5]     reason
-- Keys touched: dagb:ready:{class}, dagb:unfit:{class}, task and run hashes,
--             dagb:runs:active, dagb:events, dagb:msgs:{run}.
-- Returns the number of tasks cancelled.
--
-- Invariant: each cleared task ends `cancelled` exactly once and its run's counters stay
-- right; its dependents cannot run (they become upstream_failed unless trigger all_done),
-- and a run whose last task this was finishes.

local c, reason = ARGV[4], ARGV[5]
local cleared = 0
while true do -- until both are empty (an all_done child may become ready meanwhile)
  local popped = redis.call('ZPOPMIN', k_ready(c), 500)
  if #popped == 0 then popped = redis.call('ZPOPMIN', k_unfit(c), 500) end
  if #popped == 0 then break end
  for i = 1, #popped, 2 do
    local run, node = split_member(popped[i])
    local tkey = k_task(run, node)
    if redis.call('HGET', tkey, 'state') == 'ready' then
      set_state(run, tkey, 'ready', 'cancelled')
      redis.call('HSET', tkey, 'finished_at', NOW, 'reason', reason)
      emit('kind', 'task', 'run', run, 'node', node, 'state', 'cancelled', 'reason', reason)
      message(run, node, node .. ' cancelled: ' .. reason)
      task_terminal(run)
      release_children(run, node, tkey, false)
      cleared = cleared + 1
    end
  end
end
return cleared
