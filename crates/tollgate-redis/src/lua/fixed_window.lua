-- Fixed window; twin of tollgate::strategy::FixedWindow. State: { start, count }.

function S.fresh() return { 0, 0 } end

-- The window live at now and its count: the stored one while it lasts; then, if it was in
-- debt (a count above the capacity), the next one, from its end, with the excess; else none.
local function roll(s, l, now)
  local stop = s[1] + l.window
  if now < stop then return s[1], s[2] end
  if s[2] > l.capacity and now < stop + l.window then return stop, s[2] - l.capacity end
  return now, 0
end

-- Ticks from now until `windows` windows from start have passed, at most that many windows.
local function span_left(start, windows, l, now)
  local span = l.window * windows
  return math.min(sat_sub(start + span, now), span)
end

function S.reset_after(s, l, now)
  local start, count = roll(s, l, now)
  if count == 0 then return 0 end
  if count <= l.capacity then return span_left(start, 1, l, now) end
  return span_left(start, 2, l, now)
end

function S.retry_after(s, l, now, cost)
  local start, count = roll(s, l, now)
  if count + cost <= l.capacity then return nil end
  if count <= l.capacity then return math.max(S.reset_after(s, l, now), 1) end
  local windows = 2
  if count - l.capacity + cost <= l.capacity then windows = 1 end
  return math.max(span_left(start, windows, l, now), 1)
end

function S.consume(s, l, now, cost)
  local start, count = roll(s, l, now)
  if count == 0 then
    s[1], s[2] = now, cost
  else
    s[1], s[2] = start, count + cost
  end
end

function S.refund(s, l, now, cost)
  local start, count = roll(s, l, now)
  if count > 0 then s[1], s[2] = start, sat_sub(count, cost) end
end

function S.overdraw(s, l, now, cost)
  local _, count = roll(s, l, now)
  local units = math.min(cost, sat_sub(2 * l.capacity, count))
  if units > 0 then S.consume(s, l, now, units) end
end

function S.remaining(s, l, now)
  local _, count = roll(s, l, now)
  return sat_sub(l.capacity, count)
end

-- Waits shorter than the window: a hit is reserved in the next window at most.
function S.reservable(l) return math.min(l.max_delay, sat_sub(l.window, 1)) end

-- A hit that runs after the current window is charged to the next one, as debt is carried.
function S.reserve(s, l, now, run_at, cost)
  local start, count = roll(s, l, now)
  if count == 0 or run_at < start + l.window then
    S.consume(s, l, now, cost)
  else
    s[1], s[2] = start, math.max(count, l.capacity) + cost
  end
end

-- Until the window live at now ends; twin of FixedWindow's lease_horizon.
function S.lease_horizon(s, l, now)
  local start = roll(s, l, now)
  return span_left(start, 1, l, now)
end
