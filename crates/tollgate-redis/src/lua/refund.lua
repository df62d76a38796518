-- tollgate: gives cost units back to every rate; twin of tollgate::strategy::refund.
-- Arguments and state: see state.lua. A key with no state is left alone (a refund never
-- creates one). Returns 1 when it gave back to a stored state, 0 when there was none.

if cost == 0 or not stored then return 0 end
for i = 1, n do S.refund(states[i], limits[i], now, cost) end
save()
return 1
