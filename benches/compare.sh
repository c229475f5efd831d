#!/usr/bin/env bash
# Compares flacstream's encoder at levels 0-8 with libFLAC (`flac -0/-5/-8`)
# and ffmpeg's FLAC encoder on the real audio of benches/audio.sh.
#
# Every encoder runs single-threaded on the same WAV files, interleaved
# (round-robin over encoders and files, repeated R times) so that load from
# other processes spreads over all of them; the median of the R runs is kept.
# Speed is audio seconds per CPU second (user + sys of the encoding process,
# from getrusage),
# which other processes on a shared machine disturb far less than wall time;
# the wall-time speed is printed too. Size is output bytes / WAV data bytes.
# Outputs carry no seek table and no padding, so sizes compare like for like.
# Every flacstream output is decoded by libFLAC and compared with the input
# once (the first round), so a fast but wrong encoder cannot pass.
#
# flacstream is timed through `codec/examples/encode.rs`: the service's own
# codec path (WavParser -> PcmDecoder -> FrameEncoder), STREAMINFO with MD5.
#
# Usage: benches/compare.sh [-r REPEATS] [-f "music-16 speech-16k ..."] [-o OUT.md]
#   -r  runs per encoder and file (default 3)
#   -f  which files of benches/audio.sh (default: music-16 music-24 speech-16k)
#   -o  where the table is also written (default: target/bench-audio/compare.md)
# Takes about a minute per repeat on one core.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
audio=${FLACSTREAM_BENCH_AUDIO:-$repo/target/bench-audio}
repeats=3
files="music-16 music-24 speech-16k"
table="$audio/compare.md"
while getopts "r:f:o:h" opt; do
    case $opt in
        r) repeats=$OPTARG ;;
        f) files=$OPTARG ;;
        o) table=$OPTARG ;;
        *) sed -n '2,20p' "$0"; exit 2 ;;
    esac
done

for tool in flac ffmpeg python3; do
    command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool" >&2; exit 2; }
done
for f in $files; do
    [ -f "$audio/$f.wav" ] || "$repo/benches/audio.sh" "$audio"
done

echo "compare.sh: building the encode example (release)" >&2
(cd "$repo" && cargo build --quiet --release -p flacstream-codec --example encode)
encode="$repo/target/release/examples/encode"

# name|command (IN and OUT are replaced by the file paths).
encoders=()
for level in 0 1 2 3 4 5 6 7 8; do
    encoders+=("flacstream $level|$encode IN OUT --level $level")
done
for level in 0 5 8; do
    encoders+=("flac -$level|flac -s -f --no-seektable --no-padding -$level IN -o OUT")
done
ffmpeg_flac="ffmpeg -nostdin -loglevel error -y -threads 1 -i IN -map_metadata -1 -c:a flac"
encoders+=("ffmpeg (default 5)|$ffmpeg_flac OUT.flac")
for level in 0 8; do
    encoders+=("ffmpeg -compression_level $level|$ffmpeg_flac -compression_level $level OUT.flac")
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
# Runs a command and prints "wall user sys" in seconds; getrusage counts the
# child's CPU time to the microsecond, where /usr/bin/time rounds to 10 ms.
cat >"$work/run.py" <<'EOF'
import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_utime, usage.ru_stime)
EOF
: >"$results"
# Exits non-zero unless the raw file holds exactly the WAV's data chunk.
cat >"$work/same.py" <<'EOF'
import struct, sys
wav = open(sys.argv[1], "rb").read()
i = 12
while i + 8 <= len(wav):
    cid, n = wav[i:i + 4], struct.unpack("<I", wav[i + 4:i + 8])[0]
    if cid == b"data":
        sys.exit(0 if wav[i + 8:i + 8 + n] == open(sys.argv[2], "rb").read() else 1)
    i += 8 + n + (n & 1)
sys.exit(2)
EOF

for rep in $(seq 1 "$repeats"); do
    echo "compare.sh: run $rep of $repeats" >&2
    for f in $files; do
        for entry in "${encoders[@]}"; do
            name=${entry%%|*}
            cmd=${entry#*|}
            out="$work/out"
            cmd=${cmd//IN/$audio/$f.wav}
            cmd=${cmd//OUT/$out}
            rm -f "$out" "$out.flac"
            # shellcheck disable=SC2086 # the command is split on purpose
            python3 "$work/run.py" $cmd >"$work/time"
            [ -f "$out" ] || mv "$out.flac" "$out"
            # Lossless is checked, not assumed: on the first round every
            # flacstream output is decoded by libFLAC and compared with the
            # WAV's samples byte for byte (after timing, so it costs no speed).
            if [ "$rep" = 1 ] && [ "${name%% *}" = flacstream ]; then
                flac -s -d -f --force-raw-format --endian=little --sign=signed \
                    -o "$work/decoded.raw" "$out"
                python3 "$work/same.py" "$audio/$f.wav" "$work/decoded.raw" ||
                    { echo "compare.sh: $name on $f is not lossless" >&2; exit 1; }
            fi
            printf '%s\t%s\t%s\t%s\n' "$f" "$name" "$(cat "$work/time")" \
                "$(stat -c %s "$out")" >>"$results"
        done
    done
done

python3 - "$audio" "$results" "$repeats" "$table" "$files" <<'EOF'
import statistics, struct, sys
from collections import defaultdict

audio, results, repeats, table, files = sys.argv[1:6]

def wav_info(path):
    """(data bytes, seconds) from the RIFF chunks."""
    with open(path, "rb") as f:
        b = f.read(1 << 16)
    i, rate, align = 12, 0, 1
    while i + 8 <= len(b):
        cid, n = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        if cid == b"fmt ":
            _, _, rate, _, align = struct.unpack("<HHIIH", b[i + 8:i + 22])
        if cid == b"data":
            return n, n / align / rate
        i += 8 + n + (n & 1)
    raise SystemExit(f"{path}: no data chunk")

runs = defaultdict(list)
for line in open(results):
    f, name, times, size = line.rstrip("\n").split("\t")
    wall, user, sys_ = map(float, times.split())
    runs[(f, name)].append((user + sys_, wall, int(size)))

names = list(dict.fromkeys(name for (_, name) in runs))
files = files.split()
info = {f: wav_info(f"{audio}/{f}.wav") for f in files}
lines = [
    f"Median of {repeats} interleaved single-threaded runs; speed = audio seconds "
    "per CPU second (user+sys), wall-time speed in brackets; size = output bytes / "
    "WAV data bytes.",
    "",
    "| encoder | " + " | ".join(f"{f} size | {f} speed" for f in files) + " |",
    "| --- |" + " --- | --- |" * len(files),
]
for name in names:
    cells = []
    for f in files:
        r = runs.get((f, name))
        if not r:
            cells += ["", ""]
            continue
        data, seconds = info[f]
        cpu = statistics.median(x[0] for x in r)
        wall = statistics.median(x[1] for x in r)
        size = statistics.median(x[2] for x in r)
        speed = f"{seconds / cpu:.0f}x" if cpu > 0 else "-"
        cells += [f"{size / data:.4f}", f"{speed} ({seconds / max(wall, 1e-3):.0f}x)"]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
text = "\n".join(lines) + "\n"
print(text)
with open(table, "w") as out:
    out.write(text)
print(f"(written to {table})", file=sys.stderr)
EOF
