-- tollgate: one hit, all rates or none; twin of tollgate::strategy::apply.
-- Arguments and state: see state.lua.
-- Returns { allowed (1/0), limit, remaining, reset_after, retry_after (-1: none), window }.

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
  for i = 1, n do S.consume(states[i], limits[i], now, cost) end
  save()
end

local binding = report(1, nil)
for i = 2, n do
  local other = report(i, nil)
  if other[3] < binding[3] or (other[3] == binding[3] and other[4] > binding[4]) then
    binding = other
  end
end
return binding
