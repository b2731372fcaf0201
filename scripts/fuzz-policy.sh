#!/usr/bin/env bash
# Fuzzes nova-policy's template parser and manifest checks for SECONDS each (default 60),
# with cargo-fuzz on a nightly toolchain. Without them it says so and exits 0, so CI can
# call it unconditionally.
#
# usage: scripts/fuzz-policy.sh [SECONDS]
# Findings land in crates/nova-policy/fuzz/artifacts/<target>/; rerun one with
#   cargo +nightly fuzz run <target> <file>   (in crates/nova-policy/fuzz)
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/crates/nova-policy/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "*** SKIPPED: fuzzing nova-policy needs a nightly toolchain and cargo-fuzz" >&2
    echo "***   rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 0
fi

cd "$fuzz"
for target in hydrate_template policy_documents; do
    mkdir -p "corpus/$target"
    seeds=()
    if [ "$target" = policy_documents ]; then
        seeds=("$root/crates/nova-policy/tests/corpus/valid" "$root/crates/nova-policy/tests/corpus/invalid")
    fi
    echo "== fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time="$seconds"
done
