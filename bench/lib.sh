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

# bench_workdir NAME: makes the run's temporary folder, $work
# ($TMPDIR/clayhook-NAME-XXXXXX), and sets the EXIT trap that cleans up:
# SIGKILLs the host ($host_pid), the driver ($driver_pid) and whatever else
# is in bench_pids, then removes $work unless keep=1 (BENCH_KEEP=1 sets it;
# a script may set it when the run went wrong).
bench_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-$1-XXXXXX")
  keep=${BENCH_KEEP:-0}
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p
  for p in $host_pid $driver_pid "${bench_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
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
# benchmarks drive: the listener opened wide (64 threads, no per-peer cap),
# one hmac-sha256 source with the secret from BENCH_SECRET, the store line
# given (a YAML flow mapping), and, when SINK_FILE is not empty, the
# jsonl-sink plugin writing there.
intake_config() {
  local file=$1 store=$2 sink=$3
  cat >"$file" <<YAML
admin: {enabled: false}
log: {level: info}   # per-request lines are only for rejects
listener: {address: 127.0.0.1, port: 0, threads: 64, max_connections: 1024, max_connections_per_peer: 0}
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
