#!/usr/bin/env bash
# HubSpot push benchmark (not a test): records per second that the bundled
# hubspot-push plugin upserts into the fake HubSpot (tests/fakes/FakeHubSpot),
# batched (one batch upsert call per object type for up to 100 events)
# versus unbatched (the same plugin with `batch: false`: one call per record
# and object type), on the same machine in the same run.
#   bench/hubspot_bench.sh [RECORDS]      # default 2000 per mode
# It runs the hidden Catch2 case "[.bench][hubspot-bench]" of the build's
# clayhook-tests: for each mode a real store, the real dispatcher and the
# real plugin .so, RECORDS enrichment.completed events stored while the
# plugin is paused, then timed from resume until every call has returned.
# Prints: records/s batched=…, unbatched=…, ratio=…
# Environment: BUILD (default build; configured with tests on and built
# here), BENCH_KEEP=1 (keep the temporary folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDS=${1:-2000}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" "${CLAYHOOK_TEST_PACKAGES[@]}"

bench_workdir hubspot-bench

say "building $BUILD (clayhook-tests, hubspot-push)"
{ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLAYHOOK_BUILD_TESTS=ON &&
  cmake --build "$BUILD" --target clayhook-tests hubspot-push clayhook; } >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; exit 1; }

say "pushing $RECORDS records per mode into the fake HubSpot"
TMPDIR=$work HUBSPOT_BENCH_RECORDS=$RECORDS \
  "$BUILD/bin/clayhook-tests" "[hubspot-bench]" >"$work/run.log" 2>&1 ||
  { cat "$work/run.log" >&2; exit 1; }
grep '^records/s ' "$work/run.log"
