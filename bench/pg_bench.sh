#!/usr/bin/env bash
# PostgreSQL benchmark (not a test): the intake of `clayhook serve` on the
# postgres store engine, driven by wrk over loopback as in intake_bench.sh,
# beside a bare responder measured in the same run, then three hosts sharing
# one database, each driven by its own wrk at the same time.
#   bench/pg_bench.sh [SECONDS] [CONNECTIONS]
# It starts its own PostgreSQL (the newest /usr/lib/postgresql/*/bin, as the
# postgres user when run as root) in its temporary folder, with fsync and
# synchronous_commit on, and prints, for every run: rps, p50/p99, peak RSS,
# the ratios, the mean commit batch size of each host (from its /metrics), the
# CPU-seconds of PostgreSQL, of the hosts and of the machine during the
# measured wrk run, and the events found in each database afterwards.
# Environment: BENCH_DELIVERIES (default 600000), BENCH_DURABLE (true|false:
# store.durable, false runs the writer with synchronous_commit off),
# BENCH_SINK (true: the jsonl-sink plugin subscribes, as in intake_bench.sh),
# BENCH_HOSTS (hosts of run 2, default 3), BENCH_PG_POOL (store.postgres_pool,
# default 8), BENCH_KEEP=1 (keep the temporary folder; also kept when a host
# logged an error or an answer was not 2xx), BUILD (default build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${1:-10}
CONNS=${2:-64}
N=${BENCH_DELIVERIES:-600000}
DURABLE=${BENCH_DURABLE:-true}
SINK=${BENCH_SINK:-true}
HOSTS=${BENCH_HOSTS:-3}
POOL=${BENCH_PG_POOL:-8}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" wrk bc postgresql curl

[ $((CONNS / HOSTS)) -ge 1 ] || { say "CONNECTIONS ($CONNS) must be at least BENCH_HOSTS ($HOSTS)"; exit 2; }
pg_find # says so and exits (set -e) when there is no server

host_pids=()
trouble=0
bench_workdir pgbench
# Hosts first (SIGKILL), then PostgreSQL (fast shutdown, so that no backend
# still writes in $work while it is removed), then lib.sh's cleanup.
# shellcheck disable=SC2317 # run by the EXIT trap
pg_bench_cleanup() {
  local p
  # The wrk processes measure() started in its subshell (named in wrk.pids).
  if [ -f "$work/wrk.pids" ]; then
    while read -r p; do
      if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = wrk ]; then kill -KILL "$p" 2>/dev/null || true; fi
    done <"$work/wrk.pids"
  fi
  for p in "${host_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  pg_stop
  bench_cleanup
}
trap pg_bench_cleanup EXIT

# shellcheck disable=SC2119 # no cmake options
bench_build
secret=$(openssl rand -hex 32)
say "generating $N unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$N" "$secret" "$work/deliveries.tsv"
bytes=$(head -1 "$work/deliveries.tsv" | cut -f2 | tr -d '\n' | wc -c)
# Warm-up deliveries have rows of their own, so the measured run sends only new ones.
"$BUILD/bin/gen-deliveries" 40000 "$secret" "$work/warm.tsv" warm_
# Run 2: each host gets its own slice of both files.
split -n l/"$HOSTS" -d -a 2 "$work/deliveries.tsv" "$work/slice."
split -n l/"$HOSTS" -d -a 2 "$work/warm.tsv" "$work/warm."

# ---- PostgreSQL (pg_start in lib.sh: sets pg_port, pg_pid, pg_version) ------
pg_start # exits (set -e), with the log's tail, when it does not start

# ---- measuring ------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
# ticks PID [children]: utime+stime of PID in clock ticks, with "children"
# also cutime+cstime (its reaped children: PostgreSQL backends that exited).
ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) } # after the command, which may hold anything: field 3 on
  awk -v kids="${2:-}" '{ t = $12 + $13; if (kids != "") t += $14 + $15; print t }' <<<"$s"
}
# pg_ticks: "pid ticks" lines for every process of this cluster: the
# postmaster (with its reaped children) and each of its children.
pg_ticks() {
  local c
  echo "$pg_pid $(ticks "$pg_pid" children)"
  for c in $(pgrep -P "$pg_pid"); do echo "$c $(ticks "$c")"; done
}
# children_ticks FILE: the reaped children's user+system CPU in FILE (the
# output of `times`: its second line), in clock ticks.
children_ticks() {
  awk -v hz="$clk_tck" 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, x, /[ms]/); t += 60 * x[1] + x[2] }
    printf "%d\n", t * hz + 0.5 }' "$1"
}
# machine_ticks: "busy total" from /proc/stat (busy: all but idle and iowait).
machine_ticks() {
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
# batch_stats PORT: "sum count" of the host's commit batch-size histogram
# ("0 0" without one: the bare responder answers 401).
batch_stats() {
  { curl -fs "http://127.0.0.1:$1/metrics" || true; } |
    awk '/^clayhook_store_commit_batch_size_sum/ { s = $2 } /^clayhook_store_commit_batch_size_count/ { c = $2 }
         END { printf "%s %s\n", s + 0, c + 0 }'
}
# cpu_line PREFIX TICKS WINDOW_MS: "PREFIXcpu_s=... PREFIXcpu_pct=..." (% of all cores over the window).
cpu_line() {
  awk -v n="$1" -v t="$2" -v w="$3" -v hz="$clk_tck" -v cores="$(nproc)" \
    'BEGIN { s = t / hz; printf "%scpu_s=%.2f %scpu_pct=%.0f", n, s, n, 100 * s / (cores * w / 1000) }'
}

# measure NAME PROCS PORT... : wrk against each PORT at once (CONNS / number
# of ports connections and one wrk thread each when there are several, two
# threads when one), with the Nth port's slice of the files (the whole files
# for one port): a 1 s warm-up, then the measured run. CPU is sampled once
# every wrk has loaded its file and printed "Running", and again when the last
# one ends. PROCS ("pid pid ..."): the server processes, one per port. Prints
# one RESULT line per port (batch=, warm_requests=, conns=, cpu_s=, cpu_pct=
# appended), then a CPU line: the servers' sum (srv), PostgreSQL (pg) and its
# busiest process (pg_top), wrk, the rest of the machine's busy time (rest),
# and how busy the machine was.
measure() {
  local name=$1 procs
  read -r -a procs <<<"$2"; shift 2
  local ports=("$@") n=$# i conns threads data warm
  conns=$((CONNS / n)); threads=$((n == 1 ? 2 : 1))
  local pids=() before=() after=() t0s=() t1s=()
  for i in "${!ports[@]}"; do
    warm=$work/warm.tsv; [ "$n" -gt 1 ] && warm=$(printf '%s/warm.%02d' "$work" "$i")
    wrk -t"$threads" -c"$conns" -d1s -s "$ROOT/bench/intake.lua" "http://127.0.0.1:${ports[$i]}/webhooks/clay" \
      -- "$warm" "$threads" >"$work/$name.warm.$i.out" 2>&1 &
    pids+=($!); echo $! >>"$work/wrk.pids"
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { cat "$work/$name.warm.$i.out" >&2; return 1; }; done
  for i in "${!ports[@]}"; do before+=("$(batch_stats "${ports[$i]}")"); done
  pids=()
  for i in "${!ports[@]}"; do
    data=$work/deliveries.tsv; [ "$n" -gt 1 ] && data=$(printf '%s/slice.%02d' "$work" "$i")
    stdbuf -oL wrk -t"$threads" -c"$conns" -d"${SECONDS_RUN}s" --latency -s "$ROOT/bench/intake.lua" \
      "http://127.0.0.1:${ports[$i]}/webhooks/clay" -- "$data" "$threads" >"$work/$name.$i.out" 2>&1 &
    pids+=($!); echo $! >>"$work/wrk.pids"
  done
  for i in "${!ports[@]}"; do wait_for "$work/$name.$i.out" '^Running' >&2 || return 1; done
  local m0 m1 t0 t1 wrk0=0
  for i in "${!procs[@]}"; do t0s+=("$(ticks "${procs[$i]}")"); done
  pg_ticks >"$work/$name.pg0"; m0=$(machine_ticks); t0=$(now_ms)
  # wrk's own CPU: what the wrk processes had used by now (loading their
  # file, mostly), then their whole CPU once reaped, from `times` (a builtin,
  # so no subshell: it reports this shell's reaped children).
  for i in "${!pids[@]}"; do wrk0=$((wrk0 + $(ticks "${pids[$i]}"))); done
  times >"$work/$name.times0"
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { cat "$work/$name.$i.out" >&2; return 1; }; done
  times >"$work/$name.times1"
  t1=$(now_ms); m1=$(machine_ticks); pg_ticks >"$work/$name.pg1"
  for i in "${!procs[@]}"; do t1s+=("$(ticks "${procs[$i]}")"); done
  for i in "${!ports[@]}"; do after+=("$(batch_stats "${ports[$i]}")"); done
  local w=$((t1 - t0)) srv=0 b batch warm_reqs
  for i in "${!ports[@]}"; do
    b="${before[$i]} ${after[$i]}"
    batch=$(awk '{ if ($4 > $2) printf "%.1f", ($3 - $1) / ($4 - $2); else print "-" }' <<<"$b")
    warm_reqs=$(field "$(grep '^RESULT' "$work/$name.warm.$i.out")" requests)
    echo "$(grep '^RESULT' "$work/$name.$i.out") batch=$batch warm_requests=$warm_reqs conns=$conns" \
      "$(cpu_line "" $((t1s[i] - t0s[i])) "$w")"
    srv=$((srv + t1s[i] - t0s[i]))
  done
  # PostgreSQL: all of it, and its busiest process (each host commits on one
  # connection, so one backend: at most one core).
  local pg top
  read -r pg top < <(awk -v pm="$pg_pid" 'NR == FNR { a[$1] = $2; next }
    { d = $2 - a[$1]; all += $2; if ($1 != pm && ($1 in a) && d > top) top = d }
    END { for (p in a) all -= a[p]; print all, top + 0 }' "$work/$name.pg0" "$work/$name.pg1")
  local busy
  busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2] }')
  local wrk rest
  wrk=$(( $(children_ticks "$work/$name.times1") - $(children_ticks "$work/$name.times0") - wrk0 ))
  rest=$((${busy% *} - srv - pg - wrk)) # can come out a few ticks below 0
  echo "CPU name=$name window_ms=$w $(cpu_line srv_ "$srv" "$w") $(cpu_line pg_ "$pg" "$w")" \
    "pg_top_cpu_s=$(awk -v t="$top" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')" \
    "$(cpu_line wrk_ "$wrk" "$w") $(cpu_line rest_ $((rest > 0 ? rest : 0)) "$w")" \
    "$(awk -v b="$busy" 'BEGIN { split(b, x, " "); printf "machine_busy_pct=%.0f", 100 * x[1] / x[2] }')"
}

# host_config NAME: writes $work/NAME.yaml, host_id NAME (the URL comes from PG_URL).
host_config() {
  local sink=""
  [ "$SINK" = true ] && sink="$work/$1.events.jsonl"
  intake_config "$work/$1.yaml" \
    "{engine: postgres, postgres_url: \"\${PG_URL}\", host_id: $1, postgres_pool: $POOL, durable: $DURABLE}" \
    "$sink"
}

# ---- run 1: bare responder, then one host -------------------------------------
say "bare responder"
"$BUILD/bin/bare-responder" "$secret" 64 >"$work/bare.log" 2>&1 &
bare_pid=$!; bench_pids+=("$bare_pid")
wait_for "$work/bare.log" '^port='
bare_port=$(sed -n 's/^port=//p' "$work/bare.log")
bare_out=$(measure bare "$bare_pid" "$bare_port")
bare=$(grep '^RESULT' <<<"$bare_out")
bare="$bare rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$bare_pid/status") name=bare"
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true

say "clayhook on PostgreSQL, one host (durable=$DURABLE, sink=$SINK)"
psql_q postgres 'CREATE DATABASE clayhook' >/dev/null
host_config h1
PG_URL=$(pg_url clayhook) start_host "$work/h1.yaml" "$work/h1.log"
host_pids+=("$host_pid")
one_out=$(measure one "$host_pid" "$host_port")
one=$(grep '^RESULT' <<<"$one_out")
one="$one rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$host_pid/status") name=1host"
stop_host; host_pids=()
one_rc=$host_rc

# ---- run 2: HOSTS hosts on one database ---------------------------------------
say "clayhook on PostgreSQL, $HOSTS hosts on one database"
psql_q postgres 'CREATE DATABASE clayhook3' >/dev/null
ports=(); ids=()
for i in $(seq 1 "$HOSTS"); do
  id=m$i; ids+=("$id")
  host_config "$id"
  PG_URL=$(pg_url clayhook3) start_host "$work/$id.yaml" "$work/$id.log"
  host_pids+=("$host_pid"); ports+=("$host_port")
done
multi_out=$(measure multi "${host_pids[*]}" "${ports[@]}")
multi=()
for i in "${!ids[@]}"; do
  r=$(grep '^RESULT' <<<"$multi_out" | sed -n "$((i + 1))p")
  multi+=("$r rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/${host_pids[$i]}/status") name=${ids[$i]}")
done
multi_rcs=()
for p in "${host_pids[@]}"; do host_pid=$p; stop_host; multi_rcs+=("$host_rc"); done
host_pids=()

# ---- what reached the databases -------------------------------------------------
count() { psql_q "$1" "$2" 2>/dev/null || echo '?'; }
events1=$(count clayhook 'select count(*) from events')
events3=$(count clayhook3 'select count(*) from events')
states1=$(count clayhook "select coalesce(string_agg(s || '=' || n, ' '), 'none') from (select case state when 0 then 'pending' when 1 then 'done' else 'dead' end s, count(*) n from deliveries group by 1 order by 1) x")
states3=$(count clayhook3 "select coalesce(string_agg(s || '=' || n, ' '), 'none') from (select case state when 0 then 'pending' when 1 then 'done' else 'dead' end s, count(*) n from deliveries group by 1 order by 1) x")
claimed3=$(count clayhook3 "select coalesce(string_agg(c || '=' || n, ' '), 'none') from (select claimed_by c, count(*) n from deliveries where state = 1 group by 1 order by 1) x")
pg_stop

# ---- the summary ---------------------------------------------------------------
printf '\npostgres benchmark: %s s per run, %s connections, %s-byte bodies, durable=%s, sink=%s, postgres_pool=%s, %s cores\n' \
  "$SECONDS_RUN" "$CONNS" "$bytes" "$DURABLE" "$SINK" "$POOL" "$(nproc)"
printf 'PostgreSQL %s on loopback (fsync=on, synchronous_commit=on%s, shared_buffers=128MB); run 2: %s hosts x %s connections, one wrk each\n' \
  "$pg_version" "$( [ "$DURABLE" = true ] || echo '; off for the hosts'"'"' writers: durable=false')" "$HOSTS" "$((CONNS / HOSTS))"
printf '%-10s %9s %8s %8s %7s %7s %8s %6s %6s %5s\n' "" rps p50_ms p99_ms rss_MB non2xx sock_err batch cpu_s cpu_%
row() {
  printf '%-10s %9s %8s %8s %7.1f %7s %8s %6s %6s %5s\n' "$(field "$1" name)" "$(field "$1" rps)" \
    "$(field "$1" p50_ms)" "$(field "$1" p99_ms)" "$(echo "$(field "$1" rss_kb) / 1024" | bc -l)" \
    "$(field "$1" non2xx)" "$(field "$1" socket_errors)" "$(field "$1" batch)" \
    "$(field "$1" cpu_s)" "$(field "$1" cpu_pct)"
}
row "$bare"; row "$one"
total=0; total_reqs=0; total_warm=0; non2xx=0; sock=0
for r in "$bare" "$one" "${multi[@]}"; do
  non2xx=$((non2xx + $(field "$r" non2xx))); sock=$((sock + $(field "$r" socket_errors)))
done
for r in "${multi[@]}"; do
  row "$r"
  total=$((total + $(field "$r" rps)))
  total_reqs=$((total_reqs + $(field "$r" requests)))
  total_warm=$((total_warm + $(field "$r" warm_requests)))
done
printf '%-10s %9s\n' "total" "$total"
printf '(batch: mean deliveries per store commit over the measured run, from clayhook_store_commit_batch_size on the host'"'"'s /metrics;\n'
printf ' cpu_s, cpu_%%: the server process'"'"'s CPU-seconds during the measured run, and their share of %s cores x the run)\n' "$(nproc)"

cpub=$(grep '^CPU' <<<"$bare_out"); cpu1=$(grep '^CPU' <<<"$one_out"); cpu3=$(grep '^CPU' <<<"$multi_out")
printf '\nCPU during the measured run, CPU-seconds (%% of %s cores x the run):\n' "$(nproc)"
for c in "$cpub" "$cpu1" "$cpu3"; do
  case $(field "$c" name) in
    bare) what='bare:     responder' ;; one) what='1 host:   clayhook ' ;; *) what=$(printf '%-9s clayhook ' "$HOSTS hosts:") ;;
  esac
  printf '  %s %6s (%3s%%)  postgres %6s (%3s%%, busiest backend %5s)  wrk %6s (%3s%%)  other %6s (%3s%%)  machine busy %3s%%  over %.1f s\n' \
    "$what" "$(field "$c" srv_cpu_s)" "$(field "$c" srv_cpu_pct)" "$(field "$c" pg_cpu_s)" "$(field "$c" pg_cpu_pct)" \
    "$(field "$c" pg_top_cpu_s)" "$(field "$c" wrk_cpu_s)" "$(field "$c" wrk_cpu_pct)" \
    "$(field "$c" rest_cpu_s)" "$(field "$c" rest_cpu_pct)" "$(field "$c" machine_busy_pct)" \
    "$(echo "$(field "$c" window_ms) / 1000" | bc -l)"
done
printf '  (other: the machine'"'"'s busy time less all of the above: the kernel'"'"'s share not charged to a process, and whatever else ran)\n'

one_rps=$(field "$one" rps); bare_rps=$(field "$bare" rps)
printf '\nratios: 1 host/bare %.2f; %s hosts total/1 host %.2f; total/bare %.2f; per-host efficiency (total / %s / 1-host rps) %.2f\n' \
  "$(echo "$one_rps / $bare_rps" | bc -l)" "$HOSTS" "$(echo "$total / $one_rps" | bc -l)" \
  "$(echo "$total / $bare_rps" | bc -l)" "$HOSTS" "$(echo "$total / $HOSTS / $one_rps" | bc -l)"

one_reqs=$(field "$one" requests); one_warm=$(field "$one" warm_requests)
# events_line DB EVENTS WARM MEASURED MAX_SURPLUS
events_line() {
  local surplus=$(( ${2/\?/-1000000000} - $3 - $4 )) verdict=ok
  if [ "$surplus" -lt 0 ] || [ "$surplus" -gt "$5" ]; then verdict="MISMATCH (expected 0 to +$5)"; trouble=1; fi
  printf 'events in database %-9s %s; wrk counted %s answered requests (%s warm-up + %s measured): %+d, %s\n' \
    "$1:" "$2" "$(($3 + $4))" "$3" "$4" "$surplus" "$verdict"
}
printf '\n'
events_line clayhook "$events1" "$one_warm" "$one_reqs" $((2 * CONNS))
events_line clayhook3 "$events3" "$total_warm" "$total_reqs" $((2 * HOSTS * (CONNS / HOSTS)))
printf '  (a surplus of up to %s and %s is expected: at most one request per connection per wrk run, warm-up and measured,\n   is in flight when wrk stops, and is stored but not counted)\n' \
  "$((2 * CONNS))" "$((2 * HOSTS * (CONNS / HOSTS)))"
if [ "$SINK" = true ]; then
  sink1=$(wc -l <"$work/h1.events.jsonl")
  sink3=$(cat "$work"/m*.events.jsonl 2>/dev/null | wc -l)
  printf 'deliveries after SIGTERM: clayhook %s; clayhook3 %s (done per host_id: %s)\n' "$states1" "$states3" "$claimed3"
  printf 'sink lines: 1 host %s, %s hosts %s (one per event when nothing was handled twice)\n' "$sink1" "$HOSTS" "$sink3"
fi
if [ "$non2xx" -eq 0 ]; then
  printf 'non-2xx answers: 0 in every run\n'
else
  printf 'non-2xx answers: %s (should be 0: see the host logs)\n' "$non2xx"; trouble=1
fi
[ "$sock" -eq 0 ] || printf 'wrk socket errors: %s (connect, read, write or timeout)\n' "$sock"
errors=$(cat "$work"/h1.log "$work"/m*.log | grep -cE 'level=error' || true)
warnings=$(cat "$work"/h1.log "$work"/m*.log | grep -cE 'level=warn' || true)
printf 'host exit codes after SIGTERM: 1 host %s; %s hosts %s; host log lines: %s error, %s warn\n' \
  "$one_rc" "$HOSTS" "${multi_rcs[*]}" "$errors" "$warnings"
# Each distinct message once, with how many host logs' lines carry it.
grep -hE 'level=(error|warn)' "$work"/h1.log "$work"/m*.log | sed -E 's/^ts=[^ ]* //; s/ (running|held)=[0-9]+//g' |
  sort | uniq -c | sort -rn | cut -c1-220 | head -5 || true
[ "$errors" -eq 0 ] || trouble=1

# One line of interpretation from the CPU shares. Run 1: how much of one
# core the busiest PostgreSQL backend used (a host commits on one connection,
# so nearly all of PostgreSQL's work for it is one backend: one core at most).
# Run 2: how busy the machine was. Then the CPU-seconds per request of a host
# and of PostgreSQL, and what machines of this size would carry (CPU-bound
# and linear: an upper bound): each host loaded as in run 1 (its batches, so
# run 1's cost per request), and PostgreSQL also at run 2's smaller batches.
mean_batch=$(for r in "${multi[@]}"; do field "$r" batch; done | awk '$1 != "-" { s += $1; n++ } END { printf "%.0f", n ? s / n : 0 }')
awk -v top1="$(field "$cpu1" pg_top_cpu_s)" -v w1="$(field "$cpu1" window_ms)" -v busy1="$(field "$cpu1" machine_busy_pct)" \
  -v hs1="$(field "$cpu1" srv_cpu_s)" -v ps1="$(field "$cpu1" pg_cpu_s)" -v reqs1="$(field "$one" requests)" \
  -v batch1="$(field "$one" batch)" -v batch3="$mean_batch" -v ps3="$(field "$cpu3" pg_cpu_s)" -v reqs3="$total_reqs" \
  -v busy="$(field "$cpu3" machine_busy_pct)" -v hp="$(field "$cpu3" srv_cpu_pct)" -v pp="$(field "$cpu3" pg_cpu_pct)" \
  -v wp="$(field "$cpu3" wrk_cpu_pct)" -v rp="$(field "$cpu3" rest_cpu_pct)" \
  -v cores="$(nproc)" -v n="$HOSTS" -v total="$total" 'BEGIN {
    hc = hs1 / reqs1; pc = ps1 / reqs1; pc3 = ps3 / reqs3
    h = cores / hc; w = 1 / pc; per = (h < w ? h : w); p = cores / pc; all = (n * per < p ? n * per : p)
    core1 = 100 * top1 / (w1 / 1000)
    printf "\ninterpretation: in run 1 the busiest PostgreSQL backend (the host'"'"'s writer connection) used %.0f%% of one core with the machine %s%% busy", core1, busy1
    printf (core1 >= 75 && busy1 < 85 ? ": one host is bound by its single writer backend, not by the machine. " : ". ")
    printf "In run 2 the machine was %s%% busy (hosts %s%%, PostgreSQL %s%%, wrk %s%%, other %s%%): ", busy, hp, pp, wp, rp
    if (busy >= 85)
      printf "on %d cores CPU is the limit, so the %d-host total (%d rps) is a split of the same cores, not a scaling figure. ", cores, n, total
    else
      printf "CPU was not the limit: the commit path (one writer connection per host, fsync) held the total at %d rps. ", total
    printf "Per request a host spent %.0f us of CPU and PostgreSQL %.0f us at batches of ~%.0f (%.0f us at ~%d in run 2): ", 1e6 * hc, 1e6 * pc, batch1, 1e6 * pc3, batch3
    printf "on separate %d-core machines, each host loaded as in run 1 could take ~%.0f rps on its own CPU but its writer backend (one core) ~%.0f, and a %d-core PostgreSQL ~%.0f rps for all hosts (~%.0f at run 2'"'"'s batches), ", cores, h, w, cores, p, cores / pc3
    printf "so %d hosts ~%.0f rps, %s-bound (CPU only: network round trips and fsync latency not counted).\n", n, all, (n * per < p ? (h < w ? "host-CPU" : "writer-backend") : "PostgreSQL-CPU")
  }'
if [ "$trouble" = 1 ]; then keep=1; say "keeping $work: non-2xx answers, an events mismatch or errors in the host logs"; fi
exit 0
