#!/usr/bin/env bash
# Soak benchmark (not a test): a long run through a host whose store deletes
# as it goes, to show that the store's size levels off and that retention
# costs the intake little.
#   bench/soak_bench.sh [DELIVERIES]        # default 1000000
# Two fresh hosts, one after the other, same config but for the store:
#   A: store.retention forever (nothing deleted), DELIVERIES/4 deliveries;
#   B: store.retention BENCH_RETENTION (default 15s; dedup and dead the
#      same), DELIVERIES deliveries.
# Both: durable SQLite, the jsonl-sink plugin writing to /dev/null (so every
# event gets a delivery that is claimed, handed over and finished, and the
# sink itself takes no disk), delivery-driver at --rate 0 with BENCH_CONNS
# connections (default 16). Every BENCH_SAMPLE seconds (default 5) the run
# reads /metrics and prints the store's size (clayhook_store_bytes: the file
# and its WAL), events stored, rows deleted by retention, and the intake
# rate over the interval. At the end: each host's overall rate, B's rate over
# the intervals in which retention deleted rows, its ratio to A's (goal
# >= 0.90), and B's size over the second half of the run against its size at
# the half (goal: levels off, growth < 10%).
# Environment: BUILD (default build), BENCH_CONNS, BENCH_SAMPLE,
# BENCH_RETENTION, BENCH_KEEP=1 (keep the temporary folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-1000000}
CONNS=${BENCH_CONNS:-16}
SAMPLE=${BENCH_SAMPLE:-5}
RETENTION=${BENCH_RETENTION:-15s}
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
command -v python3 >/dev/null || ensure_packages python3

bench_workdir soak
bench_build
secret=$(openssl rand -hex 32)

# metric NAME_AND_LABELS: one sample from the host's /metrics (0 if absent).
metrics_snapshot() {
  python3 - "$host_port" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
want = {
    "bytes": "clayhook_store_bytes ",
    "accepted": 'clayhook_intake_requests_total{outcome="accepted",source="clay",status="200"} ',
    "deleted": 'clayhook_store_retention_deleted_total{table="events"} ',
    "pending_age": "clayhook_delivery_oldest_pending_age_seconds ",
}
got = {k: 0.0 for k in want}
for line in text.splitlines():
    for k, prefix in want.items():
        if line.startswith(prefix):
            got[k] = float(line[len(prefix):])
print(" ".join(f"{k}={int(v)}" for k, v in got.items()))
PY
}

# run NAME STORE_YAML COUNT: a fresh host, COUNT deliveries, samples into
# $work/NAME/samples.txt ("t_s bytes accepted deleted rps pending_age"),
# and the driver's RESULT line into run_result.
run() {
  local name=$1 store=$2 count=$3 dir=$work/$1
  mkdir -p "$dir"
  "$BUILD/bin/gen-deliveries" "$count" "$secret" "$dir/in.tsv" "${name}_"
  intake_config "$dir/bench.yaml" "$store" /dev/null
  start_host "$dir/bench.yaml" "$dir/host.log"
  say "$name: $count deliveries, store $store"
  "$BUILD/bin/delivery-driver" "$dir/in.tsv" --port "$host_port" --conns "$CONNS" \
    >"$dir/driver.out" 2>"$dir/driver.err" &
  driver_pid=$!
  local t0 last_t last_acc=0 t snap acc rps
  t0=$(now_ms); last_t=$t0
  : >"$dir/samples.txt"
  printf '%6s %12s %10s %10s %8s %6s\n' t_s store_MiB events deleted rps age_s
  while kill -0 "$driver_pid" 2>/dev/null; do
    sleep "$SAMPLE"
    kill -0 "$driver_pid" 2>/dev/null || break
    snap=$(metrics_snapshot) || continue
    t=$(now_ms); acc=$(field "$snap" accepted)
    rps=$(( (acc - last_acc) * 1000 / (t - last_t) ))
    echo "$(secs "$t0" "$t") $(field "$snap" bytes) $acc $(field "$snap" deleted) $rps $(field "$snap" pending_age)" >>"$dir/samples.txt"
    printf '%6s %12s %10s %10s %8s %6s\n' "$(secs "$t0" "$t")" \
      "$(awk -v b="$(field "$snap" bytes)" 'BEGIN { printf "%.1f", b / 1048576 }')" \
      "$acc" "$(field "$snap" deleted)" "$rps" "$(field "$snap" pending_age)"
    last_t=$t; last_acc=$acc
  done
  wait "$driver_pid" || { echo "driver failed:" >&2; cat "$dir/driver.err" >&2; return 1; }
  driver_pid=
  run_result=$(grep '^RESULT' "$dir/driver.out")
  stop_host
  rm -f "$dir/in.tsv"
}

run A "{path: $work/A/db/clayhook.db, durable: true, retention: forever}" $((N / 4))
result_a=$run_result
run B "{path: $work/B/db/clayhook.db, durable: true, retention: $RETENTION, dedup_retention: $RETENTION, dead_retention: $RETENTION}" "$N"
result_b=$run_result

summary=$(python3 - "$work/A/samples.txt" "$work/B/samples.txt" <<'PY'
import sys
def load(p):
    return [tuple(float(x) for x in l.split()) for l in open(p) if l.strip()]
a, b = load(sys.argv[1]), load(sys.argv[2])
# B's intervals in which retention deleted rows (deleted grew since the last sample).
deleting = [s for prev, s in zip(b, b[1:]) if s[3] > prev[3]]
a_rps = [s[4] for s in a[1:]] or [s[4] for s in a]
def mean(xs): return sum(xs) / len(xs) if xs else 0
half = [s for s in b if s[0] >= b[-1][0] / 2] if b else []
mid, end = (half[0][1], b[-1][1]) if half else (0, 0)
peak = max((s[1] for s in b), default=0)
print(f"a_rps={mean(a_rps):.0f} b_del_rps={mean([s[4] for s in deleting]):.0f} "
      f"intervals={len(deleting)} mid_mib={mid/1048576:.1f} end_mib={end/1048576:.1f} "
      f"peak_mib={peak/1048576:.1f} growth={(end - mid) / mid * 100 if mid else 0:.1f}")
PY
)
a_rps=$(field "$summary" a_rps); b_rps=$(field "$summary" b_del_rps)
printf '\nsoak benchmark: %s deliveries with retention %s (B) after %s without (A), durable SQLite, jsonl-sink to /dev/null, %s connections, %s cores\n' \
  "$N" "$RETENTION" "$((N / 4))" "$CONNS" "$(nproc)"
printf 'A, nothing deleted: %s/s overall, %s/s mean of its intervals  [%s]\n' "$(field "$result_a" rps)" "$a_rps" "${result_a#RESULT }"
printf 'B, retention on:    %s/s overall, %s/s mean of the %s intervals with deletions  [%s]\n' \
  "$(field "$result_b" rps)" "$b_rps" "$(field "$summary" intervals)" "${result_b#RESULT }"
printf 'ratio B (deleting) / A: %s (goal >= 0.90)\n' "$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN { printf "%.2f", a ? b / a : 0 }')"
printf 'B store size: %s MiB at half time, %s MiB at the end (%s%%), peak %s MiB (goal: levels off)\n' \
  "$(field "$summary" mid_mib)" "$(field "$summary" end_mib)" "$(field "$summary" growth)" "$(field "$summary" peak_mib)"
printf 'host exit codes: %s (B)\n' "$host_rc"
