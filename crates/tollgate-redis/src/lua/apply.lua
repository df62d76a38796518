-- tollgate: one hit, all rates or none; twin of tollgate::strategy::apply.
-- KEYS[1]: the state of one (policy, key), a MessagePack array of one state per rate.
-- ARGV: now in ticks ("" = the server's TIME), cost, tick in microseconds, number of rates,
--       then amount, capacity and window (in ticks) of each rate.
-- Returns { allowed (1/0), limit, remaining, reset_after, retry_after (-1: none), window }.

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
  local b = 4 + (i - 1) * 3
  limits[i] = {
    amount = tonumber(ARGV[b + 1]),
    capacity = tonumber(ARGV[b + 2]),
    window = tonumber(ARGV[b + 3]),
  }
end

local raw = redis.call('GET', KEYS[1])
local states
if raw then states = cmsgpack.unpack(raw) end
if type(states) ~= 'table' or #states ~= n then
  states = {}
  for i = 1, n do states[i] = S.fresh() end
end

local function report(i, retry)
  local s, l = states[i], limits[i]
  local remaining, reset = 0, 0
  if l.amount ~= 0 then
    remaining, reset = S.remaining(s, l, now), S.reset_after(s, l, now)
  end
  return { retry == nil and 1 or 0, l.capacity, remaining, reset, retry or -1, l.window }
end

local probe = math.max(cost, 1)
local wait_i, wait
for i = 1, n do
  local l, w = limits[i], nil
  if l.amount == 0 then
    w = l.window
  else
    w = S.retry_after(states[i], l, now, probe)
  end
  if w ~= nil and (wait == nil or w > wait) then wait_i, wait = i, w end
end
if wait ~= nil then return report(wait_i, wait) end

if cost > 0 then
  local ttl = 0
  for i = 1, n do
    S.consume(states[i], limits[i], now, cost)
    ttl = math.max(ttl, S.reset_after(states[i], limits[i], now))
  end
  local ttl_ms = math.ceil(ttl * tick_us / 1000)
  -- In client-time mode the client's clock need not run with Redis's: keep keys a minute.
  if not server_time then ttl_ms = math.max(ttl_ms, 60000) end
  redis.call('SET', KEYS[1], cmsgpack.pack(states), 'PX', math.max(ttl_ms, 1))
end

local binding = report(1, nil)
for i = 2, n do
  local other = report(i, nil)
  if other[3] < binding[3] or (other[3] == binding[3] and other[4] > binding[4]) then
    binding = other
  end
end
return binding
