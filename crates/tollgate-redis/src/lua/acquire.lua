-- tollgate: takes a concurrency slot (the Lua twin of the memory store's LeaseTable::acquire).
-- KEYS[1]: the key's leases, a sorted set of lease id -> expiry (microseconds).
-- ARGV: now in microseconds ('' for the Redis server's TIME), the lease id, the most leases
-- in flight, the lease time in microseconds.
-- Reply: {1, in flight after} when the lease was taken; {0, in flight, microseconds until
-- the earliest lease expires} when every slot is taken.
local now = tonumber(ARGV[1])
local server_time = not now
if server_time then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[1])
if in_flight >= max then
  local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, in_flight, tonumber(earliest[2]) - now}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
-- The key lives as long as its latest lease (a reload may have shortened the lease time).
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl_ms = math.ceil((tonumber(latest[2]) - now) / 1000)
-- In client-time mode the client's clock need not run with Redis's: keep keys a minute.
if not server_time then ttl_ms = math.max(ttl_ms, 60000) end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {1, in_flight + 1, 0}
