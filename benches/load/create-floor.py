#!/usr/bin/env python3
"""create-floor.py: the kernel's own cost of what a whisper writer must do for a new metric.

Carbide's writer, per new metric of the benchmark schema (10s:1d,1m:30d,10m:1y, sparse), makes
these system calls: an open that finds no file, an unnamed file (O_TMPFILE) in the metric's
directory, the header write, ftruncate to the full size, linkat into place, one write per
archive, and in time a close. This script makes exactly those calls from WORKERS processes
(default 2, one per core, as the writers are) for N metrics in directories of 1000, and reports
metrics/s and system CPU per metric: a ceiling for persisting new files on this machine and file
system that no writer in any language can pass. Run it on the file system under test:

    python3 benches/load/create-floor.py DIR [N=100000] [WORKERS=2]
"""
import ctypes
import os
import sys
import time

AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
SIZE = (8640 + 43200 + 52560) * 12 + 16 + 3 * 12
# Archive offsets of the benchmark schema: header 52 bytes, then 8640, 43200, 52560 slots.
ARCHIVES = [52, 52 + 8640 * 12, 52 + (8640 + 43200) * 12]


def worker(root, first, count):
    libc = ctypes.CDLL(None, use_errno=True)
    header = b"\0" * 52
    points = b"\1" * 120
    for i in range(first, first + count):
        d = os.path.join(root, "g%04d" % (i // 1000))
        p = os.path.join(d, "m%d.wsp" % i)
        try:
            os.open(p, os.O_RDWR)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o666)
        except FileNotFoundError:
            os.makedirs(d, exist_ok=True)
            fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o666)
        os.pwrite(fd, header, 0)
        os.ftruncate(fd, SIZE)
        if libc.linkat(AT_FDCWD, b"/proc/self/fd/%d" % fd, AT_FDCWD, p.encode(), AT_SYMLINK_FOLLOW):
            raise OSError(ctypes.get_errno(), "linkat", p)
        os.pwrite(fd, points, ARCHIVES[0])
        os.pwrite(fd, points[:24], ARCHIVES[1])
        os.pwrite(fd, points[:12], ARCHIVES[2])
        os.close(fd)


def main():
    root = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    os.makedirs(root, exist_ok=True)
    share = (n + workers - 1) // workers
    started = time.time()
    pids = []
    for w in range(workers):
        first = w * share
        count = max(0, min(share, n - first))
        pid = os.fork()
        if pid == 0:
            # Each worker's metrics in its own directories, as each of Carbide's writers mostly has.
            worker(root, first, count)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    wall = time.time() - started
    t = os.times()
    print(f"{n} new metrics by {workers} processes: {wall:.2f} s, {n / wall:,.0f} metrics/s "
          f"({n * 10 / wall:,.0f} points/s at 10 points a metric); children's CPU "
          f"system {t.children_system:.2f} s ({t.children_system / n * 1e6:.0f} us a metric), "
          f"user {t.children_user:.2f} s")


if __name__ == "__main__":
    main()
