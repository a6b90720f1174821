-- cancel_run.lua: cancel every unfinished task of a run and finish the run as cancelled.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     run id
-- ARGV[5]     reason
-- ARGV[6]     final run state: cancelled (a user's cancel) or failed (interrupted expansion)
-- Keys touched: dagb:run:{run}, dagb:tasks:{run} (read), task hashes, ready sets and
--             dagb:unfit:{class} (a parked ready task),
--             dagb:delayed, dagb:runs:active, dagb:runs:expanding, dagb:events,
--             dagb:wait:{owner}/{key} and dagb:waits (waiting event tasks leave them).
-- Returns -1 if the run does not exist, -2 if it had already finished; otherwise a flat
-- list runner, node, runner, node, … of tasks that were running (the caller sends each
-- runner a cancel order through its control stream).
--
-- Invariant: after this script no task of the run can be dispatched or started, and any
-- late completion for it is ignored (its state is no longer dispatched/running).

local run, reason, final = ARGV[4], ARGV[5], ARGV[6]
local rk = k_run(run)
local state = redis.call('HGET', rk, 'state')
if not state then return -1 end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return -2 end
local nodes = redis.call('LRANGE', PREFIX .. ':tasks:' .. run, 0, -1)
local running = {}
local owner = redis.call('HGET', rk, 'owner') or ''
for _, node in ipairs(nodes) do
  local tkey = k_task(run, node)
  local f = redis.call('HMGET', tkey, 'state', 'class', 'runner', 'wait_for')
  local st = f[1]
  if st == 'ready' then
    redis.call('ZREM', k_ready(f[2]), run .. ':' .. node)
    redis.call('ZREM', k_unfit(f[2]), run .. ':' .. node)
  elseif st == 'retry_wait' then
    redis.call('ZREM', K_DELAYED, run .. ':' .. node)
  elseif st == 'running' then
    running[#running + 1] = f[3] or ''
    running[#running + 1] = node
  elseif st == 'waiting' then
    local ns = owner .. '/' .. f[4]
    redis.call('SREM', k_wait(ns), run .. ':' .. node)
    if redis.call('SCARD', k_wait(ns)) == 0 then redis.call('SREM', K_WAITS, ns) end
  end
  if st == 'pending' or st == 'ready' or st == 'dispatched' or st == 'running'
    or st == 'retry_wait' or st == 'waiting' then
    set_state(run, tkey, st, 'cancelled')
    redis.call('HSET', tkey, 'finished_at', NOW, 'reason', reason)
  end
end
-- An interrupted expansion may have staged roots; they must never reach a ready set.
for _, c in ipairs(redis.call('SMEMBERS', PREFIX .. ':classes')) do
  redis.call('DEL', PREFIX .. ':staging:' .. run .. ':' .. c)
end
redis.call('HSET', rk, 'state', final, 'finished_at', NOW, 'remaining', 0, 'reason', reason)
redis.call('SREM', K_ACTIVE, run)
redis.call('ZREM', PREFIX .. ':runs:expanding', run)
emit('kind', 'run', 'run', run, 'state', final, 'reason', reason)
return running
