#!/usr/bin/env bash
# Do two builds of the service write the same FLAC? For a change that must
# not alter output (a refactor, a per-message speed-up): starts both
# binaries on loopback, POSTs each bench audio file (benches/audio.sh) to
# /convert at the given level, and compares the answers byte for byte (cmp),
# checking each with `flac -t`.
#
#   benches/same_output.sh OLD_BIN NEW_BIN [LEVEL]   (default level 5)
#
# Exit 0 when every file is identical. The servers are stopped on exit.
set -euo pipefail
old=$1 new=$2 level=${3:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
audio=${FLACSTREAM_BENCH_AUDIO:-$repo/target/bench-audio}
"$repo/benches/audio.sh" "$audio" >/dev/null
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # binary tag -> sets port_<tag>
  local port; port=$(free_port)
  "$1" --bind "127.0.0.1:$port" --data-dir "$work/data-$2" >"$work/$2.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  printf -v "port_$2" '%s' "$port"
}
start "$old" old
start "$new" new
differ=0
for wav in "$audio"/*.wav; do
  name=$(basename "$wav" .wav)
  for tag in old new; do
    port_var="port_$tag"
    curl -sf -X POST --data-binary @"$wav" -H 'Content-Type: audio/wav' \
      "http://127.0.0.1:${!port_var}/convert?level=$level" -o "$work/$name.$tag.flac"
  done
  flac -t --silent "$work/$name.new.flac"
  if cmp -s "$work/$name.old.flac" "$work/$name.new.flac"; then
    echo "identical: $name, level $level, $(stat -c %s "$work/$name.new.flac") bytes, sha256 $(sha256sum <"$work/$name.new.flac" | cut -c1-16)"
  else
    echo "DIFFERENT: $name, level $level"
    differ=1
  fi
done
exit "$differ"
