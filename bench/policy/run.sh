#!/usr/bin/env bash
# Benchmarks `nova policy check` and `nova hydrate` (through the nova binary,
# release build) and prints min/median/max whole-process wall time of RUNS runs of each
# case, after one warm-up run.
#
# usage: bench/policy/run.sh [RUNS]      (default 7)
# env:   WORK (default $TMPDIR/nova-policy-bench), CARGO_TARGET_DIR (default ./target)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-7}
work=${WORK:-${TMPDIR:-/tmp}/nova-policy-bench}
target=${CARGO_TARGET_DIR:-$root/target}

mkdir -p "$work"
[ -d "$work/dir" ] || python3 "$here/generate.py" "$work/dir" --docs 50000 --files 500
[ -d "$work/single" ] || python3 "$here/generate.py" "$work/single" --docs 50000 --files 1
[ -f "$work/template.yaml" ] || python3 "$here/generate-template.py" "$work/template.yaml" --megabytes 100

(cd "$root" && cargo build --quiet --release -p nova)
bin="$target/release/nova"

# time_runs NAME CMD...: one warm-up run, then RUNS timed runs with output discarded.
time_runs() {
    python3 - "$runs" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
def once():
    start = time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - start, code
_, code = once()
walls = sorted(once()[0] for _ in range(runs))
print(f"{name}: wall min {walls[0]:.2f} s, median {statistics.median(walls):.2f} s, "
      f"max {walls[-1]:.2f} s over {runs} runs (exit code {code})")
PY
}

time_runs "policy check, 50,000 documents in 500 files" "$bin" policy check "$work/dir"
time_runs "policy check, 50,000 documents in one file" "$bin" policy check "$work/single"
time_runs "hydrate, 100 MB template" env BENCH_HOST=example.com BENCH_PORT=8443 \
    "$bin" hydrate "$work/template.yaml" -o "$work/hydrated.yaml"
