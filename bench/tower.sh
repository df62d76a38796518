#!/usr/bin/env bash
# The Tower layer's cost, side by side in one run: wrk against the same axum hello-world
# (`GET /` -> "Hello, World!", the `bench_hello` example) with no limiter, with
# tower_governor and with tollgate (memory store, per-IP token bucket, a limit nothing
# reaches, headers on), plus the denied path (every request answered 429).
#
# The server is pinned to CPU 0 and wrk to CPU 1 (`taskset`), rounds are interleaved (every
# mode once per round) and the table shows the median and the best of the rounds, with the
# server's CPU use during the run (near 100% means the server, not wrk, is the bottleneck; a
# round where it is lower was slowed by wrk or by another process and is flagged) and the
# server's CPU time per request, which other load disturbs less than requests per second.
#
# Usage: bench/tower.sh [ROUNDS] [SECONDS] [CONNECTIONS]   (default 5 8 64: about 6 minutes)
#   MODES="none tollgate" bench/tower.sh 1 5   runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-8}
connections=${3:-64}
modes=(${MODES:-none governor tollgate tollgate-both tollgate-noheaders tollgate-denied governor-denied})

for tool in wrk taskset python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench/tower.sh: $tool is required (apt-get install -y wrk util-linux python3)" >&2
    exit 1
  fi
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench/tower.sh: needs 2 CPUs (server on CPU 0, wrk on CPU 1); nproc = $(nproc)" >&2
  exit 1
fi

cargo build --release -q -p tollgate-tower --example bench_hello
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server_bin="$target_dir/release/examples/bench_hello"

dir=$(mktemp -d)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap 'stop_server; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# Starts the server for mode $1 on a port of its choosing (127.0.0.1:0, so no other process
# can take it first), pinned to CPU 0; sets server_pid and port from its "listening on" line.
start_server() {
  taskset -c 0 "$server_bin" "$1" "127.0.0.1:0" >"$dir/server.log" 2>&1 &
  server_pid=$!
  local tries=0
  until port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$dir/server.log" | grep -o '[0-9]*$'); do
    if ! kill -0 "$server_pid" 2>/dev/null || [ $((tries += 1)) -gt 200 ]; then
      echo "bench/tower.sh: the $1 server did not start:" >&2
      cat "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# CPU time (user + system, clock ticks) the process $1 has used.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# One measurement of mode $1 in round $2: a 1 s warm-up, then $seconds s of wrk.
measure() {
  local mode=$1 round=$2
  start_server "$mode"
  taskset -c 1 wrk -t1 -c"$connections" -d1s "http://127.0.0.1:$port/" >/dev/null
  local before after
  before=$(cpu_ticks "$server_pid")
  taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port/" \
    >"$dir/wrk.txt"
  after=$(cpu_ticks "$server_pid")
  stop_server
  local rps requests non2xx errors p50 p99 cpu
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$dir/wrk.txt")
  requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$dir/wrk.txt")
  errors=$(grep -c 'Socket errors' "$dir/wrk.txt" || true)
  p50=$(awk '$1 == "50%" { print $2 }' "$dir/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$dir/wrk.txt")
  cpu=$(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) / $seconds:.0%}')")
  # server CPU time per request, in microseconds (user + system)
  us_per_request=$(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) / $requests * 1e6:.2f}')")
  if [ -z "$rps" ]; then
    echo "bench/tower.sh: wrk printed no Requests/sec for $mode:" >&2
    cat "$dir/wrk.txt" >&2
    exit 1
  fi
  if python3 -c "import sys; sys.exit(0 if ($after - $before) / $(getconf CLK_TCK) / $seconds < 0.9 else 1)"; then
    echo "warning: $mode round $round: the server used only $cpu of its CPU: wrk or another process was the bottleneck" >&2
  fi
  if [ "$errors" != 0 ]; then
    echo "warning: $mode round $round: $(grep 'Socket errors' "$dir/wrk.txt")" >&2
  fi
  printf '%-20s round %d  %10s req/s  %7s 429s of %8s  p50 %8s  p99 %8s  server CPU %4s, %s us/request\n' \
    "$mode" "$round" "$rps" "${non2xx:-0}" "$requests" "$p50" "$p99" "$cpu" "$us_per_request" >&2
  echo "$mode $round $rps ${non2xx:-0} $requests $p50 $p99 $cpu $us_per_request" >>"$dir/results.txt"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t1 -c$connections -d${seconds}s on CPU 1; server (tokio multi-thread, 1 worker) on CPU 0"
echo "$rounds rounds x ${#modes[@]} modes: ${modes[*]}"
echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 'crates/*/src' 2>/dev/null || echo ', with uncommitted changes under crates/*/src')"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
for round in $(seq 1 "$rounds"); do
  for mode in "${modes[@]}"; do
    measure "$mode" "$round"
  done
done

python3 - "$dir/results.txt" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
modes = list(dict.fromkeys(r[0] for r in rows))
rps = {m: [float(r[2]) for r in rows if r[0] == m] for m in modes}
denied = {m: sum(int(r[3]) for r in rows if r[0] == m) for m in modes}
total = {m: sum(int(r[4]) for r in rows if r[0] == m) for m in modes}
cpu = {m: [r[7] for r in rows if r[0] == m] for m in modes}
us = {m: statistics.median(float(r[8]) for r in rows if r[0] == m) for m in modes}
median = {m: statistics.median(v) for m, v in rps.items()}


def micros(text):
    # a wrk latency ("812.00us", "1.20ms", "2.00s") in microseconds
    for unit, scale in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


p99 = {m: statistics.median(micros(r[6]) for r in rows if r[0] == m) for m in modes}
best = {m: max(v) for m, v in rps.items()}


def ratio(table, m, ref):
    return f"{table[m] / table[ref]:.1%}" if ref in table else "-"


def cost_ratio(m, ref):
    # the throughput CPU time per request implies, relative to ref's
    return f"{us[ref] / us[m]:.1%}" if ref in us else "-"


print()
print("| mode | req/s median | req/s best | each round | server CPU | vs none: median / best / CPU per request | vs governor: median / best / CPU per request | p99 (median) | 429s | CPU µs/request (median) |")
print("|---|---:|---:|---|---|---|---|---:|---:|---:|")
for m in modes:
    rounds = ", ".join(f"{v / 1000:.1f}k" for v in rps[m])
    share = f"{denied[m] / total[m]:.1%}" if total[m] else ""
    vs_none = f"{ratio(median, m, 'none')} / {ratio(best, m, 'none')} / {cost_ratio(m, 'none')}"
    vs_gov = f"{ratio(median, m, 'governor')} / {ratio(best, m, 'governor')} / {cost_ratio(m, 'governor')}"
    print(f"| {m} | {median[m]:,.0f} | {best[m]:,.0f} | {rounds} | {', '.join(cpu[m])} | {vs_none} | {vs_gov} | {p99[m]:,.0f} µs | {share} | {us[m]:.2f} |")
print()
if "none" in median and "tollgate" in median:
    for label, table in (("median", median), ("best", best)):
        t, base = table["tollgate"], table["none"]
        line = f"{label:6}: tollgate {t / base:.1%} of no limiter (target 92%: {'met' if t >= 0.92 * base else 'MISSED'})"
        if "governor" in table:
            g = table["governor"]
            line += f", {t / g:.1%} of tower_governor (target 100%: {'met' if t >= g else 'MISSED'})"
        print(line)
for m in ("tollgate-denied", "governor-denied"):
    if m in median and "none" in median:
        print(f"denied path {m}: {median[m]:,.0f} req/s median, {best[m]:,.0f} best "
              f"({median[m] / median['none']:.1%} / {best[m] / best['none']:.1%} of no limiter)")
EOF
