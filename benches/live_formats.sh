#!/usr/bin/env bash
# Memory, threads and CPU per live container session: the release server on
# loopback (embedded mode, a scratch data dir), N concurrent recorded
# sessions per format (`/api/ws/audio?format=webm`, …) each sending the same
# clip paced at real time (benches/live_formats.py). Prints one JSON line per
# format. Stops its own server (by PID) and removes its files; each format
# is bounded by its clip's length plus 30 s.
#
#   benches/live_formats.sh                  (N=50, 20 s of the music clip)
#   N=100 SECONDS_OF_AUDIO=30 benches/live_formats.sh
#
# Needs: a release build (cargo build --release), python3 with websockets
# (pip install websockets), ffmpeg, lame. The clip is the first
# SECONDS_OF_AUDIO s of $CARGO_TARGET_DIR/bench-audio/music-16.wav
# (benches/audio.sh renders it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N="${N:-50}"
CLIP="${CLIP:-${CARGO_TARGET_DIR:-target}/bench-audio/music-16.wav}"
SECONDS_OF_AUDIO="${SECONDS_OF_AUDIO:-20}"
BIN="${CARGO_TARGET_DIR:-target}/release/flacstream"
[ -x "$BIN" ] || { echo "live_formats: build first: cargo build --release" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "live_formats: no clip at $CLIP (benches/audio.sh renders it)" >&2; exit 2; }

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ffmpeg -hide_banner -loglevel error -i "$CLIP" -t "$SECONDS_OF_AUDIO" -c:a pcm_s16le "$work/clip.wav"
ffmpeg -hide_banner -loglevel error -i "$work/clip.wav" -c:a libopus -b:a 96k "$work/clip.webm"
lame --quiet -V 2 "$work/clip.wav" "$work/clip.mp3"
flac --silent -o "$work/clip.flac" "$work/clip.wav"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
# Sessions above the default cap, and producers sending at real time (the
# input-rate limit is not what is measured).
"$BIN" --bind "127.0.0.1:$port" --data-dir "$work/data" --max-sessions "$((N + 10))" \
  --max-connections-per-ip "$((N * 2 + 10))" --new-sessions-per-minute "$((N * 4 + 10))" \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

for f in webm:clip.webm mp3:clip.mp3 flac:clip.flac; do
  format="${f%%:*}" file="${f#*:}"
  python3 benches/live_formats.py --url "ws://127.0.0.1:$port" --pid "$server" \
    --file "$work/$file" --format "$format" --seconds "$SECONDS_OF_AUDIO" -n "$N"
done
