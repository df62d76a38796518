#!/usr/bin/env bash
# Two builds of the Tower layer's `bench_hello` example (two checkouts, each built with
# `cargo build --release -p tollgate-tower --example bench_hello`), interleaved: for each round,
# each build, modes `none` (no limiter) and `tollgate`: the server on CPU 0, `wrk -t1 -c64` on
# CPU 1, a 1 s warm-up then $SECS s. Prints one line per measurement:
#   ROUND BUILD MODE REQ/S P99 SERVER-CPU-US-PER-REQUEST
# Usage: ROUNDS=4 SECS=5 bench/tower_before_after.sh BEFORE_BIN AFTER_BIN
set -euo pipefail
SECS=${SECS:-5}; ROUNDS=${ROUNDS:-4}
declare -A BIN=([before]=$1 [after]=$2)
tck=$(getconf CLK_TCK)
for round in $(seq 1 $ROUNDS); do
  for build in before after; do
    for mode in none tollgate; do
      log=$(mktemp)
      taskset -c 0 "${BIN[$build]}" "$mode" 127.0.0.1:0 >"$log" 2>&1 & pid=$!
      until port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | grep -o '[0-9]*$'); do
        kill -0 $pid 2>/dev/null || { echo "$build $mode did not start:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.05
      done
      taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
      b=$(awk '{print $14+$15}' /proc/$pid/stat)
      out=$(taskset -c 1 wrk -t1 -c64 -d${SECS}s --latency "http://127.0.0.1:$port/")
      a=$(awk '{print $14+$15}' /proc/$pid/stat)
      kill $pid; wait $pid 2>/dev/null || true
      rm -f "$log"
      rps=$(echo "$out" | awk '/^Requests\/sec:/{print $2}')
      req=$(echo "$out" | awk '/requests in/{print $1}')
      p99=$(echo "$out" | awk '$1=="99%"{print $2}')
      us=$(python3 -c "print(f'{($a-$b)/$tck/$req*1e6:.2f}')")
      echo "$round $build $mode $rps $p99 $us"
    done
  done
done
