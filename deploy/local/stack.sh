#!/usr/bin/env bash
# The CloudLunacy local stack: nats-server (its own config, port and data), a Postgres database with
# migrations, and every service, each as a background process with a pid file and a log file under .stack/.
#
#   deploy/local/stack.sh up       install what is missing, build, start everything (idempotent);
#                                  CL_STACK_FRONTS=2 adds a second front (HAProxy, Data Plane API, proxy-sync)
#   deploy/local/stack.sh demo     up, then run the demo and print where to look
#   deploy/local/stack.sh status   what runs, with pids and ports
#   deploy/local/stack.sh logs S   follow one service's log
#   deploy/local/stack.sh cli ...  run the admin CLI against the stack (its NATS credentials and database)
#   deploy/local/stack.sh db       only create the stack's PostgreSQL role and database if missing (npm test's
#                                  pretest runs it: the tests create their databases with that role)
#   deploy/local/stack.sh down     stop everything (data stays in .stack/)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
set -a
# shellcheck source=deploy/local/stack.env
source deploy/local/stack.env
[ -f .stack/stack.env ] && source .stack/stack.env
set +a
export CL_STACK_ABS="$ROOT/$CL_STACK_DIR"
RUN="$CL_STACK_ABS/run"
LOGS="$CL_STACK_ABS/logs"

# Services in start order: name and entry point under dist/. Later work adds its services here.
SERVICES=(
  "projector:dist/apps/projector/src/main.js"
  "registration:dist/apps/registration/src/main.js"
  "certificates:dist/apps/certificates/src/main.js"
  "routing:dist/apps/routing/src/main.js"
  "deployments:dist/apps/deployments/src/main.js"
  "api:dist/apps/api/src/main.js"
)
# Each front: HAProxy under the Data Plane API (the emulator here), and its proxy-sync. Front 1 is
# `dataplane` and `proxy-sync`; front n is `dataplane-n` and `proxy-sync-n`, on ports n-1 above front 1's.
FRONTS=${CL_STACK_FRONTS:-1}
# Every front's HTTPS entry, for the deployments service's verification of new releases.
if [ -z "${CL_DEPLOY_VERIFY_URLS:-}" ]; then
  CL_DEPLOY_VERIFY_URLS=$(for ((n = 0; n < FRONTS; n++)); do printf 'https://127.0.0.1:%s,' $((CL_HTTPS_PORT + n)); done)
  export CL_DEPLOY_VERIFY_URLS=${CL_DEPLOY_VERIFY_URLS%,}
fi
# And every front's SNI listener, where a new database is verified by a TLS handshake with its name.
if [ -z "${CL_DEPLOY_VERIFY_SNI_ADDRESSES:-}" ]; then
  CL_DEPLOY_VERIFY_SNI_ADDRESSES=$(for ((n = 0; n < FRONTS; n++)); do printf '127.0.0.1:%s,' $((CL_TLS_SNI_PORT + n)); done)
  export CL_DEPLOY_VERIFY_SNI_ADDRESSES=${CL_DEPLOY_VERIFY_SNI_ADDRESSES%,}
fi
# Databases' connection strings name the front's SNI port.
export CL_FRONT_SNI_PORT=${CL_FRONT_SNI_PORT:-$CL_TLS_SNI_PORT}

say() { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[stack] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# Debian packages: one list for the stack, the demo and the tests (deploy/debian-packages.sh).
need_packages() { deploy/debian-packages.sh "$@" || fail "install the packages above, then run this again"; }

check_node() {
  command -v node >/dev/null || fail "Node.js is missing: install Node 20.19 or newer (https://nodejs.org or your distribution's nodejs package)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    fail "Node $(node -v) is too old: CloudLunacy needs 20.19 or newer (require(esm) and the engines of its dependencies)"
}

install_dependencies() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund >/dev/null
  fi
  say "building (tsc)"
  npm run build --silent
}

pid_alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

wait_port() { # host port what
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$3 did not open $1:$2; see $LOGS"
}

# Installation secrets (JWT keys, NATS operator/accounts) and the broker's auth config, created once.
setup_auth() {
  local out
  out=$(deploy/nats/setup-auth.sh "$CL_STACK_ABS/secrets" "$CL_STACK_ABS" "$CL_STACK_ABS/nats-resolver" 2>>"$LOGS/setup.log") ||
    fail "could not create the installation secrets; see $LOGS/setup.log"
  eval "export $(echo "$out" | tr '\n' ' ')"
}

start_nats() {
  mkdir -p "$CL_STACK_ABS/nats"
  envsubst < deploy/local/nats.conf.template > "$CL_STACK_ABS/nats.conf"
  if pid_alive nats; then say "nats-server already running (pid $(cat "$RUN/nats.pid"))"; return; fi
  nats-server -c "$CL_STACK_ABS/nats.conf" >>"$LOGS/nats.log" 2>&1 &
  echo $! >"$RUN/nats.pid"
  wait_port 127.0.0.1 "$CL_NATS_PORT" nats-server
  say "nats-server on 127.0.0.1:$CL_NATS_PORT (data in $CL_STACK_DIR/nats)"
}

# PostgreSQL. Unless CL_DATABASE_URL is set (then the stack uses that database as it is and creates nothing),
# the stack has a role and a database of its own, both `cloudlunacy`, on the local server at 127.0.0.1 and
# CL_POSTGRES_PORT. Only creating them needs the server's superuser: psql as the `postgres` OS user over the
# local socket (peer authentication, Debian's default). Everything else connects over TCP with the role's
# generated password, kept in .stack/secrets/postgres.password, so it works with Debian's scram-sha-256 for
# 127.0.0.1 as well as with trust. The server only ever sees the password's SCRAM verifier.
PG_ROLE=cloudlunacy
PG_DATABASE=cloudlunacy
PG_PASSWORD_FILE="$CL_STACK_ABS/secrets/postgres.password"
if [ -n "${CL_DATABASE_URL:-}" ]; then own_database=false; else own_database=true; fi

redacted() { echo "$1" | sed -E 's#//[^@]*@#//#'; }

# CL_DATABASE_URL for the stack's own role, once its password exists.
use_own_database() {
  $own_database && [ -s "$PG_PASSWORD_FILE" ] || return 0
  local password; password=$(cat "$PG_PASSWORD_FILE")
  [[ $password =~ ^[A-Za-z0-9._~-]+$ ]] || fail "$PG_PASSWORD_FILE must hold one URL-safe word (delete it to get a new one)"
  export CL_DATABASE_URL="postgres://$PG_ROLE:$password@127.0.0.1:$CL_POSTGRES_PORT/$PG_DATABASE"
}

# psql as the server's superuser: the `postgres` OS user on the local socket (from / : it may not enter ours).
as_postgres_psql() {
  local psql=(psql -X -q -v ON_ERROR_STOP=1 -p "$CL_POSTGRES_PORT" -d postgres)
  if [ "$(id -un)" = postgres ]; then (cd / && "${psql[@]}")
  elif [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "${psql[@]}")
  elif command -v sudo >/dev/null; then (cd / && sudo -u postgres -- "${psql[@]}")
  else return 1; fi
}

# "t" when the stack's role can log in over TCP and owns its database.
own_database_ready() {
  PGPASSWORD=$(cat "$PG_PASSWORD_FILE") PGCONNECT_TIMEOUT=5 psql -X -A -t -q -h 127.0.0.1 -p "$CL_POSTGRES_PORT" \
    -U "$PG_ROLE" -d "$PG_DATABASE" \
    -c 'SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = current_database()' 2>/dev/null
}

start_postgres() {
  local cluster
  # The cluster configured for that port (pg_lsclusters: version, name, port, status, …).
  cluster=$(pg_lsclusters -h 2>/dev/null | awk -v port="$CL_POSTGRES_PORT" '$3 == port { print $1, $2; exit }')
  [ -n "$cluster" ] ||
    fail "no PostgreSQL server listens on 127.0.0.1:$CL_POSTGRES_PORT and no cluster is configured for that port (pg_lsclusters). Set CL_POSTGRES_PORT in .stack/stack.env, or install PostgreSQL: sudo apt-get install -y postgresql"
  say "starting PostgreSQL $cluster"
  # shellcheck disable=SC2086 # version and cluster name
  as_root pg_ctlcluster --skip-systemctl-redirect $cluster start || true
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p "$CL_POSTGRES_PORT" && return 0; sleep 0.2; done
  fail "PostgreSQL $cluster did not start on 127.0.0.1:$CL_POSTGRES_PORT; see /var/log/postgresql/"
}

# The role and database of the stack (and of the tests, which create their throwaway databases with the
# role: hence CREATEDB), created once and checked on every run. Idempotent.
provision_postgres() {
  command -v psql >/dev/null && command -v pg_isready >/dev/null ||
    fail "PostgreSQL is not installed: sudo apt-get install -y postgresql (or set CL_DATABASE_URL in .stack/stack.env to use another server)"
  pg_isready -q -h 127.0.0.1 -p "$CL_POSTGRES_PORT" || start_postgres
  if [ ! -s "$PG_PASSWORD_FILE" ]; then
    (umask 077 && mkdir -p "$(dirname "$PG_PASSWORD_FILE")" &&
      node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("base64url"))' >"$PG_PASSWORD_FILE")
  fi
  use_own_database
  [ "$(own_database_ready)" = t ] && return 0
  say "setting up PostgreSQL role $PG_ROLE and database $PG_DATABASE on port $CL_POSTGRES_PORT (psql as the postgres user)"
  local verifier
  verifier=$(node -e '
    const c = require("crypto"), password = require("fs").readFileSync(process.argv[1], "utf8"), salt = c.randomBytes(16);
    const salted = c.pbkdf2Sync(password, salt, 4096, 32, "sha256");
    const hmac = (key, text) => c.createHmac("sha256", key).update(text).digest();
    const stored = c.createHash("sha256").update(hmac(salted, "Client Key")).digest();
    const b64 = (bytes) => bytes.toString("base64");
    process.stdout.write(`SCRAM-SHA-256$4096:${b64(salt)}$${b64(stored)}:${b64(hmac(salted, "Server Key"))}`);
  ' "$PG_PASSWORD_FILE")
  { printf '\\set verifier %s\n' "'$verifier'"; cat deploy/local/postgres-role.sql; } | as_postgres_psql >>"$LOGS/setup.log" 2>&1 ||
    fail "could not create the PostgreSQL role $PG_ROLE as the postgres user (run this as root or with sudo, or create it yourself: README, PostgreSQL); see $LOGS/setup.log"
  [ "$(own_database_ready)" = t ] ||
    fail "the role $PG_ROLE cannot log in to 127.0.0.1:$CL_POSTGRES_PORT/$PG_DATABASE with its password: pg_hba.conf must allow it (Debian's default, scram-sha-256 for 127.0.0.1/32, does)"
}

ensure_postgres() {
  if $own_database; then provision_postgres
  else say "CL_DATABASE_URL is set: using $(redacted "$CL_DATABASE_URL") as it is"; fi
  say "migrating $(redacted "$CL_DATABASE_URL")"
  node dist/apps/cli/src/main.js db migrate >/dev/null
}

# HAProxy and the Data Plane API emulator (a test double of dataplaneapi; production runs the real one with
# deploy/haproxy/dataplaneapi.yml). The base haproxy.cfg is rendered once for the stack's ports and paths;
# from then on only the Data Plane API changes it.
# The installation's CA and the front's certificate, before the certificates service starts with them.
prepare_pki() {
  node dist/apps/cli/src/main.js certs ca init >>"$LOGS/setup.log"
  node dist/apps/cli/src/main.js certs ca show --pem >"$CL_STACK_ABS/ca.pem"
  node dist/apps/cli/src/main.js certs front --out "$CL_FRONT_CERT_FILE" >>"$LOGS/setup.log"
}

prepare_haproxy() { # front number
  local n=${1:-1} offset=$((${1:-1} - 1)) suffix=""
  [ "$n" = 1 ] || suffix="-$n"
  local dir="$CL_STACK_ABS/haproxy$suffix"
  local http=$((CL_HTTP_PORT + offset)) https=$((CL_HTTPS_PORT + offset)) sni=$((CL_TLS_SNI_PORT + offset))
  local dataplane=$((CL_DATAPLANE_PORT + offset))
  mkdir -p "$dir/maps" "$dir/ssl" "$dir/ca" "$dir/transactions" "$dir/general"
  touch "$dir/maps/hosts.map" "$dir/maps/sni.map"
  cp "$CL_STACK_ABS/ca.pem" "$dir/ca/cloudlunacy-ca.pem"
  [ -f "$dir/ssl/front.pem" ] || cp "$CL_FRONT_CERT_FILE" "$dir/ssl/front.pem"
  if [ ! -f "$dir/haproxy.cfg" ]; then
    sed -e "s#/etc/haproxy/#$dir/#g" -e "s#/run/haproxy/admin.sock#$dir/admin.sock#" \
      -e "s#^\( *bind\) :80 #\1 127.0.0.1:$http #" -e "s#^\( *bind\) :443 #\1 127.0.0.1:$https #" \
      -e "s#^\( *bind\) :27017 #\1 127.0.0.1:$sni #" deploy/haproxy/haproxy.cfg >"$dir/haproxy.cfg"
  fi
  [ -s "$CL_STACK_ABS/secrets/dataplane.password" ] ||
    (umask 077 && node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("base64url"))' >"$CL_STACK_ABS/secrets/dataplane.password")
  export CL_DATAPLANE_PASSWORD
  CL_DATAPLANE_PASSWORD=$(cat "$CL_STACK_ABS/secrets/dataplane.password")
  # proxy-sync writes the same listeners and paths into haproxy.cfg through the Data Plane API.
  export CL_PROXY_HTTP_BIND="127.0.0.1:$http" CL_PROXY_HTTPS_BIND="127.0.0.1:$https" \
    CL_PROXY_TLS_SNI_BIND="127.0.0.1:$sni" CL_PROXY_PUBLIC_HTTPS_PORT="$https" \
    CL_PROXY_MAPS_DIR="$dir/maps" CL_PROXY_CERTS_DIR="$dir/ssl/" CL_PROXY_CA_FILE="$dir/ca/cloudlunacy-ca.pem" \
    CL_PROXY_GENERAL_DIR="$dir/general" \
    CL_DATAPLANE_URL="http://127.0.0.1:$dataplane/v3" CL_PROXY_NODE_ID="$CL_PROXY_NODE_ID$suffix"
  CL_DATAPLANE_PORT=$dataplane
  FRONT_DIR=$dir FRONT_SUFFIX=$suffix
  cat >"$dir/dataplaneapi.yml" <<YAML
config_version: 2
name: cloudlunacy-local
dataplaneapi:
  host: 127.0.0.1
  port: $CL_DATAPLANE_PORT
  user:
    - name: $CL_DATAPLANE_USER
      password: '\${CL_DATAPLANE_PASSWORD}'
      insecure: true
  transaction:
    transaction_dir: $dir/transactions
    max_open_transactions: 20
  resources:
    maps_dir: $dir/maps
    ssl_certs_dir: $dir/ssl
    general_storage_dir: $dir/general
haproxy:
  config_file: $dir/haproxy.cfg
  haproxy_bin: $(command -v haproxy)
  master_runtime: $dir/master.sock
  master_worker_mode: true
  reload:
    reload_delay: 1
YAML
}

start_service() { # name entry [user: the NATS user, the name by default]
  local name=$1 entry=$2 user=${3:-$1}
  if pid_alive "$name"; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  # Each service connects to the broker as its own user, allowed only what it needs (docs/security.md).
  local creds="$CL_STACK_ABS/secrets/nats/$user.creds"
  [ -f "$creds" ] || creds=$CL_NATS_CREDS
  # shellcheck disable=SC2086 # an entry may carry its arguments
  CL_NATS_CREDS=$creds node $entry >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  sleep 1
  pid_alive "$name" || fail "$name stopped at start; last lines of $LOGS/$name.log:
$(tail -n 20 "$LOGS/$name.log")"
  say "$name running (pid $!, log $CL_STACK_DIR/logs/$name.log)"
}

# One front in a subshell: its ports, paths and node id stay its own.
start_front() { # n
  (
    prepare_haproxy "$1"
    start_service "dataplane$FRONT_SUFFIX" \
      "dist/test/dataplane-emulator/main.js --config $FRONT_DIR/dataplaneapi.yml --start-haproxy" dataplane
    start_service "proxy-sync$FRONT_SUFFIX" dist/apps/proxy-sync/src/main.js proxy-sync
  )
}

stop_one() { # name
  local name=$1
  pid_alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  local pid; pid=$(cat "$RUN/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$RUN/$name.pid"
  say "stopped $name"
}


up() {
  check_node
  need_packages stack
  mkdir -p "$RUN" "$LOGS"
  install_dependencies
  setup_auth
  start_nats
  ensure_postgres
  prepare_pki
  for service in "${SERVICES[@]}"; do start_service "${service%%:*}" "${service#*:}"; done
  local n
  for n in $(seq 1 "$FRONTS"); do start_front "$n"; done
  wait_port 127.0.0.1 "$CL_API_PORT" api
  # Admin tokens expire (12 h by default): a stack started yesterday gets a fresh one.
  if [ ! -s "$CL_STACK_ABS/admin.token" ] || [ -n "$(find "$CL_STACK_ABS/admin.token" -mmin +360)" ]; then
    (umask 077 && node dist/apps/cli/src/main.js admin token create --name local-admin >"$CL_STACK_ABS/admin.token")
  fi
  say "API on http://127.0.0.1:$CL_API_PORT/api/v1 (admin token in $CL_STACK_DIR/admin.token)"
  say "stack is up. Status: deploy/local/stack.sh status; stop: deploy/local/stack.sh down"
}

down() {
  # The demo's agents, apps and databases first, then the services in reverse order, then the broker.
  local name
  for pidfile in "$RUN"/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    case " nats $(printf '%s ' "${SERVICES[@]%%:*}")" in *" $name "*) ;; *) stop_one "$name" ;; esac
  done
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_one "${SERVICES[i]%%:*}"; done
  stop_one nats
}

demo() {
  # The tests' packages too: the README's next command is `npm test`.
  need_packages demo test
  up
  node dist/apps/cli/src/main.js demo
}

status() {
  local extra
  extra=$(cd "$RUN" 2>/dev/null && ls -- *.pid 2>/dev/null | sed 's/\.pid$//' | grep -vxF -e nats $(printf -- '-e %s ' "${SERVICES[@]%%:*}") || true)
  for name in nats $(printf '%s\n' "${SERVICES[@]}" | cut -d: -f1) $extra; do
    if pid_alive "$name"; then printf '  %-14s running  pid %s\n' "$name" "$(cat "$RUN/$name.pid")"
    else printf '  %-14s stopped\n' "$name"; fi
  done
}

case "${1:-}" in
  up) up ;;
  demo) demo ;;
  down) down ;;
  status) status ;;
  logs) tail -n 50 -f "$LOGS/${2:?which service?}.log" ;;
  cli) shift; setup_auth; use_own_database; node dist/apps/cli/src/main.js "$@" ;;
  db) mkdir -p "$LOGS"; if $own_database; then provision_postgres; say "PostgreSQL role and database $PG_DATABASE ready"
      else say "CL_DATABASE_URL is set: the stack creates no role or database"; fi ;;
  *) echo "usage: deploy/local/stack.sh up|demo|status|logs <service>|cli <command…>|db|down" >&2; exit 2 ;;
esac
