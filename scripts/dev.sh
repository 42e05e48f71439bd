#!/usr/bin/env bash
# The project's set-up, behind the Makefile: installs what is missing, runs the project's own
# PostgreSQL/PostGIS and Redis under var/ when FLEET_DATABASE_URL / FLEET_REDIS_URL are not set,
# and runs commands with the resulting environment.
#
#   scripts/dev.sh bootstrap        Debian packages, virtual environment, the package itself
#   scripts/dev.sh services         start the local stores (if needed); writes var/services.env
#   scripts/dev.sh stop             stop the local stores and any `fleet up` started by make run
#   scripts/dev.sh backup [TYPE]    back up the local cluster with pgBackRest (make run sets it up)
#   scripts/dev.sh exec CMD...      run CMD with the stores' environment
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR="$ROOT/var"
VENV="$ROOT/.venv"
PG_PORT=${FLEET_LOCAL_PG_PORT:-55432}
REDIS_PORT=${FLEET_LOCAL_REDIS_PORT:-56379}
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
DEBIAN_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-postgis-3" "postgresql-$PG_MAJOR-pgrouting"
  postgresql-contrib redis-server
  fonts-droid-fallback  # a CJK font for the PDF reports
  chromium              # the browser the page tests drive (Playwright, no browser download)
  faketime              # runs the suite and the demo at a pinned date and hour (scripts/any-day.sh)
  gcc libc6-dev         # builds scripts/faketime-clockwait.c, which any-day.sh preloads
  pgbackrest            # backs up the local cluster (make run) and the restore drill's
)

say() { printf '\033[1m[fleet]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[fleet] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (install sudo or run as root)"
  fi
}

bootstrap_debian() {
  local missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # The Debian packages start their own cluster and Redis on the standard ports; the project
  # does not rely on those, so a policy refusing service starts is fine here.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

bootstrap_python() {
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "Python 3.11 or newer is needed ($py is $("$py" --version 2>&1))"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in .venv"
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.fleet-installed" want
  want=$(sha256sum "$ROOT/pyproject.toml" | cut -c1-64)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Fleet and its dependencies into .venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
    # The checkout itself on sys.path: packages added later import without a reinstall.
    "$VENV/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/fleet-checkout.pth", "w").write(sys.argv[1] + "\n")' "$ROOT"
    echo "$want" >"$stamp"
  fi
}

# The pages' front-end packages (MapLibre, ECharts) from npm, as package-lock.json pins them.
bootstrap_node() {
  if ! command -v npm >/dev/null; then
    say "installing Node.js and npm from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      nodejs npm >/dev/null
  fi
  local stamp="$ROOT/node_modules/.fleet-installed" want
  want=$(sha256sum "$ROOT/package-lock.json" | cut -c1-64)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the pages' packages into node_modules (npm ci)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$stamp"
  fi
}

# The first port from $1 on which nothing answers. Another checkout's stores may hold the default.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  printf '%s' "$port"
}

# A store keeps the port it was first given (var/*/port), unless something else took it since.
store_port() {
  local file=$1 default=$2 running=$3 port
  port=$(cat "$file" 2>/dev/null || echo "$default")
  if [ "$running" != yes ]; then port=$(free_port "$port"); fi
  echo "$port" >"$file"
  printf '%s' "$port"
}

# initdb and postgres refuse to run as root: when we are root they run as the postgres user.
pg_run() {
  # From /: postgres may not be allowed into the folder make was started in.
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# A folder of the postgres user's under var/ (the cluster in var/pg, its backups in
# var/pgbackrest), resolved: initdb, pg_ctl and pgbackrest run as postgres, which may not be able
# to traverse the checkout (a 0700 folder, /root), so they are never handed a path through var/.
postgres_dir() {
  local dir="$VAR/$1"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$VAR" 2>/dev/null; then
    # The checkout is not reachable by the postgres user: keep the folder outside it and link
    # it into var/ so it still lives "under var/".
    local outside
    outside="/var/lib/fleet/$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)${2:-}"
    mkdir -p "$outside"
    chown postgres: "$outside"
    [ -L "$dir" ] || { rm -rf "$dir"; ln -s "$outside" "$dir"; }
  fi
  mkdir -p "$dir"
  readlink -f "$dir"
}

pg_data_dir() { postgres_dir pg; }

start_postgres() {
  local dir
  dir=$(pg_data_dir)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "creating the local PostgreSQL cluster in var/pg"
    pg_run "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$VAR/pg-initdb.log" 2>&1 || die "initdb failed, see var/pg-initdb.log"
  fi
  local running=no
  pg_run "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && running=yes
  PG_PORT=$(store_port "$VAR/pg.port" "$PG_PORT" "$running")
  [ "$running" = yes ] && return 0
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  pg_run "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-p $PG_PORT -h 127.0.0.1 -k $dir -c fsync=off -c max_connections=200" \
    >/dev/null || die "PostgreSQL did not start, see var/pg/postgres.log"
}

start_redis() {
  mkdir -p "$VAR/redis"
  local running=no
  [ -f "$VAR/redis/redis.pid" ] && kill -0 "$(cat "$VAR/redis/redis.pid")" 2>/dev/null && running=yes
  REDIS_PORT=$(store_port "$VAR/redis.port" "$REDIS_PORT" "$running")
  [ "$running" = yes ] && return 0
  say "starting Redis on 127.0.0.1:$REDIS_PORT (append-only file in var/redis)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$VAR/redis" \
    --appendonly yes --save '' --pidfile "$VAR/redis/redis.pid" \
    --logfile "$VAR/redis/redis.log" || die "Redis did not start, see var/redis/redis.log"
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "Redis did not answer on port $REDIS_PORT, see var/redis/redis.log"
}

# Two roles: postgres owns the schema and migrates (FLEET_DATABASE_OWNER); the processes connect
# as fleet_app, which `fleet db upgrade` grants only what they need (INSERT and SELECT on the
# audit log and the positions). The local cluster trusts 127.0.0.1, so neither has a password.
APP_ROLE=fleet_app
ensure_app_role() {
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
  [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$APP_ROLE'")" = 1 ] && return 0
  say "creating the application role $APP_ROLE"
  "${psql[@]}" -c "CREATE ROLE $APP_ROLE LOGIN" >/dev/null || die "could not create the role $APP_ROLE"
}

services() {
  mkdir -p "$VAR"
  local env_file="$VAR/services.env"
  : >"$env_file"
  if [ -z "${FLEET_DATABASE_URL:-}" ]; then
    start_postgres
    ensure_app_role
    echo "export FLEET_DATABASE_URL=postgresql+psycopg://$APP_ROLE@127.0.0.1:$PG_PORT/fleet" >>"$env_file"
    echo "export FLEET_DATABASE_OWNER=postgres" >>"$env_file"
  fi
  if [ -z "${FLEET_REDIS_URL:-}" ]; then
    start_redis
    echo "export FLEET_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0" >>"$env_file"
  fi
}

# pgBackRest for the local cluster (make run): the stanza `fleet`, its configuration and repository
# in var/pgbackrest, every WAL segment archived there by archive_command, and a full backup when
# there is none or the newest is a week old; `make backup` takes another. make run turns archiving
# on (one restart, the first time); make test never does, and adds nothing to its start-up.
STANZA=fleet

backup_dir() { postgres_dir pgbackrest -pgbackrest; }

# pgbackrest as the cluster's owner, with the local configuration.
pgbackrest_local() {
  pg_run pgbackrest --config="$(backup_dir)/pgbackrest.conf" --stanza="$STANZA" "$@"
}

# The configuration, written on every run: the cluster's port may have moved.
write_backup_config() {
  local pg_dir=$1 dir=$2
  mkdir -p "$dir/repo" "$dir/log" "$dir/lock" "$dir/spool"
  cat >"$dir/pgbackrest.conf" <<EOF
# Written by scripts/dev.sh on every make run; edits are lost.
[global]
repo1-path=$dir/repo
repo1-retention-full=2
compress-type=zst
start-fast=y
log-path=$dir/log
lock-path=$dir/lock
spool-path=$dir/spool
log-level-console=warn
log-level-file=info

[$STANZA]
pg1-path=$pg_dir/data
pg1-port=$PG_PORT
pg1-socket-path=$pg_dir
EOF
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
}

backups() {
  local pg_dir dir
  pg_dir=$(pg_data_dir)
  dir=$(backup_dir)
  PG_PORT=$(cat "$VAR/pg.port")
  write_backup_config "$pg_dir" "$dir"
  pgbackrest_local stanza-create >/dev/null ||
    die "pgbackrest stanza-create failed (see var/pgbackrest/log/); if the repository was made for an earlier cluster, remove it: rm -rf $dir"
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
  local archive="pgbackrest --config=$dir/pgbackrest.conf --stanza=$STANZA archive-push %p"
  if [ "$("${psql[@]}" -c 'SHOW archive_command')" != "$archive" ]; then
    "${psql[@]}" -v command="$archive" >/dev/null <<'SQL'
ALTER SYSTEM SET archive_command = :'command';
SELECT pg_reload_conf();
SQL
  fi
  if [ "$("${psql[@]}" -c 'SHOW archive_mode')" != on ]; then
    say "turning WAL archiving on in the local PostgreSQL (one restart, this once)"
    "${psql[@]}" -c 'ALTER SYSTEM SET archive_mode = on' >/dev/null
    pg_run "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -m fast -w -t 60 restart \
      >/dev/null || die "PostgreSQL did not restart, see var/pg/postgres.log"
  fi
  # A full backup when there is none, or when the newest is a week old: with two fulls kept,
  # that also expires the archived WAL (make test's too) older than the week before.
  local newest
  newest=$(pgbackrest_local info --output=json | python -c '
import json, sys
stops = [b["timestamp"]["stop"] for s in json.load(sys.stdin) for b in s["backup"] if b["type"] == "full"]
print(max(stops, default=0))')
  if [ "$newest" = 0 ]; then
    say "taking a first full backup of the local PostgreSQL into var/pgbackrest"
  elif [ $(($(date +%s) - newest)) -gt $((7 * 86400)) ]; then
    say "taking this week's full backup of the local PostgreSQL into var/pgbackrest"
  else
    return 0
  fi
  pgbackrest_local --type=full backup || die "the backup failed, see var/pgbackrest/log/"
}

# make backup: another backup of the local cluster (TYPE=full, diff or incr; pgbackrest's default
# is incr), which also expires what the retention no longer needs.
backup() {
  [ -f "$(backup_dir)/pgbackrest.conf" ] || die "no backups configured yet: make run sets them up"
  with_env
  pgbackrest_local ${1:+--type="$1"} backup || die "the backup failed, see var/pgbackrest/log/"
  pgbackrest_local info
}

stop() {
  if [ -f "$VAR/fleet-up.pid" ]; then
    local pid
    pid=$(cat "$VAR/fleet-up.pid")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping fleet up (pid $pid)"
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$VAR/fleet-up.pid"
  fi
  local dir
  dir=$(readlink -f "$VAR/pg")
  if [ -f "$dir/data/PG_VERSION" ] && pg_run "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    say "stopping the local PostgreSQL"
    pg_run "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$VAR/redis/redis.pid" ] && kill -0 "$(cat "$VAR/redis/redis.pid")" 2>/dev/null; then
    say "stopping the local Redis"
    redis-cli -p "$(cat "$VAR/redis.port" 2>/dev/null || echo "$REDIS_PORT")" shutdown >/dev/null 2>&1 ||
      kill "$(cat "$VAR/redis/redis.pid")"
  fi
}

# The demo's road network: central Xihu district, Hangzhou, an OpenStreetMap extract that ships in
# app/demo_data/ (no download; app.demo.ROADS). Any .osm.pbf works: `fleet roads import FILE`.
DEMO_PBF="$ROOT/app/demo_data/hangzhou-xihu-roads.osm.pbf"
demo_roads() {
  [ -f "$DEMO_PBF" ] || die "the demo road network $DEMO_PBF is missing from the checkout"
  fleet roads import --if-empty "$DEMO_PBF"
}

# make run: migrate, import the demo's roads, seed, then every process in the foreground. Ctrl-C
# (or `make stop`) ends them, and then the local stores this script started are stopped too.
run() {
  local own_cluster=no
  [ -z "${FLEET_DATABASE_URL:-}" ] && own_cluster=yes
  with_env
  fleet db upgrade
  demo_roads
  fleet seed demo
  if [ "$own_cluster" = yes ]; then backups; fi
  trap : INT TERM
  local status=0
  fleet up || status=$?
  trap - INT TERM
  stop
  return "$status"
}

with_env() {
  # shellcheck disable=SC1091
  [ -f "$VAR/services.env" ] && . "$VAR/services.env"
  export PATH="$VENV/bin:$PATH"
}

cmd=${1:-}
shift || true
case "$cmd" in
  bootstrap) bootstrap_debian; bootstrap_python; bootstrap_node ;;
  services) services ;;
  stop) stop ;;
  run) run ;;
  backup) backup "${1:-}" ;;
  exec)
    with_env
    exec "$@"
    ;;
  *) die "usage: scripts/dev.sh bootstrap|services|run|stop|backup [full|diff|incr]|exec CMD..." ;;
esac
