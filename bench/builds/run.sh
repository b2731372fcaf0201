#!/usr/bin/env bash
# Build lane benchmark, through Nova's HTTP API against the Jenkins test double: time from a
# build request to Jenkins being asked, time from a Jenkins status change to the API showing
# it, and 200 concurrent requests (each idempotency key sent twice) with none lost or started
# twice. Prints Markdown; docs/BENCHMARKS.md records a run.
#
#   bench/builds/run.sh [--release]      BENCH_POLL_MS=500 sets builds.poll_interval
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=()
if [ "${1:-}" = "--release" ]; then profile=(--release); fi
cargo test "${profile[@]}" -p nova --test build_bench -- --ignored --nocapture 2>&1 | grep -E '^\||^[0-9]+ concurrent|test result'
