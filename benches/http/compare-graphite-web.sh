#!/usr/bin/env bash
# Times Carbide's read API against graphite-web 1.1.10 (gunicorn, 2 workers: one per core) over
# the same whisper files, side by side in one run, and prints requests/s and the ratio:
#   (a) one metric, one day at 10 s;
#   (b) sumSeries over a 1,000-metric wildcard, one day;
#   (c) /metrics/find on a 1,000,000-name tree (three query shapes).
# Each run is wrk -t1 -c4 for the given seconds; a server whose one request takes longer gets a
# run long enough for several requests to finish, and a wrk timeout well above its latency
# (so slow answers are counted, not dropped as timeouts). Carbide's peak RSS (VmHWM, reset
# before each case through /proc/<pid>/clear_refs) is printed per case.
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
  (cd "$root" && cargo build --release --quiet --bin carbide)
  bin="${CARGO_TARGET_DIR:-$root/target}/release/carbide"
fi

cport=${CARBIDE_PORT:-18181}
gport=${GRAPHITE_PORT:-18182}
# A server left on a port by an earlier run would be measured instead of the one started here.
for p in $cport $gport; do
  if curl -s -o /dev/null "127.0.0.1:$p/"; then
    echo "port $p is already in use (set CARBIDE_PORT / GRAPHITE_PORT)" >&2
    exit 1
  fi
done
"$bin" serve --data-dir "$data" --line-tcp off --line-udp off --pickle off \
  --cache-query off --http "127.0.0.1:$cport" 2>"$work/carbide.log" &
cpid=$!
# gunicorn itself is the background job (no subshell), so the trap's kill reaches its master,
# which stops the workers.
WHISPER_DIR="$data/whisper" "$venv/bin/gunicorn" --chdir "$root/benches/http" -w 2 \
  -b "127.0.0.1:$gport" graphite_wsgi:application 2>"$work/gunicorn.log" &
gpid=$!
trap 'kill $cpid $gpid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for p in $cport $gport; do
  for _ in $(seq 1 600); do curl -sf "127.0.0.1:$p/version" >/dev/null && break; sleep 0.5; done
done

# The latency of one request in seconds (the warm-up request); a failing request stops the run.
latency() {
  curl -sf -o "$2" -w '%{time_total}' "$1"
}
rate() { # url, latency of one request -> requests/s (wrk, 1 thread, 4 connections)
  local url=$1 one=$2 d t
  # Four connections on two workers queue two deep: a request waits about twice its latency.
  d=$(awk -v s="$secs" -v l="$one" 'BEGIN { d = 4 * l; if (d < s) d = s; printf "%d", d + 0.999 }')
  t=$(awk -v l="$one" 'BEGIN { t = 3 * l + 10; if (t < 60) t = 60; printf "%d", t + 0.999 }')
  wrk -t1 -c4 -d"${d}s" --timeout "${t}s" "$url" | awk '/Requests\/sec/ {print $2}'
}
# VmHWM of carbide in MB, and a reset of it for the next case (clear_refs 5 resets the peak).
peak_rss() {
  awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$cpid/status"
}
reset_peak() {
  echo 5 >"/proc/$cpid/clear_refs" 2>/dev/null || true
}
printf '%-40s %13s %14s %8s %13s %16s\n' case "carbide req/s" "graphite req/s" ratio \
  "carbide ms/1" "carbide peak MB"
run() {
  local name=$1 path=$2 cl gl c g
  reset_peak
  cl=$(latency "127.0.0.1:$cport$path" "$work/c.out")
  gl=$(latency "127.0.0.1:$gport$path" "$work/g.out")
  c=$(rate "http://127.0.0.1:$cport$path" "$cl")
  local peak
  peak=$(peak_rss)
  g=$(rate "http://127.0.0.1:$gport$path" "$gl")
  # No graphite-web request finished: no ratio rather than a division by zero.
  awk -v n="$name" -v c="${c:-0}" -v g="${g:-0}" -v l="$cl" -v p="$peak" 'BEGIN {
    r = (g + 0 > 0) ? sprintf("%7.1fx", c / g) : "    n/a"
    printf "%-40s %13s %14s %8s %13.0f %16s\n", n, c, g, r, l * 1000, p
  }'
}
run "(a) one metric, 1 day at 10 s" "/render?target=one.metric&from=-1d&format=json"
run "(b) sumSeries(agg.*.cpu), 1 day" "/render?target=sumSeries(agg.*.cpu)&from=-1d&format=json"
run "(c) find big.* (1M-name tree)" "/metrics/find?query=big.*"
run "(c) find big.a050.b050.*" "/metrics/find?query=big.a050.b050.*"
run "(c) find big.a05*.b050.c00*" "/metrics/find?query=big.a05*.b050.c00*"

