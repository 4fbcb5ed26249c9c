#!/usr/bin/env bash
# The fuzz pass: builds the libFuzzer targets of tests/fuzz/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (build-fuzz/, nothing else of the project), then runs each one for a
# bounded time from a scratch copy of its seed corpus tests/fuzz/corpus/NAME/ (what it discovers
# is not written back into the repository). scripts/test.sh runs it; it also runs on its own.
#   CLAYHOOK_FUZZ_SECONDS=20  how long each target runs
#   extra arguments go to every target, e.g. scripts/fuzz.sh -only_ascii=1
# Exits non-zero when a target crashes, trips a sanitizer, fails one of its own checks, leaks,
# spends over 5 s on one input or over 2 GB of memory, or when a tool is missing. The input that
# did it is kept in build-fuzz/artifacts/NAME/ and its path printed, with the report; rerun it
# with build-fuzz/bin/fuzz-NAME FILE.
set -euo pipefail
CLAYHOOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CLAYHOOK_ROOT/scripts/lib.sh"
cd "$CLAYHOOK_ROOT"

die() { say "fuzz: $*"; exit 1; }

seconds=${CLAYHOOK_FUZZ_SECONDS:-20}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "CLAYHOOK_FUZZ_SECONDS must be a whole number of seconds, not '$seconds'"

ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" "${CLAYHOOK_TEST_PACKAGES[@]}"
for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/lib.sh lists the Debian packages)"
done
# Symbolized stacks in the reports: Debian's llvm-14 has llvm-symbolizer under its own name.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for s in "$(command -v llvm-symbolizer || true)" /usr/lib/llvm-14/bin/llvm-symbolizer; do
    if [ -n "$s" ] && [ -x "$s" ]; then export ASAN_SYMBOLIZER_PATH=$s; break; fi
  done
  [ -n "${ASAN_SYMBOLIZER_PATH:-}" ] || die "llvm-symbolizer not found (Debian package llvm-14)"
fi
export UBSAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER_PATH

out=$CLAYHOOK_ROOT/build-fuzz
say "building the fuzz targets (build-fuzz/, clang + libFuzzer + ASan + UBSan)"
CC=clang CXX=clang++ build "$out" -DCLAYHOOK_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug

manifest=$out/fuzz-targets.txt
[ -s "$manifest" ] || die "no fuzz targets listed in $manifest"
mapfile -t targets < "$manifest"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$out/fuzz-logs"
failed=()

for line in "${targets[@]}"; do
  [ -n "$line" ] || continue
  IFS=$'\t' read -r name bin corpus <<<"$line"
  [ -x "$bin" ] || die "$name: $bin was not built"
  [ -d "$corpus" ] || die "$name: no corpus folder $corpus"
  work=$scratch/$name
  mkdir -p "$work/corpus" "$work/tmp"
  cp -R "$corpus/." "$work/corpus/"
  artifacts=$out/artifacts/$name
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  log=$out/fuzz-logs/$name.log
  say "fuzzing $name for ${seconds}s ($(find "$corpus" -type f | wc -l) seeds)"

  rc=0
  # handle_abort: a stack for abort() too (a target's own check, an uncaught exception).
  (cd "$work" && TMPDIR=$work/tmp ASAN_OPTIONS=handle_abort=1${ASAN_OPTIONS:+:$ASAN_OPTIONS} \
     UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
     timeout -k 10 $((seconds + 120)) "$bin" -max_total_time="$seconds" -timeout=5 \
       -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
       "$@" "$work/corpus" </dev/null >"$log" 2>&1) || rc=$?

  if [ "$rc" -eq 0 ]; then
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | tr -s ' \t' ' ' || true)
    say "$name: nothing found: ${done_line:-finished}"
    continue
  fi

  failed+=("$name")
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "$name: did not stop on its own after ${seconds}s (exit $rc)"
  else
    say "$name: FOUND SOMETHING (exit $rc); the report, from $log:"
  fi
  # The report: from the first line of a sanitizer, libFuzzer or target complaint to the end.
  first=$(grep -n -m1 -E 'FUZZ CHECK FAILED|DEADLYSIGNAL|^==[0-9]+==|runtime error:|ERROR: libFuzzer|terminate called|^INFO: libFuzzer: .* (deadly signal|timeout)' "$log" | cut -d: -f1 || true)
  if [ -n "$first" ]; then sed -n "${first},\$p" "$log" | head -n 200 >&2; else tail -n 60 "$log" >&2; fi
  found=0
  for f in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
    [ -e "$f" ] || continue
    found=1
    say "$name: reproducer: $f ($(wc -c <"$f") bytes); rerun: $bin $f"
  done
  [ "$found" -eq 1 ] || say "$name: no reproducer was written; see $log"
done

if [ ${#failed[@]} -gt 0 ]; then
  say "fuzzing FAILED: ${failed[*]} (reproducers under build-fuzz/artifacts/, logs under build-fuzz/fuzz-logs/)"
  exit 1
fi
say "fuzzing: ${#targets[@]} target(s), ${seconds}s each, nothing found"
