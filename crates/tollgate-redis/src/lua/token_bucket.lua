-- Token bucket (GCRA); twin of tollgate::strategy::TokenBucket. State: { tat }.

function S.fresh() return { 0 } end

-- Ticks per token: ceil(W / N), at least 1.
local function interval(l)
  local n = math.max(l.amount, 1)
  return math.max(idiv(l.window + n - 1, n), 1)
end

-- Fits when backlog + cost x I <= capacity x I; otherwise waits for the excess.
function S.retry_after(s, l, now, cost)
  local i = interval(l)
  local over = sat_sub(s[1], now) + cost * i - l.capacity * i
  if over > 0 then return over end
  return nil
end

function S.consume(s, l, now, cost)
  s[1] = math.max(s[1], now) + cost * interval(l)
end

function S.refund(s, l, now, cost)
  if s[1] > now then s[1] = math.max(s[1] - cost * interval(l), now) end
end

function S.remaining(s, l, now)
  local i = interval(l)
  local slack = sat_sub(l.capacity * i, sat_sub(s[1], now))
  return math.min(idiv(slack, i), l.capacity)
end

function S.reset_after(s, l, now)
  return sat_sub(s[1], now)
end

function S.overdraw(s, l, now, cost)
  local units = math.min(cost, S.remaining(s, doubled(l), now))
  if units > 0 then S.consume(s, l, now, units) end
end

-- Any wait up to the max delay; a reserved hit moves the TAT as if made when it runs.
function S.reservable(l) return l.max_delay end
