#!/usr/bin/env bash
# Soak: the mixed read workload (mixed.lua) against one `nova serve` on SQLite for SECONDS
# (default 600), sampling the server's RSS every 10 s. Prints the samples and a summary
# (first, peak, last, and last minus the first sample after warm-up); docs/BENCHMARKS.md
# records a run. Not part of scripts/test.
#
#   bench/load/soak.sh [SECONDS]
#   NOVA_BIN=path/to/nova bench/load/soak.sh 600
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
. bench/load/lib.sh
load_require
load_binary
work=$(mktemp -d -t nova-soak.XXXXXX)
trap 'load_stop; kill "$REGISTRY_PID" 2>/dev/null || true; rm -rf "$work"' EXIT
load_setup "$work"
load_start "$work" "sqlite://$work/nova.db"
rss() { awk '/VmRSS/ {print $2}' "/proc/$NOVA_PID/status"; }
wrk -t2 -c16 -d"${seconds}s" --latency -s bench/load/mixed.lua "$NOVA_URL" >"$work/wrk.txt" &
wrk_pid=$!
echo "| seconds | RSS (MB) |"
echo "|---|---|"
samples=()
for ((t = 0; t <= seconds; t += 10)); do
  kb=$(rss)
  samples+=("$kb")
  echo "| $t | $((kb / 1024)) |"
  sleep 10
done
wait "$wrk_pid"
errors=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt")
python3 - "${samples[@]}" <<'PY'
import sys
s = [int(x) / 1024 for x in sys.argv[1:]]
warm = s[min(6, len(s) - 1)]  # after the first minute
print(f"\nRSS MB: first {s[0]:.0f}, after 1 min {warm:.0f}, peak {max(s):.0f}, last {s[-1]:.0f}; growth after warm-up {s[-1] - warm:+.0f} MB")
PY
echo "requests: $(awk '/requests in/ {print $1}' "$work/wrk.txt"), non-2xx: ${errors:-0}, p99 $(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
