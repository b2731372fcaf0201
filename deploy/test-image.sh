#!/usr/bin/env bash
# Builds a test image of Nova with buildah and checks it: the settings of Containerfile's final
# stage (labels, environment, user, port, entrypoint) on a FROM scratch image holding the
# already-built debug binary and the shared libraries `ldd` lists, then runs `nova --version`
# in it as the image's user.
#
# Why not build Containerfile itself: no base image can be pulled here, and a release build
# in CI would cost many minutes. So the binary is the debug one scripts/test built (stripped
# of debug info on the way in), and the recipe's final-stage lines are copied from
# Containerfile (everything after its "final-stage settings" marker), so a change there is
# checked here. Storage is vfs under a temporary directory with chroot isolation: no daemon,
# no privileges beyond what buildah needs, nothing left behind.
#
#   deploy/test-image.sh [path/to/nova]     # default: $CARGO_TARGET_DIR/debug/nova
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/nova}"
[ -x "$bin" ] || { echo "test-image: no nova binary at $bin (cargo build first)" >&2; exit 1; }
if ! command -v buildah >/dev/null; then
  if [ -n "${CI:-}" ]; then echo "test-image: buildah is required under CI (apt-get install buildah)" >&2; exit 1; fi
  echo "*** SKIPPED: the image test needs buildah (apt-get install buildah) ***" >&2
  exit 0
fi

work=$(mktemp -d)
image=localhost/nova-test:ci
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
container=""
cleanup() {
  [ -n "$container" ] && buildah "${store[@]}" rm "$container" >/dev/null 2>&1 || true
  buildah "${store[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || { chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; }
}
trap cleanup EXIT

# The root file system: the binary, its libraries (with the dynamic loader), a passwd entry
# for the image's user, its home as the data volume, and /tmp.
rootfs="$work/context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/var/lib/nova" "$rootfs/tmp"
strip --strip-debug -o "$rootfs/usr/local/bin/nova" "$bin"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$rootfs/"
done
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnova:x:10001:10001:nova:/var/lib/nova:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnova:x:10001:\n' >"$rootfs/etc/group"
chown 10001:10001 "$rootfs/var/lib/nova"
chmod 1777 "$rootfs/tmp"

{
  echo "FROM scratch"
  echo "COPY rootfs/ /"
  sed -n '/^# --- final-stage settings/,$p' Containerfile | grep -v '^#'
} >"$work/context/Containerfile"
grep -q '^ENTRYPOINT' "$work/context/Containerfile" || { echo "test-image: Containerfile has no final-stage settings marker" >&2; exit 1; }

started=$(date +%s)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
buildah "${store[@]}" build --quiet --isolation chroot --build-arg "REVISION=$revision" -f "$work/context/Containerfile" -t "$image" "$work/context" >/dev/null

# The image's configuration, as a runtime reads it.
buildah "${store[@]}" inspect --type image "$image" >"$work/inspect.json"
python3 - "$work/inspect.json" "$revision" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["OCIv1"]["config"]
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, expected {want!r}")
expect("User", config.get("User"), "10001:10001")
expect("Entrypoint", config.get("Entrypoint"), ["/usr/local/bin/nova"])
expect("Cmd", config.get("Cmd"), ["serve"])
expect("ExposedPorts", sorted(config.get("ExposedPorts", {})), ["7700/tcp"])
expect("WorkingDir", config.get("WorkingDir"), "/var/lib/nova")
env = dict(e.split("=", 1) for e in config.get("Env", []))
expect("NOVA_SERVER__LISTEN", env.get("NOVA_SERVER__LISTEN"), "0.0.0.0:7700")
labels = config.get("Labels") or {}
for key in ["title", "description", "licenses", "version", "revision"]:
    if not labels.get(f"org.opencontainers.image.{key}"):
        problems.append(f"label org.opencontainers.image.{key} is missing")
expect("revision label", labels.get("org.opencontainers.image.revision"), sys.argv[2])
if "Healthcheck" in config:
    problems.append("the image has a HEALTHCHECK; Kubernetes probes /health and /ready instead")
if problems:
    sys.exit("test-image: " + "; ".join(problems))
PY

# Runs in the image, as its user (10001), with only what the image holds.
container=$(buildah "${store[@]}" from --quiet "$image")
version=$(buildah "${store[@]}" run --isolation chroot "$container" -- /usr/local/bin/nova --version)
expected=$("$bin" --version)
[ "$version" = "$expected" ] || { echo "test-image: nova --version in the image said '$version', expected '$expected'" >&2; exit 1; }
user=$(buildah "${store[@]}" run --isolation chroot "$container" -- /usr/local/bin/nova doctor --output json --timeout 2 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["checks"][0]["component"])' || true)
[ "$user" = "config" ] || { echo "test-image: nova doctor did not run in the image" >&2; exit 1; }

size=$(du -sm "$rootfs" | cut -f1)
echo "test-image: ok: $image ($size MB rootfs, $(( $(date +%s) - started ))s): user 10001, port 7700, OCI labels, '$version'"
