#!/usr/bin/env bash
# Background-job throughput and the archive recompression's saving: the
# release server on loopback (embedded mode, SQLite, a scratch data dir;
# with FLACSTREAM_DATABASE_URL and FLACSTREAM_STORAGE_URL set, scaled mode
# on them), a webhook receiver in Python answering 200 at once, and N
# uploads of one second of audio each (benches/jobs.py). It reports how
# fast the queue delivered N webhooks (and ran N final analyses), and,
# on the music clip, what `--archive-level 8` saved against level 5 and
# against level 0. Stops its own server (by PID) and removes its files;
# bounded by 120 s per phase.
#
#   benches/jobs.sh                  (N=500, 2 job workers)
#   N=2000 JOB_WORKERS=8 benches/jobs.sh
#
# Needs: a release build (cargo build --release), python3, ffmpeg. The
# music clip is $CARGO_TARGET_DIR/bench-audio/music-16.wav
# (benches/audio.sh renders it); its first 60 s are used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N="${N:-500}"
JOB_WORKERS="${JOB_WORKERS:-2}"
CLIP="${CLIP:-${CARGO_TARGET_DIR:-target}/bench-audio/music-16.wav}"
BIN="${CARGO_TARGET_DIR:-target}/release/flacstream"
[ -x "$BIN" ] || { echo "jobs: build first: cargo build --release" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "jobs: no clip at $CLIP (benches/audio.sh renders it)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ffmpeg -hide_banner -loglevel error -i "$CLIP" -t 60 -c:a pcm_s16le "$work/music.wav"
python3 benches/jobs.py --bin "$BIN" --work "$work" --n "$N" --job-workers "$JOB_WORKERS" \
  --music "$work/music.wav"
