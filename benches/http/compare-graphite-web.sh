#!/usr/bin/env bash
# Times Carbide's read API against graphite-web 1.1.10 (gunicorn, 2 workers: one per core) over
# the same whisper files, side by side in one run, and prints requests/s and the ratio:
#   (a) one metric, one day at 10 s;
#   (b) sumSeries over a 1,000-metric wildcard, one day;
#   (c) /metrics/find on a 1,000,000-name tree (three query shapes).
# Needs wrk (apt-get install wrk). Data and a bench venv (the test venv's pins plus gunicorn)
# are cached under target/bench-http/.
#   usage: [CARBIDE_BIN=path] benches/http/compare-graphite-web.sh [seconds per run, default 10]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
work="$root/target/bench-http"
venv="$work/venv"
mkdir -p "$work"
if [ ! -x "$venv/bin/gunicorn" ]; then
  python3 -m venv "$venv"
  GRAPHITE_NO_PREFIX=1 "$venv/bin/pip" install --quiet -r "$root/scripts/test-requirements.txt" gunicorn==23.0.0
fi
data="$work/data"
mkdir -p "$data/whisper"
echo "building data under $data (first run: a few minutes for the 1M-name tree)" >&2
"$venv/bin/python" "$root/benches/http/make_data.py" "$data/whisper"
# CARBIDE_BIN: an already built release binary (default: build this checkout).
bin=${CARBIDE_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release --quiet)
  bin="$root/target/release/carbide"
fi

cport=18181
gport=18182
"$bin" serve --data-dir "$data" --line-tcp off --line-udp off --pickle off \
  --http "127.0.0.1:$cport" 2>"$work/carbide.log" &
cpid=$!
(cd "$root/benches/http" && WHISPER_DIR="$data/whisper" "$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$gport" \
  graphite_wsgi:application 2>"$work/gunicorn.log") &
gpid=$!
trap 'kill $cpid $gpid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for p in $cport $gport; do
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$p/version" >/dev/null && break; sleep 0.5; done
done

rate() { # url -> requests/s (wrk, 1 thread, 4 connections)
  wrk -t1 -c4 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'
}
printf '%-44s %14s %14s %8s\n' case "carbide req/s" "graphite req/s" ratio
run() {
  local name=$1 path=$2
  curl -sf "127.0.0.1:$cport$path" -o "$work/c.out"
  curl -sf "127.0.0.1:$gport$path" -o "$work/g.out"
  local c g
  c=$(rate "http://127.0.0.1:$cport$path")
  g=$(rate "http://127.0.0.1:$gport$path")
  printf '%-44s %14s %14s %7.1fx\n' "$name" "$c" "$g" "$(echo "$c / $g" | bc -l)"
}
run "(a) one metric, 1 day at 10 s" "/render?target=one.metric&from=-1d&format=json"
run "(b) sumSeries(agg.*.cpu), 1 day" "/render?target=sumSeries(agg.*.cpu)&from=-1d&format=json"
run "(c) find big.* (1M-name tree)" "/metrics/find?query=big.*"
run "(c) find big.a050.b050.*" "/metrics/find?query=big.a050.b050.*"
run "(c) find big.a05*.b050.c00*" "/metrics/find?query=big.a05*.b050.c00*"
echo "peak RSS carbide: $(awk '/VmHWM/ {print $2, $3}' /proc/$cpid/status)" 
