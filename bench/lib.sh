# Shared by the benchmark scripts (source it from the repository root).
#
#   bench_free_port          prints a free TCP port on 127.0.0.1
#   bench_registry WORK N    starts a CNCF registry (docker-registry) with its storage under
#                            WORK and pushes N distinct images into bench/app; sets
#                            REGISTRY_PORT and REGISTRY_PID (the caller stops it)

bench_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_registry() {
  local work=$1 n=$2
  REGISTRY_PORT=$(bench_free_port)
  cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
YML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null && break; sleep 0.1; done
  python3 bench/registry/push.py "http://127.0.0.1:$REGISTRY_PORT" bench/app "$n" >/dev/null
}
