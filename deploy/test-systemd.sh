#!/usr/bin/env bash
# Checks deploy/systemd/nova.service with `systemd-analyze verify` (syntax, known directives,
# an executable ExecStart), with the built binary standing in for /usr/local/bin/nova.
#
#   deploy/test-systemd.sh [path/to/nova]     # default: $CARGO_TARGET_DIR/debug/nova
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/nova}"
if ! command -v systemd-analyze >/dev/null; then
  if [ -n "${CI:-}" ]; then echo "test-systemd: systemd-analyze is required under CI (apt-get install systemd)" >&2; exit 1; fi
  echo "*** SKIPPED: the unit check needs systemd-analyze ***" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/nova|$(realpath "$bin")|" deploy/systemd/nova.service >"$work/nova.service"
out=$(systemd-analyze verify "$work/nova.service" 2>&1) || { echo "$out" >&2; exit 1; }
# verify only warns about unknown directives; a warning is a failure here.
if [ -n "$out" ]; then echo "test-systemd: $out" >&2; exit 1; fi
grep -q '^ProtectSystem=strict' deploy/systemd/nova.service && grep -q '^DynamicUser=yes' deploy/systemd/nova.service && grep -q '^StateDirectory=nova' deploy/systemd/nova.service \
  || { echo "test-systemd: the unit lost its hardening (ProtectSystem=strict, DynamicUser, StateDirectory)" >&2; exit 1; }
echo "test-systemd: ok: deploy/systemd/nova.service"
