#!/usr/bin/env bash
# Lag benchmark (not a test): how long an acknowledged delivery waits before
# a plugin handles it, at a steady rate of half the host's intake maximum.
#   bench/lag_bench.sh [SECONDS]          # default 20
# Step 1 measures the intake maximum of the host as configured here (jsonl
# sink with fsync on, so dispatch runs alongside) with delivery-driver at
# --rate 0 for BENCH_MAX_SECONDS. Step 2 starts a fresh host, drives it at
# half that rate for SECONDS, waits until the sink has every acknowledged
# delivery, and reads each one's lag, handled_at_ms - received_at_ms, from
# the sink's lines.
# Environment: BUILD (default build), BENCH_CONNS (driver connections,
# default 16), BENCH_MAX_SECONDS (default 5), BENCH_RATE (skip step 1 and
# drive at this rate), BENCH_SINK_FSYNC (the sink's fsync, default true),
# BENCH_KEEP=1 (keep the temporary folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${1:-20}
CONNS=${BENCH_CONNS:-16}
MAX_SECONDS=${BENCH_MAX_SECONDS:-5}
RATE=${BENCH_RATE:-}
FSYNC=${BENCH_SINK_FSYNC:-true}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
command -v python3 >/dev/null || ensure_packages python3

bench_workdir lag
bench_build
secret=$(openssl rand -hex 32)

# start_fresh_host NAME: a fresh host with its own store and sink under
# $work/NAME; waits (bounded) for msg=ready and sets host_port.
start_fresh_host() {
  local dir=$work/$1
  mkdir -p "$dir"
  cat >"$dir/bench.yaml" <<YAML
admin: {enabled: false}
log: {level: info}
listener: {address: 127.0.0.1, port: 0, threads: 64, max_connections: 1024, max_connections_per_peer: 0}
store: {path: $dir/db/clayhook.db, durable: true}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
plugins:
  - name: sink
    library: bundled:jsonl-sink
    config: {path: $dir/events.jsonl, fsync: $FSYNC}
dispatch: {workers: 4, shutdown_timeout: 5s}
YAML
  start_host "$dir/bench.yaml" "$dir/host.log"
}

# drive NAME TSV ARGS...: runs the driver against the current host (in the
# background, so the EXIT trap can stop it) and sets drive_result to its
# RESULT line.
drive() {
  local name=$1 tsv=$2; shift 2
  "$BUILD/bin/delivery-driver" "$tsv" --port "$host_port" --conns "$CONNS" \
    --acked "$work/$name/acked.txt" "$@" >"$work/$name/driver.out" 2>"$work/$name/driver.err" &
  driver_pid=$!
  wait "$driver_pid" || { echo "driver failed:" >&2; cat "$work/$name/driver.err" >&2; return 1; }
  driver_pid=
  drive_result=$(grep '^RESULT' "$work/$name/driver.out")
}

max_result="not measured (BENCH_RATE=$RATE)"
if [ -z "$RATE" ]; then
  # Enough unique deliveries not to run out below 20k/s (if they do run out,
  # the figure is still acknowledged lines over the seconds it took).
  max_lines=$((MAX_SECONDS * 20000))
  say "step 1: intake maximum, driver at --rate 0 for $MAX_SECONDS s ($max_lines deliveries ready)"
  "$BUILD/bin/gen-deliveries" "$max_lines" "$secret" "$work/max.tsv" max_
  start_fresh_host max
  drive max "$work/max.tsv" --rate 0 --duration "$MAX_SECONDS"
  max_result=$drive_result
  stop_host
  rm -f "$work/max.tsv"
  RATE=$(( $(field "$max_result" rps) / 2 ))
  [ "$RATE" -ge 1 ] || { echo "intake maximum too low: $max_result" >&2; exit 1; }
fi

lines=$((RATE * SECONDS_RUN))
say "step 2: $lines deliveries at $RATE/s ($SECONDS_RUN s) on a fresh host"
"$BUILD/bin/gen-deliveries" "$lines" "$secret" "$work/lag.tsv" lag_
start_fresh_host lag
drive lag "$work/lag.tsv" --rate "$RATE"
lag_result=$drive_result
t_driver=$(now_ms)

say "waiting for the sink to catch up (until nothing is missing, or 30 s without progress)"
count_missing() {
  python3 - "$work/lag/acked.txt" "$work/lag/events.jsonl" <<'PY'
import re, sys
acked = {l.split("\t")[1] for l in open(sys.argv[1]) if l.count("\t") >= 2}
seen = set()
try:
    with open(sys.argv[2], errors="replace") as f:
        for line in f:
            m = re.match(r'\{"id":"([^"]+)"', line)
            if m: seen.add(m.group(1))
except FileNotFoundError:
    pass
print(len(acked - seen))
PY
}
last=-1; last_change=$(now_ms); caught_up="no (gave up after 900 s)"
for _ in $(seq 1 1800); do
  m=$(count_missing)
  if [ "$m" -eq 0 ]; then caught_up=yes; break; fi
  if [ "$m" != "$last" ]; then last=$m; last_change=$(now_ms); fi
  if [ $(($(now_ms) - last_change)) -ge 30000 ]; then
    caught_up="no (gave up: $m still missing after 30 s without progress)"; break
  fi
  sleep 0.5
done
catch_up_s=$(secs "$t_driver" "$(now_ms)")
stop_host

lag=$(python3 - "$work/lag/acked.txt" "$work/lag/events.jsonl" "$ROOT/bench" <<'PY'
import math, sys
sys.path.insert(0, sys.argv[3])
from sinklog import acked_ids, first_handlings
acked = acked_ids(sys.argv[1])
first, _ = first_handlings(sys.argv[2])
lags = sorted(h - r for i, (h, r) in first.items() if i in acked)
handled = sorted(h for h, _ in first.values())
span = (handled[-1] - handled[0]) / 1000 if len(handled) > 1 else 0
def pct(p):
    return lags[max(0, math.ceil(p / 100 * len(lags)) - 1)] if lags else "n/a"
print(f"count={len(lags)} p50={pct(50)} p90={pct(90)} p99={pct(99)} "
      f"max={lags[-1] if lags else 'n/a'} missing={len(acked - first.keys())} acked={len(acked)} "
      f"span={span:.1f} handled_rps={len(handled) / span if span else 0:.0f}")
PY
)

printf '\nlag benchmark: %s s at %s deliveries/s, %s driver connections, durable store, sink fsync %s, %s cores\n' \
  "$SECONDS_RUN" "$RATE" "$CONNS" "$FSYNC" "$(nproc)"
if [[ $max_result == RESULT* ]]; then
  printf 'intake maximum (step 1, driver --rate 0, %s s): %s/s  [%s]\n' \
    "$MAX_SECONDS" "$(field "$max_result" rps)" "${max_result#RESULT }"
else
  printf 'intake maximum: %s\n' "$max_result"
fi
printf 'driven (step 2): asked %s/s, got %s/s  [%s]\n' "$RATE" "$(field "$lag_result" rps)" "${lag_result#RESULT }"
printf 'lag acked -> handled (ms, first handling of each id): p50 %s  p90 %s  p99 %s  max %s  count %s  (goal p99 <= 50 ms)\n' \
  "$(field "$lag" p50)" "$(field "$lag" p90)" "$(field "$lag" p99)" "$(field "$lag" max)" "$(field "$lag" count)"
printf 'sink: first handlings spread over %s s, %s/s\n' "$(field "$lag" span)" "$(field "$lag" handled_rps)"
printf 'acknowledged: %s; never handled: %s; waited %s s for the sink after the driver ended (caught up: %s); final SIGTERM exit code %s\n' \
  "$(field "$lag" acked)" "$(field "$lag" missing)" "$catch_up_s" "$caught_up" "$host_rc"
