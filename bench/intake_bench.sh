#!/usr/bin/env bash
# Intake benchmark (not a test): drives the host with wrk over loopback and
# prints its figures beside those of a bare Poco responder (reads the body,
# checks the HMAC, answers 200) measured in the same run, as ratios.
#   bench/intake_bench.sh [SECONDS] [CONNECTIONS]
# Environment: BENCH_DELIVERIES (default 600000), BENCH_DURABLE (true|false),
# BENCH_SINK (true: the jsonl-sink plugin subscribes, so each event also gets
# a delivery row and is dispatched during the run, as in the default config;
# false: no plugin, intake alone), BUILD (default build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${1:-10}
CONNS=${2:-64}
N=${BENCH_DELIVERIES:-600000}
DURABLE=${BENCH_DURABLE:-true}
SINK=${BENCH_SINK:-true}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" wrk bc sqlite3

bench_workdir bench
bench_build
secret=$(openssl rand -hex 32)
say "generating $N unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$N" "$secret" "$work/deliveries.tsv"
bytes=$(head -1 "$work/deliveries.tsv" | cut -f2 | tr -d '\n' | wc -c)

# run_wrk NAME PORT PID: one warm-up second, then the measured run; prints
# the RESULT line with peak RSS appended.
run_wrk() {
  local name=$1 port=$2 pid=$3
  wrk -t2 -c"$CONNS" -d1s -s "$ROOT/bench/intake.lua" "http://127.0.0.1:$port/webhooks/clay" \
    -- "$work/warm.tsv" 2 >/dev/null
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -s "$ROOT/bench/intake.lua" \
    "http://127.0.0.1:$port/webhooks/clay" -- "$work/deliveries.tsv" 2 | grep '^RESULT')
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "$out rss_kb=$rss name=$name"
}
# Warm-up deliveries have rows of their own, so the measured run sends only new ones.
"$BUILD/bin/gen-deliveries" 40000 "$secret" "$work/warm.tsv" warm_

say "bare responder"
"$BUILD/bin/bare-responder" "$secret" 64 >"$work/bare.log" 2>&1 &
bare_pid=$!; bench_pids+=("$bare_pid")
wait_for "$work/bare.log" '^port='
bare_port=$(sed -n 's/^port=//p' "$work/bare.log")
bare=$(run_wrk bare "$bare_port" "$bare_pid")
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true

say "clayhook (durable=$DURABLE)"
sink=""
[ "$SINK" = true ] && sink="$work/events.jsonl"
intake_config "$work/bench.yaml" "{path: $work/db/clayhook.db, durable: $DURABLE}" "$sink"
start_host "$work/bench.yaml" "$work/host.log"
host=$(run_wrk clayhook "$host_port" "$host_pid")
events=$(sqlite3 "$work/db/clayhook.db" 'select count(*) from events' 2>/dev/null || echo '?')
handled=$( [ -f "$work/events.jsonl" ] && wc -l <"$work/events.jsonl" || echo 0)
stop_host

printf '\nintake benchmark: %s s per run, %s connections, %s-byte bodies, durable=%s, sink=%s, %s cores\n' \
  "$SECONDS_RUN" "$CONNS" "$bytes" "$DURABLE" "$SINK" "$(nproc)"
printf '%-10s %10s %10s %10s %10s %8s %8s\n' "" rps p50_ms p99_ms rss_MB non2xx sock_err
for r in "$bare" "$host"; do
  printf '%-10s %10s %10s %10s %10.1f %8s %8s\n' "$(field "$r" name)" "$(field "$r" rps)" \
    "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$(echo "$(field "$r" rss_kb) / 1024" | bc -l)" \
    "$(field "$r" non2xx)" "$(field "$r" socket_errors)"
done
ratio=$(echo "$(field "$host" rps) / $(field "$bare" rps)" | bc -l)
printf 'ratio clayhook/bare: rps %.2f (goal >= 0.80); clayhook p99 %s ms (goal <= 3); RSS %.0f MB (goal <= 150)\n' \
  "$ratio" "$(field "$host" p99_ms)" "$(echo "$(field "$host" rss_kb) / 1024" | bc -l)"
printf 'events in the store after the run: %s (warm-up included; the measured run sent %s requests)\n' "$events" "$(field "$host" requests)"
[ "$SINK" = true ] && printf 'handed to the sink plugin by the end of the run: %s\n' "$handled"
exit 0
