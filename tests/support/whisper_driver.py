"""Drives the reference whisper.py for the Rust tests: one JSON command per stdin line, one JSON
answer per stdout line, so a whole proptest run shares a single interpreter.

Floats cross the pipe as the integer bit pattern of the IEEE-754 double (`*_bits` fields), so
-0.0, NaN payloads, subnormals and values like 0.1 arrive exactly as they were sent. Answers are
{"ok": <result>} or {"err": {"type": <exception class name>, "msg": str(exception)}}.
"""

import json
import struct
import sys

import whisper


def to_float(bits):
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def to_bits(value):
    return struct.unpack(">Q", struct.pack(">d", value))[0]


def header_json(h):
    if h is None:
        return None
    return {
        "aggregationMethod": h["aggregationMethod"],
        "maxRetention": h["maxRetention"],
        "xFilesFactor_bits": to_bits(h["xFilesFactor"]),
        "archives": [
            [a["offset"], a["secondsPerPoint"], a["points"], a["retention"], a["size"]]
            for a in h["archives"]
        ],
    }


def xff_arg(cmd):
    # A raw "xff" (any JSON value, e.g. a string) lets tests reach the "not a float" branch.
    if "xff_bits" in cmd:
        return None if cmd["xff_bits"] is None else to_float(cmd["xff_bits"])
    return cmd.get("xff")


def run(cmd):
    op = cmd["op"]
    if op == "validate":
        archives = [tuple(a) for a in cmd["archives"]]
        whisper.validateArchiveList(archives)
        return [list(a) for a in archives]
    if op == "create":
        archives = [tuple(a) for a in cmd["archives"]]
        whisper.create(cmd["path"], archives, xff_arg(cmd), cmd.get("method"),
                       cmd.get("sparse", False), cmd.get("fallocate", False))
        return None
    if op == "info":
        return header_json(whisper.info(cmd["path"]))
    if op == "update":
        whisper.update(cmd["path"], to_float(cmd["value_bits"]), cmd.get("ts"), cmd.get("now"))
        return None
    if op == "update_many":
        points = [(t, to_float(b)) for t, b in cmd["points"]]
        whisper.update_many(cmd["path"], points, cmd.get("now"))
        return None
    if op == "fetch":
        r = whisper.fetch(cmd["path"], cmd["from"], cmd.get("until"), cmd.get("now"),
                          cmd.get("archive"))
        if r is None:
            return None
        (start, end, step), values = r
        return {"start": start, "end": end, "step": step,
                "values": [None if v is None else to_bits(v) for v in values]}
    if op == "set_method":
        return whisper.setAggregationMethod(cmd["path"], cmd["method"], xff_arg(cmd))
    if op == "set_xff":
        return to_bits(whisper.setXFilesFactor(cmd["path"], xff_arg(cmd)))
    if op == "ping":
        return sys.version
    raise KeyError("unknown op %r" % op)


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            answer = {"ok": run(json.loads(line))}
        except Exception as e:  # every failure is an answer: the Rust side compares them
            answer = {"err": {"type": type(e).__name__, "msg": str(e)}}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
