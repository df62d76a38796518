-- tollgate: gives a concurrency slot back (the Lua twin of LeaseTable::release).
-- KEYS[1]: the key's leases; ARGV: now in microseconds ('' for TIME), the lease id.
-- Reply: 1 when a live lease was released; 0 for an unknown lease, or an expired one (which
-- is dropped, freeing nothing).
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not expiry then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[2])
if tonumber(expiry) > now then
  return 1
end
return 0
