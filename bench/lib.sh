# Shared by the bench scripts in this folder: sourced, not run, after the
# script has set ROOT (the repository root):
#   ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
#   . "$ROOT/bench/lib.sh"
# Brings in scripts/lib.sh (say, ensure_packages, build, the package lists)
# and sets BUILD (default $ROOT/build) and CLAYHOOK_ROOT.
. "$ROOT/scripts/lib.sh"
CLAYHOOK_ROOT=$ROOT
BUILD=${BUILD:-$ROOT/build}

host_pid=
host_port=
host_rc=
driver_pid=
bench_pids=()
pg_bin=
pg_port=
pg_pid=
pg_version=
pg_runuser_pid=

# bench_workdir NAME: makes the run's temporary folder, $work
# ($TMPDIR/clayhook-NAME-XXXXXX), and sets the EXIT trap that cleans up:
# SIGKILLs the host ($host_pid) and the driver ($driver_pid), stops the
# PostgreSQL pg_start started, if any (pg_stop), SIGKILLs whatever else is in
# bench_pids, then removes $work unless keep=1 (BENCH_KEEP=1 sets it; a
# script may set it when the run went wrong).
bench_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-$1-XXXXXX")
  keep=${BENCH_KEEP:-0}
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p
  for p in $host_pid $driver_pid; do kill -KILL "$p" 2>/dev/null || true; done
  pg_stop
  for p in "${bench_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${keep:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}

# bench_build [cmake options...]: configures and builds $BUILD
# (RelWithDebInfo), the output in $work/build.log, its tail on failure.
bench_build() {
  say "building $BUILD"
  build "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log" >&2; return 1; }
}

# free_port: a loopback port nobody listens on now (bound, then released).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }
# secs A B: the seconds from A to B (milliseconds), one decimal.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
# field LINE KEY: the value of KEY=value in LINE.
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

# wait_for FILE PATTERN: until PATTERN (an extended regex) appears in FILE
# (up to 30 s); prints FILE and returns 1 if it does not.
wait_for() {
  for _ in $(seq 1 600); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# intake_config FILE STORE_YAML SINK_FILE: writes the config the intake
# benchmarks drive: the listener opened wide (64 threads, no per-peer cap;
# the server BENCH_SERVER names: events, threads, or auto, the default),
# one hmac-sha256 source with the secret from BENCH_SECRET, the store line
# given (a YAML flow mapping), and, when SINK_FILE is not empty, the
# jsonl-sink plugin writing there.
intake_config() {
  local file=$1 store=$2 sink=$3
  cat >"$file" <<YAML
admin: {enabled: false}
log: {level: info}   # per-request lines are only for rejects
listener: {address: 127.0.0.1, port: 0, server: ${BENCH_SERVER:-auto}${BENCH_LOOPS:+, loops: $BENCH_LOOPS}, threads: 64, max_connections: 1024, max_connections_per_peer: 0}
store: $store
dispatch: {lease: 30s, poll_interval: 1s}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${BENCH_SECRET}"]}
YAML
  [ -z "$sink" ] || cat >>"$file" <<YAML
plugins:
  - name: sink
    library: bundled:jsonl-sink
    config: {path: $sink}
YAML
}

# start_host CONFIG LOG: runs `clayhook serve --config CONFIG` in the
# background, its output in LOG, with BENCH_SECRET=$secret and TMPDIR=$work
# (a SIGKILLed host cannot remove its plugin staging folder, so those go
# where the cleanup finds them). Waits (up to 30 s) for msg=ready and sets
# host_pid and host_port (from the ready line's listen=). Returns 1, with the
# log's tail, when the host exits or does not get ready.
start_host() {
  local config=$1 log=$2
  BENCH_SECRET=$secret TMPDIR=$work "$BUILD/bin/clayhook" serve --config "$config" >"$log" 2>&1 &
  host_pid=$!
  for _ in $(seq 1 600); do
    if grep -q 'msg=ready' "$log" 2>/dev/null; then
      host_port=$(sed -n 's/.*msg=ready.*listen=127.0.0.1:\([0-9]*\).*/\1/p' "$log" | tail -1)
      return 0
    fi
    kill -0 "$host_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "the host did not get ready ($log):" >&2; tail -20 "$log" >&2; return 1
}

# stop_host: SIGTERM, up to 30 s for a graceful exit, then SIGKILL; sets
# host_rc (the exit code) and clears host_pid.
stop_host() {
  kill -TERM "$host_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$host_pid" 2>/dev/null || true
  host_rc=0; wait "$host_pid" || host_rc=$?
  host_pid=
}

# ---- PostgreSQL (pg_bench.sh, intake_bench.sh; the caller installs the
# postgresql package) -----------------------------------------------------------

# pg_find: sets pg_bin to the newest /usr/lib/postgresql/*/bin; says so and
# returns 1 when there is no PostgreSQL server there.
pg_find() {
  pg_bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1 || true)
  [ -x "$pg_bin/postgres" ] || { say "no PostgreSQL server under /usr/lib/postgresql/*/bin"; return 1; }
}

# pg_start: a PostgreSQL server of its own in $work/pg (pg_find first unless
# pg_bin is set), as the postgres user through runuser when run as root:
# `initdb -A trust -U postgres -E UTF8 --no-locale --no-sync`, then postgres
# on a free loopback port (its socket in $work/pg) with fsync=on,
# synchronous_commit=on, max_connections=200, shared_buffers=128MB. Waits (up
# to 30 s) for pg_isready and sets pg_port, pg_pid (the postmaster, also put
# in bench_pids) and pg_version (e.g. 15.18). Returns 1, with the log's tail,
# when initdb fails or the server does not get ready. bench_cleanup stops it.
pg_start() {
  local as_pg=()
  [ -n "$pg_bin" ] || pg_find || return 1
  mkdir -p "$work/pg"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$work" # mktemp's 0700 would keep the postgres user out of $work/pg
    chown postgres: "$work/pg"
    as_pg=(runuser -u postgres --)
  fi
  say "starting PostgreSQL ($pg_bin)"
  (cd "$work/pg" && LC_ALL=C "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -A trust -U postgres \
    -E UTF8 --no-locale --no-sync) >"$work/pg/initdb.log" 2>&1 ||
    { tail -20 "$work/pg/initdb.log" >&2; return 1; }
  pg_port=$(free_port)
  (cd "$work/pg" && exec env LC_ALL=C "${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg/data" \
    -c listen_addresses=127.0.0.1 -c port="$pg_port" -c unix_socket_directories="$work/pg" \
    -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=128MB) \
    >"$work/pg/postgres.log" 2>&1 &
  pg_runuser_pid=$!; bench_pids+=("$pg_runuser_pid")
  for _ in $(seq 1 300); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
    kill -0 "$pg_runuser_pid" 2>/dev/null || break
    sleep 0.1
  done
  # runuser forks: the postmaster is the process its pid file names.
  if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    say "PostgreSQL did not get ready within 30 s:"; tail -20 "$work/pg/postgres.log" >&2
    # A postmaster that is up but not ready is still stopped by the cleanup.
    pg_pid=$(head -1 "$work/pg/data/postmaster.pid" 2>/dev/null || true)
    return 1
  fi
  pg_pid=$(head -1 "$work/pg/data/postmaster.pid"); bench_pids+=("$pg_pid")
  pg_version=$(psql_q postgres 'show server_version' | cut -d' ' -f1)
}

# pg_stop: fast shutdown (SIGINT to the postmaster), up to 30 s, then
# SIGKILL; clears pg_pid. Does nothing when no server is running. (Not run as
# root, the postmaster is this shell's child: once it exits it is a zombie
# until reaped, which kill -0 does not tell apart, hence the State check.)
pg_stop() {
  [ -n "$pg_pid" ] || return 0
  kill -INT "$pg_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pg_pid" 2>/dev/null || break
    grep -q '^State:[[:space:]]*Z' "/proc/$pg_pid/status" 2>/dev/null && break
    sleep 0.1
  done
  kill -KILL "$pg_pid" 2>/dev/null || true
  pg_pid=
}

# psql_q DB SQL: one query on database DB of pg_start's server, unaligned, no header.
psql_q() {
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1" -c "$2"
}

# pg_url DB: the URL of database DB of pg_start's server, for a host's PG_URL.
pg_url() { echo "postgresql://postgres@127.0.0.1:$pg_port/$1"; }
