#!/usr/bin/env bash
# Intake benchmark (not a test): drives the host with wrk over loopback, one
# run per store engine, and prints their figures beside those of a bare Poco
# responder (reads the body, checks the HMAC, answers 200) measured in the
# same run, as ratios.
#   bench/intake_bench.sh [SECONDS] [CONNECTIONS]
# Environment: BENCH_ENGINES (the lines, in this order, after the bare
# responder; default "sqlite sqlite-journal postgres": sqlite is store.journal
# false, sqlite-journal store.journal true, postgres the postgres engine on a
# fresh database of a PostgreSQL the script starts, as pg_bench.sh does),
# BENCH_DELIVERIES (default 1500000), BENCH_DURABLE (true|false), BENCH_SINK
# (true: the jsonl-sink plugin subscribes, so each event also gets a delivery
# row and is dispatched during the run, as in the default config; false: no
# plugin, intake alone), BENCH_JOURNAL (the older knob: when BENCH_ENGINES is
# unset, true measures sqlite-journal alone and false sqlite alone),
# BENCH_PERF (a folder: perf record of each server's measured run, and the
# top of its report, named after the line), BENCH_SERVER (listener.server:
# events, threads or auto, the default), BENCH_LOOPS (listener.loops of the
# hosts; unset: the config's default), BENCH_BARE_SYNC (default true: a
# second ceiling line, bare-sync, the bare responder that also writes each
# body and answers after a group fdatasync on the store's filesystem: a
# durable design at its simplest, for scale; false skips it), BUILD (default build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${1:-10}
CONNS=${2:-64}
N=${BENCH_DELIVERIES:-1500000}
DURABLE=${BENCH_DURABLE:-true}
SINK=${BENCH_SINK:-true}
PG_POOL=8
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

if [ -n "${BENCH_ENGINES:-}" ]; then
  engines_list=$BENCH_ENGINES
  [ -z "${BENCH_JOURNAL:-}" ] || say "BENCH_JOURNAL is ignored: BENCH_ENGINES is set"
else
  case ${BENCH_JOURNAL:-} in
    "") engines_list="sqlite sqlite-journal postgres" ;;
    true) engines_list=sqlite-journal ;;
    false) engines_list=sqlite ;;
    *) say "BENCH_JOURNAL must be true or false, not '$BENCH_JOURNAL'"; exit 2 ;;
  esac
fi
read -r -a engines <<<"$engines_list"
[ ${#engines[@]} -gt 0 ] || { say "BENCH_ENGINES names no engine"; exit 2; }
seen=" "
use_pg=false
for e in "${engines[@]}"; do
  case $e in
    sqlite | sqlite-journal) ;;
    postgres) use_pg=true ;;
    *) say "unknown engine '$e' in BENCH_ENGINES (sqlite, sqlite-journal, postgres)"; exit 2 ;;
  esac
  case $seen in *" $e "*) say "engine '$e' named twice in BENCH_ENGINES"; exit 2 ;; esac
  seen="$seen$e "
done

pg_packages=()
[ "$use_pg" = false ] || pg_packages=(postgresql)
ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}" wrk bc sqlite3 "${pg_packages[@]}"
[ "$use_pg" = false ] || pg_find # says so and exits (set -e) when there is no server

bench_workdir bench # its EXIT trap stops the host, then PostgreSQL (pg_stop)
# shellcheck disable=SC2119 # no cmake options
bench_build
secret=$(openssl rand -hex 32)
say "generating $N unique signed deliveries"
"$BUILD/bin/gen-deliveries" "$N" "$secret" "$work/deliveries.tsv"
bytes=$(head -1 "$work/deliveries.tsv" | cut -f2 | tr -d '\n' | wc -c)

# written_by_thread PID: one line per thread of the process, "TID NAME
# BYTES": the bytes it has passed to write calls so far (wchar in
# /proc/PID/task/TID/io: files, and sockets written with write(); send() is
# not counted, and the servers here answer with send()). wchar rather than
# write_bytes: the kernel counts write_bytes a whole page-cache folio at a
# time, which on this machine came to 40 times what reached the disk.
# Threads whose io cannot be read (gone meanwhile, or /proc hidden) are left
# out.
written_by_thread() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm" 2>/dev/null | tr -c '[:alnum:]_.\n-' '_')" \
      "$(awk '/^wchar:/ {print $2}' "$t/io" 2>/dev/null)"
  done | awk 'NF == 3'
}

# run_wrk NAME PORT PID: one warm-up second, then the measured run; prints
# the RESULT line with peak RSS appended.
run_wrk() {
  local name=$1 port=$2 pid=$3
  # Every dirty page on the machine to disk first: the generated files and
  # the previous line's databases would otherwise be written back by the
  # kernel during this line's run, and its fdatasyncs would wait behind them.
  sync
  wrk -t2 -c"$CONNS" -d1s -s "$ROOT/bench/intake.lua" "http://127.0.0.1:$port/webhooks/clay" \
    -- "$work/warm.tsv" 2 >/dev/null
  local out perf_pid=""
  if [ -n "${BENCH_PERF:-}" ]; then
    mkdir -p "$BENCH_PERF"
    perf record -q -F 999 -g -o "$BENCH_PERF/$name.data" -p "$pid" 2>"$BENCH_PERF/$name.record.log" &
    perf_pid=$!
  fi
  local written0 written1
  written0=$(written_by_thread "$pid")
  out=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -s "$ROOT/bench/intake.lua" \
    "http://127.0.0.1:$port/webhooks/clay" -- "$work/deliveries.tsv" 2 | grep '^RESULT')
  written1=$(written_by_thread "$pid")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$BENCH_PERF/$name.data" --no-children --sort dso,symbol --percent-limit 0.7 \
      --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' >"$BENCH_PERF/$name.top.txt" || true
  fi
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  # What each thread (by name) passed to write calls during the measured
  # run, as name:bytes,name:bytes (threads that ended meanwhile are left out).
  local written
  # By thread id, then summed by name: a thread that ended during the run
  # is left out (its bytes are lost with it), one started during it counts
  # in full. %.0f: mawk's %d stops at 2^31.
  written=$(awk 'NR == FNR { before[$1] = $3; next }
    { d[$2] += $3 - ($1 in before ? before[$1] : 0); any = 1 }
    END { if (!any) { print "unreadable"; exit }
          for (n in d) if (d[n] > 0) { printf "%s%s:%.0f", sep, n, d[n]; sep = "," } }' \
    <(echo "$written0") <(echo "$written1"))
  echo "$out rss_kb=$rss written=${written:-none} name=$name"
}
# Warm-up deliveries have rows of their own, so the measured run sends only new ones.
"$BUILD/bin/gen-deliveries" 40000 "$secret" "$work/warm.tsv" warm_

# PostgreSQL before the first measurement, so that a server that cannot start
# ends the run before anything is measured; it idles until its line.
[ "$use_pg" = false ] || pg_start # exits (set -e), with the log's tail, when it does not start

say "bare responder"
"$BUILD/bin/bare-responder" "$secret" 64 >"$work/bare.log" 2>&1 &
bare_pid=$!; bench_pids+=("$bare_pid")
wait_for "$work/bare.log" '^port='
bare_port=$(sed -n 's/^port=//p' "$work/bare.log")
bare=$(run_wrk bare "$bare_port" "$bare_pid")
kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true

ceilings=("$bare")
if [ "${BENCH_BARE_SYNC:-true}" = true ]; then
  say "bare responder with a group fdatasync (bare-sync)"
  "$BUILD/bin/bare-responder" "$secret" 64 "$work/bare-sync.dat" >"$work/bare-sync.log" 2>&1 &
  bare_pid=$!; bench_pids+=("$bare_pid")
  wait_for "$work/bare-sync.log" '^port='
  bare_port=$(sed -n 's/^port=//p' "$work/bare-sync.log")
  ceilings+=("$(run_wrk bare-sync "$bare_port" "$bare_pid")")
  kill "$bare_pid"; wait "$bare_pid" 2>/dev/null || true
  rm -f "$work/bare-sync.dat"
fi

# One host per engine, each on a store of its own, stopped before the next
# starts. The events are counted once the host has stopped (with the journal,
# what it still held is in the tables by then).
results=(); events=(); measured=(); handled=(); syncs=(); lat=()
for e in "${engines[@]}"; do
  say "clayhook, $e (durable=$DURABLE, sink=$SINK)"
  sink=""
  [ "$SINK" = true ] && sink="$work/$e.events.jsonl"
  case $e in
    sqlite | sqlite-journal)
      journal=false; [ "$e" = sqlite-journal ] && journal=true
      intake_config "$work/$e.yaml" "{path: $work/$e/clayhook.db, durable: $DURABLE, journal: $journal}" "$sink"
      start_host "$work/$e.yaml" "$work/$e.log"
      ;;
    postgres)
      psql_q postgres 'CREATE DATABASE clayhook' >/dev/null
      intake_config "$work/$e.yaml" \
        "{engine: postgres, postgres_url: \"\${PG_URL}\", host_id: h1, postgres_pool: $PG_POOL, durable: $DURABLE}" "$sink"
      PG_URL=$(pg_url clayhook) start_host "$work/$e.yaml" "$work/$e.log"
      ;;
  esac
  r=$(run_wrk "$e" "$host_port" "$host_pid"); results+=("$r")
  # The journal's sync passes (docs/operations.md, the metrics): how many,
  # their average, and how many were slow. Read from the host's /metrics.
  m=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode())' \
    "$host_port" 2>/dev/null | grep -E '^clayhook_(journal_s|intake_latency_seconds_bucket)' || true)
  syncs+=("$(awk '/^clayhook_journal_syncs / {n=$2} /^clayhook_journal_sync_seconds / {t=$2}
    /over="1ms"/ {a=$2} /over="5ms"/ {b=$2} /over="20ms"/ {c=$2}
    END { if (n > 0) printf "passes=%d avg_us=%.0f over_1ms=%d over_5ms=%d over_20ms=%d", n, t * 1e6 / n, a, b, c }' <<<"$m")")
  # The host's own latency histogram (from the request's head to its
  # answer): the part of wrk's tail the host measures itself. The rest is
  # the event loops' queueing and the sockets.
  lat+=("$(awk -F'[ "]' '/^clayhook_intake_latency_seconds_bucket/ {
      for (i = 1; i <= NF; ++i) if ($i ~ /le=$/) le = $(i + 1); c[le] += $NF }
    END { n = c["+Inf"]; if (n > 0) printf "over 5 ms %.2f%%, over 10 ms %.2f%%, over 25 ms %.2f%% of %d",
      100 * (n - c["0.005"]) / n, 100 * (n - c["0.01"]) / n, 100 * (n - c["0.025"]) / n, n }' <<<"$m")")
  n=$( [ -f "$work/$e.events.jsonl" ] && wc -l <"$work/$e.events.jsonl" || echo 0); handled+=("$n")
  stop_host
  # The measured run's own events (the warm-up's keys start with warm_).
  q_all='select count(*) from events'
  q_new="select count(*) from events where idempotency_key not like '%warm_%'"
  case $e in
    postgres)
      n=$(psql_q clayhook "$q_all" 2>/dev/null || echo '?')
      m=$(psql_q clayhook "$q_new" 2>/dev/null || echo '?') ;;
    *)
      n=$(sqlite3 "$work/$e/clayhook.db" "$q_all" 2>/dev/null || echo '?')
      m=$(sqlite3 "$work/$e/clayhook.db" "$q_new" 2>/dev/null || echo '?') ;;
  esac
  events+=("$n"); measured+=("$m")
done
pg_stop

printf '\nintake benchmark: %s s per run, %s connections, %s-byte bodies, durable=%s, sink=%s, server=%s, %s cores\n' \
  "$SECONDS_RUN" "$CONNS" "$bytes" "$DURABLE" "$SINK" "${BENCH_SERVER:-auto}" "$(nproc)"
[ "$use_pg" = false ] ||
  printf 'postgres: PostgreSQL %s on loopback (fsync=on, synchronous_commit=on, shared_buffers=128MB), postgres_pool=%s\n' \
    "$pg_version" "$PG_POOL"
printf '%-15s %10s %10s %10s %10s %8s %8s\n' "" rps p50_ms p99_ms rss_MB non2xx sock_err
for r in "${ceilings[@]}" "${results[@]}"; do
  printf '%-15s %10s %10s %10s %10.1f %8s %8s\n' "$(field "$r" name)" "$(field "$r" rps)" \
    "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$(echo "$(field "$r" rss_kb) / 1024" | bc -l)" \
    "$(field "$r" non2xx)" "$(field "$r" socket_errors)"
done
if [ ${#ceilings[@]} -gt 1 ]; then
  printf 'ratio %-20s rps %.2f; p99 %s ms (a durable design at its simplest, same run)\n' \
    "bare-sync/bare:" "$(echo "$(field "${ceilings[1]}" rps) / $(field "$bare" rps)" | bc -l)" \
    "$(field "${ceilings[1]}" p99_ms)"
fi
for i in "${!engines[@]}"; do
  r=${results[$i]}
  printf 'ratio %-20s rps %.2f (goal >= 0.80); p99 %s ms (goal <= 3); RSS %.0f MB (goal <= 150)\n' \
    "${engines[$i]}/bare:" "$(echo "$(field "$r" rps) / $(field "$bare" rps)" | bc -l)" \
    "$(field "$r" p99_ms)" "$(echo "$(field "$r" rss_kb) / 1024" | bc -l)"
done
for i in "${!engines[@]}"; do
  printf 'events in the store, %-15s %8s (warm-up included; the measured run sent %s requests)\n' \
    "${engines[$i]}:" "${events[$i]}" "$(field "${results[$i]}" requests)"
  # Each wrk thread sends its share of the file in turn and starts it again
  # when done: past that, requests repeat deliveries (answered as duplicates,
  # cheaper than a store), and the line's rps is flattered. wrk does not count
  # the requests still in flight at the end, hence the margin.
  req=$(field "${results[$i]}" requests)
  if [[ ${measured[$i]} =~ ^[0-9]+$ ]] && [ $((req - measured[i])) -gt "$CONNS" ]; then
    printf 'WARNING %s: %s of the measured requests repeated a delivery (a wrk thread went round its share of the %s): its rps is flattered; raise BENCH_DELIVERIES\n' \
      "${engines[$i]}" "$((req - measured[i]))" "$N"
  fi
done
# Bytes written per delivery, by thread: the store's write amplification.
for r in "${ceilings[@]}" "${results[@]}"; do
  req=$(field "$r" requests)
  printf 'written per request, %-15s %s\n' "$(field "$r" name):" "$(tr ',' '\n' <<<"$(field "$r" written)" |
    awk -F: -v n="${req:-0}" 'n > 0 && $2 != "" && $2 / n >= 1 { t += $2; parts = parts sprintf("%s%s %.0f", sep, $1, $2 / n); sep = ", " }
      $1 == "unreadable" { unreadable = 1 }
      END { if (n <= 0) print "no requests"; else if (unreadable) print "unreadable (/proc/PID/task/*/io)";
            else if (t == 0) print "nothing"; else printf "%.0f B (%s)\n", t / n, parts }')"
done
for i in "${!engines[@]}"; do
  [ -z "${syncs[$i]}" ] || printf 'journal syncs, %-15s %s (warm-up included)\n' "${engines[$i]}:" "${syncs[$i]}"
done
for i in "${!engines[@]}"; do
  [ -z "${lat[$i]}" ] || printf 'host-measured latency, %-15s %s (warm-up included)\n' "${engines[$i]}:" "${lat[$i]}"
done
if [ "$SINK" = true ]; then
  for i in "${!engines[@]}"; do
    printf 'handed to the sink plugin by the end of the run, %-15s %8s\n' "${engines[$i]}:" "${handled[$i]}"
  done
fi
exit 0
