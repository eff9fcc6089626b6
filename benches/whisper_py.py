"""whisper.py 1.1.10's timings of the operations in benches/whisper.rs, on the same file layout
and the same inputs, so that scripts/bench-whisper can set the two side by side.

Prints JSON: {"<operation>": microseconds per call, ...} (the median of 7 timeit repeats, each
long enough to run for about 0.2 s). Run it with the test venv's python:
`$(scripts/setup-test-env)/bin/python benches/whisper_py.py`.
"""

import itertools
import json
import os
import statistics
import sys
import tempfile
import timeit

import whisper

NOW = 1700000000
ARCHIVES = [(10, 8640), (60, 43200), (600, 52560)]


def day_of_data():
    return [(NOW - i * 10, (i % 97) * 0.5) for i in range(8640)]


def filled_file(directory, name):
    path = os.path.join(directory, name)
    whisper.create(path, list(ARCHIVES))
    whisper.update_many(path, day_of_data(), now=NOW)
    return path


def recent_points(n):
    return [(NOW - 3 - 10 * k, 42.0 + k * 0.25) for k in range(n)]


def per_call_us(fn):
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough calls for ~0.2 s
    runs = timer.repeat(repeat=7, number=number)
    return statistics.median(runs) / number * 1e6


def main():
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for n in (1, 10, 100):
            path = filled_file(d, "update-%d.wsp" % n)
            points = recent_points(n)
            results["update_many_%d" % n] = per_call_us(
                lambda: whisper.update_many(path, points, now=NOW))

        path = filled_file(d, "fetch.wsp")
        assert len(whisper.fetch(path, NOW - 86400, NOW, now=NOW)[1]) == 8640
        results["fetch_day_10s"] = per_call_us(
            lambda: whisper.fetch(path, NOW - 86400, NOW, now=NOW))

        serial = itertools.count()

        def create_and_unlink():
            p = os.path.join(d, "new-%d.wsp" % next(serial))
            whisper.create(p, list(ARCHIVES))
            os.unlink(p)

        results["create_and_unlink"] = per_call_us(create_and_unlink)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
