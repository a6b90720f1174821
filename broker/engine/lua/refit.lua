-- refit.lua: record what the live runners of each class offer; when that grows, the tasks
-- parked for not fitting go back to the ready set and are dispatched (or parked again).
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- then 5 per class: class, offers, cores, memory_mb, gpus
--             offers: canonical JSON list of the offers no other live runner's offer covers
--             (broker/core/fit.py `front`), '' = no limit (no live runner serves the class,
--             or one does not advertise its size); cores, memory_mb, gpus: the largest of
--             each ('' = no limit), for people reading dagb:fit:{class}
-- Keys touched: dagb:fit:{class} (written, or deleted for no limit), dagb:unfit:{class}
--             (emptied into dagb:ready:{class}), and through dispatch the ready sets,
--             streams, task and run hashes, dagb:events.
-- Returns {tasks moved back to a ready set, tasks dispatched}.
--
-- Invariant: a parked task is never stranded. dagb:fit:{class} only grows here, and in the
-- same step everything in dagb:unfit:{class} returns to dagb:ready:{class} with its score
-- (priority and FIFO place kept); the task states stay `ready` throughout.

-- True if some offer in `new` is not covered by any offer in `old` (a runner can take a task
-- it could not before). nil = no limit.
local function grew(old, new)
  if new == nil then return old ~= nil end
  if old == nil then return false end
  local function covered(n)
    for _, o in ipairs(old) do
      if (o.cores == nil or (n.cores ~= nil and n.cores <= o.cores))
        and (o.memory_mb == nil or (n.memory_mb ~= nil and n.memory_mb <= o.memory_mb))
        and (o.gpus == nil or (n.gpus ~= nil and n.gpus <= o.gpus)) then
        return true
      end
    end
    return false
  end
  for _, n in ipairs(new) do
    if not covered(n) then return true end
  end
  return false
end

local moved = 0
for i = 4, #ARGV, 5 do
  local c, offers = ARGV[i], ARGV[i + 1]
  local fk = k_fit(c)
  local old = redis.call('HGET', fk, 'offers') or ''
  if old ~= offers then
    local decode = function(t) if t == '' then return nil end return cjson.decode(t) end
    local up = grew(decode(old), decode(offers))
    redis.call('DEL', fk)
    if offers ~= '' then
      local fields = { 'offers', offers }
      local names = { 'cores', 'memory_mb', 'gpus' }
      for j = 1, 3 do
        if ARGV[i + 1 + j] ~= '' then
          fields[#fields + 1] = names[j]
          fields[#fields + 1] = ARGV[i + 1 + j]
        end
      end
      redis.call('HSET', fk, unpack(fields))
    end
    local uk = k_unfit(c)
    if up and redis.call('EXISTS', uk) == 1 then
      moved = moved + redis.call('ZCARD', uk)
      redis.call('ZUNIONSTORE', k_ready(c), 2, k_ready(c), uk, 'AGGREGATE', 'MIN')
      redis.call('DEL', uk)
      touched[c] = true
    end
  end
end
return { moved, dispatch_touched() }
