#!/usr/bin/env bash
# Runs hazmap's whole test suite on a fresh machine: installs what the tests need (as root,
# when missing: PostGIS, Chromium, Mosquitto, CJK fonts, nginx), creates the virtual environment,
# starts PostgreSQL and Mosquitto when they are not already running, then runs pytest.
# Extra arguments go to pytest (./test.sh -k store -x). HAZMAP_TEST_OWN_SERVICES=1 ignores
# services already running and starts throwaway ones (what a machine without them gets).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VAR="$ROOT/var/test-services"
mkdir -p "$VAR"
log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null; then
  pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
  [ -n "$pg_major" ] || { need+=(postgresql); pg_major=""; }
  for p in chromium mosquitto fonts-noto-cjk fonts-wqy-zenhei nginx poppler-utils; do have_pkg "$p" || need+=("$p"); done
  if [ -n "$pg_major" ]; then
    have_pkg "postgresql-$pg_major-postgis-3" || need+=("postgresql-$pg_major-postgis-3")
  fi
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      log "installing ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq "${need[@]}" >/dev/null
      if [ -z "$pg_major" ]; then
        pg_major=$(ls /usr/lib/postgresql | sort -n | tail -1)
        apt-get install -y -qq "postgresql-$pg_major-postgis-3" >/dev/null
      fi
    else
      log "missing packages (run as root to install them): ${need[*]}"
    fi
  fi
fi

# --- Python environment -----------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.hazmap-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing hazmap[test] into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import app, data, spatial, layers, pytest" || { log "pip install failed"; exit 1; }
  touch "$stamp"
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { .venv/bin/python -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',$1)))"; }
cleanup=()
on_exit() { for c in "${cleanup[@]}"; do eval "$c" || true; done; }
trap on_exit EXIT

# --- PostgreSQL + PostGIS ---------------------------------------------------------------
pg_has_postgis() {  # $1 = port
  psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc \
    "select 1 from pg_available_extensions where name='postgis'" 2>/dev/null | grep -q 1
}
if [ -z "${HAZMAP_TEST_POSTGRES_URL:-}" ]; then
  if [ -z "${HAZMAP_TEST_OWN_SERVICES:-}" ] && command -v psql >/dev/null && pg_has_postgis 5432; then
    export HAZMAP_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
  elif [ -n "${pg_major:-}" ] && [ -x "/usr/lib/postgresql/$pg_major/bin/initdb" ]; then
    bin="/usr/lib/postgresql/$pg_major/bin"
    port=$(free_port)
    data="$VAR/pg"
    rm -rf "$data"; mkdir -p "$data"
    as_pg=()
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$VAR"; as_pg=(runuser -u postgres --); fi
    log "starting a throwaway PostgreSQL $pg_major on port $port"
    "${as_pg[@]}" "$bin/initdb" -D "$data" --auth=trust -U postgres >/dev/null
    "${as_pg[@]}" "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    cleanup+=("${as_pg[*]} $bin/pg_ctl -D $data -m fast stop >/dev/null")
    export HAZMAP_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  else
    log "no PostgreSQL available: PostGIS tests will fail under CI=true"
  fi
fi

# --- Mosquitto --------------------------------------------------------------------------
if [ -z "${HAZMAP_TEST_MQTT_URL:-}" ]; then
  if [ -z "${HAZMAP_TEST_OWN_SERVICES:-}" ] && port_open 1883; then
    export HAZMAP_TEST_MQTT_URL="mqtt://127.0.0.1:1883"
  elif command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    port=$(free_port)
    conf="$VAR/mosquitto.conf"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$conf"
    log "starting Mosquitto on port $port"
    (PATH="$PATH:/usr/sbin" mosquitto -c "$conf" >"$VAR/mosquitto.log" 2>&1 & echo $! > "$VAR/mosquitto.pid")
    cleanup+=("kill \$(cat $VAR/mosquitto.pid)")
    for _ in $(seq 50); do port_open "$port" && break; sleep 0.1; done
    export HAZMAP_TEST_MQTT_URL="mqtt://127.0.0.1:$port"
  fi
fi

# --- the suite --------------------------------------------------------------------------
log "PostGIS: ${HAZMAP_TEST_POSTGRES_URL:-none}  MQTT: ${HAZMAP_TEST_MQTT_URL:-none}"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc = 5 ]; then log "pytest collected no tests"; exit 1; fi
exit $rc
