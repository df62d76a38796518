-- Sliding window log; twin of tollgate::strategy::SlidingWindowLog.
-- State: { entries, total } with entries = { at1, units1, at2, units2, ... } oldest first.

function S.fresh() return { {}, 0 } end

-- The index (into entries) of the first entry still inside the window, and the live units.
local function live(s, l, now)
  local e, expired, i = s[1], 0, 1
  while i <= #e and e[i] + l.window <= now do
    expired = expired + e[i + 1]
    i = i + 2
  end
  return i, sat_sub(s[2], expired)
end

function S.retry_after(s, l, now, cost)
  local i, units = live(s, l, now)
  local excess = units + cost - l.capacity
  if excess <= 0 then return nil end
  local e, freed = s[1], 0
  while i <= #e do
    freed = freed + e[i + 1]
    if freed >= excess then return math.max(math.min(sat_sub(e[i] + l.window, now), l.window), 1) end
    i = i + 2
  end
  return l.window
end

function S.consume(s, l, now, cost)
  local first, units = live(s, l, now)
  local e, kept = s[1], {}
  for i = first, #e do kept[#kept + 1] = e[i] end
  s[2] = units + cost
  local n = #kept
  if n > 0 and kept[n - 1] >= now then
    kept[n] = kept[n] + cost
  else
    kept[n + 1], kept[n + 2] = now, cost
  end
  s[1] = kept
end

-- Removes the cost most recent units still inside the window, newest entry first.
function S.refund(s, l, now, cost)
  local e, left = s[1], cost
  while left > 0 and #e > 0 and e[#e - 1] + l.window > now do
    local taken = math.min(e[#e], left)
    e[#e] = e[#e] - taken
    s[2] = sat_sub(s[2], taken)
    left = left - taken
    if e[#e] == 0 then
      e[#e] = nil
      e[#e] = nil
    end
  end
end

function S.remaining(s, l, now)
  local _, units = live(s, l, now)
  return sat_sub(l.capacity, units)
end

function S.reset_after(s, l, now)
  local e = s[1]
  if #e == 0 then return 0 end
  return math.min(sat_sub(e[#e - 1] + l.window, now), l.window)
end

function S.overdraw(s, l, now, cost)
  local units = math.min(cost, S.remaining(s, doubled(l), now))
  if units > 0 then S.consume(s, l, now, units) end
end
