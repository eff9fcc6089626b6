"""Builds the HTTP comparison's data (idempotent): one metric with a day of 10 s points, 1,000
such metrics under one wildcard (rewritten when older than six hours), and a 1,000,000-name tree of empty .wsp files for find (both
finders list names without opening files)."""
import os
import sys
import time

import whisper

root = sys.argv[1]
now = int(time.time())
day = [(now - i * 10, float(i % 97)) for i in range(8640)]


def make(path):
    # The archive holds one day: points written more than a few hours ago would leave most of
    # a `from=-1d` window empty, so stale files are written again.
    if os.path.exists(path) and now - os.path.getmtime(path) < 6 * 3600:
        return
    if os.path.exists(path):
        os.remove(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, [(10, 8640)], sparse=True)
    whisper.update_many(path, day, now=now)


make(os.path.join(root, 'one', 'metric.wsp'))
for h in range(1000):
    make(os.path.join(root, 'agg', 'host%04d' % h, 'cpu.wsp'))
tree = os.path.join(root, 'big')
if not os.path.exists(os.path.join(tree, '.done')):
    for a in range(100):
        for b in range(100):
            d = os.path.join(tree, 'a%03d' % a, 'b%03d' % b)
            os.makedirs(d, exist_ok=True)
            for c in range(100):
                open(os.path.join(d, 'c%03d.wsp' % c), 'w').close()
    open(os.path.join(tree, '.done'), 'w').close()
