#!/usr/bin/env bash
# Set up this machine and run the whole test suite, as CI does (.ci/run calls this): system packages
# (nginx, Chromium, a Pub/Sub server), a virtual environment .venv with the package and its test
# extras from the lock (constraints.txt), lint (ruff, mypy), a Pub/Sub server on 127.0.0.1, pytest.
#   usage: bash scripts/test.sh [pytest arguments, e.g. --run-slow or tests/pipeline/test_config.py]
#   env:   PYTHON (python3: what .venv is made from), VENV (.venv), LOCK (constraints.txt, or newest),
#          PUBSUB_PORT (8085)
# Needs Debian or Ubuntu with apt-get, as root or with sudo, for the system packages.
# Pub/Sub: Google's emulator (google-cloud-cli-pubsub-emulator, from Google's apt repository) where
# it is installed or an apt source offers it; elsewhere Google's Go fake (pstest), built from
# Debian's golang packages, and the script says so. A skipped test, no test collected, or where
# Google's emulator is installed any other Pub/Sub server, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
EMULATOR_PACKAGE=google-cloud-cli-pubsub-emulator

# nginx: benchmark smoke runs; Chromium: renders the HTML run report. Their tests fail without them.
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Google's Pub/Sub emulator comes from Google's apt source, not Debian's: install it where that
# source is configured; without it the streaming tests run against pstest (never skipped).
want_backend=emulator
if ! dpkg -s "$EMULATOR_PACKAGE" >/dev/null 2>&1; then
  [[ -n $apt_updated ]] || { as_root apt-get update -qq; apt_updated=1; }
  if apt-cache policy "$EMULATOR_PACKAGE" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "installing $EMULATOR_PACKAGE"
    apt_install "$EMULATOR_PACKAGE"
  else
    want_backend=pstest
    echo "pubsub: $EMULATOR_PACKAGE is not installed and no apt source offers it; the streaming tests" \
         "run against pstest, Google's Go fake built from Debian's golang packages"
  fi
fi

install_in_venv '.[test]'
"$PY" -m pip check >/dev/null || { "$PY" -m pip check >&2; die "the installed packages conflict"; }
echo "python: $("$PY" -c 'import platform; print(platform.python_version())') in ${VENV:-.venv}," \
     "apache-beam $("$PY" -c 'import apache_beam; print(apache_beam.__version__)') (${LOCK:-constraints.txt})"

# Lint with the locked ruff and mypy only: a newer release's new rules are not a broken job.
if [[ ${LOCK:-constraints.txt} == constraints.txt ]]; then
  lint_paths=(pipeline transforms woopra_standin tests templates scripts)
  [[ -d benchmarks ]] && lint_paths+=(benchmarks)
  "$PY" -m ruff check "${lint_paths[@]}"
  "$PY" -m mypy pipeline transforms
fi

# The streaming tests talk to a real Pub/Sub server on loopback. One already serving the port
# (a developer's) is used and left running; one started here is stopped on exit.
export PUBSUB_PORT="${PUBSUB_PORT:-8085}"
started_here=""
if ! bash scripts/pubsub_emulator.sh status >/dev/null 2>&1; then started_here=1; fi
PYTHON="$PY" PUBSUB_BACKEND="$want_backend" bash scripts/pubsub_emulator.sh start
if [[ -n $started_here ]]; then
  trap 'bash scripts/pubsub_emulator.sh stop >/dev/null 2>&1 || true' EXIT
fi
export PUBSUB_EMULATOR_HOST="127.0.0.1:${PUBSUB_PORT}"
backend="$(bash scripts/pubsub_emulator.sh status)"
version="$(dpkg-query -W -f='${Version}' "$EMULATOR_PACKAGE" 2>/dev/null || echo "not installed")"
echo "pubsub backend: $backend on $PUBSUB_EMULATOR_HOST ($EMULATOR_PACKAGE $version)"
[[ $backend == "$want_backend" ]] || die "the tests would run against '$backend', not $want_backend"

# A skipped test fails the run (tests/conftest.py); pytest's exit 5 means it collected no test.
set +e
# --durations: the 25 slowest tests, so a slow suite says where its time goes. Two workers
# (pytest-xdist; PYTEST_WORKERS=0 runs in this one process), each taking whole files: most tests
# wait on a child process, a server or a socket, so two share two cores well (about half the time).
WOOPRA_FAIL_ON_SKIP=1 "$PY" -m pytest -q -p no:cacheprovider -rs --durations=25 \
  -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
status=$?
set -e
[[ $status -ne 5 ]] || die "pytest collected no tests"
exit "$status"
