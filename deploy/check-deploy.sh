#!/usr/bin/env bash
# Follows docs/deploy.md on this machine, minus what needs root (apt, the hazmap user, systemctl,
# creating the PostGIS database): the shipped hazmap.toml and unit file, migrations, a world, the
# service's own command line, nginx with the shipped site proxying to it; then checks that the
# page, the API, readiness and metrics answer through the proxy, and that SIGTERM stops hazmap
# cleanly (exit 143). Everything lives under $WORK; nothing is installed system-wide.
#
#   HAZMAP_VENV=/path/venv DATABASE_URL=postgresql+psycopg://… deploy/check-deploy.sh [WORK]
#
# HAZMAP_VENV: a venv with hazmap installed from its wheel (step 3). DATABASE_URL: an empty
# database with the PostGIS extension (step 2). NGINX_BIN: the nginx binary (default: from PATH
# or /usr/sbin/nginx). Exit 0 when every check passed; the first failure prints the logs.
set -euo pipefail
DEPLOY=$(cd "$(dirname "$0")" && pwd)
: "${HAZMAP_VENV:?set HAZMAP_VENV to a venv with hazmap installed from its wheel}"
: "${DATABASE_URL:?set DATABASE_URL to an empty PostGIS database}"
WORK=${1:-$(mktemp -d)}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
unset NGINX  # nginx reads inherited listening sockets from this variable
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PY="$HAZMAP_VENV/bin/python"

say() { printf '[check-deploy] %s\n' "$*"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() {
  say "FAILED: $*"
  for f in "$WORK/hazmap.log" "$WORK/nginx/error.log"; do
    [ -f "$f" ] && { say "--- $f"; tail -n 60 "$f"; }
  done
  exit 1
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url seconds
  for _ in $(seq "$(($2 * 2))"); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.5; done
  return 1
}
[ -x "$NGINX_BIN" ] || fail "no nginx at $NGINX_BIN (apt-get install nginx)"
[ -x "$HAZMAP_VENV/bin/hazmap" ] || fail "no hazmap in $HAZMAP_VENV"

# --- step 4: configuration (/etc/hazmap -> $WORK/etc/hazmap) ------------------------------------
ETC="$WORK/etc/hazmap"
STATE="$WORK/var/lib/hazmap"
mkdir -p "$ETC" "$STATE"
cp "$DEPLOY/hazmap.toml" "$ETC/hazmap.toml"
PORT=$(free_port)
{
  echo "HAZMAP_DATABASE_URL=$DATABASE_URL"
  # what differs from the guide on a shared test machine: paths, ports, no broker
  echo "HAZMAP_VAR_DIR=$STATE"
  echo "HAZMAP_PORT=$PORT"
  echo "HAZMAP_JT808_HOST=127.0.0.1"
  echo "HAZMAP_JT808_PORT=0"
  echo "HAZMAP_JT808_STATS_PORT=0"
  echo "HAZMAP_MQTT_IN_SERVE=false"
  echo "HAZMAP_BASEMAP=none"  # no tile server reachable from a test machine: the offline preset
} > "$ETC/hazmap.env"
chmod 600 "$ETC/hazmap.env"
run_hazmap() { (cd "$ETC" && set -a && . ./hazmap.env && set +a && env -u PYTHONPATH "$HAZMAP_VENV/bin/hazmap" "$@"); }
say "step 4: $ETC/hazmap.toml (shipped example) and hazmap.env"

# --- step 5: migrations and a world --------------------------------------------------------------
run_hazmap db upgrade >"$WORK/db.log" 2>&1 || { cat "$WORK/db.log"; fail "hazmap db upgrade"; }
status=$(run_hazmap db status 2>/dev/null) || fail "hazmap db status"
say "step 5: $status"
run_hazmap world build --seed 5 --scale 0.01 >"$WORK/world.log" 2>&1 || { cat "$WORK/world.log"; fail "world build"; }
say "step 5: demo world stored ($(run_hazmap world stats --json 2>/dev/null | head -c 80)…)"
PASSWORD="check-deploy-$RANDOM-$RANDOM-password"
printf '%s\n' "$PASSWORD" | run_hazmap users add admin --role admin --password-stdin >"$WORK/users.log" 2>&1 \
  || { cat "$WORK/users.log"; fail "hazmap users add admin"; }
say "step 5: the first user, admin"

# --- step 6: the service -------------------------------------------------------------------------
UNIT="$WORK/hazmap.service"
sed -e "s#/opt/hazmap/venv#$HAZMAP_VENV#g" -e "s#/etc/hazmap#$ETC#g" "$DEPLOY/hazmap.service" > "$UNIT"
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
  systemd-analyze verify "$UNIT" || fail "systemd-analyze verify hazmap.service"
  say "step 6: systemd-analyze verify hazmap.service: ok"
else
  say "step 6: systemd-analyze not available here: unit file not verified"
fi
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
WORKDIR=$(sed -n 's/^WorkingDirectory=//p' "$UNIT")
[ -n "$EXEC" ] && [ "$WORKDIR" = "$ETC" ] || fail "ExecStart / WorkingDirectory not found in the unit"
# what systemd does: the working directory, the environment file, the command line
(cd "$WORKDIR" && set -a && . ./hazmap.env && set +a && exec env -u PYTHONPATH $EXEC) >"$WORK/hazmap.log" 2>&1 &
HAZMAP_PID=$!
pids+=("$HAZMAP_PID")
wait_http "http://127.0.0.1:$PORT/api/health" 180 || fail "hazmap did not answer on port $PORT"
say "step 6: '$EXEC' (pid $HAZMAP_PID) answers on 127.0.0.1:$PORT"

# --- step 7: nginx with the shipped site ----------------------------------------------------------
NG="$WORK/nginx"
mkdir -p "$NG/sites-enabled" "$NG/tmp"
NGINX_PORT=$(free_port)
sed -e "s#listen 80;#listen 127.0.0.1:$NGINX_PORT;#" -e "s#server 127.0.0.1:8050;#server 127.0.0.1:$PORT;#" \
  "$DEPLOY/nginx/hazmap.conf" > "$NG/sites-enabled/hazmap"
grep -q "127.0.0.1:$PORT" "$NG/sites-enabled/hazmap" || fail "the site's upstream line changed: update this script"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"  # as root nginx's workers would be nobody
cat > "$NG/nginx.conf" <<EOF
# the parts of Debian's /etc/nginx/nginx.conf a site needs, with every path under $NG
$user_line
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $NG/access.log;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    include $NG/sites-enabled/*;
}
EOF
"$NGINX_BIN" -t -q -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" 2>>"$NG/error.log" || fail "nginx -t"
"$NGINX_BIN" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" -g "daemon off;" 2>>"$NG/error.log" &
NGINX_PID=$!
pids+=("$NGINX_PID")
PROXY="http://127.0.0.1:$NGINX_PORT"
wait_http "$PROXY/api/health" 30 || fail "nginx did not proxy /api/health on port $NGINX_PORT"
say "step 7: nginx (pid $NGINX_PID) on 127.0.0.1:$NGINX_PORT -> hazmap"

# --- step 8: checks through the proxy -------------------------------------------------------------
JAR="$WORK/cookies.txt"
first=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$PROXY/") || fail "GET / through nginx"
case "$first" in 302\ */login*) ;; *) fail "GET / without a session: expected a redirect to /login, got $first";; esac
curl -fsS -c "$JAR" -b "$JAR" "$PROXY/login" -o "$WORK/login.html" || fail "GET /login through nginx"
TOKEN=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$WORK/login.html")
[ -n "$TOKEN" ] || fail "no csrf_token in the login form"
curl -fsS -c "$JAR" -b "$JAR" -o /dev/null "$PROXY/login" --data-urlencode "username=admin" \
  --data-urlencode "password=$PASSWORD" --data-urlencode "csrf_token=$TOKEN" --data-urlencode "next=/" \
  || fail "POST /login through nginx"
grep -q hazmap_session "$JAR" || fail "the login set no session cookie"
curl -fsS -c "$JAR" -b "$JAR" "$PROXY/" -o "$WORK/page.html" || fail "GET / with a session through nginx"
grep -q "_dash-config" "$WORK/page.html" || fail "the page through nginx is not the Dash app"
say "step 8: / sends a stranger to /login; admin logs in through nginx"
for script in $(grep -o '/assets/[A-Za-z0-9_.-]*\.\(js\|css\)' "$WORK/page.html" | sort -u); do
  curl -fsS -o /dev/null "$PROXY$script" || fail "GET $script through nginx"
done
grep -q '/assets/hazmap_map.js' "$WORK/page.html" || fail "the page does not load assets/hazmap_map.js"
say "step 8: the page and its scripts answer through nginx"
# the static canvas's worker: its script, and the headers that isolate the page (docs/deploy.md step 7)
curl -fsS -D "$WORK/worker.headers" -o /dev/null "$PROXY/assets/hazmap_static_worker.js" \
  || fail "GET /assets/hazmap_static_worker.js through nginx"
for header in "cross-origin-opener-policy: same-origin" "cross-origin-embedder-policy: credentialless"; do
  tr -d '\r' < "$WORK/worker.headers" | grep -qi "^$header\$" || fail "no '$header' through nginx"
done
say "step 8: the worker's script answers through nginx, the page isolated (COOP, COEP)"
curl -fsS "$PROXY/api/health" -o "$WORK/health.json" || fail "/api/health through nginx"
grep -q '"alive"' "$WORK/health.json" || fail "/api/health says: $(cat "$WORK/health.json")"
curl -fsS -D "$WORK/ready.headers" "$PROXY/api/ready" -o "$WORK/ready.json" || { cat "$WORK/ready.json"; fail "/api/ready is not 200"; }
grep -q '"ready":true' "$WORK/ready.json" || fail "/api/ready says not ready: $(cat "$WORK/ready.json")"
RID=$(sed -n 's/^[Xx]-[Rr]equest-[Ii][Dd]: *\([0-9a-f]*\).*/\1/p' "$WORK/ready.headers" | tr -d '\r')
[ ${#RID} = 32 ] || fail "no X-Request-ID from nginx's \$request_id in the answer"
say "step 8: /api/health alive, /api/ready ready (request id $RID)"
curl -fsS "$PROXY/metrics" -o "$WORK/metrics.txt" || fail "/metrics through nginx"
grep -q '^hazmap_http_requests_total{' "$WORK/metrics.txt" || fail "/metrics through nginx has no HTTP counts"
say "step 8: /metrics answers through nginx (from 127.0.0.1)"
grep -q "\"request_id\": \"$RID\"" "$WORK/hazmap.log" || fail "hazmap's log has no line with request id $RID"
grep -q "development server" "$WORK/hazmap.log" && fail "the log still says 'development server'"
say "step 8: hazmap's JSON log carries nginx's request id"

# --- step 9: stopping ------------------------------------------------------------------------------
kill -TERM "$HAZMAP_PID"
set +e
wait "$HAZMAP_PID"
rc=$?
set -e
[ "$rc" = 143 ] || fail "hazmap exited $rc on SIGTERM (143 expected)"
grep -q "live monitor stopped" "$WORK/hazmap.log" || fail "the live monitor did not stop cleanly"
kill -QUIT "$NGINX_PID" 2>/dev/null || true
wait "$NGINX_PID" 2>/dev/null || true
say "step 9: SIGTERM stopped hazmap cleanly (exit 143)"
say "all checks passed"
