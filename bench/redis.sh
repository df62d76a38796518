#!/usr/bin/env bash
# Redis store throughput, side by side in one run on one fresh redis-server, in interleaved
# rounds (the median is reported):
#   1. redis-benchmark (64 clients, pipeline 16, random keys; its latencies are those of a
#      pipelined batch of 16) running the least a fixed window
#      can do in Lua (INCR, and PEXPIRE on the first hit): the reference of the target;
#      tollgate's general fixed-window script and the baked one (one rate, its numbers in the
#      source), exactly as the store assembles them;
#   2. tollgate's RedisStore through the `load` example: 64 tasks in one process hitting
#      random keys, for each strategy (the fixed window of one rate runs the baked script,
#      the fixed window of two rates the general one), with p50/p99 latency per hit.
# Usage: bench/redis.sh [HITS] [ROUNDS]   (defaults 400000 and 3)
#        LOAD_BEFORE=path/to/load bench/redis.sh   also runs another build of the example
#        (the code before a change) for the fixed window of one rate, in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
hits=${1:-400000}
rounds=${2:-3}
tasks=64
keys=100000

cargo build --release -q -p tollgate-redis --example load
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
load_bin="$target_dir/release/examples/load"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# A script loaded from a file; fails the run when a trial call does not return numbers.
load_script() {
  local file=$1
  shift
  local sha
  sha=$(redis-cli -p "$port" -x script load < "$file")
  if ! redis-cli -p "$port" evalsha "$sha" 1 "bench:trial:$file" "$@" | grep -Eq '^-?[0-9]+$'; then
    echo "bench/redis.sh: $file does not run: $(redis-cli -p "$port" evalsha "$sha" 1 "bench:trial:$file" "$@")" >&2
    exit 1
  fi
  echo "$sha"
}
# tollgate's scripts, exactly as the store assembles them (src/script.rs).
# One rate of 1,000,000 per minute in ticks of 1 µs: never denies here.
src=crates/tollgate-redis/src/lua
cat "$src/prelude.lua" "$src/fixed_window.lua" "$src/state.lua" "$src/decide.lua" \
  "$src/apply.lua" > "$dir/general.lua"
# ARGV: server time, cost 1, tick 1 µs, one rate: amount, capacity, window, max delay.
general_args=("" 1 1 1 1000000 1000000 60000000 0)
general_sha=$(load_script "$dir/general.lua" "${general_args[@]}")
{ echo "local CAPACITY, WINDOW, TICK_US, PACK = 1000000, 60000000, 1, 60000001"
  cat "$src/fixed_window_one.lua"; } > "$dir/baked.lua"
baked_sha=$(load_script "$dir/baked.lua" "" 1)
echo 'local c = redis.call("INCR", KEYS[1]) if c == 1 then redis.call("PEXPIRE", KEYS[1], 60000) end return c' \
  > "$dir/minimal.lua"
minimal_sha=$(load_script "$dir/minimal.lua")
redis-cli -p "$port" flushall >/dev/null

# One run of redis-benchmark: "requests/s p50 p99" (latencies in µs, of a pipelined batch).
benchmark() {
  redis-benchmark -p "$port" -c 64 -P 16 -n "$hits" -r "$keys" --csv "$@" | tail -1 \
    | python3 -c 'import csv, sys; r = next(csv.reader(sys.stdin)); print(r[1], float(r[4]) * 1000, float(r[6]) * 1000)'
}
# One run of the load example: "hits/s p50 p99".
load() {
  local bin=$1 strategy=$2 limits=$3 line
  line=$("$bin" "redis://127.0.0.1:$port" "$strategy" "$limits" "$keys" "$tasks" $((hits / tasks)))
  python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["hits_per_second"], d["p50_us"], d["p99_us"])' "$line"
}

rows=(
  "bench|redis-benchmark INCR+PEXPIRE script (reference)|EVALSHA $minimal_sha 1 bench:min:__rand_int__"
  "bench|redis-benchmark general fixed-window script|EVALSHA $general_sha 1 bench:gen:__rand_int__ ${general_args[*]@Q}"
  "bench|redis-benchmark baked fixed-window script|EVALSHA $baked_sha 1 bench:baked:__rand_int__ '' 1"
  "load|tollgate fixed window, 1 rate (baked)|fixed-window|1000000/minute"
  "load|tollgate fixed window, 2 rates (general)|fixed-window|1000000/minute; 100000000/hour"
  "load|tollgate sliding-window log (1000/minute)|sliding-window|1000/minute"
  "load|tollgate sliding-window counter|sliding-window-counter|1000000/minute"
  "load|tollgate token bucket|token-bucket|1000000/minute"
)
if [ -n "${LOAD_BEFORE:-}" ]; then
  rows+=("before|before: tollgate fixed window, 1 rate|fixed-window|1000000/minute")
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "redis: $(redis-server --version | cut -d' ' -f3); $hits hits per measurement, $rounds rounds"
results="$dir/results"
: > "$results"
for round in $(seq "$rounds"); do
  for i in "${!rows[@]}"; do
    IFS='|' read -r kind name a b <<< "${rows[$i]}"
    case $kind in
      bench) eval "set -- $a"; echo "$i $(benchmark "$@")" >> "$results" ;;
      load) echo "$i $(load "$load_bin" "$a" "$b")" >> "$results" ;;
      before) echo "$i $(load "$LOAD_BEFORE" "$a" "$b")" >> "$results" ;;
    esac
    redis-cli -p "$port" flushall >/dev/null
  done
  echo "round $round done" >&2
done

python3 - "$results" "${rows[@]}" <<'EOF'
import statistics, sys
lines = [l.split() for l in open(sys.argv[1])]
rows = [r.split('|')[1] for r in sys.argv[2:]]
def median(i, col):
    vals = [float(l[col]) for l in lines if int(l[0]) == i and l[col] != '-']
    return statistics.median(vals) if vals else None
reference = median(0, 1)
print(f"{'what':46} {'hits/s (median)':>16} {'rounds':>28} {'p50 us':>7} {'p99 us':>7} {'vs INCR':>8}")
for i, name in enumerate(rows):
    rate = median(i, 1)
    each = ', '.join(f"{float(l[1]):.0f}" for l in lines if int(l[0]) == i)
    p50, p99 = median(i, 2), median(i, 3)
    fmt = lambda v: '' if v is None else f"{v:.0f}"
    print(f"{name:46} {rate:16,.0f} {each:>28} {fmt(p50):>7} {fmt(p99):>7} {rate / reference:8.1%}")
EOF
