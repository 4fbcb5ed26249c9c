#!/usr/bin/env bash
# Slow-client benchmark (not a test): a real host with the default listener
# settings (64 threads, 32 connections per peer, 10 s header deadline);
# 1,000 connections from 127.0.0.2 trickle header lines and never finish,
# while an honest sender on 127.0.0.1 posts signed deliveries. Prints the
# honest sender's latency alone and under attack, in the same run.
#   bench/slow_client_bench.sh [SLOW] [SECONDS]     # defaults: 1000, 30
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLOW=${1:-1000}
SECONDS_RUN=${2:-30}
BUILD=${BUILD:-$ROOT/build}
. "$ROOT/scripts/lib.sh"
CLAYHOOK_ROOT=$ROOT
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
build "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-bench-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
secret=$(openssl rand -hex 32)
wait_for() {
  for _ in $(seq 1 600); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
# The listener as an out-of-the-box install has it; only the port differs.
cat >"$work/bench.yaml" <<YAML
admin: {enabled: false}
log: {level: info}
listener: {address: 127.0.0.1, port: 0}
store: {path: $work/db/clayhook.db}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
YAML
BENCH_SECRET=$secret "$BUILD/bin/clayhook" serve --config "$work/bench.yaml" >"$work/host.log" 2>&1 &
host_pid=$!; pids+=("$host_pid")
wait_for "$work/host.log" 'msg=ready'
port=$(sed -n 's/.*listen=127.0.0.1:\([0-9]*\).*/\1/p' "$work/host.log" | head -1)
"$BUILD/bin/slow-clients" "$port" "$secret" "$SLOW" "$SECONDS_RUN"
