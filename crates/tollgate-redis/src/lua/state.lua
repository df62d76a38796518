-- tollgate: what every operation reads and writes, shared by every script.
-- KEYS[1]: the state of one (policy, key), a MessagePack array of one state per rate, and for
--       a policy with a ban one more, { until, breach window start, breaches }.
-- ARGV: now in ticks ("" = the server's TIME), cost, tick in microseconds, number of rates,
--       then amount, capacity, window and max delay (in ticks) of each rate, then for a policy with a
--       ban: the breaches that ban, their window and the ban's duration (in ticks).

local cost, tick_us, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local server_time = ARGV[1] == ''
local now
if server_time then
  local t = redis.call('TIME')
  now = idiv(tonumber(t[1]) * 1000000 + tonumber(t[2]), tick_us)
else
  now = tonumber(ARGV[1])
end

local limits = {}
for i = 1, n do
  local b = 4 + (i - 1) * 4
  limits[i] = {
    amount = tonumber(ARGV[b + 1]),
    capacity = tonumber(ARGV[b + 2]),
    window = tonumber(ARGV[b + 3]),
    max_delay = tonumber(ARGV[b + 4]),
  }
end

local ban = nil
local ban_at = 4 + n * 4
if ARGV[ban_at + 1] then
  ban = {
    amount = tonumber(ARGV[ban_at + 1]),
    window = tonumber(ARGV[ban_at + 2]),
    duration = tonumber(ARGV[ban_at + 3]),
  }
end
local width = n
if ban then width = n + 1 end

-- The key's states, fresh ones when it has none (or one of another shape).
local raw = redis.call('GET', KEYS[1])
local states
if raw then states = cmsgpack.unpack(raw) end
local stored = type(states) == 'table' and #states == width
if not stored then
  states = {}
  for i = 1, n do states[i] = S.fresh() end
  if ban then states[n + 1] = { 0, 0, 0 } end
end

-- Writes the states back, to expire once every rate's state is fresh again.
local function save()
  local ttl = 0
  for i = 1, n do ttl = math.max(ttl, S.reset_after(states[i], limits[i], now)) end
  if ban then
    local b = states[n + 1]
    ttl = math.max(ttl, sat_sub(b[1], now))
    if b[3] > 0 then ttl = math.max(ttl, math.min(sat_sub(b[2] + ban.window, now), ban.window)) end
  end
  -- Below 10^14 ms (the bounds keep it under 10^13): Lua writes it with all its digits.
  local ttl_ms = math.ceil(ttl * tick_us / 1000)
  -- In client-time mode the client's clock need not run with Redis's: keep keys a minute.
  if not server_time then ttl_ms = math.max(ttl_ms, 60000) end
  redis.call('SET', KEYS[1], cmsgpack.pack(states), 'PX', math.max(ttl_ms, 1))
end
