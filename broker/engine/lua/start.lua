-- start.lua: a worker marks the tasks of a batch as running before executing them.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     runner id
-- ARGV[5..]   triples: run, node, attempt
-- Keys touched: task and run hashes, dagb:events.
-- Returns one flag per triple: 1 = start it, 0 = stale (cancelled or re-dispatched), skip it.
--
-- Invariant: only the current attempt of a dispatched task can start.

local runner = ARGV[4]
local out = {}
for i = 5, #ARGV, 3 do
  local run, node, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local tkey = k_task(run, node)
  local f = redis.call('HMGET', tkey, 'state', 'attempt')
  if f[1] == 'dispatched' and f[2] == attempt then
    set_state(run, tkey, 'dispatched', 'running')
    redis.call('HSET', tkey, 'runner', runner, 'started_at', NOW)
    emit('kind', 'task', 'run', run, 'node', node, 'state', 'running', 'attempt', attempt,
      'runner', runner)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
