"""Answers questions about CPython's string rules and carbon 1.1.10's plaintext receiver, one
JSON request per stdin line, one JSON answer per stdout line, for tests/ingest_line.rs and
tests/ingest_name.rs.

carbon's own receiver classes are driven with a fake transport (no reactor), so framing,
parsing, logging and the close-on-exception behaviour are carbon's code, not a copy of it.
Floats are answered as IEEE-754 bit patterns so that the Rust side compares them exactly.
"""
import hashlib
import json
import struct
import sys
import unicodedata

import carbon.protocols as cp
from carbon import events
from carbon.util import TaggedSeries

NOW = [0.0]
cp.time.time = lambda: NOW[0]


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


class Transport:
    disconnecting = False

    def loseConnection(self):
        self.disconnecting = True


def events_in_order(fn):
    """Runs fn, returning the points and log lines it produced in one ordered list."""
    seq = []
    # Only our handler: the default one needs carbon's instrumentation state.
    events.metricReceived.handlers = [lambda m, d: seq.append(["point", m, bits(d[0]), bits(d[1])])]
    cp.log.listener = lambda msg: seq.append(["log", msg])
    escaped = None
    try:
        fn()
    except Exception as e:  # Twisted would log this and close / drop the datagram
        escaped = type(e).__name__
    return seq, escaped


def tcp(req):
    NOW[0] = req["now"]
    p = cp.MetricLineReceiver()
    p.transport = Transport()
    p.peerName = req["peer"]
    p.resetTimeout = lambda: None
    seq = []
    closed = False
    for chunk in req["chunks"]:
        data = bytes.fromhex(chunk)
        s, escaped = events_in_order(lambda: p.dataReceived(data))
        seq += s
        if escaped is not None or p.transport.disconnecting:
            closed = True
            break
    return {"events": seq, "closed": closed}


def udp(req):
    NOW[0] = req["now"]
    p = cp.MetricDatagramReceiver()
    p.resetTimeout = lambda: None
    data = bytes.fromhex(req["data"])
    seq, escaped = events_in_order(lambda: p.datagramReceived(data, (req["host"], 2003)))
    return {"events": seq, "escaped": escaped}


def pyfloat(s):
    try:
        return {"ok": True, "bits": bits(float(s))}
    except ValueError:
        return {"ok": False}


def strings(s):
    return {
        "split": s.split(),
        "strip": s.strip(),
        "splitlines": s.splitlines(),
        "repr": repr(s)[1:-1],
    }


def tables(_):
    zeros = [c for c in range(0x110000) if unicodedata.decimal(chr(c), -1) == 0]
    space = [c for c in range(0x110000) if chr(c).isspace()]
    nonprint = []
    start = None
    for c in range(0x110001):
        np = c < 0x110000 and not chr(c).isprintable()
        if np and start is None:
            start = c
        elif not np and start is not None:
            nonprint.append([start, c - 1])
            start = None
    lines = [c for c in range(0x110000) if len(("a" + chr(c) + "b").splitlines()) == 2]
    return {"zeros": zeros, "space": space, "nonprint": nonprint, "linebreaks": lines,
            "unidata": unicodedata.unidata_version}


def tagged(s):
    try:
        path = TaggedSeries.parse(s).path
    except Exception as e:
        return {"ok": False, "error": str(e)}
    return {"ok": True, "path": path, "file": TaggedSeries.encode(path, "/", hash_only=True) + ".wsp",
            "sha256": hashlib.sha256(path.encode("utf8")).hexdigest()}


def minres(req):
    return {"bits": bits(int(req["ts"]) // req["res"] * req["res"])}


OPS = {
    "tcp": tcp,
    "udp": udp,
    "float": lambda r: pyfloat(r["s"]),
    "strings": lambda r: strings(r["s"]),
    "tables": tables,
    "tagged": lambda r: tagged(r["s"]),
    "minres": minres,
}

for raw in sys.stdin:
    req = json.loads(raw)
    answer = OPS[req["op"]](req)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
