#!/usr/bin/env bash
# Starts (or stops) the servers the scaled-mode tests need, on loopback:
# Debian's PostgreSQL and s3s-fs (an S3 server over a directory). Prints the
# environment the tests read, for `eval`:
#   eval "$(.ci/servers.sh start DIR)"   ...   .ci/servers.sh stop DIR
# and, for the failure rehearsal (deploy/local/run.sh):
#   .ci/servers.sh pg-restart DIR | s3-stop DIR | s3-start DIR
# Installs what is missing: apt's postgresql, `cargo install s3s-fs@0.14.1`
# (the last version that builds with rustc 1.95). Run as root or with sudo.
set -euo pipefail
cmd=${1:?start or stop}
root=${2:?a directory for the server data}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

case "$cmd" in
start)
  mkdir -p "$root"
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql" >&2
    $SUDO apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends postgresql >&2
  fi
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing s3s-fs (cargo install s3s-fs@0.14.1)" >&2
    cargo install s3s-fs@0.14.1 --features binary --locked >&2
  fi
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pg_port=$(free_port)
  $SUDO mkdir -p "$root/pg"
  $SUDO chown postgres "$root" "$root/pg"
  as_postgres "$pgbin/initdb -D $root/pg -A trust -U postgres" >/dev/null
  as_postgres "$pgbin/pg_ctl -D $root/pg -o '-p $pg_port -k $root -c listen_addresses=127.0.0.1 -c fsync=on' -l $root/pg.log -w start" >&2
  "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc 'CREATE DATABASE flacstream' >&2
  s3_port=$(free_port)
  mkdir -p "$root/s3/flacstream"
  echo "$s3_port" >"$root/s3.port"
  "$0" s3-start "$root"
  echo "$pgbin" >"$root/pgbin"
  cat <<ENV
export FLACSTREAM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/flacstream
export FLACSTREAM_TEST_STORAGE_URL=s3://flacstream/ci-$$
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_ACCESS_KEY_ID=flacstream-ci
export AWS_SECRET_ACCESS_KEY=flacstream-ci-secret
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
ENV
  ;;
s3-start)
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  s3_port=$(cat "$root/s3.port")
  nohup s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key flacstream-ci \
    --secret-key flacstream-ci-secret "$root/s3" >>"$root/s3.log" 2>&1 &
  echo $! >"$root/s3.pid"
  for _ in $(seq 1 50); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 1)" 2>/dev/null; then break; fi
    sleep 0.1
  done
  ;;
s3-stop)
  kill -9 "$(cat "$root/s3.pid")" 2>/dev/null || true
  ;;
pg-restart)
  as_postgres "$(cat "$root/pgbin")/pg_ctl -D $root/pg -m fast -w restart" >/dev/null
  ;;
stop)
  if [ -f "$root/s3.pid" ]; then kill "$(cat "$root/s3.pid")" 2>/dev/null || true; fi
  if [ -f "$root/pgbin" ]; then as_postgres "$(cat "$root/pgbin")/pg_ctl -D $root/pg -m fast stop" >/dev/null 2>&1 || true; fi
  ;;
esac
