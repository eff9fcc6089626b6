#!/usr/bin/env bash
# accept-only.sh: how fast `carbide serve` receives, with its writers held back.
#
# Starts carbide serve (benchmark schema and config, fresh data directory) with
# `[persist] max_updates_per_second = 1`, so the writer threads take one metric a second and
# leave the CPU to the receivers, the write-ahead log and the cache; then runs
# `carbide-bench --accept-only` (accepted = /stats `received` reaches N×M, i.e. every point is
# in the fsynced log and in the cache). With nothing drained, the server's RSS growth over the
# run is also the memory the cache takes per point, allocator overhead included.
# The server is then killed (SIGKILL: a clean stop would write every cached point first,
# which is not what is measured here) and its data deleted.
#
# Knobs (environment):
#   METRICS=100000 POINTS=10 CONNECTIONS=4 PROTOCOL=plaintext|pickle
#   FSYNC=batch|interval|off     the write-ahead log's policy (default batch, Carbide's default)
#   EXTRA="--json"               more carbide-bench arguments
#   CARBIDE=target/release/carbide BENCH=target/release/carbide-bench   (built if missing)
#   PORTS="24003 24004 24080"   line, pickle and HTTP ports on 127.0.0.1
#   KEEP=1                       keep the temp directory
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
METRICS=${METRICS:-100000}
POINTS=${POINTS:-10}
CONNECTIONS=${CONNECTIONS:-4}
PROTOCOL=${PROTOCOL:-plaintext}
FSYNC=${FSYNC:-batch}
CARBIDE=${CARBIDE:-$ROOT/target/release/carbide}
BENCH=${BENCH:-$ROOT/target/release/carbide-bench}
read -r LINE PICKLE HTTP <<<"${PORTS:-24003 24004 24080}"
WORK=$(mktemp -d "${WORK_ROOT:-/tmp}/carbide-accept.XXXXXX")
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if [ ! -x "$CARBIDE" ] || [ ! -x "$BENCH" ]; then
    (cd "$ROOT" && cargo build --release --bins)
fi
mkdir -p "$WORK/data" "$WORK/schemas"
cp "$HERE/storage-schemas.conf" "$WORK/schemas/"
cp "$HERE/carbide.toml" "$WORK/carbide.toml"
printf '\n[persist]\nsparse_create = true\nmax_updates_per_second = 1\n' >>"$WORK/carbide.toml"
printf '\n[wal]\nfsync = "%s"\n' "$FSYNC" >>"$WORK/carbide.toml"

"$CARBIDE" serve --config "$WORK/carbide.toml" --data-dir "$WORK/data" --schemas "$WORK/schemas" \
    --line-tcp "127.0.0.1:$LINE" --line-udp off --pickle "127.0.0.1:$PICKLE" \
    --cache-query off --http "127.0.0.1:$HTTP" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && break
    sleep 0.1
done

port=$LINE
args=()
if [ "$PROTOCOL" = pickle ]; then
    port=$PICKLE
    args+=(--pickle)
fi
"$BENCH" --addr "127.0.0.1:$port" --http "127.0.0.1:$HTTP" --metrics "$METRICS" \
    --points "$POINTS" --connections "$CONNECTIONS" --pid "$SERVER_PID" --accept-only "${args[@]}" \
    ${EXTRA:-}
