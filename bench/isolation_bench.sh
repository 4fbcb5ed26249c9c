#!/usr/bin/env bash
# Plugin isolation benchmark (not a test): the bundled jsonl-sink, which
# batches (max_batch_size 256), run in the host's process
# (`isolation: in-process`) and in a supervised worker process
# (`isolation: process`: clayhook-plugin-worker, events over a Unix socket),
# one mode after the other in the same run, each on a fresh host and store.
#   bench/isolation_bench.sh [DELIVERIES]      # default 150000 per mode
# Per mode:
#  1. End to end: DELIVERIES unique signed deliveries sent by delivery-driver
#     as fast as BENCH_CONNS connections go (or at BENCH_RATE/s), then a wait
#     until the dispatcher has counted every acknowledged one done
#     (clayhook_dispatch_deliveries_total{outcome="done"} on /metrics).
#     deliveries/s = acknowledged deliveries / the span from the first one the
#     host took in (earliest received_at_ms in the sink's lines) to the last
#     line the sink wrote (latest handled_at_ms). Lag p50/p99 from the host's
#     histogram clayhook_dispatch_end_to_end_seconds (acknowledged -> done,
#     interpolated within its buckets as Prometheus' histogram_quantile does)
#     and, exact, from the sink's lines (handled_at_ms - received_at_ms, first
#     handling of each id, as lag_bench.sh computes it).
#  2. Backlog drain (BENCH_DRAIN deliveries, 0 skips it): the sink paused
#     through the admin API, the deliveries stored, the sink resumed; timed
#     from the resume to the last line the sink wrote. Here the plugin path
#     (dispatcher, socket, worker) is the bottleneck, not the intake.
# Then the ratios isolated / in-process, the end-to-end one against the goal
# (>= 0.7). It exits 0 whatever the figures.
# Environment: BUILD (default build), BENCH_CONNS (driver connections,
# default 16), BENCH_RATE (driver requests/s in step 1, default 0:
# unlimited), BENCH_DRAIN (deliveries for step 2, default 100000),
# BENCH_WORKERS (dispatch.workers: the dispatcher's threads for the plugin,
# and the worker process's, default 4), BENCH_SINK_FSYNC (the sink's fsync,
# default true), BENCH_LINGER (dispatch.batch_linger, default 0s),
# BENCH_ISOLATED_FIRST=1 (run the isolated mode first, to see the order's
# effect), BENCH_KEEP=1 (keep the temporary folder; kept anyway when a mode does not
# finish or a host logs an error).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-150000}
CONNS=${BENCH_CONNS:-16}
RATE=${BENCH_RATE:-0}
DRAIN=${BENCH_DRAIN:-100000}
WORKERS=${BENCH_WORKERS:-4}
FSYNC=${BENCH_SINK_FSYNC:-true}
LINGER=${BENCH_LINGER:-0s}
ISOLATED_FIRST=${BENCH_ISOLATED_FIRST:-0}
rate_label=$([ "$RATE" = 0 ] && echo unlimited || echo "$RATE/s")
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" curl
command -v python3 >/dev/null || ensure_packages python3

bench_workdir isolation
bench_build
[ -x "$BUILD/bin/clayhook-plugin-worker" ] ||
  { echo "$BUILD/bin/clayhook-plugin-worker is missing: isolation: process cannot run" >&2; exit 1; }
secret=$(openssl rand -hex 32)
export BENCH_ADMIN_TOKEN
BENCH_ADMIN_TOKEN=$(openssl rand -hex 16)
hz=$(getconf CLK_TCK)
say "generating $N + $DRAIN unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$N" "$secret" "$work/e2e.tsv" e2e_
[ "$DRAIN" -eq 0 ] || "$BUILD/bin/gen-deliveries" "$DRAIN" "$secret" "$work/drain.tsv" drain_

done_key='clayhook_dispatch_deliveries_total{plugin="sink",outcome="done"}'
calls_key='clayhook_dispatch_handler_seconds_count{plugin="sink"}'

# metric NAME{LABELS}: the value of that series on the current host's
# /metrics (0 when absent or unreachable).
metric() {
  { curl -s --max-time 5 "http://127.0.0.1:$host_port/metrics" 2>/dev/null || true; } |
    awk -v k="$1" '$1 == k && !seen { v = $2; seen = 1 } END { print seen ? v : 0 }'
}

# admin_post PATH: POST to the current host's admin API; fails unless 200.
admin_post() {
  curl -sf --max-time 10 -X POST -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" \
    "http://127.0.0.1:$admin_port$1" >/dev/null
}

# cpu_ticks PID: utime + stime of PID in clock ticks (0 if it is gone).
cpu_ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  awk '{ print $12 + $13 }' <<<"${s##*) }"   # fields 14 and 15, counted after "comm)"
}
cpu_s() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz }'; }

# drive DIR TSV: the driver against the current host, in the background so
# the EXIT trap can stop it; its acked lines in DIR/acked.txt; sets
# drive_result (its RESULT line) and acked (unique ids acknowledged).
drive() {
  local dir=$1 tsv=$2
  "$BUILD/bin/delivery-driver" "$tsv" --port "$host_port" --conns "$CONNS" --rate "${3:-0}" \
    --acked "$dir/acked.txt" >"$dir/driver.out" 2>"$dir/driver.err" &
  driver_pid=$!
  wait "$driver_pid" || { keep=1; echo "driver failed:" >&2; cat "$dir/driver.err" >&2; exit 1; }
  driver_pid=
  drive_result=$(grep '^RESULT' "$dir/driver.out")
  acked=$(cut -f2 "$dir/acked.txt" | sort -u | wc -l)
}

# wait_done TARGET: until the done counter reaches TARGET, the host exits,
# or 60 s pass without progress; sets finished (yes, or why not).
wait_done() {
  local target=$1 d last=-1 last_change
  last_change=$(now_ms); finished=yes
  while :; do
    d=$(metric "$done_key")
    [ "$d" -ge "$target" ] && return 0
    if [ "$d" != "$last" ]; then last=$d; last_change=$(now_ms); fi
    if [ $(($(now_ms) - last_change)) -ge 60000 ]; then
      finished="no_(${d}_of_${target}_done_after_60_s_without_progress)"; keep=1; return 0
    fi
    kill -0 "$host_pid" 2>/dev/null || { finished="no_(the_host_exited;_${d}_of_${target}_done)"; keep=1; return 0; }
    sleep 0.1
  done
}

# figures ACKED EVENTS METRICS [START_MS]: key=value figures for the ids in
# ACKED, from the sink's lines (EVENTS) and, unless METRICS is -, the
# end-to-end histogram in a /metrics snapshot. The span runs from START_MS,
# or else from the earliest received_at_ms, to the latest handled_at_ms.
figures() {
  python3 - "$1" "$2" "$3" "${4:--}" "$ROOT/bench" <<'PY'
import math, re, sys
sys.path.insert(0, sys.argv[5])
from sinklog import acked_ids, first_handlings
acked = acked_ids(sys.argv[1])
first, lines = first_handlings(sys.argv[2], acked)
lags = sorted(h - r for h, r in first.values())
def pct(p):
    return lags[max(0, math.ceil(p / 100 * len(lags)) - 1)] if lags else "n/a"
start = int(sys.argv[4]) if sys.argv[4] != "-" else min((r for _, r in first.values()), default=0)
span_ms = max((h for h, _ in first.values()), default=start) - start
rps = len(first) / (span_ms / 1000) if span_ms > 0 else 0
out = (f"rps={rps:.0f} span={span_ms / 1000:.2f} sink_p50={pct(50)} sink_p99={pct(99)} "
       f"sink_max={lags[-1] if lags else 'n/a'} missing={len(acked - first.keys())} "
       f"lines={lines} handled={len(first)}")
if sys.argv[3] != "-":
    # Cumulative buckets; quantiles as Prometheus' histogram_quantile: linear
    # within the bucket, the highest finite bound (as N+) in the +Inf one.
    buckets = []
    for line in open(sys.argv[3], errors="replace"):
        m = re.match(r'clayhook_dispatch_end_to_end_seconds_bucket\{plugin="sink",le="([^"]+)"\} (\S+)$',
                     line.strip())
        if m:
            buckets.append((math.inf if m[1] == "+Inf" else float(m[1]), float(m[2])))
    def hq(q):
        if not buckets or buckets[-1][1] == 0:
            return "n/a"
        rank = q * buckets[-1][1]
        lo, prev = 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                if math.isinf(le):
                    return f"{lo * 1000:g}+"
                return f"{(lo + (le - lo) * ((rank - prev) / (c - prev) if c > prev else 0)) * 1000:.1f}"
            lo, prev = le, c
        return "n/a"
    out += (f" hist_p50={hq(0.5)} hist_p99={hq(0.99)} "
            f"hist_count={buckets[-1][1] if buckets else 0:.0f}")
print(out)
PY
}

# run_mode NAME ISOLATION: a fresh host with the sink at that isolation, then
# steps 1 and 2; sets e2e_result and drain_result (lines of key=value) and
# leaves the mode's files in $work/NAME.
run_mode() {
  local name=$1 iso=$2 dir=$work/$1
  mkdir -p "$dir/e2e" "$dir/drain"
  intake_config "$dir/bench.yaml" "{path: $dir/db/clayhook.db, durable: true}" ""
  cat >>"$dir/bench.yaml" <<YAML
plugins:
  - name: sink
    library: bundled:jsonl-sink
    isolation: $iso
    config: {path: $dir/events.jsonl, fsync: $FSYNC}
YAML
  # intake_config's dispatch line with this run's workers and linger, and its
  # admin line with the admin API on a free loopback port (for the pause).
  sed -i -e "s/^dispatch: {\(.*\)}$/dispatch: {\1, workers: $WORKERS, batch_linger: $LINGER, shutdown_timeout: 5s}/" \
    -e 's/^admin: {enabled: false}$/admin: {enabled: true, address: 127.0.0.1, port: 0, token: "${BENCH_ADMIN_TOKEN}"}/' \
    "$dir/bench.yaml"
  grep -q "workers: $WORKERS" "$dir/bench.yaml" && grep -q '^admin: {enabled: true' "$dir/bench.yaml" ||
    { echo "could not set dispatch and admin in $dir/bench.yaml" >&2; exit 1; }

  say "$name: starting the host (isolation: $iso)"
  start_host "$dir/bench.yaml" "$dir/host.log"
  if ! grep -q 'msg="plugin loaded".*isolation='"$iso"'\b' "$dir/host.log"; then
    keep=1
    echo "$name: the host did not load the sink with isolation $iso; its log:" >&2
    cat "$dir/host.log" >&2
    exit 1
  fi
  admin_port=$(sed -n 's/.*msg=ready.* admin=127.0.0.1:\([0-9]*\).*/\1/p' "$dir/host.log" | tail -1)
  local worker_pid=""
  if [ "$iso" = process ]; then
    worker_pid=$(pgrep -P "$host_pid" -f clayhook-plugin-worker | head -1 || true)
    [ -n "$worker_pid" ] || say "$name: no clayhook-plugin-worker child of the host found (its CPU is not counted)"
  fi
  worker_cpu() { if [ -n "$worker_pid" ]; then cpu_ticks "$worker_pid"; else echo 0; fi; }

  # Step 1: end to end.
  local h0 w0 c0 d0
  h0=$(cpu_ticks "$host_pid"); w0=$(worker_cpu)
  say "$name: end to end, $N deliveries ($CONNS connections, rate $rate_label)"
  drive "$dir/e2e" "$work/e2e.tsv" "$RATE"
  local t_driver drive1=$drive_result acked1=$acked
  t_driver=$(now_ms)
  say "$name: waiting until $acked1 deliveries are done"
  wait_done "$acked1"
  local finished1=$finished tail1
  tail1=$(secs "$t_driver" "$(now_ms)")
  curl -s --max-time 5 "http://127.0.0.1:$host_port/metrics" >"$dir/e2e/metrics.txt" 2>/dev/null || true
  local host1 worker1 calls1 done1
  host1=$(cpu_s $(($(cpu_ticks "$host_pid") - h0))); worker1=$(cpu_s $(($(worker_cpu) - w0)))
  done1=$(metric "$done_key"); calls1=$(metric "$calls_key")
  e2e_result="$(figures "$dir/e2e/acked.txt" "$dir/events.jsonl" "$dir/e2e/metrics.txt") acked=$acked1"
  e2e_result+=" intake_rps=$(field "$drive1" rps) non2xx=$(field "$drive1" non2xx) failed=$(field "$drive1" failed)"
  e2e_result+=" tail=$tail1 finished=$finished1 host_cpu=$host1 worker_cpu=$worker1"
  e2e_result+=" batch=$(awk -v d="$done1" -v c="$calls1" 'BEGIN { printf "%.1f", (c > 0) ? d / c : 0 }')"

  # Step 2: backlog drain.
  drain_result="skipped=1"
  if [ "$DRAIN" -gt 0 ] && [ "$finished1" = yes ]; then
    say "$name: backlog drain, $DRAIN deliveries stored while the sink is paused"
    admin_post /admin/plugins/sink/pause || { keep=1; echo "$name: pause failed" >&2; exit 1; }
    drive "$dir/drain" "$work/drain.tsv" 0
    local drive2=$drive_result acked2=$acked t_resume
    sleep 1   # let the last commits settle, so that only the drain is timed
    d0=$(metric "$done_key"); c0=$(metric "$calls_key")
    h0=$(cpu_ticks "$host_pid"); w0=$(worker_cpu)
    t_resume=$(now_ms)
    admin_post /admin/plugins/sink/resume || { keep=1; echo "$name: resume failed" >&2; exit 1; }
    wait_done $((d0 + acked2))
    local finished2=$finished host2 worker2 c2 d2
    host2=$(cpu_s $(($(cpu_ticks "$host_pid") - h0))); worker2=$(cpu_s $(($(worker_cpu) - w0)))
    d2=$(metric "$done_key"); c2=$(metric "$calls_key")
    drain_result="$(figures "$dir/drain/acked.txt" "$dir/events.jsonl" - "$t_resume") acked=$acked2"
    drain_result+=" finished=$finished2 host_cpu=$host2 worker_cpu=$worker2 failed=$(field "$drive2" failed)"
    drain_result+=" batch=$(awk -v d="$((d2 - d0))" -v c="$((c2 - c0))" 'BEGIN { printf "%.1f", (c > 0) ? d / c : 0 }')"
  fi
  stop_host
  local errors warns
  errors=$(grep -cE 'level=error' "$dir/host.log" || true)
  warns=$(grep -cE 'level=warn' "$dir/host.log" || true)
  [ "$errors" -eq 0 ] || keep=1
  e2e_result+=" rc=$host_rc errors=$errors warns=$warns"
  if [ "$finished1" != yes ] || [[ $drain_result == *finished=no* ]] || [ "$errors" -gt 0 ]; then
    echo "$name: not every delivery was done, or the host logged errors; its warnings and errors:" >&2
    grep -E 'level=(error|warn)' "$dir/host.log" >&2 || tail -30 "$dir/host.log" >&2
  fi
}

for m in $( [ "$ISOLATED_FIRST" = 1 ] && echo "isolated in-process" || echo "in-process isolated"); do
  if [ $m = in-process ]; then
    run_mode in-process in-process; inproc_e2e=$e2e_result inproc_drain=$drain_result
  else
    run_mode isolated process; iso_e2e=$e2e_result iso_drain=$drain_result
  fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
row() { printf '%-11s %8s %7s %8s %6s %6s %8s %8s %8s %8s %8s %8s %10s  %s\n' "$@"; }

printf '\nisolation benchmark: jsonl-sink (batching, max_batch_size 256), sink fsync %s, dispatch.workers %s, batch_linger %s, durable SQLite store, %s cores\n' \
  "$FSYNC" "$WORKERS" "$LINGER" "$(nproc)"
printf '1. end to end: %s deliveries per mode (%s first), driver %s connections, rate %s; deliv/s = handled / (first received -> last written by the sink)\n' \
  "$N" "$( [ "$ISOLATED_FIRST" = 1 ] && echo isolated || echo in-process)" "$CONNS" "$rate_label"
row "" deliv/s span_s intake/s tail_s batch e2e_p50 e2e_p99 sink_p50 sink_p99 sink_max cpu_host cpu_worker handled/acked
for m in in-process isolated; do
  [ $m = in-process ] && r=$inproc_e2e || r=$iso_e2e
  row $m "$(field "$r" rps)" "$(field "$r" span)" "$(field "$r" intake_rps)" "$(field "$r" tail)" \
    "$(field "$r" batch)" "$(field "$r" hist_p50)" "$(field "$r" hist_p99)" "$(field "$r" sink_p50)" \
    "$(field "$r" sink_p99)" "$(field "$r" sink_max)" "$(field "$r" host_cpu)" "$(field "$r" worker_cpu)" \
    "$(field "$r" handled)/$(field "$r" acked)"
done
if [[ $inproc_drain != skipped* && $iso_drain != skipped* ]]; then
  printf '2. backlog drain: %s deliveries stored while the sink was paused; deliv/s = handled / (resume -> last written by the sink)\n' "$DRAIN"
  row "" deliv/s span_s "" "" batch "" "" "" "" "" cpu_host cpu_worker handled/acked
  for m in in-process isolated; do
    [ $m = in-process ] && r=$inproc_drain || r=$iso_drain
    row $m "$(field "$r" rps)" "$(field "$r" span)" "" "" "$(field "$r" batch)" "" "" "" "" "" \
      "$(field "$r" host_cpu)" "$(field "$r" worker_cpu)" "$(field "$r" handled)/$(field "$r" acked)"
  done
fi
e2e_ratio=$(ratio "$(field "$iso_e2e" rps)" "$(field "$inproc_e2e" rps)")
met=$(awk -v r="$e2e_ratio" 'BEGIN { print (r >= 0.7) ? "met" : "NOT met" }')
printf 'ratio isolated/in-process, end to end: deliveries/s %s (goal >= 0.70: %s); e2e lag p99 %s ms vs %s ms\n' \
  "$e2e_ratio" "$met" "$(field "$iso_e2e" hist_p99)" "$(field "$inproc_e2e" hist_p99)"
if [[ $inproc_drain != skipped* && $iso_drain != skipped* ]]; then
  printf 'ratio isolated/in-process, backlog drain: deliveries/s %s\n' \
    "$(ratio "$(field "$iso_drain" rps)" "$(field "$inproc_drain" rps)")"
fi
for m in in-process isolated; do
  if [ $m = in-process ]; then r=$inproc_e2e; s=$inproc_drain; else r=$iso_e2e; s=$iso_drain; fi
  printf '%s: finished %s/%s, never handled %s/%s, handled twice %s/%s, e2e histogram count %s, driver non2xx %s failed %s, host log %s error %s warn, SIGTERM exit code %s\n' \
    $m "$(field "$r" finished)" "$(field "$s" finished)" "$(field "$r" missing)" "$(field "$s" missing)" \
    "$(( $(field "$r" lines) - $(field "$r" handled) ))" \
    "$( [[ $s == skipped* ]] && echo - || echo $(( $(field "$s" lines) - $(field "$s" handled) )))" \
    "$(field "$r" hist_count)" "$(field "$r" non2xx)" "$(field "$r" failed)" \
    "$(field "$r" errors)" "$(field "$r" warns)" "$(field "$r" rc)"
done
exit 0
