-- tollgate: a quota lease: gives take_give_back units back (as refund.lua) if now is before
-- take_before, then charges between cost (the units needed) and take_want units at once;
-- twin of tollgate::strategy::take (and of the memory store's give-back). A cost of 0 only
-- gives back, and reports as a peek. Arguments and state: see state.lua and take_args.lua.
-- Returns a decision (see decide.lua) followed by the units granted (0: the need was denied,
-- nothing charged), the horizon in ticks (-1: none) and the tick before which the units may
-- be given back (now + horizon; -1: any time).

local gave_back = take_give_back > 0 and stored and (take_before < 0 or now < take_before)
if gave_back then
  for i = 1, n do S.refund(states[i], limits[i], now, take_give_back) end
end

if cost == 0 then
  if gave_back then save() end
  local peek = judge(0)
  peek[9], peek[10], peek[11] = 0, -1, -1
  return peek
end

local need = cost
local want = math.max(take_want, need)
local wait_i, wait = longest_wait(need)
if wait ~= nil then
  if gave_back then save() end
  local denied = report(wait_i, wait)
  denied[9], denied[10], denied[11] = 0, -1, -1
  return denied
end

local room = nil
for i = 1, n do
  local r = S.remaining(states[i], limits[i], now)
  if room == nil or r < room then room = r end
end
-- At most a LEASE_SHARE (8) of the room beyond the need: room / 8 is exact in doubles.
local share = math.min(math.max(math.ceil(room / 8), need), want)
local granted = need
if share > need and longest_wait(share) == nil then granted = share end
for i = 1, n do S.consume(states[i], limits[i], now, granted) end
save()

local horizon = -1
if S.lease_horizon then
  for i = 1, n do
    local h = S.lease_horizon(states[i], limits[i], now)
    if horizon < 0 or h < horizon then horizon = h end
  end
end
local d = binding()
d[9], d[10], d[11] = granted, horizon, -1
if horizon >= 0 then d[11] = now + horizon end
return d
