#!/usr/bin/env bash
# compare-carbon.sh: the same load against Debian's carbon-cache and against `carbide serve`.
#
# Installs graphite-carbon (apt-get, as root) if carbon-cache is missing, builds Carbide in
# release, then for each server in turn: starts it on loopback ports with data in a fresh temp
# directory and the schema in this directory (10s:1d,1m:30d,10m:1y for every metric), runs
# carbide-bench against it and stops it. Prints
#   metric | carbon-cache | carbide | ratio
# for accepted and persisted points/s, peak RSS and server CPU time.
#
# Knobs (environment):
#   METRICS=100000 POINTS=10 CONNECTIONS=4   the load (the default is the issue's figure)
#   PROTOCOL=plaintext|pickle                what carbide-bench sends
#   TIMEOUT=600                              seconds each phase may take ("did not finish")
#   SPARSE=1                                 sparse whisper files in both servers. Each file of
#                                            this schema is 1.2 MiB; 100,000 preallocated files
#                                            are 125 GB, so SPARSE=0 is refused when the disk
#                                            lacks room.
#   ONLY=carbon|carbide                      run one server only
#   ACCEPT_ONLY=1                            accepted points/s only (carbide-bench --accept-only):
#                                            carbon-cache = it closed after the client's EOF;
#                                            carbide = /stats received, writers held back as in
#                                            accept-only.sh; nothing is persisted or verified
#   FSYNC=batch|interval|off                 carbide's write-ahead log policy (default batch)
#   CARBIDE=… BENCH=…                        other builds (default target/release/…)
#   PASSES=2                                 send the load this many times to the same server:
#                                            pass 1 creates every file, later passes write to
#                                            files that exist (the steady state). Each pass waits
#                                            for the clock to pass the previous one's last point,
#                                            so that its points are new to every file; the data
#                                            file system is synced before each pass.
#   LOOP_FS=SIZE                             (root) put the data on a fresh ext4 file system of
#                                            SIZE (e.g. 40G; mkfs.ext4's defaults, so with a
#                                            journal) in a loop-mounted sparse image under the
#                                            temp directory, instead of on the temp directory's
#                                            own file system. See the note below.
#   KEEP=1                                   keep the temp directory (logs, JSON, data)
#   WORK_ROOT=/tmp                           where the temp directory (and all data) goes
#   CARBON_PORTS="12003 12004 12002"         line, pickle, cache-query ports for carbon-cache
#   CARBIDE_PORTS="22003 22004 22080"        line, pickle, HTTP ports for carbide
#
# Everything listens on and talks to 127.0.0.1 only.
#
# Data is deleted only at the end, never between the two runs: on ext4, creating files right
# after deleting many makes inode allocation skip every recently deleted inode
# (ext4 `recently_deleted`, up to 5 min while the inode table is dirty), which cost 60% of the
# server's CPU in a profile and would penalise whichever server runs second. For the same
# reason leave a few minutes between invocations of this script. (The check is made only on
# ext4 without a journal, as this machine's root file system is: LOOP_FS gives a fresh,
# journaled ext4, the common server set-up, whose creates cost the same from run to run.)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
METRICS=${METRICS:-100000}
POINTS=${POINTS:-10}
CONNECTIONS=${CONNECTIONS:-4}
PROTOCOL=${PROTOCOL:-plaintext}
TIMEOUT=${TIMEOUT:-600}
SPARSE=${SPARSE:-1}
ONLY=${ONLY:-}
read -r C_LINE C_PICKLE C_QUERY <<<"${CARBON_PORTS:-12003 12004 12002}"
read -r K_LINE K_PICKLE K_HTTP <<<"${CARBIDE_PORTS:-22003 22004 22080}"
FILE_BYTES=$(((8640 + 43200 + 52560) * 12 + 16 + 3 * 12))

PASSES=${PASSES:-$([ "${ACCEPT_ONLY:-0}" = 1 ] && echo 1 || echo 2)}
WORK=$(mktemp -d "${WORK_ROOT:-/tmp}/carbide-load.XXXXXX")
DATA=$WORK
MOUNTED=
SERVER_PID=
log() { printf '== %s\n' "$*" >&2; }

# Stops only the server this script started, by its pid.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    # Accept-only runs measured nothing that a clean stop (writing every cached point) adds.
    if [ "${ACCEPT_ONLY:-0}" = 1 ]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 600); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "pid $SERVER_PID did not stop in 60 s: SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() {
    stop_server
    if [ -n "$MOUNTED" ]; then
        umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED" 2>/dev/null || true
        rm -f "$WORK/fs.img"
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until the server listens on port $1, or fails if it exits or 60 s pass.
wait_port() {
    for _ in $(seq 1 600); do
        port_busy "$1" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

bench_args() {
    local args=(--metrics "$METRICS" --points "$POINTS" --connections "$CONNECTIONS"
        --timeout "$TIMEOUT" --json)
    [ "$PROTOCOL" = pickle ] && args+=(--pickle)
    [ "${ACCEPT_ONLY:-0}" = 1 ] && args+=(--accept-only)
    printf '%s\n' "${args[@]}"
}

# LOOP_FS: a fresh ext4 (with mkfs.ext4's default journal) in a sparse image, loop-mounted.
mount_loop_fs() {
    [ -n "${LOOP_FS:-}" ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "LOOP_FS needs root (mount -o loop)" >&2
        exit 2
    fi
    truncate -s "$LOOP_FS" "$WORK/fs.img"
    mkfs.ext4 -q -F "$WORK/fs.img"
    mkdir -p "$WORK/fs"
    mount -o loop "$WORK/fs.img" "$WORK/fs"
    MOUNTED=$WORK/fs
    DATA=$WORK/fs
    log "data on a fresh ext4 of $LOOP_FS (loop-mounted $WORK/fs.img)"
}

# Before a pass: writes back what the previous pass (or server) left dirty, so that no pass
# pays for another's writeback, and waits until the clock's step (10 s) is past the one pass $1
# started in, so that this pass's points are all later than the previous pass's last point.
before_pass() {
    sync
    while [ $(($(date +%s) / 10)) -le $(($1 / 10)) ]; do
        sleep 0.5
    done
}

check_disk() {
    [ "$SPARSE" = 1 ] && return 0
    # Both servers' files stay until the end (see the note at the top).
    local need=$((2 * METRICS * FILE_BYTES * 11 / 10))
    local free=$(($(df -Pk "$DATA" | awk 'NR==2 {print $4}') * 1024))
    if [ "$need" -gt "$free" ]; then
        echo "SPARSE=0 needs $((need >> 30)) GiB for $METRICS preallocated files; $((free >> 30)) GiB free" >&2
        exit 2
    fi
}

install_carbon() {
    command -v carbon-cache >/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "carbon-cache is not installed and installing it needs root (apt-get install graphite-carbon)" >&2
        return 1
    fi
    log "installing graphite-carbon"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends graphite-carbon >"$WORK/apt.log" 2>&1 || {
        apt-get update >>"$WORK/apt.log" 2>&1 &&
            apt-get install -y --no-install-recommends graphite-carbon >>"$WORK/apt.log" 2>&1
    } || {
        tail -5 "$WORK/apt.log" >&2
        return 1
    }
}

BENCH=${BENCH:-$ROOT/target/release/carbide-bench}
CARBIDE=${CARBIDE:-$ROOT/target/release/carbide}

run_carbon() {
    local dir="$DATA/carbon"
    mkdir -p "$dir/storage/whisper" "$dir/log"
    # In carbon, fallocate wins over sparse: it must be off for sparse files, and on otherwise
    # (carbon.conf's shipped value and Carbide's default), or carbon writes 1.2 MiB of zeros.
    local sparse=False fallocate=True
    [ "$SPARSE" = 1 ] && sparse=True fallocate=False
    sed -e "s|@DIR@|$dir|g" -e "s|@LINE_PORT@|$C_LINE|" -e "s|@PICKLE_PORT@|$C_PICKLE|" \
        -e "s|@QUERY_PORT@|$C_QUERY|" -e "s|@SPARSE@|$sparse|" -e "s|@FALLOCATE@|$fallocate|" \
        "$HERE/carbon.conf" >"$dir/carbon.conf"
    # carbon reads storage-schemas.conf from the directory of --config.
    cp "$HERE/storage-schemas.conf" "$dir/"
    local port=$C_LINE
    [ "$PROTOCOL" = pickle ] && port=$C_PICKLE
    for p in $C_LINE $C_PICKLE $C_QUERY; do
        if port_busy "$p"; then
            echo "port $p is already in use (set CARBON_PORTS)" >&2
            return 1
        fi
    done
    log "carbon-cache on 127.0.0.1:$port"
    # With --nodaemon twistd runs in this process: $! is carbon-cache's own pid.
    carbon-cache --config="$dir/carbon.conf" --nodaemon --pidfile="$dir/carbon-cache.pid" \
        --logdir="$dir/log" start >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    if ! wait_port "$port"; then
        echo "carbon-cache did not start listening on $port:" >&2
        tail -20 "$dir/stdout.log" "$dir"/log/*.log 2>/dev/null >&2 || true
        return 1
    fi
    log "carbide-bench → carbon-cache (pid $SERVER_PID)"
    local rc=0
    mapfile -t args < <(bench_args)
    local verify=(--verify-dir "$dir/storage/whisper")
    [ "${ACCEPT_ONLY:-0}" = 1 ] && verify=()
    local pass started=0
    for pass in $(seq 1 "$PASSES"); do
        before_pass "$started"
        started=$(date +%s)
        log "carbon-cache pass $pass"
        "$BENCH" --addr "127.0.0.1:$port" "${verify[@]}" --pid "$SERVER_PID" \
            "${args[@]}" >"$WORK/carbon.$pass.json" || { rc=$?; break; }
    done
    stop_server
    return $rc
}

run_carbide() {
    local dir="$DATA/carbide"
    mkdir -p "$dir/data" "$dir/schemas"
    cp "$HERE/storage-schemas.conf" "$dir/schemas/"
    cp "$HERE/carbide.toml" "$dir/carbide.toml"
    local sparse=false
    [ "$SPARSE" = 1 ] && sparse=true
    printf '\n[persist]\nsparse_create = %s\n' "$sparse" >>"$dir/carbide.toml"
    # Writers held back, as in accept-only.sh: only the receive path is measured.
    [ "${ACCEPT_ONLY:-0}" = 1 ] && printf 'max_updates_per_second = 1\n' >>"$dir/carbide.toml"
    printf '\n[wal]\nfsync = "%s"\n' "${FSYNC:-batch}" >>"$dir/carbide.toml"
    local port=$K_LINE
    [ "$PROTOCOL" = pickle ] && port=$K_PICKLE
    for p in $K_LINE $K_PICKLE $K_HTTP; do
        if port_busy "$p"; then
            echo "port $p is already in use (set CARBIDE_PORTS)" >&2
            return 1
        fi
    done
    log "carbide serve on 127.0.0.1:$port"
    "$CARBIDE" serve --config "$dir/carbide.toml" --data-dir "$dir/data" \
        --schemas "$dir/schemas" --line-tcp "127.0.0.1:$K_LINE" --line-udp off \
        --pickle "127.0.0.1:$K_PICKLE" --cache-query off --http "127.0.0.1:$K_HTTP" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    if ! wait_port "$K_HTTP" || ! wait_port "$port"; then
        echo "carbide did not start listening:" >&2
        tail -20 "$dir/stdout.log" >&2
        return 1
    fi
    log "carbide-bench → carbide (pid $SERVER_PID)"
    local rc=0
    mapfile -t args < <(bench_args)
    # --http for exact accepted/persisted counts; --verify-dir to check a sample afterwards.
    local pass started=0
    for pass in $(seq 1 "$PASSES"); do
        before_pass "$started"
        started=$(date +%s)
        log "carbide pass $pass"
        "$BENCH" --addr "127.0.0.1:$port" --http "127.0.0.1:$K_HTTP" \
            --verify-dir "$dir/data/whisper" --pid "$SERVER_PID" \
            "${args[@]}" >"$WORK/carbide.$pass.json" || { rc=$?; break; }
    done
    stop_server
    return $rc
}

table() {
    /usr/bin/env python3 - "$WORK" "$PASSES" "$TIMEOUT" <<'EOF'
import json, sys
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
work, passes, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rate(r, phase):
    if r is None:
        return None, "not run"
    p = r[phase]
    if p.get("method", "").startswith("not measured"):
        return None, "not measured"
    if not p.get("finished"):
        return None, f"did not finish in {timeout} s"
    v = p["points_per_second"]
    return v, f"{v:,.0f}"
def rss(r):
    if r is None or not r.get("server"):
        return None, "not run"
    v = r["server"].get("peak_rss_bytes")
    return (v, f"{v / 1048576:,.1f} MiB") if v else (None, "unknown")
def cpu(r):
    if r is None or not r.get("server") or r["server"].get("threads_cpu") is None:
        return None, "not run"
    v = sum(t["cpu_seconds"] for t in r["server"]["threads_cpu"])
    return v, f"{v:,.1f} s"
rows = [
    ("sent points/s", lambda r: rate(r, "sent")),
    ("accepted points/s", lambda r: rate(r, "accepted")),
    ("persisted points/s", lambda r: rate(r, "persisted")),
    ("peak RSS", rss),
    ("server CPU time", cpu),
]
print("| pass | metric | carbon-cache | carbide | ratio (carbide / carbon) |")
print("|---|---|---|---|---|")
for p in range(1, passes + 1):
    carbon, carbide = load(f"{work}/carbon.{p}.json"), load(f"{work}/carbide.{p}.json")
    what = "new files" if p == 1 else "files exist"
    for name, f in rows:
        (a, at), (b, bt) = f(carbon), f(carbide)
        ratio = f"{b / a:.2f}×" if a and b else "–"
        print(f"| {p} ({what}) | {name} | {at} | {bt} | {ratio} |")
for label, r in [(f"carbon-cache pass {p}", load(f"{work}/carbon.{p}.json")) for p in range(1, passes + 1)] + \
        [(f"carbide pass {p}", load(f"{work}/carbide.{p}.json")) for p in range(1, passes + 1)]:
    if r is None:
        continue
    print(f"\n{label}: accepted = {r['accepted']['method']}; persisted = {r['persisted']['method']}")
    v = r.get("verification")
    if v:
        print(f"  verified {v['complete']}/{v['sampled']} sampled files complete")
    threads = (r.get("server") or {}).get("threads_cpu") or []
    if threads:
        print("  CPU by thread: " + ", ".join(
            f"{t['thread']}×{t['threads']} {t['cpu_seconds']:.1f}s "
            f"(user {t['user_seconds']:.1f}, sys {t['system_seconds']:.1f})" for t in threads[:6]))
EOF
}

mount_loop_fs
check_disk
log "load: $METRICS metrics × $POINTS points, $CONNECTIONS connections, $PROTOCOL, sparse=$SPARSE"
if [ "$CARBIDE" = "$ROOT/target/release/carbide" ] || [ "$BENCH" = "$ROOT/target/release/carbide-bench" ]; then
    log "building carbide (release)"
    (cd "$ROOT" && cargo build --release --bins --quiet)
fi

status=0
if [ "$ONLY" != carbide ]; then
    if install_carbon; then
        run_carbon || { status=1; log "carbon-cache run failed"; }
    else
        status=1
        log "carbon-cache unavailable: reporting carbide alone"
    fi
fi
if [ "$ONLY" != carbon ]; then
    run_carbide || { status=1; log "carbide run failed"; }
fi
echo
where="$(findmnt -n -o FSTYPE -T "$DATA" 2>/dev/null || echo '?') under ${WORK_ROOT:-/tmp}"
[ -n "${LOOP_FS:-}" ] && where="a fresh journaled ext4 of $LOOP_FS"
echo "$METRICS metrics × $POINTS points, $CONNECTIONS connections, $PROTOCOL, sparse files=$SPARSE, $PASSES passes, data on $where"
table
exit $status
