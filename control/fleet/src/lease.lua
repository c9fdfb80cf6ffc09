-- synwall fleet: one customer's shared windows, leases and block, atomic.
--
-- KEYS (one hash tag, {c:NAME}, so one slot):
--   1 buckets  hash "LEN:IDX" -> SYNs   (window of LEN ms, bucket IDX of LEN/30)
--   2 leases   hash "APP|ID"  -> "GRANTED:SPENT:EXP"   (EXP: server ms)
--   3 seqs     hash "APP" -> last seq, "APP|r" -> that call's lease id
--   4 block    hash until (server ms, -1 = indefinite), reason, by, app
--   5 notes    hash "block" / "unblock" -> "VER APP",
--              "limit:LEN" -> "VER VALUE APP": the last announcement of
--              each kind, VER the server's clock in µs, so that an
--              appliance that missed the pub/sub message reads it later
-- ARGV:
--   1 op: lease | block | unblock | limit | notes (read only)
--   2 app   3 seq   4 lease id (0 none)   5 spent on it (cumulative)
--   6 want  7 ttl ms   8 release (1/0)   9 block ms (-1 = indefinite)
--   10 block reason   11 block by   12 n windows, then n pairs LEN, LIMIT
--      (LIMIT: what Redis may lease of the window, the fleet's floors taken out)
-- Reply: {dup, lease id, granted, spent, exp, now, block until, reason, by,
--         app, exhausted window (1-based, 0 none), its count, free,
--         overspent, notes (HGETALL of KEYS[5])}
-- Expired leases are charged in full (at the time they are found expired,
-- which keeps the charge in the windows at least as long as any SYN spent
-- from them); a release charges what was spent and frees the rest.
local SLOTS = 31
-- Integers as text without Lua's %.14g exponent form.
local function int(x) return string.format('%d', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The announcement's version: µs (below 2^53, exact in a Lua number).
local ver = int(tonumber(t[1]) * 1000000 + tonumber(t[2]))
local op, app, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lid, spent, want = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, release = tonumber(ARGV[7]), ARGV[8] == '1'
local n = tonumber(ARGV[12])
if not (seq and lid and spent and want and ttl and n) then
  return redis.error_reply('synwall: bad arguments')
end
local lens, limits, bms = {}, {}, {}
local longest = 0
for w = 1, n do
  lens[w] = tonumber(ARGV[11 + 2 * w])
  limits[w] = tonumber(ARGV[12 + 2 * w])
  bms[w] = math.ceil(lens[w] / 30)
  if lens[w] > longest then longest = lens[w] end
end

local function block_state()
  local b = redis.call('HMGET', KEYS[4], 'until', 'reason', 'by', 'app')
  local u = tonumber(b[1])
  if u and (u == -1 or u > now) then
    return u, b[2] or '', b[3] or '', b[4] or ''
  end
  return 0, '', '', ''
end

local function lease_of(field)
  local v = redis.call('HGET', KEYS[2], field)
  if not v then return nil end
  local g, s, e = string.match(v, '^(%d+):(%d+):(%d+)$')
  return tonumber(g), tonumber(s), tonumber(e)
end

local function reply(dup, id, g, s, e, ex_w, ex_count, free, over)
  local bu, br, bb, ba = block_state()
  return {dup, id, g, s, e, now, bu, br, bb, ba, ex_w, ex_count, free, over,
          redis.call('HGETALL', KEYS[5])}
end

-- Records an announcement in the notes and publishes it. Notes outlive
-- any window (an unblock or a set-limit has no natural end): 7 days, or
-- the longest window and a lease if that is longer.
local function announce(field, note, text)
  redis.call('HSET', KEYS[5], field, ver .. ' ' .. note)
  redis.call('PEXPIRE', KEYS[5], math.max(604800000, longest + ttl + 60000))
  redis.call('PUBLISH', 'synwall:blocks', text .. ' ' .. ver)
end

-- A retry of a call already done: change nothing, answer with the
-- server's view of the lease that call was about.
if op == 'lease' then
  local last = tonumber(redis.call('HGET', KEYS[3], app))
  if last and seq <= last then
    local id = tonumber(redis.call('HGET', KEYS[3], app .. '|r')) or 0
    local g, s, e = lease_of(app .. '|' .. int(id))
    if not g then g, s, e = 0, 0, 0 end
    return reply(1, id, g, s, e, 0, 0, 0, 0)
  end
end

if op == 'unblock' then
  -- As locally: lifting a block forgives the windows.
  redis.call('DEL', KEYS[4], KEYS[1])
  announce('unblock', app, 'unblock ' .. KEYS[4] .. ' ' .. app)
  return reply(0, 0, 0, 0, 0, 0, 0, 0, 0)
end
if op == 'limit' then
  -- An operator's set-limit: every appliance applies it (ARGV 3: the
  -- window's length in ms, ARGV 6: the new limit).
  announce('limit:' .. int(seq), int(want) .. ' ' .. app,
    'limit ' .. KEYS[4] .. ' ' .. app .. ' ' .. int(seq) .. ' ' .. int(want))
  return reply(0, 0, 0, 0, 0, 0, 0, 0, 0)
end
if op == 'block' then
  local ms = tonumber(ARGV[9])
  local u = -1
  if ms and ms >= 0 then u = now + ms end
  redis.call('HSET', KEYS[4], 'until', u, 'reason', ARGV[10], 'by', ARGV[11], 'app', app)
  if u == -1 then
    redis.call('PERSIST', KEYS[4])
  else
    redis.call('PEXPIREAT', KEYS[4], u + 1000)
  end
  announce('block', app, 'block ' .. KEYS[4] .. ' ' .. app)
  return reply(0, 0, 0, 0, 0, 0, 0, 0, 0)
end
if op == 'notes' then
  return reply(0, 0, 0, 0, 0, 0, 0, 0, 0)
end
if op ~= 'lease' then
  return redis.error_reply('synwall: unknown op ' .. tostring(op))
end

-- Window counts, dropping expired buckets.
local known = {}
for w = 1, n do known[lens[w]] = w end
local counts = {}
for w = 1, n do counts[w] = 0 end
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local len, idx = string.match(flat[i], '^(%d+):(%d+)$')
  len, idx = tonumber(len), tonumber(idx)
  local w = len and known[len]
  local bm = len and math.ceil(len / 30)
  if not len or bm <= 0 or idx + SLOTS <= math.floor(now / bm) then
    redis.call('HDEL', KEYS[1], flat[i])
  elseif w then
    counts[w] = counts[w] + tonumber(flat[i + 1])
  end
end

local function charge(x)
  if x <= 0 then return end
  for w = 1, n do
    redis.call('HINCRBY', KEYS[1], int(lens[w]) .. ':' .. int(math.floor(now / bms[w])), x)
    counts[w] = counts[w] + x
  end
end

-- Every lease: expired ones are charged as spent, live ones held.
local held = 0
local leases = redis.call('HGETALL', KEYS[2])
for i = 1, #leases, 2 do
  local g, s, e = string.match(leases[i + 1], '^(%d+):(%d+):(%d+)$')
  g, s, e = tonumber(g), tonumber(s), tonumber(e)
  if not g then
    redis.call('HDEL', KEYS[2], leases[i])
  elseif e <= now then
    charge(g - s)
    redis.call('HDEL', KEYS[2], leases[i])
  else
    held = held + (g - s)
  end
end

-- This appliance's report on its lease.
local mine = app .. '|' .. int(lid)
local g, s, e = lease_of(mine)
local over = 0
if g then
  local report = spent
  if report > g then report = g; over = 1 end
  if report > s then
    charge(report - s)
    held = held - (report - s)
    s = report
  end
  if release then
    held = held - (g - s)
    redis.call('HDEL', KEYS[2], mine)
    g = nil
  end
end

-- What is free in every window, and what to grant of it.
local free = nil
for w = 1, n do
  local f = limits[w] - counts[w] - held
  if free == nil or f < free then free = f end
end
if free == nil or free < 0 then free = 0 end
local bu = block_state()
local give = 0
if bu == 0 and not release and want > 0 then
  give = math.min(want, free)
end
-- The first window this grant leaves nothing in.
local ex_w, ex_count = 0, 0
for w = 1, n do
  if ex_w == 0 and limits[w] - counts[w] - held - give <= 0 then
    ex_w, ex_count = w, counts[w] + held + give
  end
end
local id, rg, rs, re = 0, 0, 0, 0
if not release and (g or give > 0) then
  if not g then
    lid, mine, g, s = seq, app .. '|' .. int(seq), 0, 0
  end
  g = g + give
  e = now + ttl
  redis.call('HSET', KEYS[2], mine, int(g) .. ':' .. int(s) .. ':' .. int(e))
  id, rg, rs, re = lid, g, s, e
end
redis.call('HSET', KEYS[3], app, int(seq), app .. '|r', int(id))
local keep = longest + ttl + 60000
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], keep) end
return reply(0, id, rg, rs, re, ex_w, ex_count, free - give, over)
