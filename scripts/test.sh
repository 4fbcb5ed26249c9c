#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors,
# checks formatting, and runs every test through ctest; then does the same
# in an AddressSanitizer/UndefinedBehaviorSanitizer build; then runs the fuzz
# targets of tests/fuzz/ for a bounded time each (scripts/fuzz.sh, build-fuzz/).
#   CLAYHOOK_TEST_SANITIZE=0  skips the sanitizer pass (CI keeps it on)
#   CLAYHOOK_TEST_FUZZ=0      skips the fuzz pass (CI keeps it on)
#   CLAYHOOK_FUZZ_SECONDS=N   how long each fuzz target runs (default 20)
#   extra arguments go to ctest, e.g. scripts/test.sh -R loader
set -euo pipefail
CLAYHOOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CLAYHOOK_ROOT/scripts/lib.sh"
cd "$CLAYHOOK_ROOT"

ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" "${CLAYHOOK_TEST_PACKAGES[@]}"

say "checking clang-format"
mapfile -t sources < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' 2>/dev/null || true)
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi

say "building (build/, warnings as errors)"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLAYHOOK_WERROR=ON -DCLAYHOOK_BUILD_TESTS=ON
say "running the tests"
(cd build && ctest --output-on-failure -j2 "$@")

if [ "${CLAYHOOK_TEST_SANITIZE:-1}" != 0 ]; then
  say "building (build-asan/, AddressSanitizer + UndefinedBehaviorSanitizer)"
  build build-asan -DCMAKE_BUILD_TYPE=Debug -DCLAYHOOK_WERROR=ON -DCLAYHOOK_SANITIZE=ON \
    -DCLAYHOOK_BUILD_TESTS=ON
  say "running the tests under the sanitizers"
  # allow_user_segv_handler: the host's own fatal-signal line (crash/FatalSignal)
  # is under test too; it hands the signal on to the sanitizer's handler.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allow_user_segv_handler=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2 "$@")
fi

if [ "${CLAYHOOK_TEST_FUZZ:-1}" != 0 ]; then
  say "fuzzing (build-fuzz/, libFuzzer + ASan + UBSan, ${CLAYHOOK_FUZZ_SECONDS:-20} s per target)"
  bash "$CLAYHOOK_ROOT/scripts/fuzz.sh"
fi
say "all tests passed"
