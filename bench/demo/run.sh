#!/usr/bin/env bash
# The demo's start time: from `nova serve --demo` to a ready console (/ready answers 200 and
# Storefront Web's images are read from the demo registry), on a fresh data directory (first
# start: registry, git server, seeding) and on the same directory again (second start).
#
#   bench/demo/run.sh [RUNS]     # default 3; needs docker-registry, git and buildah
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet -p nova
nova="$CARGO_TARGET_DIR/debug/nova"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
images="http://127.0.0.1:$port/api/v1/components/component/default/storefront-web/images"

# Starts Nova on DIR and prints the seconds until the console is ready, then stops it.
measure() {
  local dir=$1 start pid
  start=$(date +%s.%N)
  NOVA_SERVER__DATA_DIR="$dir" NOVA_DATABASE__URL="sqlite://$dir/nova.db" NOVA_LOG__FORMAT=json \
    "$nova" serve --demo --listen "127.0.0.1:$port" >>"$dir.log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && curl -s "$images" | grep -q '"state":"fresh"'; do
    kill -0 "$pid" 2>/dev/null || { echo "nova stopped; see $dir.log" >&2; exit 1; }
    sleep 0.1
  done
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)"
  kill -TERM "$pid"
  wait "$pid" || true
}

for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d -t nova-bench-demo.XXXXXX)
  first=$(measure "$dir/data")
  second=$(measure "$dir/data")
  echo "run $i: first start ${first}s, second start ${second}s"
  rm -rf "$dir"
done
