#!/usr/bin/env bash
# Load: Nova's mixed read workload (catalog queries, a component page, an image list; see
# mixed.lua) with wrk for SECONDS (default 60) on SQLite and on PostgreSQL — zero errors
# expected, p50/p99 reported — then, on each, a write burst of 200 build requests and 200
# audited writes counted back (nothing may be lost) and `nova audit verify`. Markdown on
# stdout; docs/BENCHMARKS.md records a run. Not part of scripts/test.
#
#   bench/load/run.sh [SECONDS]
#   NOVA_BIN=path/to/nova bench/load/run.sh 60     # a given binary instead of a release build
#
# PostgreSQL: NOVA_TEST_POSTGRES_URL, or a server started here (scripts/lib/services.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
. bench/load/lib.sh
load_require
load_binary
work=$(mktemp -d -t nova-load.XXXXXX)
chmod 0755 "$work"
SERVICES_DIR="$work/services"; mkdir -p "$SERVICES_DIR"
. scripts/lib/services.sh
trap 'load_stop; kill "$REGISTRY_PID" 2>/dev/null || true; cleanup_services; rm -rf "$work"' EXIT
[ -n "${NOVA_TEST_POSTGRES_URL:-}" ] || start_postgres >/dev/null
load_setup "$work"

echo "| backend | requests/s | p50 | p99 | errors | write burst (400 requests) | lost | audit chain |"
echo "|---|---|---|---|---|---|---|---|"
for backend in sqlite postgres; do
  case $backend in
    sqlite) database="sqlite://$work/$backend/nova.db" ;;
    postgres)
      name="nova_load_$$"
      psql "$NOVA_TEST_POSTGRES_URL" -qc "CREATE DATABASE $name" >/dev/null
      database="${NOVA_TEST_POSTGRES_URL%/*}/$name" ;;
  esac
  load_start "$work" "$database"
  wrk -t2 -c16 -d"${seconds}s" --latency -s bench/load/mixed.lua "$NOVA_URL" >"$work/wrk-$backend.txt"
  rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$backend.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk-$backend.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk-$backend.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk-$backend.txt")
  socket=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$work/wrk-$backend.txt")
  errors=$(( ${non2xx:-0} + ${socket:-0} ))
  burst=$(python3 bench/load/burst.py "$NOVA_URL" 200) && lost=0 || lost=1
  burst_s=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$burst")
  load_stop
  verify=$("$NOVA_BIN" audit verify --database-url "$database" 2>&1 | tail -1)
  echo "| $backend | $rate | $p50 | $p99 | $errors | ${burst_s} s | $([ "$lost" = 0 ] && echo none || echo "$burst") | $verify |"
  [ "$errors" = 0 ] && [ "$lost" = 0 ] || failed=1
done
echo
echo "wrk: 2 threads, 16 connections, ${seconds}s per backend; $(nproc) cores; $(basename "$NOVA_BIN") at $NOVA_BIN"
exit "${failed:-0}"
