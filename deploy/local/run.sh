#!/usr/bin/env bash
# Scaled-mode rehearsal on one machine (deploy/local/README.md): replicas of
# the release binary on one PostgreSQL and one S3 server (s3s-fs), behind
# nginx with a plain round-robin upstream, live recorded sessions, and on the
# way a kill -9, a rolling drain, a PostgreSQL restart, an S3 outage and a
# scale-down. deploy/local/rehearse.py drives it and checks every final FLAC
# against what its producer sent.
#
#   deploy/local/run.sh                                  # 32 sessions, 100 s, 30 s S3 outage
#   SESSIONS=12 SECONDS=45 S3_OUTAGE=8 deploy/local/run.sh   # the short version CI runs
#
# Knobs (environment; defaults in brackets): SESSIONS [32] producers,
# SECONDS [100] of audio each (the timeline scales with it), SPREAD [8] s over
# which they start, LISTENERS [8], S3_OUTAGE [30] s, USERS [6], SEED [1].
# FLACSTREAM_BIN=path runs that binary instead of building one.
#
# Installs what is missing: PostgreSQL and s3s-fs (.ci/servers.sh), nginx and
# flac (apt-get), websockets (pip). Everything it starts listens on 127.0.0.1
# only and is stopped by PID when it ends, also on error or Ctrl-C; nginx runs
# in the foreground with its own prefix, never the system service.
#
# Exit status: 0 when every check held, 1 when one failed (listed at the
# end), 2 on a setup error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$target_dir/rehearsal/$stamp
mkdir -p "$WORK"
export WORK

log() { printf 'run.sh: %s\n' "$*" >&2; }
setup_error() { log "$*"; exit 2; }
apt_install() {
    local sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

nginx_bin=$(command -v nginx || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
    log "installing nginx (apt-get)"
    apt_install nginx-light
    nginx_bin=/usr/sbin/nginx
fi
export NGINX_BIN=$nginx_bin
if ! command -v flac >/dev/null; then
    log "installing flac (apt-get)"
    apt_install flac
fi
if ! python3 -c 'import websockets.asyncio.client' >/dev/null 2>&1; then
    log "installing websockets (pip)"
    python3 -m pip install --quiet --upgrade websockets ||
        python3 -m pip install --quiet --upgrade --break-system-packages websockets
fi

if [ -n "${FLACSTREAM_BIN:-}" ]; then
    bin=$FLACSTREAM_BIN
else
    log "building the server (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet --bin flacstream)
    bin=$target_dir/release/flacstream
fi
[ -x "$bin" ] || setup_error "no server binary at $bin"
FLACSTREAM_BIN=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
export FLACSTREAM_BIN

# Under /tmp: the postgres user must reach its data directory, and the
# checkout may be under a home directory it cannot enter.
servers=$(mktemp -d /tmp/flacstream-servers.XXXXXX)
cleanup() { "$repo/.ci/servers.sh" stop "$servers" || true; }
trap cleanup EXIT
eval "$("$repo/.ci/servers.sh" start "$servers")" || setup_error "cannot start PostgreSQL and s3s-fs"
export STORAGE_URL="s3://flacstream/rehearsal-$stamp"
export RUN_ID=$stamp
export PG_RESTART="$repo/.ci/servers.sh pg-restart $servers"
export S3_STOP="$repo/.ci/servers.sh s3-stop $servers"
export S3_START="$repo/.ci/servers.sh s3-start $servers"

log "rehearsal in $WORK"
set +e
python3 "$here/rehearse.py" 2>&1 | tee "$WORK/rehearsal.txt"
rc=${PIPESTATUS[0]}
set -e
log "summary: $WORK/summary.json; replica logs: $WORK/replica-*.log"
exit "$rc"
