#!/usr/bin/env bash
# Renders the real audio that benches, benches/compare.sh and loadtest/ use.
# Nothing here is committed: the audio is made from Debian packages each time.
#
#   music-16.wav    240 s, 44.1 kHz, 16-bit stereo: General MIDI music
#                   (planetblupi-music-midi) rendered by fluidsynth with the
#                   FluidR3 GM soundfont, normalised to -1 dBFS
#   music-24.wav    120 s, 48 kHz, 24-bit stereo: the same music rendered at
#                   48 kHz in floating point and kept at 24 bits
#   speech-16k.wav  120 s, 16 kHz, 16-bit mono: recorded prompts of a human
#                   speaker (asterisk-core-sounds-en-g722) decoded from G.722
#
# Usage: benches/audio.sh [OUT_DIR]   (default: $FLACSTREAM_BENCH_AUDIO, else
# target/bench-audio). Existing files are kept; delete them to re-render.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${FLACSTREAM_BENCH_AUDIO:-$repo/target/bench-audio}}
mkdir -p "$out"

# Lengths in seconds.
MUSIC_16_SECONDS=240
MUSIC_24_SECONDS=120
SPEECH_SECONDS=120
# G.722 carries 64 kbit/s, so this many bytes of it hold one second of speech.
G722_BYTES_PER_SECOND=8000

MIDI_DIR=/usr/share/planetblupi/music
SOUNDFONT=/usr/share/sounds/sf2/FluidR3_GM.sf2
SPEECH_DIR=/usr/share/asterisk/sounds/en_US_f_Allison
PACKAGES="fluidsynth fluid-soundfont-gm planetblupi-music-midi asterisk-core-sounds-en-g722 ffmpeg sox"

need_packages() {
    command -v fluidsynth >/dev/null && command -v ffmpeg >/dev/null &&
        command -v sox >/dev/null && [ -d "$MIDI_DIR" ] && [ -f "$SOUNDFONT" ] &&
        [ -d "$SPEECH_DIR" ] && return 1
    return 0
}

if need_packages; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "audio.sh: installing $PACKAGES" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES >/dev/null
    else
        echo "audio.sh: needs Debian packages: $PACKAGES" >&2
        echo "  sudo apt-get install $PACKAGES" >&2
        exit 2
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Renders every MIDI file at rate $1 into one float WAV long enough for $2 s.
render_music() {
    local rate=$1 seconds=$2 dest=$3 parts=() total=0 i=0
    for midi in "$MIDI_DIR"/*.mid; do
        local part="$work/part-$rate-$i.wav"
        fluidsynth -ni -q -r "$rate" -O float -T wav -F "$part" "$SOUNDFONT" "$midi" 2>/dev/null
        parts+=("$part")
        total=$(python3 -c "import sys; print($total + float(sys.argv[1]))" "$(soxi -D "$part" 2>/dev/null)")
        i=$((i + 1))
        python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= $seconds else 1)" "$total" && break
    done
    sox -V1 "${parts[@]}" "$dest" trim 0 "$seconds"
}

if [ ! -f "$out/music-16.wav" ] || [ ! -f "$out/music-24.wav" ]; then
    render_music 44100 "$MUSIC_16_SECONDS" "$work/music-44100.wav"
    sox -V1 --norm=-1 "$work/music-44100.wav" -b 16 -e signed-integer "$out/music-16.wav"
    render_music 48000 "$MUSIC_24_SECONDS" "$work/music-48000.wav"
    sox -V1 --norm=-1 "$work/music-48000.wav" -b 24 -e signed-integer "$out/music-24.wav"
fi

if [ ! -f "$out/speech-16k.wav" ]; then
    # Raw G.722 files concatenate into one valid stream; decode it once.
    want=$((SPEECH_SECONDS * G722_BYTES_PER_SECOND))
    : >"$work/speech.g722"
    for f in "$SPEECH_DIR"/*.g722; do
        cat "$f" >>"$work/speech.g722"
        [ "$(stat -c %s "$work/speech.g722")" -ge "$want" ] && break
    done
    ffmpeg -loglevel error -y -f g722 -i "$work/speech.g722" -ar 16000 -ac 1 \
        -c:a pcm_s16le -t "$SPEECH_SECONDS" "$out/speech-16k.wav"
fi

for f in music-16.wav music-24.wav speech-16k.wav; do
    printf '%-16s %s\n' "$f" "$(soxi "$out/$f" | awk -F': ' '/Sample Rate|Channels|Precision|Duration/ {printf "%s ", $2}')"
done
