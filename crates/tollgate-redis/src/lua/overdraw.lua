-- tollgate: a late charge to every rate, whatever the room left (up to twice each capacity);
-- twin of tollgate::strategy::overdraw and overdraw_banned. Arguments and state: see
-- state.lua. Returns the decision after it, a peek's (see decide.lua).

if cost > 0 then
  for i = 1, n do S.overdraw(states[i], limits[i], now, cost) end
  save()
end
local after = judge(0)
local left = ban_left()
if left > 0 then return banned(after, left, 2) end
return after
