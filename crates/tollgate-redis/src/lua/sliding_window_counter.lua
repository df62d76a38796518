-- Sliding window counter; twin of tollgate::strategy::SlidingWindowCounter.
-- State: { start, previous, current }.

function S.fresh() return { 0, 0, 0 } end

-- The start of the window containing now, and the counts as seen from it.
local function roll(s, l, now)
  local w = l.window
  local stop = s[1] + w
  local start, previous, current
  if now < stop then
    start, previous, current = s[1], s[2], s[3]
  elseif now < stop + w then
    start, previous, current = stop, s[3], 0
  else
    start, previous, current = now, 0, 0
  end
  if previous == 0 and current == 0 then return now, 0, 0 end
  return start, previous, current
end

local function view(s, l, now)
  local start, previous, current = roll(s, l, now)
  return math.min(sat_sub(now, start), l.window), previous, current
end

function S.retry_after(s, l, now, cost)
  local elapsed, previous, current = view(s, l, now)
  local n, w = l.capacity, l.window
  local wanted = current + cost
  if previous * (w - elapsed) + wanted * w <= n * w then return nil end
  if wanted <= n then
    local allowed_weight = idiv((n - wanted) * w, previous)
    local fits_at = w - math.min(allowed_weight, w)
    return math.max(sat_sub(fits_at, elapsed), 1)
  end
  local allowed_weight = idiv(sat_sub(n, cost) * w, current)
  local fits_at = w - math.min(allowed_weight, w)
  return math.max((w - elapsed) + fits_at, 1)
end

function S.consume(s, l, now, cost)
  local start, previous, current = roll(s, l, now)
  s[1], s[2], s[3] = start, previous, current + cost
end

function S.refund(s, l, now, cost)
  local start, previous, current = roll(s, l, now)
  if previous == 0 and current == 0 then return end
  local from_current = math.min(current, cost)
  s[1], s[2], s[3] = start, sat_sub(previous, cost - from_current), current - from_current
end

function S.remaining(s, l, now)
  local elapsed, previous, current = view(s, l, now)
  local room = sat_sub(l.capacity * l.window, previous * (l.window - elapsed))
  return sat_sub(idiv(room, l.window), current)
end

function S.reset_after(s, l, now)
  local start, previous, current = roll(s, l, now)
  local w = l.window
  local fresh_at
  if current > 0 then
    fresh_at = start + w + w
  elseif previous > 0 then
    fresh_at = start + w
  else
    return 0
  end
  return math.min(sat_sub(fresh_at, now), 2 * w)
end

function S.overdraw(s, l, now, cost)
  local units = math.min(cost, S.remaining(s, doubled(l), now))
  if units > 0 then S.consume(s, l, now, units) end
end

-- Until the window live at now ends; twin of SlidingWindowCounter's lease_horizon.
function S.lease_horizon(s, l, now)
  local elapsed = view(s, l, now)
  return l.window - elapsed
end
