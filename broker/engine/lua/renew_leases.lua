-- renew_leases.lua: a worker's heartbeat renews the lease of the stream entries it holds and
-- learns which of them it no longer holds.
--
-- ARGV[1..3]  prefix, now_ms, events maxlen (see lib.lua; not used here)
-- ARGV[4]     consumer group of the class streams (`workers`)
-- ARGV[5]     consumer: the runner id
-- then, per stream: the stream key (dagb:q:{class}), n, then n entry ids held by the runner
-- Keys touched: the given dagb:q:{class} streams (their pending entries list only).
-- Returns a flat list {stream, id, stream, id, ...} of the entries that are NOT pending on
-- this consumer any more: acknowledged and deleted by the broker's reaper (reported lost), or
-- claimed by another consumer (the reaper `reaper-{broker}` between its XCLAIM and its
-- report). The worker stops those tasks: the broker has re-queued them or is about to.
--
-- Invariant: a lease is renewed (XCLAIM … 0 JUSTID: idle time back to 0) only for an entry
-- whose owner in the pending entries list is still this runner. A plain XCLAIM with min-idle
-- 0 would steal an entry back from the reaper; checking the owner and claiming in one script
-- leaves no moment for the reaper to claim in between. A stream or group that does not exist
-- (deleted by hand) renews nothing and reports nothing: no reaper can have taken its entries.

local group, consumer = ARGV[4], ARGV[5]
local lost = {}

local function renew(stream, ids)
  local mine = {}
  for _, id in ipairs(ids) do
    local p = redis.pcall('XPENDING', stream, group, id, id, 1, consumer)
    if type(p) == 'table' and p.err then
      return -- no such stream or group
    end
    if #p == 1 then
      mine[#mine + 1] = id
    else
      lost[#lost + 1] = stream
      lost[#lost + 1] = id
    end
  end
  if #mine > 0 then
    redis.call('XCLAIM', stream, group, consumer, 0, unpack(mine), 'JUSTID')
  end
end

local i = 6
while i <= #ARGV do
  local stream, n = ARGV[i], tonumber(ARGV[i + 1])
  local ids = {}
  for j = i + 2, i + 1 + n do ids[#ids + 1] = ARGV[j] end
  renew(stream, ids)
  i = i + 2 + n
end
return lost
