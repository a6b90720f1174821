-- release_run.lua: the last step of expansion; makes a fully written run visible to dispatch.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     run id
-- ARGV[5..]   resource classes that have roots in dagb:staging:{run}:{class}
-- Keys touched: dagb:run:{run}, dagb:staging:{run}:{class} (deleted), dagb:ready:{class},
--             dagb:wait:{owner}/{key} + dagb:waits (event roots, see lib.lua wait_event),
--             dagb:runs:active, dagb:runs:expanding, dagb:events, and per dispatched class
--             its stream, dagb:fit:{class} (read) and dagb:unfit:{class} (lib.lua dispatch_class).
-- Returns the number of roots released, or -1 if the run is not in state `expanding`.
--
-- Invariant (all-or-nothing expansion): task hashes and staged roots are written first,
-- in pipelined chunks, while the run is `expanding`; nothing reaches a ready set until this
-- script runs, so a broker that dies mid-expansion leaves nothing dispatchable.

local run = ARGV[4]
local rk = k_run(run)
if redis.call('HGET', rk, 'state') ~= 'expanding' then return -1 end
local released = 0
local waits = {} -- event roots (`wait_for`): they wait for their key instead of a worker
for i = 5, #ARGV do
  local c = ARGV[i]
  local staging = PREFIX .. ':staging:' .. run .. ':' .. c
  local ready = k_ready(c)
  while true do
    local chunk = redis.call('ZRANGE', staging, 0, 999, 'WITHSCORES')
    if #chunk == 0 then break end
    local args, members = {}, {}
    for j = 1, #chunk, 2 do
      local node = string.sub(chunk[j], #run + 2)
      if redis.call('HEXISTS', k_task(run, node), 'wait_for') == 1 then
        waits[#waits + 1] = node
      else
        args[#args + 1] = chunk[j + 1]
        args[#args + 1] = chunk[j]
      end
      members[#members + 1] = chunk[j]
    end
    if #args > 0 then redis.call('ZADD', ready, unpack(args)) end
    redis.call('ZREM', staging, unpack(members))
    released = released + #members
  end
  touched[c] = true
end
redis.call('HSET', rk, 'state', 'running', 'started_at', NOW)
redis.call('SADD', K_ACTIVE, run)
redis.call('ZREM', PREFIX .. ':runs:expanding', run)
emit('kind', 'run', 'run', run, 'state', 'running')
for _, node in ipairs(waits) do make_ready(run, node, k_task(run, node), 'ready') end
settle_early()
dispatch_touched()
return released
