# Shared by the web benches: services, a fresh PostgreSQL database, and `anb web` on loopback.
# Source it from a script that has `set -euo pipefail` and runs from the project root.

# Start PostgreSQL and moto unless already running (then stop them on exit).
bench_services() {
  started_services=0
  if [[ ! -f target/test-services.env ]]; then
    scripts/services.sh start >/dev/null
    started_services=1
  fi
  # shellcheck source=/dev/null
  source target/test-services.env
}

bench_cleanup() {
  [[ -n "${web_pid:-}" ]] && kill "$web_pid" 2>/dev/null && wait "$web_pid" 2>/dev/null
  [[ "${started_services:-0}" == 1 ]] && scripts/services.sh stop
  return 0
}

# A fresh, migrated database named $1; prints its URL.
bench_database() {
  local name=$1 admin=$TEST_ANB_POSTGRES_URL
  export PGOPTIONS='-c client_min_messages=warning'
  psql "$admin" -qtAc "DROP DATABASE IF EXISTS $name" >/dev/null
  psql "$admin" -qtAc "CREATE DATABASE $name" >/dev/null
  local url="${admin%/*}/$name"
  ANB_DATABASE_URL=$url target/release/anb migrate >/dev/null
  echo "$url"
}

bench_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start `anb web` with the ANB_* variables already exported; sets web_pid and web_url.
bench_start_web() {
  local port
  port=$(bench_free_port)
  web_url="http://127.0.0.1:$port"
  ANB_LISTEN="127.0.0.1:$port" ANB_SECRET_KEY=bench-secret-key-0123456789abcdef \
    target/release/anb web > "${WEB_LOG:-/dev/null}" 2>&1 &
  web_pid=$!
  bench_wait_for_web
}

# Wait (at most 10 s) until the server at $web_url answers /health.
bench_wait_for_web() {
  for _ in $(seq 100); do
    curl -sf "$web_url/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server at $web_url did not start" >&2
  return 1
}

# Sign up and log in a player; prints the bearer token.
bench_token() {
  local email=$1
  curl -sf -H 'content-type: application/json' "$web_url/api/auth/signup" -d \
    "{\"email\":\"$email\",\"password1\":\"bench-pass-1\",\"password2\":\"bench-pass-1\",\"first_name\":\"Bench\",\"last_name\":\"Player\",\"city\":\"Cali\",\"country\":\"Colombia\"}" >/dev/null
  curl -sf -H 'content-type: application/json' "$web_url/api/auth/login" \
    -d "{\"email\":\"$email\",\"password\":\"bench-pass-1\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
