#!/usr/bin/env bash
# Reload benchmark (not a test): how long from a SIGHUP to the new generation
# serving, while signed deliveries keep arriving.
#   bench/reload_bench.sh [RELOADS]        # default 40
# The host runs the jsonl-sink plugin; the config alternates between two
# versions (another output file, another thread count), so every reload
# loads and creates a plugin afresh. delivery-driver sends at BENCH_RATE per
# second throughout. For each SIGHUP the latency is the `ts` of the host's
# `msg=reloaded` line (logged once the new generation is swapped in) minus
# the moment the signal was sent, both read from this machine's clock, to
# the millisecond. Also printed: the host's own `took_ms` (config read to
# swap) and the driver's answers (a reload must not refuse any delivery).
# Environment: BUILD (default build), BENCH_RATE (default 1000),
# BENCH_CONNS (default 8), BENCH_KEEP=1 (keep the temporary folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELOADS=${1:-40}
RATE=${BENCH_RATE:-1000}
CONNS=${BENCH_CONNS:-8}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
command -v python3 >/dev/null || ensure_packages python3

bench_workdir reload
bench_build

# Enough deliveries for the whole run at RATE (about 0.3 s per reload, doubled).
n=$(( RATE * (RELOADS * 6 / 10 + 10) ))
secret=$(openssl rand -hex 32)
say "generating $n unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$n" "$secret" "$work/deliveries.tsv"

port=$(free_port)
# write_config VARIANT: a or b.
write_config() {
  local threads=2
  [ "$1" = b ] && threads=4
  cat >"$work/next.yaml" <<YAML
admin: {enabled: false}
log: {level: info}
listener: {address: 127.0.0.1, port: $port, threads: 16, max_connections: 1024, max_connections_per_peer: 0}
store: {path: $work/db/clayhook.db, durable: true}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
plugins:
  - name: sink
    library: bundled:jsonl-sink
    concurrency: $threads
    config: {path: $work/events-$1.jsonl}
YAML
  mv "$work/next.yaml" "$work/bench.yaml"
}
write_config a

log=$work/host.log
start_host "$work/bench.yaml" "$log"

"$BUILD/bin/delivery-driver" --port "$port" --conns "$CONNS" --rate "$RATE" \
  "$work/deliveries.tsv" >"$work/driver.out" 2>"$work/driver.err" &
driver_pid=$!
sleep 1  # let the load settle before the first reload

say "$RELOADS reloads under $RATE deliveries/s"
: >"$work/sent.txt"
for i in $(seq 1 "$RELOADS"); do
  if [ $((i % 2)) = 1 ]; then write_config b; else write_config a; fi
  before=$(grep -c 'msg=reloaded' "$log" || true)
  echo "$(date +%s%3N)" >>"$work/sent.txt"
  kill -HUP "$host_pid"
  for _ in $(seq 1 2000); do
    now=$(grep -c 'msg=reloaded' "$log" || true)
    [ "$now" -gt "$before" ] && break
    if grep -q 'msg="reload failed' "$log"; then grep 'reload failed' "$log" >&2; exit 1; fi
    sleep 0.005
  done
  [ "$(grep -c 'msg=reloaded' "$log" || true)" -gt "$before" ] ||
    { echo "reload $i did not finish within 10 s" >&2; exit 1; }
  sleep 0.$(( RANDOM % 3 + 1 ))  # 0.1-0.3 s between reloads
done

kill -TERM "$driver_pid" 2>/dev/null || true
wait "$driver_pid" 2>/dev/null || true
driver_pid=
stop_host

python3 - "$work/sent.txt" "$log" "$work/driver.out" "$RELOADS" "$RATE" "$host_rc" "$(nproc)" <<'PY'
import re, sys, datetime
sent = [int(x) for x in open(sys.argv[1]).read().split()]
done, took = [], []
for line in open(sys.argv[2]):
    if "msg=reloaded" not in line:
        continue
    ts = re.search(r"ts=(\S+)", line).group(1)
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    done.append(int(t.timestamp() * 1000 + 0.5))
    took.append(int(re.search(r"took_ms=(\d+)", line).group(1)))
lat = sorted(d - s for s, d in zip(sent, done))
def pct(v, p):
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
took.sort()
driver = next((l.strip() for l in open(sys.argv[3]) if l.startswith("RESULT")), "RESULT (none)")
print(f"\nreload benchmark: {sys.argv[4]} SIGHUPs under {sys.argv[5]} deliveries/s, {sys.argv[7]} cores")
print(f"SIGHUP -> new generation serving (ms): p50 {pct(lat, 50)}  p99 {pct(lat, 99)}  max {lat[-1]}  (goal p99 <= 100 ms)")
print(f"host's own took_ms (config read to swap): p50 {pct(took, 50)}  p99 {pct(took, 99)}  max {took[-1]}")
print(f"driver: {driver}")
print(f"final SIGTERM exit code {sys.argv[6]}")
PY
