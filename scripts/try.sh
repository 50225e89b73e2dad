#!/usr/bin/env bash
# Install the package in a virtual environment (.venv, from the lock constraints.txt) and run the
# sample job against the local Woopra stand-in: no Woopra account, no network beyond 127.0.0.1 once
# installed. Everything it writes goes under out/try/.
#   usage: bash scripts/try.sh
#   env:   PYTHON (python3: what .venv is made from), VENV (.venv)
# Needs Python 3.11 or newer; on Debian or Ubuntu without python3-venv, apt-get with root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
OUT=out/try

install_in_venv '.'

mkdir -p "$OUT"
rm -f "$OUT/received.jsonl" "$OUT/standin.log"
# Port 0: the stand-in takes a free loopback port and prints its URL on its first line.
"$PY" -m woopra_standin --port 0 --quiet --record "$OUT/received.jsonl" >"$OUT/standin.log" 2>&1 &
standin=$!
trap 'kill "$standin" 2>/dev/null || true; wait "$standin" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 100); do  # at most 20 s
  url="$(sed -n 's/^woopra stand-in listening on //p' "$OUT/standin.log")"
  [[ -n $url ]] && break
  kill -0 "$standin" 2>/dev/null || { cat "$OUT/standin.log" >&2; die "the Woopra stand-in did not start"; }
  sleep 0.2
done
[[ -n $url ]] || die "the Woopra stand-in printed no URL within 20 s"
echo "Woopra stand-in: $url"

"$PY" -m pipeline --input samples/events.jsonl --config samples/mapping.yaml --woopra_endpoint "$url" \
  --dead_letter "$OUT/dead_letter/" --summary "$OUT/summary.json"

received=0
[[ -f $OUT/received.jsonl ]] && received="$(wc -l <"$OUT/received.jsonl")"
echo
echo "The stand-in received $received requests: $OUT/received.jsonl"
echo "Dead letters: $OUT/dead_letter/   Summary as JSON: $OUT/summary.json"
