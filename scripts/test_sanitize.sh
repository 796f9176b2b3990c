#!/usr/bin/env bash
# The unit suite under AddressSanitizer + UndefinedBehaviorSanitizer: builds the library, the CLI
# and the tests with -DBOTTLENECK_SANITIZE=address,undefined in build-asan/ (the normal build/
# is left alone) and runs CTest there. The tests also run the CLI, so it is checked too.
# LibTorch, OpenCV and the other system libraries are not instrumented: errors inside them are
# not found, and their leaks at exit are suppressed (tests/sanitize/lsan.supp says which).
#
#   scripts/test_sanitize.sh [CTEST ARGS...]       e.g. -R BadInput
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
build="${BOTTLENECK_ASAN_BUILD_DIR:-$root/build-asan}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBOTTLENECK_SANITIZE=address,undefined >/dev/null
cmake --build "$build"

# halt_on_error: an undefined-behaviour report fails the test instead of scrolling by.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0"
# Tests with a wall-time budget allow this many times more.
export BOTTLENECK_TIME_BUDGET_SCALE=4
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
