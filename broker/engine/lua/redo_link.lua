-- redo_link.lua: record on a run that it was redone: append the new run to its `redone_by`.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     the redone (old) run
-- ARGV[5]     the new run (written with `redo_of` = the old run)
-- Keys touched: dagb:run:{old run}.
-- Returns the number of runs listed in `redone_by`, or -1 if the old run no longer exists.
--
-- Invariant: every redo is listed exactly once, however many redos of one run race: the
-- read and the append are one step, and appending a run already listed changes nothing.

local old, new = ARGV[4], ARGV[5]
local rk = k_run(old)
if redis.call('EXISTS', rk) == 0 then return -1 end
local list = redis.call('HGET', rk, 'redone_by') or ''
local n, listed = 0, false
for id in string.gmatch(list, '[^,]+') do
  n = n + 1
  if id == new then listed = true end
end
if listed then return n end
if list == '' then list = new else list = list .. ',' .. new end
redis.call('HSET', rk, 'redone_by', list)
return n + 1
