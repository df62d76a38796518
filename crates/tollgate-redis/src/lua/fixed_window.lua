-- Fixed window; twin of tollgate::strategy::FixedWindow. State: { start, count }.

function S.fresh() return { 0, 0 } end

local function live_count(s, l, now)
  if now >= s[1] + l.window then return 0 end
  return s[2]
end

function S.reset_after(s, l, now)
  if live_count(s, l, now) == 0 then return 0 end
  return math.min(sat_sub(s[1] + l.window, now), l.window)
end

function S.retry_after(s, l, now, cost)
  if live_count(s, l, now) + cost <= l.capacity then return nil end
  return math.max(S.reset_after(s, l, now), 1)
end

function S.consume(s, l, now, cost)
  if live_count(s, l, now) == 0 then
    s[1], s[2] = now, cost
  else
    s[2] = s[2] + cost
  end
end

function S.refund(s, l, now, cost)
  if live_count(s, l, now) > 0 then s[2] = sat_sub(s[2], cost) end
end

function S.remaining(s, l, now)
  return sat_sub(l.capacity, live_count(s, l, now))
end
