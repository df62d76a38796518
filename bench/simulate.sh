#!/usr/bin/env bash
# `tollgate simulate` throughput on a generated nginx `combined` log, side by side in one run:
#
#   wc          `wc -l` over the log: reading the file, the floor
#   parse-only  `tollgate simulate` with a configuration without policies: every line read,
#               parsed (address, user, time, request, status...) and counted, nothing limited
#   fixed       the same with one fixed-window policy (100/minute) keyed by remote_addr
#   fixed+2     the same with three policies (fixed window, sliding window, token bucket)
#   json        `fixed` over the same requests as JSON lines (`--format json`, epoch
#               milliseconds), the first $PROXY_LINES lines
#   proxy       the proxy's routing and limits (one route, a default policy): every line
#               sent as a request through the server's own router and Tower layer, the
#               first $PROXY_LINES lines
#
# The log has $LINES lines (default 5,000,000; the json and proxy modes read the first
# $PROXY_LINES, default 500,000) from $KEYS client addresses (default 10,000), 1,000 lines a second of log
# time. Each mode runs $ROUNDS times (default 3), interleaved, pinned to CPU 0 (`taskset`);
# the table shows the best wall time of the rounds and lines per second. The release binary
# is built first; CARGO_TARGET_DIR is honoured.
#
# Usage: bench/simulate.sh
#   LINES=1000000 ROUNDS=1 bench/simulate.sh   a quicker run.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${LINES:-5000000}
proxy_lines=${PROXY_LINES:-500000}
keys=${KEYS:-10000}
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}

cargo build --release -p tollgate-server --bin tollgate >&2
bin="$target/release/tollgate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One line per request; time advances one second every 1,000 lines.
awk -v lines="$lines" -v keys="$keys" 'BEGIN {
  srand(7);
  split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", month, " ");
  t = 0;
  for (i = 0; i < lines; i++) {
    if (i % 1000 == 0) {
      s = t % 60; m = int(t / 60) % 60; h = int(t / 3600) % 24; d = 1 + int(t / 86400);
      stamp = sprintf("%02d/Oct/2026:%02d:%02d:%02d +0000", d, h, m, s);
      t++;
    }
    k = int(rand() * keys);
    printf "10.%d.%d.%d - - [%s] \"GET /api/items/%d HTTP/1.1\" 200 512 \"-\" \"bench/1.0\"\n",
      int(k / 65536) % 256, int(k / 256) % 256, k % 256, stamp, i % 100;
  }
}' > "$work/access.log"
head -n "$proxy_lines" "$work/access.log" > "$work/proxy.log"
# The same requests as JSON lines.
awk '{
  split(substr($4, 2), d, /[\/:]/);
  ms = ((d[1] - 1) * 86400 + d[4] * 3600 + d[5] * 60 + d[6]) * 1000 + 1790812800000;
  printf "{\"time\":%.0f,\"remote_addr\":\"%s\",\"request\":\"%s %s %s\",\"status\":%s}\n",
    ms, $1, substr($6, 2), $7, substr($8, 1, length($8) - 1), $9;
}' "$work/proxy.log" > "$work/access.jsonl"

printf '' > "$work/empty.toml"
cat > "$work/fixed.toml" <<'TOML'
[policies.api]
limits = "100/minute"
TOML
cat > "$work/three.toml" <<'TOML'
[policies.fixed]
limits = "100/minute"

[policies.sliding]
limits = "100/minute"
strategy = "sliding-window"

[policies.bucket]
limits = "100/minute"
strategy = "token-bucket"
TOML
cat > "$work/proxy.toml" <<'TOML'
[policies.api]
limits = "100/minute"

[proxy]
listen = "127.0.0.1:1"
upstream = "http://127.0.0.1:2"
default_policy = "api"

[[proxy.routes]]
path = "/api/*"
policy = "api"
TOML

# Seconds (wall) one command takes.
timed() {
  local start end
  start=$(date +%s.%N)
  taskset -c 0 "$@" > /dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

declare -A best
modes="wc parse-only fixed fixed+2 json proxy"
for round in $(seq "$rounds"); do
  for mode in $modes; do
    case $mode in
      wc) t=$(timed wc -l "$work/access.log") ;;
      parse-only) t=$(timed "$bin" simulate --config "$work/empty.toml" "$work/access.log") ;;
      fixed) t=$(timed "$bin" simulate --config "$work/fixed.toml" "$work/access.log") ;;
      fixed+2) t=$(timed "$bin" simulate --config "$work/three.toml" "$work/access.log") ;;
      json) t=$(timed "$bin" simulate --format json --config "$work/fixed.toml" "$work/access.jsonl") ;;
      proxy) t=$(timed "$bin" simulate --replay proxy --config "$work/proxy.toml" "$work/proxy.log") ;;
    esac
    if [ -z "${best[$mode]:-}" ] || [ "$(echo "$t < ${best[$mode]}" | bc -l)" = 1 ]; then
      best[$mode]=$t
    fi
    echo "round $round $mode ${t}s" >&2
  done
done

echo "| mode | lines | best seconds | lines/s | vs wc -l |"
echo "|---|---|---|---|---|"
for mode in $modes; do
  n=$lines
  case $mode in json | proxy) n=$proxy_lines ;; esac
  rate=$(echo "$n / ${best[$mode]}" | bc -l)
  wc_rate=$(echo "$lines / ${best[wc]}" | bc -l)
  printf '| %s | %d | %.3f | %.0f | %.3f× |\n' "$mode" "$n" "${best[$mode]}" "$rate" \
    "$(echo "$rate / $wc_rate" | bc -l)"
done
