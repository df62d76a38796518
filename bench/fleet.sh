#!/usr/bin/env bash
# Fleet mode (issue 14), side by side in one run on one fresh redis-server: 4 processes (the
# `fleet` example of tollgate-redis, TASKS tasks each) hit 100 hot keys of a fixed window,
# per hit (every hit one script run) and through quota leases of 250 ms, in two loads:
#   far:  a limit far above the load (1,000,000/minute per key): leases as large as the rate;
#   over: a limit the load passes (200/second per key): leases shrink, denials go local.
# First, one node's ceiling per call for the hit script and the lease script. Then for each:
# hits/s (the 4 processes together), Redis calls per 1000 hits (Redis's own
# INFO commandstats: EVALSHA, EVAL and SCRIPT LOAD calls), p50/p99 latency (the worst of
# the 4 processes), and for `over` the share of the limit admitted.
# Usage: bench/fleet.sh [SECONDS] [TASKS] [ROUNDS]   (default 5 s, 16 tasks, 2 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
tasks=${2:-16}
rounds=${3:-2}
keys=100

cargo build --release -q -p tollgate-redis --example fleet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# Script calls Redis ran since the last CONFIG RESETSTAT.
script_calls() {
  redis-cli -p "$port" info commandstats | tr -d '\r' \
    | awk -F'[:=,]' '/^cmdstat_(evalsha|eval|script\|load):/ { n += $3 } END { print n + 0 }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# One node's ceiling, per call: redis-benchmark (64 clients, pipeline 16) running tollgate's
# fixed-window hit script and its lease script, exactly as the store assembles them, on random
# keys of 1,000,000 a minute (a lease of up to 64 units; nothing given back).
src=crates/tollgate-redis/src/lua
cat "$src/prelude.lua" "$src/fixed_window.lua" "$src/state.lua" "$src/decide.lua" "$src/apply.lua" \
  > "$dir/apply.lua"
cat "$src/prelude.lua" "$src/fixed_window.lua" "$src/take_args.lua" "$src/state.lua" \
  "$src/decide.lua" "$src/take.lua" > "$dir/take.lua"
apply_sha=$(redis-cli -p "$port" -x script load < "$dir/apply.lua")
take_sha=$(redis-cli -p "$port" -x script load < "$dir/take.lua")
ceiling() {
  redis-benchmark -p "$port" -c 64 -P 16 -n 400000 -r 100000 -q "$@" \
    | tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1
}
rate_args=("" 1 1 1 1000000 1000000 60000000 0)
printf 'ceiling: hit script %s calls/s, lease script %s calls/s (EVALSHA, P16)\n' \
  "$(ceiling EVALSHA "$apply_sha" 1 "tollgate:bench:__rand_int__" "${rate_args[@]}")" \
  "$(ceiling EVALSHA "$take_sha" 1 "tollgate:bench:__rand_int__" "${rate_args[@]}" 64 0 -1)"
redis-cli -p "$port" flushall >/dev/null
echo "redis: $(redis-server --version | cut -d' ' -f3); 4 processes x $tasks tasks, $keys keys, ${seconds}s a run"
printf '%-6s %-7s %5s %12s %16s %9s %9s %9s\n' load mode round "hits/s" "calls/1000 hits" "p50 us" "p99 us" admitted
for round in $(seq 1 "$rounds"); do
  for load in far over; do
    case $load in
      far) limits="1000000/minute"; per_second=0 ;;
      over) limits="200/second"; per_second=200 ;;
    esac
    for lease in 0 250; do
      redis-cli -p "$port" flushall >/dev/null
      redis-cli -p "$port" config resetstat >/dev/null
      for i in 1 2 3 4; do
        ./target/release/examples/fleet "redis://127.0.0.1:$port" "$limits" "$keys" "$tasks" \
          "$seconds" "$lease" > "$dir/out.$i" &
      done
      wait
      calls=$(script_calls)
      python3 - "$dir" "$calls" "$load" "$lease" "$round" "$per_second" "$keys" <<'PY'
import json, sys
d, calls, load, lease, rnd, per_second, keys = sys.argv[1:]
runs = [json.load(open(f"{d}/out.{i}")) for i in range(1, 5)]
hits = sum(r["hits"] for r in runs)
rate = sum(r["hits_per_second"] for r in runs)
seconds = max(r["seconds"] for r in runs)
allowed = sum(r["allowed"] for r in runs)
admitted = "-"
if int(per_second):
    # Whole windows only: the first second of each key starts its first window.
    admitted = f"{allowed / (int(keys) * int(per_second) * seconds):.3f}"
mode = "per-hit" if lease == "0" else f"lease{lease}"
print(f"{load:<6} {mode:<7} {rnd:>5} {rate:>12,.0f} {1000 * int(calls) / hits:>16.1f} "
      f"{max(r['p50_us'] for r in runs):>9.1f} {max(r['p99_us'] for r in runs):>9.1f} {admitted:>9}")
PY
    done
  done
done
