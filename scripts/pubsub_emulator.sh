#!/usr/bin/env bash
# Start/stop a local Pub/Sub server on 127.0.0.1 for tests and CI.
#   usage: scripts/pubsub_emulator.sh start|stop|status|backend
#          status: the backend serving the port (emulator, pstest or unknown), exit 1 if none;
#          backend: the one `start` would launch.
#   env:   PUBSUB_PORT (8085), PUBSUB_STATE_DIR (/tmp/pubsub-emulator-$PORT),
#          PUBSUB_BACKEND=auto|emulator|pstest (auto), PYTHON (python3)
# Backends: "emulator" = Google's Java emulator (Debian google-cloud-cli-pubsub-emulator),
# "pstest" = Google's Go fake, built offline from Debian golang-go + golang-google-cloud-dev
# using scripts/pstest_server/main.go. Clients use PUBSUB_EMULATOR_HOST=127.0.0.1:$PORT.
set -euo pipefail

PORT="${PUBSUB_PORT:-8085}"
STATE="${PUBSUB_STATE_DIR:-/tmp/pubsub-emulator-$PORT}"
WANT="${PUBSUB_BACKEND:-auto}"
PY="${PYTHON:-python3}"
HOST=127.0.0.1
LOG="$STATE/emulator.log" PIDF="$STATE/pid" BACKF="$STATE/backend"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Run the launcher directly: `gcloud beta emulators pubsub start` is a wrapper
# whose Java child survives when the wrapper is killed and keeps the port.
LAUNCHER=/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator
PSTEST_SRC=/usr/share/gocode/src/cloud.google.com/go/pubsub/pstest/fake.go
APT_HINT="apt-get install golang-go golang-google-cloud-dev"

die() { echo "pubsub_emulator: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }
alive() { [[ -f $PIDF ]] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }

# Real API round trip (create + delete a topic) over gRPC with the Python client:
# proves a Pub/Sub server answers, not just that something holds the port. Works
# for both backends (pstest has no HTTP endpoint). TCP-only if the client is missing.
probe() {
  port_open || return 1
  if ! "$PY" -c 'import google.cloud.pubsub_v1' 2>/dev/null; then return 0; fi
  PUBSUB_EMULATOR_HOST="$HOST:$PORT" "$PY" - >/dev/null 2>&1 <<'EOF'
import os
from google.cloud import pubsub_v1
p = pubsub_v1.PublisherClient()
t = p.topic_path("probe", "ready-probe-%d" % os.getpid())
p.create_topic(request={"name": t}, timeout=5, retry=None)
p.delete_topic(request={"topic": t}, timeout=5, retry=None)
EOF
}

# Which backend serves the port: ours from the state file, else read off the listening process's
# command line (a server started by another copy of this script, or by hand).
serving() {
  port_open || return 1
  if alive && [[ -f $BACKF ]]; then cat "$BACKF"; return 0; fi
  local cmdline
  for cmdline in /proc/[0-9]*/cmdline; do
    cmdline="$(tr '\0' ' ' <"$cmdline" 2>/dev/null)" || continue
    case "$cmdline" in
      *cloud-pubsub-emulator*"--port=$PORT "*) echo emulator; return 0 ;;
      *pstest_server*"-port $PORT "*) echo pstest; return 0 ;;
    esac
  done
  echo unknown
}

# Why a backend cannot be used (empty output = usable).
emulator_problem() {
  [[ -x $LAUNCHER ]] || { echo "$LAUNCHER missing (apt-get install google-cloud-cli-pubsub-emulator)"; return; }
  command -v java >/dev/null || [[ -x ${JAVA_HOME:-/nonexistent}/bin/java ]] || echo "java not found (the emulator needs a JRE)"
}
pstest_problem() {
  if command -v go >/dev/null && [[ -f $PSTEST_SRC ]]; then return; fi
  # Missing packages are fine if we can install them (root + apt).
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && return
  echo "go toolchain or pstest source missing and not root to install them ($APT_HINT)"
}
choose() {  # print the backend `start` would use, or fail with the reasons
  local e p
  case "$WANT" in
    emulator) e="$(emulator_problem)"; [[ -z $e ]] || die "emulator: $e"; echo emulator ;;
    pstest) p="$(pstest_problem)"; [[ -z $p ]] || die "pstest: $p"; echo pstest ;;
    auto) e="$(emulator_problem)"; [[ -z $e ]] && { echo emulator; return; }
          p="$(pstest_problem)"; [[ -z $p ]] && { echo pstest; return; }
          die "no usable backend: emulator: $e; pstest: $p" ;;
    *) die "PUBSUB_BACKEND must be auto, emulator or pstest (got '$WANT')" ;;
  esac
}

# Build the pstest server once, offline, in GOPATH mode against Debian's Go
# packages; the binary is cached in the state dir and rebuilt only if main.go changes.
build_pstest() {
  local bin="$STATE/pstest_server"
  if ! command -v go >/dev/null || [[ ! -f $PSTEST_SRC ]]; then
    echo "installing golang-go golang-google-cloud-dev via apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        golang-go golang-google-cloud-dev; } >>"$LOG" 2>&1 \
      || { tail -n 5 "$LOG" >&2; die "pstest: apt-get could not install the Go packages ($APT_HINT)"; }
  fi
  if [[ ! -x $bin || $HERE/pstest_server/main.go -nt $bin ]]; then
    echo "building pstest server (first start only)" >&2
    (cd "$HERE/pstest_server" && GO111MODULE=off GOFLAGS='' GOPATH="$STATE/gopath:/usr/share/gocode" \
      GOCACHE="$STATE/gocache" go build -o "$bin.tmp" . ) >>"$LOG" 2>&1 \
      || { tail -n 20 "$LOG" >&2; die "pstest: go build failed (see $LOG)"; }
    mv "$bin.tmp" "$bin"
  fi
}

# Launch in its own session/process group (so `stop` can kill the whole tree)
# and wait, bounded to 60 s, for a real API round trip. Returns 1 on failure.
launch() {
  local backend="$1" t0
  if [[ $backend == pstest ]]; then
    build_pstest; set -- "$STATE/pstest_server" -port "$PORT"
  else
    set -- "$LAUNCHER" --host="$HOST" --port="$PORT"
  fi
  echo "== $(date '+%F %T') starting $backend: $*" >>"$LOG"
  setsid nohup "$@" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDF"; echo "$backend" >"$BACKF"; t0=$SECONDS  # bound excludes the build
  while :; do
    if probe; then alive && return 0; fi
    if ! alive; then echo "pubsub_emulator: $backend exited during start-up" >&2; break; fi
    if (( SECONDS - t0 >= 60 )); then echo "pubsub_emulator: $backend not ready after 60 s" >&2; break; fi
    sleep 0.5
  done
  tail -n 20 "$LOG" >&2; do_stop >/dev/null || true; return 1
}

do_start() {
  mkdir -p "$STATE"
  if probe; then
    echo "pubsub emulator ($(serving)) ready on $HOST:$PORT"; return 0
  fi
  port_open && die "port $PORT is in use by something that is not a Pub/Sub server"
  alive && do_stop >/dev/null  # our process, but unresponsive: restart it
  local backend; backend="$(choose)"
  if ! launch "$backend"; then
    # auto: the Java emulator failing to start is what the pstest fallback is for.
    [[ $WANT == auto && $backend == emulator && -z "$(pstest_problem)" ]] \
      || die "failed to start the $backend backend (log: $LOG)"
    echo "pubsub_emulator: emulator failed, falling back to pstest" >&2
    backend=pstest; launch pstest || die "failed to start the pstest backend too (log: $LOG)"
  fi
  echo "pubsub emulator ($backend) ready on $HOST:$PORT"
}

do_stop() {
  [[ -f $PIDF ]] || { echo "pubsub emulator not running (no $PIDF)"; return 0; }
  local pid t0=$SECONDS; pid="$(cat "$PIDF")"
  kill -TERM -- "-$pid" 2>/dev/null || true  # whole process group (launcher + java)
  while { kill -0 -- "-$pid" 2>/dev/null || port_open; } && (( SECONDS - t0 < 20 )); do
    if (( SECONDS - t0 >= 10 )); then kill -KILL -- "-$pid" 2>/dev/null || true; fi  # hung: force
    sleep 0.2
  done
  port_open && die "port $PORT still in use after 20 s (pid $pid)"
  rm -f "$PIDF" "$BACKF"; echo "pubsub emulator stopped"
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) serving || { echo "not running" >&2; exit 1; } ;;
  backend) choose ;;
  *) die "usage: $0 start|stop|status|backend" ;;
esac
