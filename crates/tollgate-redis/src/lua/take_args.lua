-- tollgate: the arguments a quota lease adds after those of state.lua: the units wanted, the
-- units given back first, and the tick before which they may be given back (-1: any time). Taken off the end of ARGV before state.lua reads it, so that
-- state.lua sees the arguments of a hit (a take is never run for a policy with a ban).

local take_before = tonumber(table.remove(ARGV))
local take_give_back = tonumber(table.remove(ARGV))
local take_want = tonumber(table.remove(ARGV))
