#!/usr/bin/env bash
# `tollgate serve` against plain servers that do the same work on the wire without limiting,
# side by side in one run (the `bench_baseline` and `bench_grpc` examples of tollgate-server):
#
#   check-baseline  wrk POST /v1/check to axum parsing the same JSON into the same serde
#                   struct and answering a body of the same shape (nothing counted)
#   check           wrk POST /v1/check to `tollgate serve`, named policy `bench`
#                   (1000000/second, token bucket, memory storage, default headers)
#   check-denied    the same with policy `denied` (1/day): every request after each key's
#                   first is answered 429
#   upstream        wrk GET / to the proxy's upstream directly (axum, "Hello, World!")
#   proxy-baseline  wrk GET / through a plain proxy (hyper-util's pooled client, the one
#                   tollgate's proxy uses; no limiting, no header rewriting) to the same upstream
#   proxy           wrk GET / through `tollgate serve`'s [proxy] to the same upstream
#                   (default_policy `bench`, key = ip); in both proxy modes the upstream shares
#                   CPU 0 with the proxy, so their figures are what one CPU does per request
#   grpc-baseline   bench_grpc (tonic client) to a tonic RateLimitService answering OK
#   grpc            bench_grpc to `tollgate serve`'s Envoy rate limit service (descriptor
#                   user=..., 1000000/second, token bucket)
#
# Check requests carry {"policy": "...", "key": "user:N", "cost": 1} with N cycling over
# $USERS distinct users (a wrk Lua script); gRPC requests one descriptor [("user", "user:N")]
# over the same users. Servers are pinned to CPU 0 and the load generator to CPU 1
# (`taskset`); every server is started fresh for each measurement, warmed for 1 s, then
# measured; rounds are interleaved (every mode once per round) and the table shows the median
# of the rounds, with the servers' CPU use (near 100% means the server, not the load
# generator, is the bottleneck), the servers' CPU time per request (for the proxy: the proxy
# and its upstream, and in parentheses the proxy alone), the share of refused answers (non-2xx,
# or OVER_LIMIT over gRPC) and the CPU time anything else took on the two CPUs meanwhile
# ("other load": a build or another benchmark running beside this one skews the figures).
#
# Usage: bench/server.sh [ROUNDS] [SECONDS] [CONNECTIONS]   (default 3 10 64)
#   MODES="check-baseline check" bench/server.sh 1 5   runs a subset.
#   USERS=10000 (distinct keys), GRPC_CONNECTIONS=1 (HTTP/2 connections of bench_grpc, which
#   runs CONNECTIONS concurrent calls over them). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
connections=${3:-64}
users=${USERS:-10000}
grpc_connections=${GRPC_CONNECTIONS:-1}
modes=(${MODES:-check-baseline check check-denied upstream proxy-baseline proxy grpc-baseline grpc})
me=bench/server.sh

for tool in wrk taskset python3 cargo; do
  if ! command -v "$tool" >/dev/null; then
    echo "$me: $tool is required (apt-get install -y wrk util-linux python3)" >&2
    exit 1
  fi
done
if [ "$(nproc)" -lt 2 ]; then
  echo "$me: needs 2 CPUs (servers on CPU 0, the load generator on CPU 1); nproc = $(nproc)" >&2
  exit 1
fi

cargo build --release -q -p tollgate-server --bin tollgate --example bench_baseline \
  --example bench_grpc
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
tollgate_bin="$target_dir/release/tollgate"
baseline_bin="$target_dir/release/examples/bench_baseline"
grpc_bin="$target_dir/release/examples/bench_grpc"

dir=$(mktemp -d)
pids=()
stop_servers() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_servers; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# wrk's request generator: one prepared POST per user, cycled through.
# Arguments after `--`: the policy name and the number of users.
cat >"$dir/check.lua" <<'EOF'
local requests = {}
local count = 0
local i = 0

function init(args)
  local policy = args[1] or "bench"
  count = tonumber(args[2] or "10000")
  local headers = { ["Content-Type"] = "application/json" }
  for n = 1, count do
    local body = string.format('{"policy":"%s","key":"user:%d","cost":1}', policy, n)
    requests[n] = wrk.format("POST", "/v1/check", headers, body)
  end
end

function request()
  i = i % count + 1
  return requests[i]
end
EOF

# The Envoy descriptors tollgate serves in the gRPC modes.
cat >"$dir/ratelimit.yaml" <<'EOF'
domain: bench
descriptors:
  - key: user
    rate_limit:
      unit: second
      requests_per_unit: 1000000
      strategy: token-bucket
EOF

# Writes tollgate's configuration with the sections $1 names (check, grpc, proxy=ADDR).
write_config() {
  cat >"$dir/tollgate.toml" <<'EOF'
[server]
listen = "127.0.0.1:0"
storage = "memory://"

[policies.bench]
limits = "1000000/second"
strategy = "token-bucket"

[policies.denied]
limits = "1/day"
strategy = "token-bucket"
EOF
  case $1 in
    grpc)
      sed -i 's/^storage = /grpc_listen = "127.0.0.1:0"\nstorage = /' "$dir/tollgate.toml"
      printf '\n[envoy]\nconfig = "ratelimit.yaml"\n' >>"$dir/tollgate.toml"
      ;;
    proxy=*)
      printf '\n[proxy]\nlisten = "127.0.0.1:0"\nupstream = "http://%s"\ndefault_policy = "bench"\nkey = "ip"\n' \
        "${1#proxy=}" >>"$dir/tollgate.toml"
      ;;
  esac
}

# Starts `$@` pinned to CPU 0 with its output in a log file of its own (never reused, so no
# stale address is read from an earlier server's); sets `log` to that file.
starts=0
start() {
  starts=$((starts + 1))
  log="$dir/$(basename "$1").$starts.log"
  taskset -c 0 "$@" >"$log" 2>&1 &
  pids+=($!)
}

# Waits until the server logging to $1 prints "$2 listening on http://ADDR"; prints ADDR.
address() {
  local log=$1 label=$2 pid=${pids[-1]} tries=0 line
  while ! line=$(grep -m1 "^$label listening on http://" "$log"); do
    if ! kill -0 "$pid" 2>/dev/null || [ $((tries += 1)) -gt 200 ]; then
      echo "$me: no \"$label listening on\" from ${log##*/}:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "${line##*http://}"
}

# CPU time (user + system, clock ticks) the processes in pids have used, together.
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$total"
}

# Busy time (user + nice + system, clock ticks) of CPUs 0 and 1 together, from /proc/stat.
busy_ticks() {
  awk '$1 == "cpu0" || $1 == "cpu1" { total += $2 + $3 + $4 } END { print total }' /proc/stat
}

# CPU time this shell's finished children (the load generator) have used, in clock ticks.
children_ticks() {
  awk '{ print $16 + $17 }' "/proc/$$/stat"
}

# A wrk or bench_grpc latency ("812.00us", "1.20ms", "2s", "p99_us=1234") in microseconds.
micros() {
  python3 -c '
import re, sys
text = sys.argv[1]
m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)?", text)
if not m:
    sys.exit(f"cannot read the latency {text!r}")
scale = {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, None: 1}[m.group(2)]
print(f"{float(m.group(1)) * scale:.0f}")' "$1"
}

# Runs the load of mode $1 against $2 for $3 seconds into $dir/load.txt.
load() {
  local mode=$1 target=$2 duration=$3
  case $mode in
    check-baseline | check)
      taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$dir/check.lua" \
        "http://$target/v1/check" -- bench "$users" >"$dir/load.txt"
      ;;
    check-denied)
      taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$dir/check.lua" \
        "http://$target/v1/check" -- denied "$users" >"$dir/load.txt"
      ;;
    upstream | proxy-baseline | proxy)
      taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency "http://$target/" \
        >"$dir/load.txt"
      ;;
    grpc-baseline | grpc)
      taskset -c 1 "$grpc_bin" "$target" "$connections" "$duration" "$users" \
        "$grpc_connections" bench >"$dir/load.txt" 2>"$dir/load.err"
      ;;
  esac
}

# One measurement of mode $1 in round $2: fresh servers, a 1 s warm-up, $seconds s of load.
measure() {
  local mode=$1 round=$2 target upstream_addr
  local -a measured own
  case $mode in
    check-baseline)
      start "$baseline_bin" check 127.0.0.1:0
      target=$(address "$log" check:)
      ;;
    check | check-denied)
      write_config check
      start "$tollgate_bin" serve --config "$dir/tollgate.toml"
      target=$(address "$log" "check API")
      ;;
    upstream)
      start "$baseline_bin" upstream 127.0.0.1:0
      target=$(address "$log" upstream:)
      ;;
    proxy-baseline)
      start "$baseline_bin" upstream 127.0.0.1:0
      upstream_addr=$(address "$log" upstream:)
      start "$baseline_bin" proxy 127.0.0.1:0 "$upstream_addr"
      target=$(address "$log" proxy:)
      ;;
    proxy)
      start "$baseline_bin" upstream 127.0.0.1:0
      upstream_addr=$(address "$log" upstream:)
      write_config "proxy=$upstream_addr"
      start "$tollgate_bin" serve --config "$dir/tollgate.toml"
      target=$(address "$log" proxy)
      ;;
    grpc-baseline)
      start "$baseline_bin" grpc-ok 127.0.0.1:0
      target=$(address "$log" grpc-ok:)
      ;;
    grpc)
      write_config grpc
      start "$tollgate_bin" serve --config "$dir/tollgate.toml"
      target=$(address "$log" "Envoy rate limit service")
      ;;
    *)
      echo "$me: unknown mode $mode" >&2
      exit 1
      ;;
  esac
  measured=("${pids[@]}")
  own=("${pids[-1]}") # the server under test (the proxy, not its upstream)
  load "$mode" "$target" 1
  local before before_own before_busy before_load after after_own after_busy after_load
  before=$(cpu_ticks "${measured[@]}")
  before_own=$(cpu_ticks "${own[@]}")
  before_load=$(children_ticks)
  before_busy=$(busy_ticks)
  load "$mode" "$target" "$seconds"
  after_busy=$(busy_ticks)
  after_load=$(children_ticks)
  after=$(cpu_ticks "${measured[@]}")
  after_own=$(cpu_ticks "${own[@]}")
  stop_servers

  local rps requests refused errors p50 p99
  case $mode in
    grpc*)
      # requests=N seconds=S rps=R ok=N over_limit=N errors=N p50_us=N p99_us=N max_us=N
      field() { tr ' ' '\n' <"$dir/load.txt" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
      rps=$(field rps)
      requests=$(field requests)
      refused=$(field over_limit)
      errors=$(field errors)
      p50=$(field p50_us)
      p99=$(field p99_us)
      if [ "${errors:-0}" != 0 ]; then
        echo "warning: $mode round $round: $errors failed calls: $(cat "$dir/load.err")" >&2
      fi
      ;;
    *)
      rps=$(awk '/^Requests\/sec:/ { print $2 }' "$dir/load.txt")
      requests=$(awk '/requests in/ { print $1 }' "$dir/load.txt")
      refused=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$dir/load.txt")
      errors=$(grep -c 'Socket errors' "$dir/load.txt" || true)
      p50=$(micros "$(awk '$1 == "50%" { print $2 }' "$dir/load.txt")")
      p99=$(micros "$(awk '$1 == "99%" { print $2 }' "$dir/load.txt")")
      if [ "$errors" != 0 ]; then
        echo "warning: $mode round $round: $(grep 'Socket errors' "$dir/load.txt")" >&2
      fi
      ;;
  esac
  if [ -z "$rps" ] || [ -z "$requests" ] || [ "$requests" = 0 ]; then
    echo "$me: no figures from the load generator for $mode:" >&2
    cat "$dir/load.txt" >&2
    cat "$dir/load.err" 2>/dev/null >&2 || true
    exit 1
  fi
  local tck cpu us us_own other
  tck=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(f'{($after - $before) / $tck / $seconds:.2f}')")
  # What else ran on the two CPUs meanwhile (neither the servers nor the load generator), in
  # CPUs: a build or another benchmark shows up here and skews the figures.
  other=$(python3 -c "print(f'{max(0, ($after_busy - $before_busy) - ($after - $before) - ($after_load - $before_load)) / $tck / $seconds:.2f}')")
  us=$(python3 -c "print(f'{($after - $before) / $tck / $requests * 1e6:.2f}')")
  us_own=$(python3 -c "print(f'{($after_own - $before_own) / $tck / $requests * 1e6:.2f}')")
  if python3 -c "import sys; sys.exit(0 if $other > 0.05 else 1)"; then
    echo "warning: $mode round $round: other processes used $(python3 -c "print(f'{$other:.0%}')") of a CPU meanwhile: these figures are skewed" >&2
  fi
  if [ "$mode" != check-denied ] && [ "${refused:-0}" != 0 ]; then
    echo "warning: $mode round $round: $refused answers were not successes (non-2xx or OVER_LIMIT)" >&2
  fi
  if python3 -c "import sys; sys.exit(0 if $cpu < 0.9 else 1)"; then
    echo "warning: $mode round $round: the servers used only $(python3 -c "print(f'{$cpu:.0%}')") of CPU 0: the load generator or another process was the bottleneck" >&2
  fi
  printf '%-15s round %d  %10s req/s  %8s refused of %9s  p50 %7s us  p99 %7s us  server CPU %4s  %6s us/request (%s own)  other load %s\n' \
    "$mode" "$round" "$rps" "${refused:-0}" "$requests" "$p50" "$p99" "$cpu" "$us" "$us_own" "$other" >&2
  echo "$mode $round $rps ${refused:-0} $requests $p50 $p99 $cpu $us $us_own $other" >>"$dir/results.txt"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load on CPU 1 (wrk -t1 -c$connections, or bench_grpc with $connections calls in flight over $grpc_connections connection(s)), ${seconds}s per measurement; servers (tokio multi-thread, 1 worker) on CPU 0"
echo "$users distinct users; $rounds rounds x ${#modes[@]} modes: ${modes[*]}"
echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo ', with uncommitted changes under crates/')"
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
def col(m, i, kind=float):
    return [kind(r[i]) for r in rows if r[0] == m]
rps = {m: statistics.median(col(m, 2)) for m in modes}
p50 = {m: statistics.median(col(m, 5)) for m in modes}
p99 = {m: statistics.median(col(m, 6)) for m in modes}
refused = {m: sum(col(m, 3, int)) / sum(col(m, 4, int)) for m in modes}
baseline = {"check": "check-baseline", "check-denied": "check-baseline",
            "proxy-baseline": "upstream", "proxy": "upstream", "grpc": "grpc-baseline"}
def lat(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"
print()
print("| mode | req/s (median) | rounds | vs baseline | p50 | p99 | p99 vs baseline | refused | server CPU | CPU µs/request (own) |")
print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|")
for m in modes:
    b = baseline.get(m)
    vs = f"{rps[m] / rps[b]:.1%}" if b in rps else ""
    p99_vs = f"{p99[m] / p99[b]:.2f}×" if b in p99 and p99[b] else ""
    rounds = ", ".join(f"{v:,.0f}" for v in col(m, 2))
    cpu = ", ".join(f"{v:.0%}" for v in col(m, 7))
    us = statistics.median(col(m, 8))
    own = statistics.median(col(m, 9))
    us_text = f"{us:.1f}" if abs(us - own) < 0.005 else f"{us:.1f} ({own:.1f})"
    print(f"| {m} | {rps[m]:,.0f} | {rounds} | {vs} | {lat(p50[m])} | {lat(p99[m])} | {p99_vs} | {refused[m]:.1%} | {cpu} | {us_text} |")
print()
worst = max(float(r[10]) for r in rows)
print(f"other load (CPU used by neither the servers nor the load generator): at most {worst:.0%} of a CPU in any measurement"
      + (" -- figures skewed, run again on a quiet machine" if worst > 0.05 else ""))
if "check" in rps and "check-baseline" in rps:
    ratio = rps["check"] / rps["check-baseline"]
    us, base_us = statistics.median(col("check", 8)), statistics.median(col("check-baseline", 8))
    print(f"target POST /v1/check >= 90% of the plain axum endpoint: {ratio:.1%} -> {'met' if ratio >= 0.9 else 'MISSED'}; "
          f"server CPU {us:.1f} against {base_us:.1f} µs per request ({base_us / us:.1%} by CPU, the figure to read "
          f"when the servers did not use all of CPU 0); p99 {lat(p99['check'])} against {lat(p99['check-baseline'])}")
if "proxy" in rps and "upstream" in rps:
    own = statistics.median(col("proxy", 9))
    print(f"proxy: {rps['proxy'] / rps['upstream']:.1%} of the upstream called directly; "
          f"p99 {lat(p99['proxy'])} against {lat(p99['upstream'])}; "
          f"the proxy process's own CPU {own:.1f} µs per request")
    if "proxy-baseline" in rps:
        plain = statistics.median(col("proxy-baseline", 9))
        print(f"proxy: {rps['proxy'] / rps['proxy-baseline']:.1%} of a plain proxy "
              f"({rps['proxy-baseline'] / rps['upstream']:.1%} of the upstream called directly); "
              f"p99 {lat(p99['proxy'])} against {lat(p99['proxy-baseline'])}; "
              f"own CPU {own:.1f} against {plain:.1f} µs per request")
if "grpc" in rps and "grpc-baseline" in rps:
    ratio = rps["grpc"] / rps["grpc-baseline"]
    us, base_us = statistics.median(col("grpc", 8)), statistics.median(col("grpc-baseline", 8))
    print(f"target gRPC ShouldRateLimit >= 90% of a tonic service answering OK: {ratio:.1%} -> "
          f"{'met' if ratio >= 0.9 else 'MISSED'}; server CPU {us:.1f} against {base_us:.1f} µs per request "
          f"({base_us / us:.1%} by CPU); p99 {lat(p99['grpc'])} against {lat(p99['grpc-baseline'])}")
EOF
