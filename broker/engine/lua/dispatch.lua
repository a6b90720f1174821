-- dispatch.lua: move ready tasks of the given classes into their worker streams.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua)
-- ARGV[4..]   resource classes to dispatch
-- Keys touched: dagb:capacity (read), dagb:fit:{class} (read), dagb:ready:{class},
--             dagb:unfit:{class}, dagb:q:{class}, task and run hashes, dagb:spec:{run}
--             (read), dagb:events.
-- Returns the number of tasks dispatched.
--
-- Invariant: per class, at most capacity - XLEN(q) tasks are in flight, so the stream stays
-- as short as the free slots and a later, higher-priority ready task still goes first.
-- ZPOPMIN gives priority order, FIFO within a priority (scores: broker/core/scoring.py).
-- A ready task that fits no live runner of its class (needs more cores, memory or GPUs than
-- any offers, dagb:fit:{class}) is parked in dagb:unfit:{class} with its score and stays
-- `ready`; it uses no budget, so smaller tasks behind it are dispatched. refit.lua puts the
-- parked tasks back when a bigger runner appears.

local sent = 0
for i = 4, #ARGV do sent = sent + dispatch_class(ARGV[i]) end
return sent
