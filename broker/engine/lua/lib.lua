-- lib.lua: helpers shared by every dagbroker script. The loader (broker/engine/scripts.py)
-- prepends this file to each script, so each script stays one atomic EVALSHA.
--
-- Every script takes the same first ARGV:
--   ARGV[1] key prefix (e.g. "dagb")   ARGV[2] now, ms since the epoch
--   ARGV[3] approximate MAXLEN of the events stream
-- Keys are built from the prefix as documented in docs/redis-keys.md (single Redis; a
-- Cluster deployment would need every key of a run under one hash tag).
--
-- Invariants kept here:
--   * a task's state and its run's per-state counters (n_<state>) change together;
--   * a child leaves `pending` only when its last dependency is released (deps_left = 0),
--     and release + enqueue happen in the same script (never stranded between the two);
--   * dispatch moves at most (capacity - stream length) tasks, highest priority first;
--     a ready task that fits no live runner of its class (dagb:fit:{class}) is parked in
--     dagb:unfit:{class} with its score, still `ready`, and the budget goes to the next ones.
--   * an event task (`wait_for`) never enters a ready set: it waits in
--     dagb:wait:{owner}/{key} until its key is pushed (deliver_event.lua).

local PREFIX = ARGV[1]
local NOW = tonumber(ARGV[2])
local EVENTS_MAXLEN = tonumber(ARGV[3])
local SEQ_SPAN = 1099511627776 -- 2^40, as broker/core/scoring.py
local PRIORITY_MAX = 1000

local K_EVENTS = PREFIX .. ':events'
local K_CAPACITY = PREFIX .. ':capacity'
local K_SEQ = PREFIX .. ':seq'
local K_DELAYED = PREFIX .. ':delayed'
local K_ACTIVE = PREFIX .. ':runs:active'
local K_WAITS = PREFIX .. ':waits'

local touched = {} -- classes whose ready set or capacity changed in this script

local function k_run(run) return PREFIX .. ':run:' .. run end
local function k_task(run, node) return PREFIX .. ':task:' .. run .. ':' .. node end
local function k_spec(run) return PREFIX .. ':spec:' .. run end
local function k_ready(c) return PREFIX .. ':ready:' .. c end
local function k_queue(c) return PREFIX .. ':q:' .. c end
local function k_unfit(c) return PREFIX .. ':unfit:' .. c end
local function k_fit(c) return PREFIX .. ':fit:' .. c end
local function k_wait(ns) return PREFIX .. ':wait:' .. ns end
local function k_evlast(ns) return PREFIX .. ':evlast:' .. ns end

local function fmt(n) return string.format('%.0f', n) end

local function score(priority, seq)
  if priority > PRIORITY_MAX then priority = PRIORITY_MAX end
  if priority < -PRIORITY_MAX then priority = -PRIORITY_MAX end
  return (PRIORITY_MAX - priority) * SEQ_SPAN + (seq % SEQ_SPAN)
end

local function split_member(member)
  local sep = string.find(member, ':', 1, true)
  return string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
end

local function emit(...)
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'ts', NOW, ...)
end

-- A human-readable notice on the run (retries, lost workers, …), newest last, capped at 200.
local function message(run, node, text)
  local k = PREFIX .. ':msgs:' .. run
  redis.call('RPUSH', k, cjson.encode({ ts = NOW, task = node, text = text }))
  redis.call('LTRIM', k, -200, -1)
end

local function set_state(run, tkey, old, new)
  redis.call('HSET', tkey, 'state', new)
  local rk = k_run(run)
  if old then redis.call('HINCRBY', rk, 'n_' .. old, -1) end
  redis.call('HINCRBY', rk, 'n_' .. new, 1)
end

-- Event tasks (docs/events-and-timers.md). A task with `wait_for` never enters a ready set:
-- once its dependencies are satisfied it is `waiting`, a member of dagb:wait:{owner}/{key},
-- until deliver_event.lua completes it. If the key was pushed within its retention time
-- (dagb:evlast:{owner}/{key}), it is queued in `early` instead and succeeds with that payload
-- in the same script (release_children / settle_early), without recursion.
local early = {} -- filled only by make_ready; emptied by the caller's release loop or
                 -- settle_early before the script's next step (so never mixes runs)
local function wait_event(run, node, tkey, old, key)
  local ns = (redis.call('HGET', k_run(run), 'owner') or '') .. '/' .. key
  set_state(run, tkey, old, 'waiting')
  redis.call('HSET', tkey, 'waiting_since', NOW)
  emit('kind', 'task', 'run', run, 'node', node, 'state', 'waiting', 'key', key)
  local last = redis.call('HMGET', k_evlast(ns), 'payload', 'id')
  if last[1] then
    early[#early + 1] = { run, node, tkey, last[1], last[2] or '' }
  else
    redis.call('SADD', k_wait(ns), run .. ':' .. node)
    redis.call('SADD', K_WAITS, ns)
  end
end

-- Put a task into its class's ready set with a fresh FIFO sequence number.
local function make_ready(run, node, tkey, old)
  local f = redis.call('HMGET', tkey, 'class', 'priority', 'wait_for')
  if f[3] then return wait_event(run, node, tkey, old, f[3]) end
  local seq = redis.call('INCR', K_SEQ)
  redis.call('ZADD', k_ready(f[1]), fmt(score(tonumber(f[2]), seq)), run .. ':' .. node)
  redis.call('HSET', tkey, 'ready_at', NOW)
  set_state(run, tkey, old, 'ready')
  touched[f[1]] = true
  emit('kind', 'task', 'run', run, 'node', node, 'state', 'ready')
end

-- One task of `run` reached a terminal state; finish the run when it was the last.
local function task_terminal(run)
  local rk = k_run(run)
  local left = redis.call('HINCRBY', rk, 'remaining', -1)
  if left > 0 then return end
  if redis.call('HGET', rk, 'state') ~= 'running' then return end
  local c = redis.call('HMGET', rk, 'n_failed', 'n_upstream_failed', 'n_cancelled')
  local final = 'succeeded'
  if tonumber(c[1] or '0') + tonumber(c[2] or '0') > 0 then
    final = 'failed'
  elseif tonumber(c[3] or '0') > 0 then
    final = 'cancelled' -- a task was cancelled on its own (a runner order), none failed
  end
  redis.call('HSET', rk, 'state', final, 'finished_at', NOW)
  redis.call('SREM', K_ACTIVE, run)
  emit('kind', 'run', 'run', run, 'state', final)
end

-- A waiting event task received its key's payload: it succeeds with it as its result.
-- The caller releases its children.
local function succeed_event(run, node, tkey, payload, push_id)
  set_state(run, tkey, 'waiting', 'succeeded')
  redis.call('HSET', tkey, 'result', payload, 'finished_at', NOW, 'reason', '', 'event', push_id)
  emit('kind', 'task', 'run', run, 'node', node, 'state', 'succeeded', 'attempt', '1',
    'event', push_id)
  task_terminal(run)
end

-- A parent finished. ok = it succeeded. Children whose trigger allows it are released
-- (deps_left decremented, enqueued at zero); otherwise they become upstream_failed and the
-- failure cascades (iteratively: no recursion depth limit on long chains).
local function release_children(run, node, tkey, ok)
  local stack = { { tkey, ok, node } }
  while #stack > 0 do
    local top = table.remove(stack)
    local children = redis.call('HGET', top[1], 'children')
    if children and children ~= '' then
      local parent = top[3]
      for child in string.gmatch(children, '[^,]+') do
        local ck = k_task(run, child)
        local f = redis.call('HMGET', ck, 'state', 'trigger')
        if f[1] == 'pending' then
          if top[2] or f[2] == 'all_done' then
            if redis.call('HINCRBY', ck, 'deps_left', -1) <= 0 then
              make_ready(run, child, ck, 'pending')
            end
          else
            set_state(run, ck, 'pending', 'upstream_failed')
            redis.call('HSET', ck, 'reason', 'upstream ' .. parent .. ' did not succeed',
              'finished_at', NOW)
            emit('kind', 'task', 'run', run, 'node', child, 'state', 'upstream_failed')
            task_terminal(run)
            table.insert(stack, { ck, false, child })
          end
        end
      end
    end
    while #early > 0 do -- event children whose key was already pushed succeed right away
      local e = table.remove(early)
      succeed_event(e[1], e[2], e[3], e[4], e[5])
      table.insert(stack, { e[3], true, e[2] })
    end
  end
end

-- Complete the event tasks queued in `early` outside release_children (release_run roots).
local function settle_early()
  while #early > 0 do
    local e = table.remove(early)
    succeed_event(e[1], e[2], e[3], e[4], e[5])
    release_children(e[1], e[2], e[3], true)
  end
end

-- Resource fit (broker/core/fit.py has the same rules). dagb:fit:{class} field `offers` is a
-- JSON list of the offers of the class's live runners that no other covers, e.g.
-- [{"cores":8,"memory_mb":32768,"gpus":0}]; a missing dimension has no limit. No such key: no
-- limit (no live runner, or one that does not advertise its size).
local PARK_MAX = 2000 -- tasks parked per class per call; bounds one script, the next tick goes on
local spec_cache, params_cache, needs_cache = {}, {}, {}

local function class_offers(c)
  local text = redis.call('HGET', k_fit(c), 'offers')
  if not text or text == '' then return nil end
  return cjson.decode(text)
end

-- Executors whose tasks need nothing of the runner's own cores, memory or GPUs: they run
-- elsewhere (SLURM, SSH, AWS) or run nothing (noop, event). As broker/core/fit.py NO_LOCAL_NEEDS
-- (a unit test checks the two lists agree).
local NO_LOCAL_NEEDS = { slurm = true, ssh = true, aws_batch = true, noop = true, event = true }

-- {cores, memory_mb, gpus} a template needs, from its spec (defaults omitted: 1, 0, 0).
local function task_needs(ck, spec)
  local n = needs_cache[ck]
  if n then return n end
  local s = spec and cjson.decode(spec) or {}
  local mem = s.memory_mb
  if type(mem) ~= 'number' then mem = 0 end
  n = { tonumber(s.cores) or 1, mem, tonumber(s.gpus) or 0 }
  if NO_LOCAL_NEEDS[s.executor] then n = { 0, 0, 0 } end
  needs_cache[ck] = n
  return n
end

local function fits(n, offers)
  for _, o in ipairs(offers) do
    if (o.cores == nil or n[1] <= o.cores) and (o.memory_mb == nil or n[2] <= o.memory_mb)
      and (o.gpus == nil or n[3] <= o.gpus) then
      return true
    end
  end
  return false
end

local function send(c, run, node, tkey, f, spec)
  if not params_cache[run] then
    params_cache[run] = redis.call('HGET', k_run(run), 'params') or '{}'
  end
  set_state(run, tkey, 'ready', 'dispatched')
  redis.call('HSET', tkey, 'dispatched_at', NOW)
  redis.call('XADD', k_queue(c), '*', 'run', run, 'node', node, 'attempt', f[2],
    'tpl', f[3], 'batch', f[4] or '', 'spec', spec, 'vars', f[5] or '',
    'params', params_cache[run], 'parents', f[6] or '', 'priority', f[7] or '0')
  emit('kind', 'task', 'run', run, 'node', node, 'state', 'dispatched', 'attempt', f[2])
end

-- Move up to (capacity - stream length) ready tasks of class c into its stream, best first.
-- A task that fits no live runner is parked in dagb:unfit:{class} (same score, state stays
-- `ready`) and does not use budget: the tasks behind it go on (no head-of-line blocking).
local function dispatch_class(c)
  local budget = tonumber(redis.call('HGET', K_CAPACITY, c) or '0')
    - redis.call('XLEN', k_queue(c))
  if budget <= 0 then return 0 end
  local offers = class_offers(c)
  local sent, parked = 0, 0
  while budget > 0 and parked < PARK_MAX do
    local popped = redis.call('ZPOPMIN', k_ready(c), budget)
    if #popped == 0 then break end
    for i = 1, #popped, 2 do
      local run, node = split_member(popped[i])
      local tkey = k_task(run, node)
      local f = redis.call('HMGET', tkey, 'state', 'attempt', 'tpl', 'batch', 'vars', 'parents',
        'priority')
      if f[1] == 'ready' then -- anything else is a stale member: dropped
        local ck = run .. '/' .. f[3]
        if not spec_cache[ck] then spec_cache[ck] = redis.call('HGET', k_spec(run), f[3]) end
        if offers and not fits(task_needs(ck, spec_cache[ck]), offers) then
          redis.call('ZADD', k_unfit(c), popped[i + 1], popped[i])
          parked = parked + 1
        else
          send(c, run, node, tkey, f, spec_cache[ck])
          sent = sent + 1
          budget = budget - 1
        end
      end
    end
  end
  return sent
end

local function dispatch_touched()
  local sent = 0
  for c, _ in pairs(touched) do sent = sent + dispatch_class(c) end
  return sent
end
