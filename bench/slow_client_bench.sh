#!/usr/bin/env bash
# Slow-client benchmark (not a test): a real host with the default listener
# settings (64 threads, 32 connections per peer, 10 s header deadline,
# max_body_memory 256 MiB); SLOW connections attack it while an honest
# sender on 127.0.0.1 posts signed deliveries. Prints the honest sender's
# latency alone and under attack, in the same run, and the host's peak RSS.
# MODE heads (default): the connections, from 127.0.0.2, trickle header
# lines and never finish. MODE bodies: the connections, 32 per address from
# 127.0.0.10 on, each send a 1 MiB body but its last byte.
#   bench/slow_client_bench.sh [SLOW] [SECONDS] [MODE]   # defaults: 1000, 30, heads
# BENCH_BODY_MEMORY: the host's listener.max_body_memory (default: the
# config's default, 256MiB; 0: no cap).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLOW=${1:-1000}
SECONDS_RUN=${2:-30}
MODE=${3:-heads}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
ulimit -n 65536 2>/dev/null || true

bench_workdir bench
bench_build
secret=$(openssl rand -hex 32)
# The listener as an out-of-the-box install has it; only the port differs.
cat >"$work/bench.yaml" <<YAML
admin: {enabled: false}
log: {level: info}
listener: {address: 127.0.0.1, port: 0${BENCH_BODY_MEMORY:+, max_body_memory: $BENCH_BODY_MEMORY}}
store: {path: $work/db/clayhook.db}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
YAML
start_host "$work/bench.yaml" "$work/host.log"
"$BUILD/bin/slow-clients" "$host_port" "$secret" "$SLOW" "$SECONDS_RUN" "$MODE"
printf 'host: peak RSS %s MB, listener.max_body_memory %s\n' \
  "$(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$host_pid/status")" "${BENCH_BODY_MEMORY:-256MiB (default)}"
stop_host
