#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz/ (AddressSanitizer and
# UndefinedBehaviorSanitizer on, the library instrumented for coverage) and runs each for a set
# time on a generated seed corpus. Not part of CI; installs clang and libFuzzer if missing.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, all targets
#
# The corpus grows in build-fuzz/fuzz-corpus/TARGET across runs; a crashing input is saved as
# build-fuzz/fuzz-artifacts/TARGET-crash-... and the script exits 1. Replay one with
#   build-fuzz/fuzz/TARGET FILE
# A crash stops its target; FUZZ_KEEP_GOING=1 runs each in libFuzzer's fork mode, which saves
# every crash and goes on (fuzz_model_file meets a known LibTorch crash, tests/fuzz/known_crashes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_image fuzz_metadata fuzz_model_file fuzz_codec_container fuzz_codec_decoder)

"$root/scripts/setup.sh"
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build="${BOTTLENECK_FUZZ_BUILD_DIR:-$root/build-fuzz}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ -DBUILD_TESTING=OFF -DBOTTLENECK_FUZZ=ON \
  -DBOTTLENECK_SANITIZE=address,undefined,fuzzer-no-link >/dev/null
cmake --build "$build" --target "${targets[@]}" fuzz_make_seeds

rm -rf "$build/fuzz-seeds"
"$build/fuzz/fuzz_make_seeds" "$build/fuzz-seeds" >/dev/null
mkdir -p "$build/fuzz-artifacts"

# LibTorch keeps caches that look like per-input leaks to libFuzzer: leak checks are off.
# halt_on_error makes an undefined-behaviour report a crash the fuzzer saves.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
summary=""
for t in "${targets[@]}"; do
  seeds="$build/fuzz-seeds/${t#fuzz_}"
  corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  log="$build/fuzz-artifacts/$t.log"
  echo "fuzz: $t for $seconds s (log: $log)" >&2
  keep_going=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep_going=(-fork=1 -ignore_crashes=1)
  set +e
  "$build/fuzz/$t" "${keep_going[@]}" "$corpus" "$seeds" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  # Fork mode prints no final stats: its last status line "#N ..." counts the executions.
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  crashes=$(ls "$build/fuzz-artifacts" | grep -c "^$t-" || true)
  summary+="$t: $runs executions, exit $rc, $crashes saved crash input(s)"$'\n'
  [ "$rc" -eq 0 ] || status=1
done
printf '%s' "$summary"
exit $status
