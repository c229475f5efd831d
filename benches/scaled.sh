#!/usr/bin/env bash
# Scaled mode against embedded mode under the same load: STREAMS live
# recorded sessions (44.1 kHz 16-bit stereo, 20 ms chunks on schedule, the
# k6 realtime scenario with ENDPOINT=session RECORD=true) for DURATION
# seconds, once on SQLite + files and once on PostgreSQL + S3 (s3s-fs),
# each against a fresh server. Prints, for BENCHMARKS.md ("Scaled mode"):
# the server's CPU per stream in both modes and their ratio, its peak RSS,
# the database transactions and the object-store requests per stream-hour.
#
#   benches/scaled.sh                         # 100 streams, 120 s each run
#   STREAMS=20 DURATION=30 benches/scaled.sh  # quick
#
# FLACSTREAM_BIN=path skips the build. Needs what loadtest/run.sh needs, and
# .ci/servers.sh starts PostgreSQL and s3s-fs (installed if missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export STREAMS=${STREAMS:-100} DURATION=${DURATION:-120}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
if [ -z "${FLACSTREAM_BIN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --bin flacstream)
    export FLACSTREAM_BIN=$target_dir/release/flacstream
fi
export ENDPOINT=session RECORD=true
# Latency thresholds are not what this measures.
export LAT_P95_MS=100000 LAT_P99_MS=100000

newest() { ls -t "$target_dir"/loadtest/realtime-*.json | head -1; }
run_dir_of() { echo "${1%.json}"; }

echo "benches/scaled.sh: embedded mode (SQLite + files), $STREAMS streams x $DURATION s" >&2
"$repo/loadtest/run.sh" realtime >/dev/null
embedded=$(newest)

servers=$(mktemp -d /tmp/flacstream-servers.XXXXXX)
trap '"$repo/.ci/servers.sh" stop "$servers"' EXIT
# s3s-fs logs one line per request at debug: the request count.
eval "$(RUST_LOG=s3s::service=debug "$repo/.ci/servers.sh" start "$servers")"
psql_q() { psql "$FLACSTREAM_TEST_DATABASE_URL" -tAc "$1"; }
xacts() { psql_q "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'flacstream'"; }
requests() { grep -c 's3s::service: req: Request' "$servers/s3.log" || true; }
before_x=$(xacts)
before_r=$(requests)
echo "benches/scaled.sh: scaled mode (PostgreSQL + S3), $STREAMS streams x $DURATION s" >&2
FLACSTREAM_DATABASE_URL=$FLACSTREAM_TEST_DATABASE_URL \
FLACSTREAM_STORAGE_URL=s3://flacstream/bench-$(date +%s) \
    "$repo/loadtest/run.sh" realtime >/dev/null
scaled=$(newest)
after_x=$(xacts)
after_r=$(requests)

python3 - "$embedded" "$scaled" "$((after_x - before_x))" "$((after_r - before_r))" \
    "$(run_dir_of "$scaled")/metrics.txt" <<'PY'
import json, re, sys
emb, sca = (json.load(open(p)) for p in sys.argv[1:3])
xacts, requests = int(sys.argv[3]), int(sys.argv[4])
metrics = open(sys.argv[5]).read()
def metric(name):
    m = re.search(rf'^{name}(?:{{[^}}]*}})? (\S+)$', metrics, re.M)
    return float(m.group(1)) if m else 0.0
segments = metric('flacstream_segments_written_total')
failures = metric('flacstream_segment_write_failures_total')
e, s = emb['server'], sca['server']
streams = s.get('streams') or 0
hours = s['audio_seconds'] / 3600
# Core-seconds per second of audio: a stream's share of a core. Both runs
# stream the same audio; the wall clock differs (the scaled run's tail holds
# the composes), so the audio is the fair divisor.
cpu_e = e['cpu_seconds_per_audio_second']
cpu_s = s['cpu_seconds_per_audio_second']
print(f"| streams | {streams} for {s['wall_seconds']} s |")
print(f"| CPU per stream, embedded | {cpu_e * 100:.3f} % of a core |")
print(f"| CPU per stream, scaled | {cpu_s * 100:.3f} % of a core |")
print(f"| ratio scaled / embedded | {cpu_s / cpu_e:.2f} |")
print(f"| peak RSS, embedded / scaled | {e['rss_peak_mib']} / {s['rss_peak_mib']} MiB |")
print(f"| database transactions per stream-hour | {xacts / hours:.0f} ({xacts} in all) |")
print(f"| object-store requests per stream-hour | {requests / hours:.0f} ({requests} in all) |")
print(f"| segments written per stream-hour | {segments / hours:.0f} ({segments:.0f}; {failures:.0f} refused) |")
print(f"| streams ok | embedded {emb.get('streams_ok', '?')}, scaled {sca.get('streams_ok', '?')} |")
PY
