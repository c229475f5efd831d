#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time on a copy of the committed
# corpus (fuzz/corpus/<target>/ is never changed by a run), prints its
# figures, and exits non-zero if any target found a crash, a hang or an
# out-of-memory.
#
#   fuzz/run.sh [seconds-per-target]      (default 60)
#
# Toolchain: `cargo +nightly fuzz` with AddressSanitizer when a nightly
# toolchain is installed; otherwise (or with FUZZ_STABLE=1) the stable
# toolchain with RUSTC_BOOTSTRAP=1 and `--sanitizer none`: libFuzzer's
# coverage-guided search without ASan, which Rust's own checks (bounds,
# overflow, debug assertions) make nearly as strict for safe code.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler
# (libfuzzer-sys builds libFuzzer).
#
# Knobs (environment): FUZZ_TARGETS (default "wav_header ingest"),
# FUZZ_STABLE=1, FUZZ_PARALLEL=0 to run the targets one after the other
# (by default they run side by side, one core each, when there are two cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: fuzz/run.sh [seconds-per-target]" >&2
  exit 2
fi
read -r -a targets <<<"${FUZZ_TARGETS:-wav_header ingest segment media}"

# Largest input per target, in bytes: a header needs a few KiB at most; 16 KiB
# of audio spans many frames at the small block sizes the inputs choose.
max_len() {
  case "$1" in
    wav_header) echo 4096 ;;
    segment) echo 1024 ;;
    media) echo 16384 ;;
    *) echo 16384 ;;
  esac
}
# Memory per target process, in MiB: a stream needs a few MiB; anything near
# this is an allocation driven by a declared size.
RSS_LIMIT_MB=2048
# Seconds one input may take before it counts as a hang.
UNIT_TIMEOUT_SECONDS=30

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
  exit 2
fi

toolchain=()
if [ "${FUZZ_STABLE:-0}" != 1 ] && command -v rustup >/dev/null 2>&1 \
  && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  sanitizer=address
else
  # cargo-fuzz passes -Z flags; RUSTC_BOOTSTRAP lets a stable rustc take them.
  export RUSTC_BOOTSTRAP=1
  sanitizer=none
fi
fuzz=(cargo "${toolchain[@]}" fuzz)
echo "fuzz: $(cargo "${toolchain[@]}" --version), sanitizer $sanitizer, ${seconds}s per target"

started=$(date +%s)
"${fuzz[@]}" build --sanitizer "$sanitizer" --debug-assertions
built=$(date +%s)
echo "fuzz: build took $((built - started)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Artifacts newer than this stamp were written by this run.
touch "$work/stamp"

run_target() {
  local target="$1"
  mkdir -p "$work/$target/corpus" "fuzz/artifacts/$target"
  cp fuzz/corpus/"$target"/* "$work/$target/corpus/"
  local begun rc=0
  begun=$(date +%s)
  "${fuzz[@]}" run --sanitizer "$sanitizer" --debug-assertions "$target" "$work/$target/corpus" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb="$RSS_LIMIT_MB" \
    -timeout="$UNIT_TIMEOUT_SECONDS" -print_final_stats=1 >"$work/$target/log" 2>&1 || rc=$?
  echo $(($(date +%s) - begun)) >"$work/$target/elapsed"
  return "$rc"
}

declare -A rc
if [ "${FUZZ_PARALLEL:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  declare -A pid
  for t in "${targets[@]}"; do
    run_target "$t" &
    pid[$t]=$!
  done
  for t in "${targets[@]}"; do
    rc[$t]=0
    wait "${pid[$t]}" || rc[$t]=$?
  done
else
  for t in "${targets[@]}"; do
    rc[$t]=0
    run_target "$t" || rc[$t]=$?
  done
fi

failed=0
for t in "${targets[@]}"; do
  log="$work/$t/log"
  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  execs="$(final_stat number_of_executed_units)"
  rate="$(final_stat average_exec_per_sec)"
  rss="$(final_stat peak_rss_mb)"
  # The last status line, e.g. "#123 DONE cov: 812 ft: 2600 corp: 150/90Kb ...".
  status="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[A-Za-z]*\).*/\1/p' <<<"$status")"
  seeds="$(find "fuzz/corpus/$t" -type f | wc -l)"
  crashes="$(find "fuzz/artifacts/$t" -type f -newer "$work/stamp" | wc -l)"
  echo "fuzz $t: ${execs:-?} execs in $(cat "$work/$t/elapsed" 2>/dev/null || echo '?') s (${rate:-?} exec/s), cov ${cov:-?}, ft ${ft:-?}," \
    "corpus ${corp:-?} (from $seeds committed), peak rss ${rss:-?} MB, crashes $crashes, exit ${rc[$t]}"
  if [ "${rc[$t]}" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "--- fuzz $t: last 60 lines of the libFuzzer log"
    tail -n 60 "$log"
    while IFS= read -r f; do
      echo "--- $f (base64; reproduce with: cargo fuzz run $t $f)"
      base64 "$f" | head -c 20000
      echo
    done < <(find "fuzz/artifacts/$t" -type f -newer "$work/stamp")
  fi
done
echo "fuzz: total $(($(date +%s) - started)) s"
exit "$failed"
