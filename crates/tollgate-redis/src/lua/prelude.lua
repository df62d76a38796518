-- tollgate: helpers shared by every strategy script.
-- Numbers are Lua doubles: every value here is an integer below 2^53 (the store picks a tick
-- that keeps every span and product below 2^49 ticks, see src/tick.rs), so + - * are exact. So is floor(a / b) for integers
-- 0 <= a < 2^53 and b >= 1: the division's rounding error is below a / (b * 2^53) < 1 / b,
-- less than the distance from a / b to the next integer when a / b is not one.

local function idiv(a, b)
  if b < 1 then b = 1 end
  return math.floor(a / b)
end

local function sat_sub(a, b)
  if a > b then return a - b end
  return 0
end

local S = {}

-- A rate holding twice its capacity: how far a late charge may fill a state.
local function doubled(l)
  return { amount = l.amount, capacity = 2 * l.capacity, window = l.window, max_delay = l.max_delay }
end

-- The longest wait a strategy reserves a slot for; 0 unless its script says otherwise.
function S.reservable(l) return 0 end

-- Charges a hit that runs at run_at; twin of RateState's reserve (the default: as if made then).
function S.reserve(s, l, now, run_at, cost) S.consume(s, l, run_at, cost) end
