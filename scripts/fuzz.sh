#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in the repository for SECONDS each (default 60; the
# reliability bar is 600 with no crash). Not part of scripts/test: run it by hand or on a
# schedule.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Targets (crates/*/fuzz/fuzz_targets/):
#   nova-domain:  build_params (git refs, repository paths, build-arg names, pipelines, entity
#                 refs), image_names (repositories, tags, prefixes, digests, ECR ARNs),
#                 entity_documents (catalog documents and their image annotations)
#   nova-policy:  hydrate_template, policy_documents
#   nova:         intake_webhook (the release intake webhook: body parsing, signature checks)
#
# cargo-fuzz needs nightly compiler flags. With a nightly toolchain it is used; otherwise the
# stable toolchain runs with RUSTC_BOOTSTRAP=1 and without a sanitizer (panics and assertion
# failures are still found; memory errors in unsafe code would not be). cargo-fuzz is
# installed with `cargo install cargo-fuzz --locked` when missing.
#
# A crash is saved in crates/<crate>/fuzz/artifacts/<target>/; replay it with
#   scripts/fuzz.sh 0 <target>   after copying it into crates/<crate>/fuzz/regressions/<target>/,
# where every saved input is replayed before fuzzing starts. Keep each one there once fixed.
set -euo pipefail

seconds=${1:-60}
shift || true
only=("$@")
root=$(cd "$(dirname "$0")/.." && pwd)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
toolchain=()
sanitizer=()
if cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    echo "== no nightly toolchain: stable with RUSTC_BOOTSTRAP=1, no sanitizer"
    export RUSTC_BOOTSTRAP=1
    sanitizer=(--sanitizer none)
fi

failed=0
for fuzz in "$root"/crates/*/fuzz; do
    for file in "$fuzz"/fuzz_targets/*.rs; do
        target=$(basename "$file" .rs)
        if [ "${#only[@]}" -gt 0 ] && [[ ! " ${only[*]} " =~ " $target " ]]; then continue; fi
        corpus="$fuzz/corpus/$target"
        mkdir -p "$corpus"
        seeds=()
        [ -d "$fuzz/seeds/$target" ] && seeds+=("$fuzz/seeds/$target")
        if [ "$target" = policy_documents ]; then
            seeds+=("$root/crates/nova-policy/tests/corpus/valid" "$root/crates/nova-policy/tests/corpus/invalid")
        fi
        (cd "$fuzz" && cargo "${toolchain[@]}" fuzz build "${sanitizer[@]}" "$target" >/dev/null)
        if [ -d "$fuzz/regressions/$target" ]; then
            echo "== replaying $(find "$fuzz/regressions/$target" -type f | wc -l) saved input(s) of $target"
            (cd "$fuzz" && cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" "$fuzz/regressions/$target" -- -runs=0) || failed=1
        fi
        [ "$seconds" -gt 0 ] || continue
        echo "== fuzzing $target for ${seconds}s"
        log="$fuzz/artifacts/$target.log"
        mkdir -p "$fuzz/artifacts"
        if (cd "$fuzz" && cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1); then
            grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | sed "s/^/   /"
        else
            failed=1
            echo "!! $target crashed; the input and the panic are in $log and $fuzz/artifacts/$target/" >&2
            grep -E "panicked|Test unit written" "$log" | head -5 >&2
        fi
    done
done
exit "$failed"
