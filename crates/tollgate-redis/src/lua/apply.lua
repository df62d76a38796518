-- tollgate: one hit, all rates or none, under the policy's ban if it has one; twin of
-- tollgate::strategy::apply and apply_banned. Arguments and state: see state.lua.
-- Returns a decision (see decide.lua).

local left = ban_left()
if left > 0 then return banned(judge(cost), left, 2) end

local wait_i, wait = longest_wait(math.max(cost, 1))
if wait ~= nil then
  local denied, allowed = delayed(wait_i, wait, cost, true)
  if allowed then
    if cost > 0 then save() end
    return denied
  end
  if ban and cost > 0 then
    local started = breach()
    save()
    if started then return banned(denied, ban.duration, 1) end
  end
  return denied
end

if cost > 0 then
  for i = 1, n do S.consume(states[i], limits[i], now, cost) end
  save()
end
return binding()
