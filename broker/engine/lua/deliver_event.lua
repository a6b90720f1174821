-- deliver_event.lua: a push of an event key completes every task waiting for it.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     owner (the key's namespace: a user id)
-- ARGV[5]     key
-- ARGV[6]     payload, JSON text (becomes each completed task's `result`)
-- ARGV[7]     push id (a repeated push with the same id changes nothing)
-- ARGV[8]     retention, ms: a task that starts waiting this long after the push still gets
--             the payload (0: only the tasks waiting now)
-- ARGV[9]     how long the push id is remembered, ms
-- ARGV[10]    length of the recent-pushes list
-- Keys touched: dagb:wait:{owner}/{key}, dagb:waits, dagb:evlast:{owner}/{key},
--             dagb:evseen:{owner}/{key}:{id}, dagb:pushes, task and run hashes, ready sets,
--             dagb:seq, dagb:runs:active, dagb:events, and per dispatched class its stream,
--             dagb:fit:{class} (read) and dagb:unfit:{class} (lib.lua dispatch_class).
-- Returns {delivered, duplicate (0/1), dispatched}; for a duplicate, delivered is the number
-- of tasks the first push with that id completed.
--
-- Invariant: a waiting task succeeds exactly once, with the payload of the first push of its
-- key after it started waiting (or the retained one); its children are released in the same
-- script. Tasks that start waiting during this script (children that wait for the same key)
-- are not given this payload unless it is retained.

local owner, key, payload, push_id = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local retain_ms, seen_ms, cap = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local ns = owner .. '/' .. key
local seen = PREFIX .. ':evseen:' .. ns .. ':' .. push_id
local before = redis.call('GET', seen)
if before then return { tonumber(before), 1, 0 } end

-- Take the current waiters first: whoever starts waiting from here on finds the key's new
-- retained payload (or, with retention 0, waits for the next push).
local wkey = k_wait(ns)
local members = redis.call('SMEMBERS', wkey)
redis.call('DEL', wkey)
redis.call('SREM', K_WAITS, ns)
local last = k_evlast(ns)
redis.call('DEL', last)
if retain_ms > 0 then
  redis.call('HSET', last, 'payload', payload, 'id', push_id, 'ts', NOW)
  redis.call('PEXPIRE', last, retain_ms)
end

local delivered = 0
for _, member in ipairs(members) do
  local run, node = split_member(member)
  local tkey = k_task(run, node)
  local f = redis.call('HMGET', tkey, 'state', 'wait_for')
  if f[1] == 'waiting' and f[2] == key then
    succeed_event(run, node, tkey, payload, push_id)
    release_children(run, node, tkey, true)
    delivered = delivered + 1
  end
end
settle_early()

redis.call('SET', seen, delivered, 'PX', seen_ms)
redis.call('LPUSH', PREFIX .. ':pushes', cjson.encode({ id = push_id, owner = owner, key = key,
  ts = NOW, delivered = delivered, bytes = #payload }))
redis.call('LTRIM', PREFIX .. ':pushes', 0, cap - 1)
return { delivered, 0, dispatch_touched() }
