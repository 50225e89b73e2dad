#!/usr/bin/env bash
# Set up this machine and run the whole test suite, as CI does (.ci/run calls this):
# system packages (nginx, Chromium, Google's Pub/Sub emulator), the package with its test extras,
# lint (ruff, mypy), the emulator on 127.0.0.1:$PUBSUB_PORT, then pytest.
#   usage: bash scripts/test.sh [pytest arguments, e.g. --run-slow or tests/pipeline/test_config.py]
#   env:   PYTHON (python3), PUBSUB_PORT (8085)
# A skipped test, no test collected, or a Pub/Sub backend other than Google's emulator where its
# Debian package is installed all fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
EMULATOR_PACKAGE=google-cloud-cli-pubsub-emulator
export DEBIAN_FRONTEND=noninteractive

die() { echo "scripts/test.sh: $*" >&2; exit 1; }
apt_updated=""
apt_install() {
  [[ $(id -u) == 0 ]] || die "need root to apt-get install $* (or install them first)"
  [[ -n $apt_updated ]] || { apt-get update -qq; apt_updated=1; }
  apt-get install -y -qq "$@" >/dev/null
}

# nginx: benchmark smoke runs; Chromium: renders the HTML run report. Their tests fail without them.
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Google's Pub/Sub emulator comes from Google's apt source, not Debian's: install it where that
# source is configured, else say so (the streaming tests must run against it, not be skipped).
if ! dpkg -s "$EMULATOR_PACKAGE" >/dev/null 2>&1; then
  [[ -n $apt_updated ]] || { apt-get update -qq; apt_updated=1; }
  if apt-cache policy "$EMULATOR_PACKAGE" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "installing $EMULATOR_PACKAGE"
    apt_install "$EMULATOR_PACKAGE"
  else
    die "the Pub/Sub emulator is not installed and no apt source offers it: add Google Cloud's apt" \
        "repository (https://cloud.google.com/sdk/docs/install#deb), then apt-get install $EMULATOR_PACKAGE"
  fi
fi

pip_log="$(mktemp)"
"$PY" -m pip install --quiet --root-user-action=ignore -e '.[test]' >"$pip_log" 2>&1 \
  || { cat "$pip_log" >&2; die "pip install -e '.[test]' failed"; }
rm -f "$pip_log"

lint_paths=(pipeline transforms woopra_standin tests templates scripts)
[[ -d benchmarks ]] && lint_paths+=(benchmarks)
"$PY" -m ruff check "${lint_paths[@]}"
"$PY" -m mypy pipeline transforms

# The streaming tests talk to a real Pub/Sub server on loopback. One already serving the port
# (a developer's) is used and left running; one started here is stopped on exit.
export PUBSUB_PORT="${PUBSUB_PORT:-8085}"
started_here=""
if ! bash scripts/pubsub_emulator.sh status >/dev/null 2>&1; then started_here=1; fi
PUBSUB_BACKEND=emulator bash scripts/pubsub_emulator.sh start
if [[ -n $started_here ]]; then
  trap 'bash scripts/pubsub_emulator.sh stop >/dev/null 2>&1 || true' EXIT
fi
export PUBSUB_EMULATOR_HOST="127.0.0.1:${PUBSUB_PORT}"
backend="$(bash scripts/pubsub_emulator.sh status)"
echo "pubsub backend: $backend on $PUBSUB_EMULATOR_HOST ($EMULATOR_PACKAGE $(dpkg-query -W -f='${Version}' "$EMULATOR_PACKAGE"))"
[[ $backend == emulator ]] || die "the tests would run against '$backend', not Google's Pub/Sub emulator"

# A skipped test fails the run (tests/conftest.py); pytest's exit 5 means it collected no test.
set +e
WOOPRA_FAIL_ON_SKIP=1 "$PY" -m pytest -q -p no:cacheprovider -rs "$@"
status=$?
set -e
[[ $status -ne 5 ]] || die "pytest collected no tests"
exit "$status"
