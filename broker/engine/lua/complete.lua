-- complete.lua: apply a batch of completion reports, then dispatch what they freed.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4]     max_lost: a task lost this many times fails with reason worker_lost
-- ARGV[5]     stream whose entries are acknowledged here ('' for none): dagb:done, or a
--             dagb:q:{class} stream when the reaper reports a dead worker's tasks
-- ARGV[6]     consumer group of that stream
-- ARGV[7]     n = number of entry ids that follow; ARGV[8 .. 7+n] the ids (XACK + XDEL)
-- then 11 fields per completion, in broker.wire.COMPLETION_FIELDS order:
--             run, node, attempt, outcome, runner, exit_code, reason, result, tail,
--             started_at, finished_at
-- Keys touched: run and task hashes, ready sets, dagb:delayed, dagb:seq, dagb:events,
--             dagb:runs:active, the acknowledged stream, and per dispatched class its
--             stream, dagb:fit:{class} (read) and dagb:unfit:{class} (lib.lua dispatch_class).
-- Returns {applied, ignored, dispatched}.
--
-- Invariant: idempotent on (task, attempt). A report applies only while the task is
-- dispatched or running with that same attempt number; a duplicate (already applied) or a
-- stale report (the task was re-queued as a later attempt, or cancelled) changes nothing.
-- Acknowledging inside the script makes "processed" and "acked" one step: a broker that
-- dies before EXEC leaves the entry pending for XAUTOCLAIM, and replaying it is harmless.

local MAX_LOST = tonumber(ARGV[4])
local ack_stream, ack_group, n_ack = ARGV[5], ARGV[6], tonumber(ARGV[7])
local first = 8 + n_ack
local applied, ignored = 0, 0

local function retry_or_fail(run, node, tkey, old, reason, final)
  local fails = redis.call('HINCRBY', tkey, 'fails', 1)
  local f = redis.call('HMGET', tkey, 'max_attempts', 'backoff_ms', 'class', 'attempt')
  touched[f[3]] = true
  if not final and fails < tonumber(f[1] or '1') then
    local delay = tonumber(f[2] or '1000') * 2 ^ (fails - 1)
    if delay > 3600000 then delay = 3600000 end
    set_state(run, tkey, old, 'retry_wait')
    redis.call('HSET', tkey, 'due_at', fmt(NOW + delay), 'reason', reason)
    redis.call('ZADD', K_DELAYED, fmt(NOW + delay), run .. ':' .. node)
    emit('kind', 'task', 'run', run, 'node', node, 'state', 'retry_wait', 'reason', reason,
      'attempt', f[4])
    message(run, node, string.format('%s failed (%s); retry %d of %d in %.1f s', node, reason,
      fails, tonumber(f[1]) - 1, delay / 1000))
    return
  end
  set_state(run, tkey, old, 'failed')
  redis.call('HSET', tkey, 'finished_at', NOW, 'reason', reason)
  message(run, node, node .. ' failed: ' .. reason)
  emit('kind', 'task', 'run', run, 'node', node, 'state', 'failed', 'reason', reason,
    'attempt', f[4])
  task_terminal(run)
  release_children(run, node, tkey, false)
end

local function requeue(run, node, tkey, old)
  redis.call('HINCRBY', tkey, 'attempt', 1)
  make_ready(run, node, tkey, old)
end

local KNOWN = { succeeded = true, failed = true, lost = true, handed_back = true,
  cancelled = true }

local function apply(c)
  local run, node, attempt, outcome = c[1], c[2], c[3], c[4]
  local tkey = k_task(run, node)
  local f = redis.call('HMGET', tkey, 'state', 'attempt', 'class')
  if not KNOWN[outcome] or f[2] ~= attempt or (f[1] ~= 'dispatched' and f[1] ~= 'running') then
    ignored = ignored + 1
    return
  end
  applied = applied + 1
  local old = f[1]
  touched[f[3]] = true
  redis.call('HSET', tkey, 'runner', c[5], 'exit_code', c[6], 'tail', c[9])
  if c[10] ~= '0' then redis.call('HSET', tkey, 'started_at', c[10]) end
  if outcome == 'succeeded' then
    set_state(run, tkey, old, 'succeeded')
    redis.call('HSET', tkey, 'result', c[8], 'finished_at', c[11], 'reason', '')
    emit('kind', 'task', 'run', run, 'node', node, 'state', 'succeeded', 'attempt', attempt)
    task_terminal(run)
    release_children(run, node, tkey, true)
  elseif outcome == 'failed' then
    retry_or_fail(run, node, tkey, old, c[7], false)
  elseif outcome == 'lost' then
    local lost = redis.call('HINCRBY', tkey, 'lost', 1)
    if lost >= MAX_LOST then
      retry_or_fail(run, node, tkey, old, 'worker_lost: the task was lost ' .. lost ..
        ' times (its worker died or stopped renewing the lease)', true)
    else
      emit('kind', 'task', 'run', run, 'node', node, 'state', 'lost', 'reason', c[7],
        'attempt', attempt)
      message(run, node, node .. ' was lost (' .. c[7] .. '); queued again')
      requeue(run, node, tkey, old)
    end
  elseif outcome == 'handed_back' then
    requeue(run, node, tkey, old)
  else -- cancelled by a worker-level order (a run cancel marks its tasks first)
    set_state(run, tkey, old, 'cancelled')
    redis.call('HSET', tkey, 'finished_at', c[11], 'reason', c[7])
    emit('kind', 'task', 'run', run, 'node', node, 'state', 'cancelled')
    task_terminal(run)
    release_children(run, node, tkey, false)
  end
end

for i = first, #ARGV, 11 do
  apply({ ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
    ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10] })
end

if n_ack > 0 then
  local ids = {}
  for i = 8, 7 + n_ack do ids[#ids + 1] = ARGV[i] end
  redis.call('XACK', ack_stream, ack_group, unpack(ids))
  redis.call('XDEL', ack_stream, unpack(ids))
end

return { applied, ignored, dispatch_touched() }
