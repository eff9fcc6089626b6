"""Reference answers for tests/ingest_pickle.rs, computed by carbon 1.1.10 itself.

For every payload this runs carbon's real ``SafeUnpickler.loads`` and the real
``MetricPickleReceiver.stringReceived`` (with ``metricReceived`` and ``log.listener``
captured) under the test venv's CPython 3.11, and prints one JSON object per line:

  name, payload (hex),
  load:  {"repr": ascii(obj)} or {"repr": null} when not comparable, or {"exc": [type, str]}
  frame: {"points": [[metric (UTF-8 hex, surrogates passed), ts_bits, value_bits]], "logs": [...],
          "escaped": [type, str] or null}

Floats are IEEE-754 bit patterns in hex so comparisons are exact. Cases are deterministic
(seeded) so a failure can be reproduced by name.
"""

import io
import json
import os
import pickle
import pickletools
import random
import struct
import sys

import carbon.protocols as protocols
from carbon.util import SafeUnpickler

sys.setrecursionlimit(10000)


def bits(x):
    return struct.pack(">d", x).hex()


def comparable_repr(obj):
    """ascii(obj), or None where Carbide's repr cannot match (set order, memoryview,
    recursion limits)."""
    try:
        text = ascii(obj)
    except RecursionError:
        return None
    if "<memory at" in text:
        return None
    if _has_multi_set(obj, 0):
        return None
    return text


def _has_multi_set(obj, depth):
    if depth > 50:
        return True
    if isinstance(obj, (set, frozenset)):
        return len(obj) > 1 or any(_has_multi_set(x, depth + 1) for x in obj)
    if isinstance(obj, (list, tuple)):
        return any(_has_multi_set(x, depth + 1) for x in obj[:1000])
    if isinstance(obj, dict):
        return any(_has_multi_set(k, depth + 1) or _has_multi_set(v, depth + 1)
                   for k, v in list(obj.items())[:1000])
    return False


def run_load(data):
    try:
        obj = SafeUnpickler.loads(data)
    except BaseException as exc:  # noqa: B902 - every type matters to carbon
        return {"exc": [type(exc).__name__, str(exc)]}, None
    return {"repr": comparable_repr(obj)}, obj


def run_frame(data):
    receiver = object.__new__(protocols.MetricPickleReceiver)
    receiver.unpickler = SafeUnpickler
    receiver.peerName = "peer"
    points, logs = [], []

    def received(metric, datapoint):
        name = metric.encode("utf-8", "surrogatepass").hex() if isinstance(metric, str) else None
        points.append([name, bits(datapoint[0]), bits(datapoint[1])])

    receiver.metricReceived = received
    protocols.log.listener = logs.append
    escaped = None
    try:
        receiver.stringReceived(data)
    except BaseException as exc:  # noqa: B902
        escaped = [type(exc).__name__, str(exc)]
    return {"points": points, "logs": logs, "escaped": escaped}


CASES = []


def costly_for_cpython(data):
    """True for payloads whose CPython run depends on the host's memory: a memo index makes
    CPython allocate and zero a 16-bytes-per-index array (an index of 10**9 takes a minute
    and 16 GB), a bytes length is preallocated before reading. Random mutations produce
    these; the hostile cases test the deterministic extremes instead."""
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > 10 ** 6:
                return True
    except Exception:
        pass
    for op in (b"B", b"\x8e", b"\x96"):
        at = data.find(op)
        while at >= 0:
            width = 4 if op == b"B" else 8
            if int.from_bytes(data[at + 1:at + 1 + width], "little") > 2 ** 24:
                return True
            at = data.find(op, at + 1)
    return False


def case(name, data, frame=True, check_cost=False):
    data = bytes(data)
    if check_cost and costly_for_cpython(data):
        return
    CASES.append((name, data, frame))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def safe_batches():
    t = ("reused.metric", (1700000000, 2.5))
    name = "shared.name"
    big = 2 ** 1023 + 2 ** 970
    return {
        "list_of_tuples": [("a.b.c", (1700000000, 1.5)), ("d.e", (1700000060.25, -3))],
        "tuple_of_lists": (["a.b", [1700000000, 42]], ["c", [1.5, 2.5]]),
        "int_values": [("m", (1700000000, 7)), ("m", (-1, -(2 ** 40)))],
        "float_values": [("m", (0.1, 1e-310)), ("m", (-0.0, float("inf"))),
                         ("m", (float("nan"), 1e308))],
        "bool_values": [("m", (True, False))],
        "str_values": [("m", ("1700000000", "12.5")), ("m", (" 3 ", "-inf")),
                       ("m", ("nan", "1e5")), ("m", ("abc", 1)), ("m", (1, "")),
                       ("m", (".5", "5.")), ("m", ("1_000", "\u00a012\u2003")),
                       ("m", ("\u0663", "\x1c1")), ("m", ("\x851", "1e400"))],
        "bytes_values": [("m", (b"17", b" 2.5 ")), ("m", (b"x", 1)), ("m", (1, bytearray(b"3"))),
                         ("m", (b"1_0", b"\x1c1")), ("m", (b"\xc2\xa01", b"\x0b2\x0c"))],
        "big_ints": [("m", (2 ** 64, -(2 ** 70))), ("m", (big, 2 ** 53 + 1)),
                     ("m", (10 ** 300, 1))],
        "big_int_overflow": [("first", (1, 2)), ("m", (2 ** 1024, 1)), ("after", (1, 2))],
        "unicode_names": [("métric.ü", (1, 2)), ("指标.值", (3, 4)), ("emoji.\U0001F600", (5, 6))],
        "memo_reuse": [t, t, (name, (1, 2)), (name, (3, 4)), [name, t[1]]],
        "bad_items": [None, 1, "ab", ("a",), ("a", (1,)), ("a", (1, 2, 3)), ("a", None),
                      ("a", "xy"), ("a", (None, 2)), ("a", (1, [])), ("a", ([], 1)),
                      ("ok", (1, 2)), {"k": 1, "l": 2}, ("a", {"1": 0, "2": 0}),
                      ("a", b"12"), ("a", "12"), [["n", (1, 2)]]],
        "bytes_metric": [("first", (1, 2)), (b"bytes.name", (1, 2)), ("after", (3, 4))],
        "bytes_metric_bad_value": [(b"bytes.name", ("x", 2)), ("after", (3, 4))],
        "int_metric": [("first", (1, 2)), (5, (1, 2))],
        "none_metric": [(None, (1, 2))],
        "dict_payload": {("k", (1, 2)): 1, ("j", (3, 4)): 2},
        "dict_keys_merge": [{1: "a", True: "b", 1.0: "c"}, ("m", (1, 2)),
                            {2 ** 100: 1, float(2 ** 100): 2, 2 ** 100 + 1: 3, -0.0: 4, 0: 5,
                             (1, "a"): 6, (1.0, "a"): 7, b"k": 8, "k": 9}],
        "str_payload": "abc",
        "bytes_payload": b"ab",
        "empty_list": [],
        "empty_tuple": (),
        "none_payload": None,
        "int_payload": 5,
        "float_payload": 1.5,
        "frozen_single": [("m", (1, 2)), frozenset([("n", (3, 4))])],
        "set_single": {("s", (5, 6))},
        "nested_tuple_keys": [{(1, (2, 3)): "x", (1.0, (2, 3.0)): "y"}],
    }


def build_cases():
    for label, batch in safe_batches().items():
        for proto in range(0, 6):
            try:
                data = pickle.dumps(batch, protocol=proto)
            except Exception:
                continue
            case(f"{label}/p{proto}", data)

    # Python 2 style pickles, written by hand the way cPickle 2.7 wrote them.
    case("py2/p0_list", b"(lp0\n(S'metric.a'\np1\n(I1700000000\nF1.5\ntp2\ntp3\na"
         b"(S\"metric.b\"\np4\n(L1700000060L\nI01\ntp5\ntp6\na.")
    case("py2/p0_unicode", b"(lp0\n(Vm\\u00e9tric\\u20ac.x\np1\n(I1\nI2\ntp2\ntp3\na.")
    case("py2/p0_escapes", b"(lp0\n(S'a\\x41\\101\\n\\q'\n(I1\nI2\nttp1\na.")
    case("py2/p2_binstring", b"\x80\x02]q\x00(U\x08metric.aq\x01J\x00\xf1SeG?\xf8\x00\x00"
         b"\x00\x00\x00\x00\x86q\x02\x86q\x03U\x08metric.bq\x04h\x02\x86q\x05e.")
    case("py2/p1_binstring", b"]q\x00(T\x08\x00\x00\x00metric.aq\x01(K\x01K\x02tq\x02tq\x03a.")
    case("py2/latin1_string", b"(lp0\n(S'caf\\xe9'\n(I1\nI2\nttp1\na.")
    case("py2/reconstructor", b"ccopy_reg\n_reconstructor\np0\n(c__main__\nX\np1\n"
         b"c__builtin__\nobject\np2\nNtp3\nRp4\n.")
    case("py2/builtin_set", b"\x80\x02c__builtin__\nset\nq\x00]q\x01K\x01a\x85q\x02Rq\x03.")
    case("py2/ints", b"(lp0\n(S'm'\n(I01\nI00\nttp1\na(S'n'\n(I010\nI0x1f\nttp2\na"
         b"(S'o'\n(L0b101\nL-12L\nttp3\na(S'p'\n(I99999999999999999999\nI-3\nttp4\na.")
    case("py2/floats", b"(lp0\n(S'm'\n(F1.\nF.5\nttp1\na(S'n'\n(F-inf\nFnan\nttp2\na"
         b"(S'o'\n(F1e-400\nF+2.5E3\nttp3\na.")

    # Hostile pickles.
    for proto in range(0, 6):
        case(f"hostile/os_system/p{proto}", pickle.dumps([Evil()], protocol=proto))
    case("hostile/builtins_eval", b"cbuiltins\neval\n(S'1+1'\ntR.")
    case("hostile/stack_global", b"\x80\x04\x8c\x02os\x8c\x06system\x93.")
    case("hostile/stack_global_int", b"\x80\x04K\x01K\x02\x93.")
    case("hostile/inst", b"(S'ls'\nios\nsystem\n.")
    case("hostile/obj", b"(K\x01K\x02o.")
    case("hostile/reduce_data", b"K\x01)R.")
    case("hostile/reduce_nontuple", b"K\x01K\x02R.")
    case("hostile/build_none", b"]Nb.")
    case("hostile/build_dict", b"]}b.")
    case("hostile/build_slots", b"]N}S'x'\nK\x01s\x86b.")
    case("hostile/build_empty_slots", b"]N}\x86b.")
    case("hostile/newobj", b"\x80\x02K\x01)\x81.")
    case("hostile/newobj_ex", b"\x80\x04K\x01)}\x92.")
    case("hostile/ext1", b"\x80\x02\x82\x05.")
    case("hostile/ext4_neg", b"\x80\x02\x84\xff\xff\xff\xff.")
    case("hostile/persid", b"Pfoo\n.")
    case("hostile/binpersid", b"NQ.")
    case("hostile/next_buffer", b"\x80\x05\x97.")
    case("hostile/deep_marks", b"(" * 100000 + b".")
    case("hostile/deep_marks_then_list", b"(" * 100000 + b"l" * 100000 + b".")
    case("hostile/deep_appends", b"]" * 100000 + b"a" * 99999 + b".")
    case("hostile/self_list", b"(]2a.")
    case("hostile/binunicode8_2p60", b"\x80\x05\x8d" + (2 ** 60).to_bytes(8, "little") + b"ab")
    case("hostile/binunicode8_2p63", b"\x80\x05\x8d" + (2 ** 63).to_bytes(8, "little"))
    case("hostile/binbytes8_2p60", b"\x80\x05\x8e" + (2 ** 60).to_bytes(8, "little"))
    case("hostile/binbytes_2p31", b"\x80\x03B\x00\x00\x00\x80ab")
    case("hostile/long4_2p31", b"\x80\x02\x8b\xff\xff\xff\x7f" + b"\x01" * 64)
    case("hostile/long4_negative", b"\x80\x02\x8b\x00\x00\x00\x80")
    case("hostile/frame_2p40", b"\x80\x04\x95" + (2 ** 40).to_bytes(8, "little"))
    case("hostile/frame_short", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.")
    case("hostile/frame_straddle", b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00NJ"
         b"\x01\x00\x00\x00\x85.")
    case("hostile/memo_huge_put", b"Np99999999999999\n.")
    case("hostile/memo_missing", b"\x80\x02h\x05.")
    case("hostile/memo_sparse_memoize", b"\x80\x04Nq\x05K\x01\x94h\x00h\x05\x86.")
    case("hostile/proto6", b"\x80\x06N.")
    case("hostile/int_4301_digits", b"L" + b"1" * 4301 + b"\n.")
    case("hostile/int_5000_digits_I", b"I" + b"1" * 5000 + b"\n.")
    case("hostile/unhashable_key", b"}]Ns.")
    case("hostile/setitem_list", b"]K\x00Ns.")
    case("hostile/setitem_list_ok", b"]N]K\x00K\x07se.")
    case("hostile/append_tuple", b")Na.")
    case("hostile/additems_list", b"\x80\x04](N\x90.")
    case("hostile/odd_dict", b"(Nd.")
    case("hostile/bad_utf8", b"\x80\x02X\x02\x00\x00\x00\xff\xfe.")
    case("hostile/surrogate", b"\x80\x02]X\x03\x00\x00\x00\xed\xa0\x80K\x01K\x02\x86\x86a.")
    case("hostile/raw_unicode_truncated", b"V\\u12\n.")
    case("hostile/string_unquoted", b"Sab\n.")
    case("hostile/string_bad_x", b"S'a\\x4'\n.")
    case("hostile/empty", b"")
    case("hostile/stop_only", b".")
    case("hostile/mark_stop", b"N(.")
    case("hostile/invalid_opcode", b"\xff")
    case("hostile/trailing_garbage", pickle.dumps([("m", (1, 2))], protocol=2) + b"\xff" * 10)
    case("hostile/float_overflow", b"F1e999\n.")
    case("hostile/float_garbage", b"F1.5x\n.")
    case("hostile/readonly_none", b"\x80\x05N\x98.")

    # Every truncation of a realistic pickle, for a few protocols.
    sample = [("carbon.agents.a.cpu", (1700000000, 0.5)), ("x.\u00e9", (1700000001, 7)),
              ("carbon.agents.a.cpu", (1700000002, 2 ** 70))]
    for proto in (0, 2, 4, 5):
        data = pickle.dumps(sample, protocol=proto)
        for cut in range(len(data)):
            case(f"truncated/p{proto}/{cut}", data[:cut])

    # PICKLE_CORPUS_SEED / PICKLE_CORPUS_MUTATIONS widen the random part for a longer soak.
    rng = random.Random(int(os.environ.get("PICKLE_CORPUS_SEED", "20240611")))
    for i in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        case(f"random/{i}", data, check_cost=True)
    seeds = [pickle.dumps(b, protocol=p) for b in safe_batches().values() for p in range(6)]
    seeds = [s for s in seeds if len(s) < 400]
    for i in range(int(os.environ.get("PICKLE_CORPUS_MUTATIONS", "1500"))):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            kind = rng.randrange(3)
            pos = rng.randrange(len(data)) if data else 0
            if kind == 0 and data:
                data[pos] = rng.randrange(256)
            elif kind == 1:
                data.insert(pos, rng.randrange(256))
            elif data:
                del data[pos]
        case(f"mutated/{i}", data, check_cost=True)


def main():
    build_cases()
    out = sys.stdout
    for name, data, frame in CASES:
        load, _ = run_load(data)
        record = {"name": name, "payload": data.hex(), "load": load}
        if frame:
            record["frame"] = run_frame(data)
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
