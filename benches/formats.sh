#!/usr/bin/env bash
# Memory per conversion of an upload that is not WAV: the release server on
# loopback, N concurrent `POST /convert` of the same file per format, its
# resident memory sampled every 20 ms. Prints, per format, the idle RSS,
# the peak, and (peak - idle) / N. Stops its own server (by PID) and
# removes its files; bounded by TIMEOUT seconds per format.
#
#   benches/formats.sh                   (N=8, the 16-bit music clip)
#   N=16 CLIP=path.wav benches/formats.sh
#
# Needs: a release build (cargo build --release), curl, ffmpeg, lame,
# opus-tools. The clip defaults to the first SECONDS_OF_AUDIO (60) s of
# $CARGO_TARGET_DIR/bench-audio/music-16.wav (benches/audio.sh renders it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N="${N:-8}"
TIMEOUT="${TIMEOUT:-120}"
CLIP="${CLIP:-${CARGO_TARGET_DIR:-target}/bench-audio/music-16.wav}"
SECONDS_OF_AUDIO="${SECONDS_OF_AUDIO:-60}"
BIN="${CARGO_TARGET_DIR:-target}/release/flacstream"
[ -x "$BIN" ] || { echo "formats: build first: cargo build --release" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "formats: no clip at $CLIP (benches/audio.sh renders it)" >&2; exit 2; }

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ffmpeg -hide_banner -loglevel error -i "$CLIP" -t "$SECONDS_OF_AUDIO" -c:a pcm_s16le "$work/clip.wav"
CLIP="$work/clip.wav"
ffmpeg -hide_banner -loglevel error -i "$CLIP" -c:a aac -b:a 128k "$work/clip.m4a"
ffmpeg -hide_banner -loglevel error -i "$CLIP" -c:a libopus -b:a 96k "$work/clip.webm"
ffmpeg -hide_banner -loglevel error -i "$CLIP" -c:a alac "$work/clip-alac.m4a"
lame --quiet -V 2 "$CLIP" "$work/clip.mp3"
flac --silent -o "$work/clip.flac" "$CLIP"

port=$((20000 + RANDOM % 20000))
"$BIN" --bind "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

printf '%-12s %10s %10s %10s %14s %12s\n' format bytes idle_MiB peak_MiB per_stream_MiB wall_s
for f in clip.wav clip.flac clip-alac.m4a clip.mp3 clip.m4a clip.webm; do
  src="$work/$f"
  idle=$(rss_kib); peak=$idle
  started=$(date +%s.%N)
  pids=()
  for i in $(seq "$N"); do
    curl -fsS --max-time "$TIMEOUT" --data-binary "@$src" -H 'Content-Type: application/octet-stream' \
      "http://127.0.0.1:$port/convert" -o "$work/out-$i.flac" &
    pids+=($!)
  done
  while kill -0 "${pids[@]}" 2>/dev/null; do
    r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.02
  done
  for p in "${pids[@]}"; do wait "$p"; done
  ended=$(date +%s.%N)
  flac --silent --test "$work"/out-*.flac
  awk -v f="$f" -v b="$(stat -c %s "$src")" -v i="$idle" -v p="$peak" -v n="$N" -v s="$started" -v e="$ended" \
    'BEGIN { printf "%-12s %10d %10.1f %10.1f %14.2f %12.2f\n", f, b, i/1024, p/1024, (p-i)/1024/n, e-s }'
  rm -f "$work"/out-*.flac
done
