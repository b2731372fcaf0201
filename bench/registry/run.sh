#!/usr/bin/env bash
# Registry benchmark: the images API for a repository of 10,000 tags (10,000 distinct images)
# served from Nova's cache (wrk: rate, p50, p99; target p99 <= 50 ms), and the refresh time of
# that repository against a local CNCF registry: cold (empty cache, every manifest and config
# blob read) and warm (nothing changed: one HEAD per tag). Results go to stdout as Markdown;
# docs/BENCHMARKS-registry.md records a run.
#
#   bench/registry/run.sh [RUNS]     (default 3 runs; medians reported)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
n="${BENCH_TAGS:-10000}"
for tool in wrk docker-registry python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install wrk docker-registry)" >&2; exit 1; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p nova
bin="$CARGO_TARGET_DIR/release/nova"
work=$(mktemp -d -t nova-bench-registry.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

. bench/lib.sh
start=$(date +%s.%N)
bench_registry "$work" "$n"
pids+=("$REGISTRY_PID")
rport=$REGISTRY_PORT
echo "started the registry and pushed $n images in $(echo "$(date +%s.%N) - $start" | bc) s" >&2

cat >"$work/catalog.yaml" <<YML
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bench
  annotations:
    nova.dev/image-repository: local/bench/app
spec: {type: service, lifecycle: production, owner: bench-team}
YML
cat >"$work/nova.toml" <<TOML
[log]
format = "json"
level = "nova=info,warn"
[registry]
min_refresh_interval = "1s"
[registries.local]
type = "oci"
url = "http://127.0.0.1:$rport"
TOML

# Starts Nova on a fresh database and waits until the repository has been read once; prints
# the refresh time Nova logged (ms).
start_nova() { # $1 = run id
  local nport; nport=$(bench_free_port)
  "$bin" serve --config "$work/nova.toml" --catalog "$work/catalog.yaml" --listen "127.0.0.1:$nport" \
    --database-url "sqlite://$work/nova-$1.db" >"$work/nova-$1.log" 2>&1 &
  pids+=($!)
  NOVA="http://127.0.0.1:$nport"
  NOVA_PID=$!
  for _ in $(seq 600); do
    if curl -sf "$NOVA/api/v1/components/component/default/bench/images?limit=1" 2>/dev/null | grep -q '"state":"fresh"'; then break; fi
    sleep 0.5
  done
  for _ in $(seq 50); do grep -q '"registry repository refreshed"' "$work/nova-$1.log" && break; sleep 0.1; done
  grep '"registry repository refreshed"' "$work/nova-$1.log" | tail -n 1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["fields"]["elapsed_ms"])'
}

for r in $(seq "$runs"); do
  start_nova "$r" >>"$work/cold.txt"
  if [ "$r" = 1 ]; then
    curl -sf "$NOVA/api/v1/components/component/default/bench/images?limit=1" | python3 -c 'import json,sys; v=json.load(sys.stdin); assert v["total"] == '"$n"', v["total"]'
    wrk -t2 -c16 -d10s --latency -s bench/registry/images.lua "$NOVA" >"$work/wrk.txt"
    grep VmHWM "/proc/$NOVA_PID/status" | awk '{print $2/1024}' >"$work/rss.txt"
  fi
  # Warm refresh: ask again and wait for the next "refreshed" line.
  before=$(grep -c '"registry repository refreshed"' "$work/nova-$r.log")
  sleep 1.1
  curl -sf -X POST "$NOVA/api/v1/components/component/default/bench/images/refresh" >/dev/null
  for _ in $(seq 600); do
    [ "$(grep -c '"registry repository refreshed"' "$work/nova-$r.log")" -gt "$before" ] && break
    sleep 0.2
  done
  grep '"registry repository refreshed"' "$work/nova-$r.log" | tail -n 1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["fields"]["elapsed_ms"])' >>"$work/warm.txt"
  kill "$NOVA_PID"; wait "$NOVA_PID" 2>/dev/null || true
done

rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
echo "| measure ($n images, one tag each) | result (median of $runs) |"
echo "|---|---|"
echo "| cold refresh (empty cache: tags, $n manifests, $n config blobs, stored) | $(median <"$work/cold.txt") ms |"
echo "| warm refresh (nothing changed: tags + $n HEADs) | $(median <"$work/warm.txt") ms |"
echo "| images API from cache (wrk -t2 -c16, 10 s, 3 URLs) | $rate req/s, p50 $p50, p99 $p99 |"
echo "| Nova peak RSS after the load | $(cat "$work/rss.txt") MB |"
