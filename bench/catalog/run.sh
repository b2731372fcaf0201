#!/usr/bin/env bash
# Catalog benchmark: start -> queryable and peak RSS at 10k and 100k entities, then request
# rate and latency (wrk) for by-name and by-owner queries at 10k. Results go to stdout as a
# Markdown table; docs/BENCHMARKS.md records a run.
#
#   bench/catalog/run.sh [RUNS]     (default 3 runs per size; medians reported)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p nova
bin="$CARGO_TARGET_DIR/release/nova"
work=$(mktemp -d -t nova-bench-catalog.XXXXXX)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for n in 10000 100000; do
  python3 bench/catalog/generate.py "$n" "$work/c$n" >"$work/gen$n.txt"
  comps=$(grep -o '[0-9]* components' "$work/gen$n.txt" | cut -d' ' -f1)
  last="/api/catalog/entities/by-name/component/default/component-$((comps - 1))"
  for r in $(seq "$runs"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    out=$(python3 bench/catalog/startup.py "$bin" "$work/c$n" "$last" "$port")
    pid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
    echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["queryable_s"], d["peak_rss_mb"])' >>"$work/start$n.txt"
    if [ "$n" = 10000 ] && [ "$r" = 1 ]; then
      groups=$(grep -o '[0-9]* groups' "$work/gen$n.txt" | cut -d' ' -f1)
      base="http://127.0.0.1:$port"
      N_COMPONENTS=$comps wrk -t2 -c32 -d10s --latency -s bench/catalog/by_name.lua "$base" >"$work/wrk-name.txt"
      N_GROUPS=$groups wrk -t2 -c32 -d10s --latency -s bench/catalog/by_owner.lua "$base" >"$work/wrk-owner.txt"
      grep VmHWM "/proc/$pid/status" | awk '{print $2/1024}' >"$work/rss-after-load.txt"
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

wrk_line() { # file -> "rate p50 p99"
  local rate p50 p99
  rate=$(awk '/Requests\/sec/ {print $2}' "$1")
  p50=$(awk '$1=="50%" {print $2}' "$1")
  p99=$(awk '$1=="99%" {print $2}' "$1")
  echo "$rate req/s | p50 $p50 | p99 $p99"
}

echo "| measure | result (median of $runs) |"
echo "|---|---|"
for n in 10000 100000; do
  echo "| start -> queryable, $n entities | $(cut -d' ' -f1 "$work/start$n.txt" | median) s |"
  echo "| peak RSS when queryable, $n entities | $(cut -d' ' -f2 "$work/start$n.txt" | median) MB |"
done
echo "| peak RSS after 20 s of load, 10000 entities | $(cat "$work/rss-after-load.txt") MB |"
echo "| by-name (wrk -t2 -c32, 10 s) | $(wrk_line "$work/wrk-name.txt") |"
echo "| by-owner, limit 50 (wrk -t2 -c32, 10 s) | $(wrk_line "$work/wrk-owner.txt") |"
