#!/usr/bin/env bash
# The services the tests need, on loopback only: PostgreSQL and moto (S3 + SQS emulator).
#
#   scripts/services.sh start   start what is not running; write target/test-services.env
#   scripts/services.sh stop    stop only what `start` started
#
# PostgreSQL: use the server on 127.0.0.1:5432 when it accepts user postgres without a password;
# else try to start the machine's cluster; else run a throwaway cluster of our own on a free port.
# moto: installed from PyPI into .venv (pinned), started on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."
state=target/test-services
envfile=target/test-services.env
moto_version=5.2.5
mkdir -p "$state"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_ok() { # host port
  psql -h "$1" -p "$2" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1
}

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

start_postgres() {
  if pg_ok 127.0.0.1 5432; then
    echo "postgres://postgres@127.0.0.1:5432/postgres"
    return
  fi
  if command -v pg_ctlcluster >/dev/null; then
    local version
    version=$(basename "$(dirname "$(pg_bin)")")
    pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
    for _ in $(seq 20); do pg_ok 127.0.0.1 5432 && break; sleep 0.5; done
    if pg_ok 127.0.0.1 5432; then
      echo "pg_ctlcluster $version main stop" > "$state/postgres.stop"
      echo "postgres://postgres@127.0.0.1:5432/postgres"
      return
    fi
  fi
  # A private cluster with trust auth, owned by the postgres user when we are root (initdb
  # refuses to run as root).
  local bin dir port as=()
  bin=$(pg_bin)
  [[ -n "$bin" ]] || { echo "PostgreSQL is not installed (apt package postgresql)" >&2; exit 1; }
  dir=$(mktemp -d /tmp/anb-test-pg.XXXXXX)
  port=$(free_port)
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo "${as[*]} $bin/pg_ctl -D $dir/data -m fast stop >/dev/null; rm -rf $dir" > "$state/postgres.stop"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

start_moto() {
  if ! .venv/bin/moto_server --help >/dev/null 2>&1 || ! .venv/bin/pip show moto 2>/dev/null | grep -q "^Version: $moto_version$"; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$moto_version"
  fi
  local port
  port=$(free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$state/moto.log" 2>&1 &
  echo $! > "$state/moto.pid"
  for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
    sleep 0.25
  done
  echo "http://127.0.0.1:$port"
}

case "${1:-}" in
  start)
    pg_url=$(start_postgres)
    moto_url=$(start_moto)
    cat > "$envfile" <<EOF
export TEST_ANB_POSTGRES_URL=$pg_url
export TEST_ANB_MOTO_SERVER=$PWD/.venv/bin/moto_server
export AWS_ENDPOINT_URL=$moto_url
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
EOF
    echo "services: PostgreSQL $pg_url, moto $moto_url"
    ;;
  stop)
    if [[ -f "$state/moto.pid" ]]; then
      kill "$(cat "$state/moto.pid")" 2>/dev/null || true
      rm -f "$state/moto.pid"
    fi
    if [[ -f "$state/postgres.stop" ]]; then
      bash -c "$(cat "$state/postgres.stop")" || true
      rm -f "$state/postgres.stop"
    fi
    rm -f "$envfile"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
