# Sourced by scripts/try.sh and scripts/test.sh: a virtual environment of the project's own, with the
# package installed from the lock. After `install_in_venv SPEC`, $PY is the environment's python.
#   env: PYTHON  the interpreter the environment is made from (python3; Debian's /usr/bin/python3 works)
#        VENV    where the environment lives (.venv)
#        LOCK    constraints.txt (default): the versions CI tested; "newest": the newest setup.py allows
# Needs Python 3.11 or newer. Where `python -m venv` is missing (Debian's python3 without
# python3-venv), installs python3-venv with apt-get, as root or through sudo.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

as_root() {  # run a command as root: directly, or through sudo
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* with your system's package manager"
  [[ -n $apt_updated ]] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_in_venv() {  # install_in_venv SPEC, e.g. '.' or '.[test]'
  local base="${PYTHON:-python3}" venv="${VENV:-.venv}" lock="${LOCK:-constraints.txt}"
  command -v "$base" >/dev/null || die "$base not found (set PYTHON to a Python 3.11 or newer)"
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$base is Python $("$base" -c 'import platform; print(platform.python_version())'); the job needs 3.11 or newer"
  if [[ ! -x $venv/bin/python ]]; then
    if ! "$base" -c 'import ensurepip, venv' 2>/dev/null; then
      echo "installing python3-venv (python -m venv is missing)"
      apt_install python3-venv
    fi
    "$base" -m venv "$venv" || die "could not create the virtual environment $venv"
  fi
  venv="$(cd "$venv" && pwd)"
  PY="$venv/bin/python"
  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"  # as `source $venv/bin/activate` does
  local constraint=(-c constraints.txt)
  case "$lock" in
    constraints.txt) ;;
    newest) constraint=(--upgrade --upgrade-strategy eager) ;;
    *) die "LOCK must be constraints.txt or newest (got '$lock')" ;;
  esac
  local log; log="$(mktemp)"
  "$PY" -m pip install --quiet --disable-pip-version-check "${constraint[@]}" -e "$1" >"$log" 2>&1 \
    || { cat "$log" >&2; die "pip install ${constraint[*]} -e '$1' failed (in $venv)"; }
  rm -f "$log"
}
