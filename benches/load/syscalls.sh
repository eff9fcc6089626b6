#!/usr/bin/env bash
# syscalls.sh: system calls per persisted metric, by thread kind, under strace.
#
# Wall-clock rates on a shared 2-core machine are noisy; system call counts are not. This
# starts `carbide serve` (benchmark schema, fresh data directory), attaches `strace -f` to it,
# and sends the same METRICS x POINTS load three times with carbide-bench:
#   pass 1 "create": every metric is new, so each write creates its whisper file;
#   pass 2 "update": the same metrics again, so every file exists;
#   pass 3 "again": once more (the steady state: a file the writer keeps open was already
#   checked once, and with METRICS under the writers' open-file bound every write finds its
#   file open).
# After each pass it prints, per thread kind (persist-N writers, the rest), the calls by name
# and the total divided by METRICS. strace slows the server a lot: the rates it prints mean
# nothing, only the counts do.
#
# Knobs (environment):
#   METRICS=10000 POINTS=10 CONNECTIONS=4
#   CARBIDE=target/debug/carbide BENCH=target/debug/carbide-bench   (built if missing)
#   PORTS="23003 23080"     line and HTTP ports on 127.0.0.1
#   EXTRA_TOML=''           lines appended to the config (e.g. $'[persist]\nworkers = 1')
#   ALIGN=3600              carbide-bench --align: both passes, and runs within the same hour,
#                           send the same timestamps, so they write the same whisper slots
#   KEEP=1                  keep the temp directory (strace logs, data)
#   STRACE=0                no strace: print carbide-bench's rates and per-thread CPU instead
#                           (wall clock; on a shared machine run before/after back to back)
#   PERF=again              with STRACE=0: `perf record -g` the server during that pass
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
METRICS=${METRICS:-10000}
POINTS=${POINTS:-10}
CONNECTIONS=${CONNECTIONS:-4}
CARBIDE=${CARBIDE:-$ROOT/target/debug/carbide}
BENCH=${BENCH:-$ROOT/target/debug/carbide-bench}
read -r LINE HTTP <<<"${PORTS:-23003 23080}"
WORK=$(mktemp -d "${WORK_ROOT:-/tmp}/carbide-syscalls.XXXXXX")
SERVER_PID=
STRACE_PID=

cleanup() {
    [ -n "$STRACE_PID" ] && kill -INT "$STRACE_PID" 2>/dev/null || true
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

command -v strace >/dev/null || { echo "strace is needed (apt-get install strace)" >&2; exit 1; }
if [ ! -x "$CARBIDE" ] || [ ! -x "$BENCH" ]; then
    (cd "$ROOT" && cargo build --bins)
fi

mkdir -p "$WORK/data" "$WORK/schemas"
cp "$HERE/storage-schemas.conf" "$WORK/schemas/"
cp "$HERE/carbide.toml" "$WORK/carbide.toml"
printf '\n[persist]\nsparse_create = true\n' >>"$WORK/carbide.toml"
if [ -n "${EXTRA_TOML:-}" ]; then
    printf '\n%s\n' "$EXTRA_TOML" >>"$WORK/carbide.toml"
fi

"$CARBIDE" serve --config "$WORK/carbide.toml" --data-dir "$WORK/data" --schemas "$WORK/schemas" \
    --line-tcp "127.0.0.1:$LINE" --line-udp off --pickle off --cache-query off --http "127.0.0.1:$HTTP" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && break
    sleep 0.1
done

pass() {
    local name=$1
    # No pass pays for the writeback of what the one before left dirty.
    sync
    if [ "${STRACE:-1}" = 0 ]; then
        local perf_pid=
        if [ "${PERF:-}" = "$name" ]; then
            perf record -q -g -o "$WORK/perf.$name.data" -p "$SERVER_PID" 2>/dev/null &
            perf_pid=$!
            sleep 0.5
        fi
        "$BENCH" --addr "127.0.0.1:$LINE" --http "127.0.0.1:$HTTP" --metrics "$METRICS" \
            --points "$POINTS" --connections "$CONNECTIONS" --align "${ALIGN:-3600}" --pid "$SERVER_PID" \
            | sed "s/^/[$name] /"
        if [ -n "$perf_pid" ]; then
            sleep 1
            kill -INT "$perf_pid"
            wait "$perf_pid" 2>/dev/null || true
            echo "[$name] perf data: $WORK/perf.$name.data"
        fi
        return
    fi
    : >"$WORK/threads.txt"
    for t in /proc/"$SERVER_PID"/task/*; do
        printf '%s %s\n' "${t##*/}" "$(cat "$t/comm")" >>"$WORK/threads.txt"
    done
    strace -f -qq -o "$WORK/strace.$name" -p "$SERVER_PID" &
    STRACE_PID=$!
    sleep 1
    "$BENCH" --addr "127.0.0.1:$LINE" --http "127.0.0.1:$HTTP" --metrics "$METRICS" \
        --points "$POINTS" --connections "$CONNECTIONS" --align "${ALIGN:-3600}" --json \
        >"$WORK/bench.$name.json"
    # Let the writers finish their last syncs before detaching.
    sleep 1.5
    kill -INT "$STRACE_PID"
    wait "$STRACE_PID" 2>/dev/null || true
    STRACE_PID=
    python3 - "$WORK/strace.$name" "$WORK/threads.txt" "$METRICS" "$name" <<'EOF'
import collections, re, sys
log, threads, metrics, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
comm = {}
for line in open(threads):
    tid, _, c = line.strip().partition(" ")
    comm[tid] = c
kind = lambda tid: "writers" if comm.get(tid, "").startswith("persist") else "others"
counts = collections.defaultdict(collections.Counter)
call = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)")
for line in open(log):
    m = call.match(line)
    if not m or "resumed>" in line and "<..." in line:
        continue
    # Debug builds of std check a descriptor with F_GETFD before closing it; release does not.
    if "F_GETFD" in line:
        continue
    counts[kind(m.group(1))][m.group(2)] += 1
print(f"== pass {name}: {metrics} metrics")
for k in ("writers", "others"):
    c = counts[k]
    total = sum(c.values())
    print(f"{k}: {total} calls, {total / metrics:.2f} per metric")
    for call_name, n in c.most_common(14):
        print(f"    {call_name:<16} {n:>9}  {n / metrics:7.2f}/metric")
EOF
}

pass create
pass update
pass again
