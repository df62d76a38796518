-- tollgate: a hit on a fixed window of one rate with no ban and no delay, written out for
-- that shape alone with the policy's numbers baked in (script.rs prepends CAPACITY, WINDOW
-- TICK_US and PACK): no arguments to read but the time and the cost, no function to define, two
-- or three numbers back. Twin of tollgate::strategy::apply for that shape (and of
-- fixed_window.lua's roll, retry_after, consume, reset_after and remaining, which it
-- inlines), on the state the general scripts keep, so that their refunds and late charges
-- apply to it unchanged; alike.rs and differential.rs hold it to both.
-- KEYS[1]: the state (see state.lua). ARGV: now in ticks ("" = the server's TIME), cost.
-- Returns remaining * PACK + reset_after when allowed (PACK, the window and one, is 0 when
-- that could pass 2^53: { remaining, reset_after } then), and { remaining, reset_after,
-- retry_after } when denied.

local cost = tonumber(ARGV[2])
local server_time = ARGV[1] == ''
local now
if server_time then
  local t = redis.call('TIME')
  now = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / TICK_US)
else
  now = tonumber(ARGV[1])
end

-- The window live at now, as roll: the stored one while it lasts; then, if it was in debt,
-- the next one with the excess; else none (a count of 0, whose start does not matter).
local start, count = now, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local states = cmsgpack.unpack(raw)
  if type(states) == 'table' and #states == 1 then
    local s = states[1]
    local stop = s[1] + WINDOW
    if now < stop then
      start, count = s[1], s[2]
    elseif s[2] > CAPACITY and now < stop + WINDOW then
      start, count = stop, s[2] - CAPACITY
    end
  end
end

-- Ticks until the window (or, in debt, the next one) ends, at most that long: reset_after.
local windows = 1
if count > CAPACITY then windows = 2 end
local reset = 0
if count > 0 then reset = math.max(math.min(start + windows * WINDOW - now, windows * WINDOW), 0) end

local probe = math.max(cost, 1)
if count + probe > CAPACITY then
  -- Denied: the wait until the hit fits, as retry_after.
  local retry = reset
  if count > CAPACITY then
    windows = 2
    if count - CAPACITY + probe <= CAPACITY then windows = 1 end
    retry = math.max(math.min(start + windows * WINDOW - now, windows * WINDOW), 0)
  end
  return { math.max(CAPACITY - count, 0), reset, math.max(retry, 1) }
end
if cost > 0 then
  if count == 0 then start = now end
  count = count + cost
  reset = math.max(math.min(start + WINDOW - now, WINDOW), 0)
  -- As state.lua's save: below 10^14 ms, written with all its digits.
  local ttl_ms = math.ceil(reset * TICK_US / 1000)
  if not server_time then ttl_ms = math.max(ttl_ms, 60000) end
  redis.call('SET', KEYS[1], cmsgpack.pack({ { start, count } }), 'PX', math.max(ttl_ms, 1))
end
if PACK > 0 then return (CAPACITY - count) * PACK + reset end
return { CAPACITY - count, reset }
