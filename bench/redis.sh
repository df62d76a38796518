#!/usr/bin/env bash
# Redis store throughput, side by side in one run on one fresh redis-server:
#   1. the ceiling: redis-benchmark running tollgate's own fixed-window script with EVALSHA
#      (64 clients, pipeline 16, and unpipelined for reference) on random keys;
#   2. tollgate's RedisStore through the `load` example: 64 tasks in one process hitting
#      random keys, for each strategy, with p50/p99 latency.
# Usage: bench/redis.sh [HITS_PER_STRATEGY]   (default 400000)
set -euo pipefail
cd "$(dirname "$0")/.."
hits=${1:-400000}
tasks=64
keys=100000

cargo build --release -q -p tollgate-redis --example load
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# tollgate's fixed-window script, exactly as the store assembles it.
src=crates/tollgate-redis/src/lua
cat "$src/prelude.lua" "$src/fixed_window.lua" "$src/apply.lua" > "$dir/fixed_window.lua"
sha=$(redis-cli -p "$port" -x script load < "$dir/fixed_window.lua")
# ARGV: server time, cost 1, tick 1 ms, one rate: 1000000 per minute (never denies here).
eval_args=(EVALSHA "$sha" 1 "tollgate:bench:__rand_int__" "" 1 1 1 1000000 1000000 60000)

# For context: the least a fixed window can do in Lua (INCR, and PEXPIRE on the first hit).
minimal='local c = redis.call("INCR", KEYS[1]) if c == 1 then redis.call("PEXPIRE", KEYS[1], 60000) end return c'
minimal_sha=$(redis-cli -p "$port" script load "$minimal")

ceiling() {
  local pipeline=$1
  shift
  redis-benchmark -p "$port" -c 64 -P "$pipeline" -n "$hits" -r "$keys" -q "$@" \
    | tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "redis: $(redis-server --version | cut -d' ' -f3)"
pipelined=$(ceiling 16 "${eval_args[@]}")
unpipelined=$(ceiling 1 "${eval_args[@]}")
minimal_pipelined=$(ceiling 16 EVALSHA "$minimal_sha" 1 "bench:min:__rand_int__")
printf '%-44s %12s\n' "redis-benchmark EVALSHA fixed window, P16" "$pipelined/s"
printf '%-44s %12s\n' "redis-benchmark EVALSHA fixed window, P1" "$unpipelined/s"
printf '%-44s %12s\n' "redis-benchmark EVALSHA INCR+PEXPIRE, P16" "$minimal_pipelined/s"
redis-cli -p "$port" flushall >/dev/null

for strategy in fixed-window sliding-window sliding-window-counter token-bucket; do
  line=$(./target/release/examples/load "redis://127.0.0.1:$port" "$strategy" "1000000/minute" \
    "$keys" "$tasks" $((hits / tasks)))
  rate=$(echo "$line" | grep -Eo '"hits_per_second": [0-9]+' | grep -Eo '[0-9]+$')
  p50=$(echo "$line" | grep -Eo '"p50_us": [0-9]+' | grep -Eo '[0-9]+$')
  p99=$(echo "$line" | grep -Eo '"p99_us": [0-9]+' | grep -Eo '[0-9]+$')
  ratio=$(python3 -c "print(f'{$rate / $pipelined:.0%}')")
  printf '%-44s %12s   p50 %5s us  p99 %5s us  (%s of the P16 ceiling)\n' \
    "tollgate RedisStore $strategy, $tasks tasks" "$rate/s" "$p50" "$p99" "$ratio"
  redis-cli -p "$port" flushall >/dev/null
done
