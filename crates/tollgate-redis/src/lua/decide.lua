-- tollgate: the rates' decisions, shared by apply.lua and overdraw.lua; twins of the report,
-- longest wait, binding rate and ban of tollgate::strategy.
-- A decision is { allowed (1/0), limit, remaining, reset_after, retry_after (-1: none),
-- window, ban (0 clear, 1 started by this hit, 2 ongoing), delay (0: runs at once) }.

local function report(i, retry)
  local s, l = states[i], limits[i]
  local remaining, reset = 0, 0
  if l.amount ~= 0 then
    remaining, reset = S.remaining(s, l, now), S.reset_after(s, l, now)
  end
  return { retry == nil and 1 or 0, l.capacity, remaining, reset, retry or -1, l.window, 0, 0 }
end

-- The rate that makes a hit of probe units wait longest, and its wait; nil when none does.
local function longest_wait(probe)
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
  return wait_i, wait
end

-- The allowed decision of the rate with the fewest units left (then the latest reset).
local function binding()
  local best = report(1, nil)
  for i = 2, n do
    local other = report(i, nil)
    if other[3] < best[3] or (other[3] == best[3] and other[4] > best[4]) then best = other end
  end
  return best
end

-- The longest wait every rate reserves a slot for; 0 when one does not (or is a kill switch).
local function reservable()
  local bound = nil
  for i = 1, n do
    local l, r = limits[i], 0
    if l.amount ~= 0 then r = S.reservable(l) end
    if bound == nil or r < bound then bound = r end
  end
  return bound or 0
end

-- A hit that must wait `wait` ticks: denied past what the rates reserve, allowed with a delay
-- within it (reserving its slot when `charge`); twin of the wait branch of apply and judge.
local function delayed(wait_i, wait, cost, charge)
  local bound = reservable()
  if wait > bound then return report(wait_i, wait - bound), false end
  if charge and cost > 0 then
    for i = 1, n do S.reserve(states[i], limits[i], now, now + wait, cost) end
  end
  local d = binding()
  d[8] = wait
  return d, true
end

-- What a hit of cost would be told, charging nothing.
local function judge(cost)
  local wait_i, wait = longest_wait(math.max(cost, 1))
  if wait ~= nil then return (delayed(wait_i, wait, cost, false)) end
  return binding()
end

-- d as a ban with `left` ticks to run says it.
local function banned(d, left, status)
  return { 0, d[2], 0, math.max(d[4], left), math.max(d[5], 0, left), d[6], status, 0 }
end

-- The ticks the key stays banned; 0 when it is not (or the policy has no ban).
local function ban_left()
  if not ban then return 0 end
  return sat_sub(states[n + 1][1], now)
end

-- Counts a breach; whether it completes the count, which bans the key (and the breaches
-- start again from none). Twin of BanState's breach, a fixed window of breaches.
local function breach()
  local b = states[n + 1]
  local count = b[3]
  if now >= b[2] + ban.window then count = 0 end
  if count == 0 then
    b[2], b[3] = now, 1
  else
    b[3] = count + 1
  end
  if b[3] < ban.amount then return false end
  b[1], b[2], b[3] = now + ban.duration, 0, 0
  return true
end
