# Real components for the test suite, started on free loopback ports in a temporary directory.
# Sourced by scripts/test; each start_* function exports the variable the tests read and
# registers its own cleanup. A component that cannot be started is left unset: tests then skip
# loudly on a laptop and fail under CI.

SERVICES_DIR="${SERVICES_DIR:-$(mktemp -d -t nova-test-services.XXXXXX)}"
chmod 0755 "$SERVICES_DIR"
CLEANUP=()

cleanup_services() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[$i]}" >/dev/null 2>&1 || true; done
  rm -rf "$SERVICES_DIR" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command as an unprivileged user when we are root (PostgreSQL refuses to run as root).
as_service_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u "${SERVICE_USER:-postgres}" -- "$@"; else "$@"; fi
}

start_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "services: PostgreSQL not installed (apt-get install postgresql); PostgreSQL tests will skip" >&2
    return 0
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "services: no postgres user to run PostgreSQL as; PostgreSQL tests will skip" >&2
    return 0
  fi
  local dir="$SERVICES_DIR/postgres" port
  port=$(free_port)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_service_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$SERVICES_DIR/postgres-init.log" 2>&1 || {
    echo "services: initdb failed; see below" >&2; cat "$SERVICES_DIR/postgres-init.log" >&2; return 1; }
  as_service_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { echo "services: PostgreSQL did not start" >&2; cat "$dir/log" >&2; return 1; }
  CLEANUP+=("as_service_user '$bindir/pg_ctl' -D '$dir/data' -m immediate stop")
  export NOVA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "services: PostgreSQL on 127.0.0.1:$port"
}

# CNCF distribution (Debian's docker-registry). Each registry test starts its own registry on
# a free port with its own storage and auth (anonymous, htpasswd, or tokens from an issuer the
# test runs), so this only checks the binaries and exports where they are.
start_registry() {
  local bin
  bin=$(command -v docker-registry || true)
  if [ -z "$bin" ]; then
    echo "services: docker-registry not installed (apt-get install docker-registry); registry tests will skip" >&2
    return 0
  fi
  if ! command -v htpasswd >/dev/null; then
    echo "services: htpasswd not installed (apt-get install apache2-utils); basic-auth registry tests will skip" >&2
  fi
  export NOVA_TEST_REGISTRY_BIN="$bin"
  echo "services: docker-registry at $bin ($("$bin" --version 2>/dev/null | head -n 1))"
}

# moto's server, standing in for AWS ECR. Fake credentials keep the AWS SDK's credential chain
# from looking for real ones (or asking an instance metadata service).
start_moto() {
  if ! command -v moto_server >/dev/null; then
    echo "services: moto_server not installed (pip install 'moto[server]'); ECR tests will skip" >&2
    return 0
  fi
  local port
  port=$(free_port)
  moto_server -H 127.0.0.1 -p "$port" >"$SERVICES_DIR/moto.log" 2>&1 &
  local pid=$!
  CLEANUP+=("kill $pid")
  for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
      export NOVA_TEST_MOTO_URL="http://127.0.0.1:$port"
      export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
      echo "services: moto on 127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "services: moto did not start; see below" >&2
  cat "$SERVICES_DIR/moto.log" >&2
  return 1
}

# A git server over HTTP (git http-backend behind scripts/lib/git_http_server.py): tests create
# bare repositories under NOVA_TEST_GIT_HTTP_ROOT and fetch them from NOVA_TEST_GIT_HTTP_URL;
# those under private/ need user nova-test with password NOVA_TEST_GIT_HTTP_PASSWORD.
start_git_http() {
  if ! command -v git >/dev/null || ! [ -x "$(git --exec-path)/git-http-backend" ]; then
    echo "services: git http-backend not found (apt-get install git); git location tests will skip" >&2
    return 0
  fi
  local dir="$SERVICES_DIR/git-http" port password
  port=$(free_port)
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  mkdir -p "$dir/repos/private"
  GIT_HTTP_PASSWORD="$password" python3 scripts/lib/git_http_server.py "$dir/repos" "$port" >"$dir/log" 2>&1 &
  local pid=$!
  CLEANUP+=("kill $pid")
  local i
  for i in $(seq 1 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  export NOVA_TEST_GIT_HTTP_URL="http://127.0.0.1:$port"
  export NOVA_TEST_GIT_HTTP_ROOT="$dir/repos"
  export NOVA_TEST_GIT_HTTP_PASSWORD="$password"
  echo "services: git over HTTP on 127.0.0.1:$port"
}
