-- tollgate: a quota lease: gives take_give_back units back (as refund.lua), then charges
-- between cost (the units needed) and take_want units at once; twin of
-- tollgate::strategy::take. Arguments and state: see state.lua and take_args.lua.
-- Returns a decision (see decide.lua) followed by the units granted (0: the need was denied,
-- nothing charged) and the horizon in ticks (-1: none).

local need = math.max(cost, 1)
local want = math.max(take_want, need)
local gave_back = take_give_back > 0 and stored
if gave_back then
  for i = 1, n do S.refund(states[i], limits[i], now, take_give_back) end
end

local wait_i, wait = longest_wait(need)
if wait ~= nil then
  if gave_back then save() end
  local denied = report(wait_i, wait)
  denied[9], denied[10] = 0, -1
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
d[9], d[10] = granted, horizon
return d
