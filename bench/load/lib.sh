# Shared by bench/load/run.sh and bench/load/soak.sh: starts a CNCF registry with a few
# hundred images, writes a catalog (the example organisation plus a `bench` component whose
# images those are) and a configuration, and starts `nova serve` on it.
#
#   load_require              checks wrk, docker-registry, python3 and curl are installed
#   load_setup WORK           once: registry, images, catalog, session key
#   load_start WORK DATABASE  nova serve on DATABASE; sets NOVA_PID and NOVA_URL
#   load_stop                 stops it
set -euo pipefail

. bench/lib.sh

load_setup() {
  local work=$1
  bench_registry "$work" "${LOAD_IMAGES:-300}"
  cat >"$work/bench.yaml" <<YML
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bench
  annotations:
    nova.dev/image-repository: local/bench/app
    nova.dev/git-repository: https://git.example.com/payments/bench.git
spec: {type: service, lifecycle: production, owner: payments}
YML
  head -c 48 /dev/urandom | base64 >"$work/session.key"
}

load_start() {
  local work=$1 database=$2 port
  port=$(bench_free_port)
  cat >"$work/nova.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[database]
url = "$database"
[log]
format = "json"
level = "warn"
[catalog]
locations = ["$PWD/examples/catalog", "$work/bench.yaml"]
[auth]
dev_sign_in = true
session_key = { file = "$work/session.key" }
admin_group = "group:default/platform"
[secrets]
type = "file"
path = "$work/secrets.enc"
key_file = "$work/secrets.key"
[builds]
# Every build fails at once at its clone step: the write burst measures Nova, not builds.
git = "false"
max_active_per_team = 1000
max_requests_per_user = 1000
[registry]
min_refresh_interval = "1s"
[registries.local]
type = "oci"
url = "http://127.0.0.1:$REGISTRY_PORT"
TOML
  "$NOVA_BIN" serve --config "$work/nova.toml" >"$work/nova.log" 2>&1 &
  NOVA_PID=$!
  NOVA_URL="http://127.0.0.1:$port"
  for _ in $(seq 600); do curl -sf "$NOVA_URL/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "$NOVA_URL/ready" >/dev/null || { echo "nova did not become ready" >&2; tail -20 "$work/nova.log" >&2; exit 1; }
  # Wait until the image list is cached (the first refresh of the repository).
  for _ in $(seq 300); do
    curl -sf "$NOVA_URL/api/v1/components/component/default/bench/images?limit=1" | grep -q '"state":"fresh"' && break
    sleep 0.2
  done
}

load_stop() {
  kill "$NOVA_PID" 2>/dev/null || true
  wait "$NOVA_PID" 2>/dev/null || true
}

# The tools both scripts need.
load_require() {
  local tool
  for tool in wrk docker-registry python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install wrk docker-registry curl)" >&2; exit 1; }
  done
}

# The binary: NOVA_BIN, or a release build.
load_binary() {
  if [ -z "${NOVA_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
    cargo build --release --quiet -p nova
    NOVA_BIN="$CARGO_TARGET_DIR/release/nova"
  fi
}
