#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: fuzz/corpus/<target>/seed-*.

The messages are hand-encoded postcard (varints; enums by variant index) of the pool's
protocol (crates/pool/src/protocol.rs), so that the fuzzers start from frames the pool and
its workers really exchange. Run it from anywhere: python3 fuzz/make-corpus.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_FRAME = 8 << 20


def uv(n):
    """Unsigned LEB128 varint (postcard's integers above u8)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sv(n):
    """Zigzag varint (postcard's signed integers)."""
    return uv((n << 1) ^ (n >> 63) if n < 0 else n << 1)


def by(b):
    """A byte string: length varint, then the bytes."""
    return uv(len(b)) + b


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def f64(x):
    return struct.pack("<d", x)


STEP_ARGS = uv(200) + uv(200) + sv(0) * 4 + f64(0.0) * 4  # n, items, iparam, fparam

TO_WORKER = {
    "setup": uv(0) + uv(128) + b"\x01" + uv(2049) + uv(123456) + b"\x00",
    "setup-no-exe": uv(0) + uv(128) + b"\x00" + b"\x00",
    "setup-init": uv(0) + uv(128) + b"\x01" + uv(2049) + uv(123456)
    + b"\x01" + sv(-300) + sv(64) + by(b"\x07"),
    "map": uv(1) + uv(7) + uv(4096) + uv(0),
    "map-read-only": uv(1) + uv(8) + uv(1 << 20) + uv(1),
    "map-output": uv(1) + uv(9) + uv(4096) + uv(2),
    "unmap": uv(2) + uv(3) + uv(1) + uv(2) + uv(3),
    "call": uv(3) + uv(1) + sv(-4096) + sv(512)
    + uv(3) + uv(0) + by(b"\x05") + uv(1) + uv(300000) + uv(0) + by(b""),
    "step-builtin": uv(4) + uv(9) + uv(0) + uv(3) + uv(0) + uv(1) + STEP_ARGS
    + uv(1) + uv(7) + uv(2) + uv(5000) + uv(2) + uv(0) + uv(100) + uv(100) + uv(200),
    "step-library": uv(4) + uv(1) + uv(1) + uv(6) + uv(0) + by(b"/tmp/libk.so") + by(b"kp_pi")
    + uv(8) + uv(1) + uv(99) + STEP_ARGS + uv(0) + uv(1) + uv(0) + uv(10),
}

DONE = uv(2)
FROM_WORKER = {
    "ready": uv(0) + uv(4242) + b"\x01",
    "init-failed": uv(1) + by(b"the initializer panicked"),
    "done-value": DONE + uv(17) + uv(0) + by(b"\x2a"),
    "done-sealed": DONE + uv(18) + uv(1) + uv(300000),
    "done-partial": DONE + uv(19) + uv(2) + sv(5) + sv(-1) + sv(0) + sv(1 << 40),
    "done-panicked": DONE + uv(20) + uv(3) + by(b"boom (at src/x.rs:1:2)"),
    "done-kernel-failed": DONE + uv(21) + uv(4) + sv(-3),
    "done-failed": DONE + uv(22) + uv(5) + by("d\u00e9j\u00e0".encode()),
}

TEXT = {
    "token": b"5,1234,98765",
    "token-extra": b"5,1234,98765,1",
    "token-negative": b"-1,0,18446744073709551615",
    "maps": b"55d0c0a00000-55d0c0a2e000 r--p 00000000 fd:01 1835041    /usr/bin/cat\n"
    b"7ffd0c1d5000-7ffd0c1f6000 rw-p 00000000 00:00 0          [stack]\n",
    "maps-deleted": b"7f0000000000-7f0000001000 r-xp 00001000 08:02 42 /tmp/lib (deleted)\n",
}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    # frames: a seed byte for the chunk sizes, then a stream.
    streams = {
        "empty": b"",
        "one-empty-frame": frame(b""),
        "one-frame": frame(b"hello"),
        "two-frames": frame(b"\x00\x05\x01") + frame(TO_WORKER["map"]),
        "partial-header": b"\x05\x00",
        "partial-body": frame(b"0123456789")[:9],
        "too-long": struct.pack("<I", MAX_FRAME + 1) + b"xx",
        "max-length": struct.pack("<I", MAX_FRAME) + b"x" * 40,
        "all-ones": b"\xff" * 8,
        "many-small": b"".join(frame(bytes([i]) * i) for i in range(20)),
        "messages": b"".join(frame(m) for m in list(FROM_WORKER.values())[:4]),
    }
    for i, (name, s) in enumerate(streams.items()):
        write("frames", name, bytes([i * 37 % 256]) + s)

    for name, m in {**TO_WORKER, **FROM_WORKER, **TEXT}.items():
        write("messages", name, m)
    write("messages", "empty", b"")

    # descriptors: operations `kind + 5 * fds, len, payload`.
    def op(kind, fds, payload=b""):
        return bytes([kind + 5 * fds, len(payload)]) + payload

    ops = {
        "push-and-receive": op(2, 0, b"abc") + op(3, 0),
        "push-with-fds": op(2, 2, b"x") + op(2, 8, b"y") + op(3, 0),
        "push-too-many": op(2, 9, b"z") + op(2, 0, b"ok"),
        "raw-frame-fds": op(1, 3, FROM_WORKER["done-sealed"]),
        "raw-too-many": op(1, 0, b"a") + op(0, 12, b"\x01\x00\x00\x00b"),
        "raw-sixteen": op(0, 16, b"\x00\x00\x00\x00"),
        "fds-without-bytes": op(4, 5) + op(1, 0, b"q"),
        "fds-mid-frame": op(0, 0, b"\x08\x00\x00\x00abc") + op(0, 2, b"defgh"),
        "garbage-length": op(0, 1, b"\xff\xff\xff\xff") + op(2, 1, b"after"),
        "interleaved": op(2, 1, b"1") + op(1, 1, b"2") + op(3, 0) + op(0, 0, b"\x00")
        + op(2, 0, b"3"),
        "messages": op(1, 0, FROM_WORKER["ready"]) + op(1, 1, TO_WORKER["map"])
        + op(1, 1, TO_WORKER["setup"]),
    }
    for name, data in ops.items():
        write("descriptors", name, data)


if __name__ == "__main__":
    main()
