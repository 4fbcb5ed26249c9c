#!/usr/bin/env bash
# Crash benchmark (not a test): drives the host with delivery-driver while
# SIGKILLing and restarting it KILLS times on the same store, then checks
# that every delivery the host acknowledged reached the jsonl-sink plugin.
#   bench/crash_bench.sh [KILLS] [DELIVERIES]          # defaults: 20, 20000
# Environment: BUILD (default build), BENCH_JOURNAL (store.journal, default
# true, as the host's), BENCH_CONNS (driver connections,
# default 8), BENCH_RATE (driver requests/s, default 0 = unlimited),
# BENCH_KEEP=1 (keep the temporary folder; it is also kept when an
# acknowledged delivery is lost).
# Exits 1 if an acknowledged delivery never reached the sink.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KILLS=${1:-20}
N=${2:-20000}
CONNS=${BENCH_CONNS:-8}
RATE=${BENCH_RATE:-0}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" sqlite3
command -v python3 >/dev/null || ensure_packages python3

bench_workdir crash
bench_build

secret=$(openssl rand -hex 32)
say "generating $N unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$N" "$secret" "$work/deliveries.tsv"

# One port for every incarnation of the host, so the driver keeps its target.
port=$(free_port)
sink=$work/events.jsonl
cat >"$work/bench.yaml" <<YAML
admin: {enabled: false}
log: {level: info}
listener: {address: 127.0.0.1, port: $port, threads: 16, max_connections: 1024, max_connections_per_peer: 0}
store: {path: $work/db/clayhook.db, durable: true, journal: ${BENCH_JOURNAL:-true}}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
plugins:
  - name: sink
    library: bundled:jsonl-sink
    config: {path: $sink, fsync: true}
dispatch: {workers: 4, shutdown_timeout: 5s}
YAML

# start_incarnation N: starts the host's Nth life on the same store and port.
start_incarnation() { start_host "$work/bench.yaml" "$work/host.$1.log"; }

# missing: how many acknowledged ids are not in the sink yet.
missing() {
  python3 - "$work/acked.txt" "$sink" <<'PY'
import re, sys
acked = set()
with open(sys.argv[1]) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2: acked.add(parts[1])
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

say "host on 127.0.0.1:$port; driver: $CONNS connections, rate $RATE/s; $KILLS kills"
: >"$work/acked.txt"
: >"$work/kills.txt"
start_incarnation 0
t_start=$(now_ms)
"$BUILD/bin/delivery-driver" "$work/deliveries.tsv" --port "$port" --conns "$CONNS" \
  --rate "$RATE" --acked "$work/acked.txt" >"$work/driver.out" 2>"$work/driver.err" &
driver_pid=$!

kills_under_load=0
restart_ms=()
for k in $(seq 1 "$KILLS"); do
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + 1.2 * r / 32767 }')"
  if kill -0 "$driver_pid" 2>/dev/null; then kills_under_load=$((kills_under_load + 1)); fi
  kill -KILL "$host_pid"
  wait "$host_pid" 2>/dev/null || true
  t0=$(now_ms)
  echo "$t0" >>"$work/kills.txt"   # just after the kill: nothing is handled in between
  start_incarnation "$k"
  restart_ms+=($(($(now_ms) - t0)))
  say "kill $k/$KILLS: $(wc -l <"$work/acked.txt") acknowledged so far, ready again in ${restart_ms[-1]} ms"
done

t_kills=$(now_ms)
say "letting the driver finish the file (up to 600 s)"
for _ in $(seq 1 6000); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.1; done
driver_finished=yes
if kill -0 "$driver_pid" 2>/dev/null; then
  driver_finished="no (stopped with SIGTERM after 600 s)"
  kill -TERM "$driver_pid"
fi
wait "$driver_pid" || true
driver_pid=
t_driver=$(now_ms)

say "waiting for the sink to catch up (until nothing is missing, or 30 s without progress)"
last=-1; last_change=$(now_ms); caught_up="no (gave up after 900 s)"
for _ in $(seq 1 1800); do
  m=$(missing)
  if [ "$m" -eq 0 ]; then caught_up=yes; break; fi
  if [ "$m" != "$last" ]; then last=$m; last_change=$(now_ms); fi
  if [ $(($(now_ms) - last_change)) -ge 30000 ]; then
    caught_up="no (gave up: $m still missing after 30 s without progress)"; break
  fi
  sleep 0.5
done
t_caught_up=$(now_ms)
stop_host
events=$(sqlite3 "$work/db/clayhook.db" 'select count(*) from events' 2>/dev/null || echo '?')

report=$(python3 - "$work/acked.txt" "$sink" "$work/kills.txt" <<'PY'
import bisect, collections, json, sys
acked, dup_answers = set(), 0
with open(sys.argv[1]) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3: continue
        acked.add(parts[1])
        dup_answers += parts[2] == "duplicate"
seen, lines, bad, retried = collections.Counter(), 0, 0, 0
first = {}  # id -> handled_at_ms of its first handling
try:
    with open(sys.argv[2], errors="replace") as f:
        for line in f:
            lines += 1
            try:
                ev = json.loads(line)
            except ValueError:
                bad += 1
                continue
            seen[ev["id"]] += 1
            first[ev["id"]] = min(first.get(ev["id"], ev["handled_at_ms"]), ev["handled_at_ms"])
            retried += ev.get("attempt", 1) > 1
except FileNotFoundError:
    pass
lost = len(acked - seen.keys())
more = [i for i, c in seen.items() if c > 1]
# A delivery handled again after a restart should have been in flight at a
# kill: its first handling shortly before one. Gap to the next kill, in ms.
kills = sorted(int(l) for l in open(sys.argv[3]) if l.strip())
gaps, after_last = [], 0
for i in more:
    k = bisect.bisect_left(kills, first[i])
    if k == len(kills): after_last += 1
    else: gaps.append(kills[k] - first[i])
print(f"acked={len(acked)} lost={lost} more={len(more)} dup_answers={dup_answers} lines={lines} "
      f"bad={bad} unacked={len(seen.keys() - acked)} retried={retried} "
      f"gap_max={max(gaps) if gaps else 'n/a'} after_last={after_last}")
PY
)
driver=$(grep '^RESULT' "$work/driver.out" || echo "RESULT (none: see $work/driver.err)")
restarts=$(printf '%s\n' "${restart_ms[@]}" | sort -n | awk '{ s += $1; a[NR] = $1 } END { if (NR) printf "avg %.0f ms, max %d ms", s / NR, a[NR]; else printf "none" }')
lost=$(field "$report" lost)

printf '\ncrash benchmark: %s deliveries, %s driver connections, rate %s/s, %s cores\n' \
  "$N" "$CONNS" "$RATE" "$(nproc)"
printf 'driver: %s\n' "${driver#RESULT }"
printf 'driver finished the file: %s; kills while the driver was still sending: %s of %s\n' \
  "$driver_finished" "$kills_under_load" "$KILLS"
printf 'SIGKILL to ready again: %s\n' "$restarts"
printf 'crash bench: kills=%s acked=%s lost=%s (goal 0) handled_more_than_once=%s (expected only for calls in flight at a kill) duplicates_answered=%s\n' \
  "$KILLS" "$(field "$report" acked)" "$lost" "$(field "$report" more)" "$(field "$report" dup_answers)"
printf 'handled again: first handling at most %s ms before the next kill; handled again with no kill after the first handling: %s\n' \
  "$(field "$report" gap_max)" "$(field "$report" after_last)"
printf 'sink lines: %s (unparsable %s, attempt > 1: %s); sink ids never acknowledged: %s; events in the store: %s\n' \
  "$(field "$report" lines)" "$(field "$report" bad)" "$(field "$report" retried)" \
  "$(field "$report" unacked)" "$events"
printf 'time: %s s in all: the driver sent for %s s, the kills ended at %s s, then %s s waiting for the sink (caught up: %s); final SIGTERM exit code %s\n' \
  "$(secs "$t_start" "$t_caught_up")" "$(field "$driver" seconds)" "$(secs "$t_start" "$t_kills")" \
  "$(secs "$t_driver" "$t_caught_up")" "$caught_up" "$host_rc"
if [ "$lost" != 0 ]; then
  keep=1
  echo "LOST acknowledged deliveries: see $work (acked.txt, events.jsonl, host.*.log)" >&2
  exit 1
fi
