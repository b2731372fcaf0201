#!/usr/bin/env bash
# Image copy benchmark (release: per-environment repositories), against real CNCF distribution
# registries on this machine: an image of 4 layers copied by digest across registries
# (streamed), within one registry (mounted), and again (everything present). Prints Markdown;
# docs/BENCHMARKS.md records a run.
#
#   bench/release/run.sh [--release]      BENCH_LAYER_MIB=16 sets the layer size
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=()
if [ "${1:-}" = "--release" ]; then profile=(--release); fi
cargo test "${profile[@]}" -p nova --test release_copy_bench -- --ignored --nocapture 2>&1 | grep -E '^\||test result'
