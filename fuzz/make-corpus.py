#!/usr/bin/env python3
"""Write the seed corpus for fuzz/fuzz_frame.c into fuzz/corpus/frame/.

Each seed is: one byte choosing where the harness cuts the stream, one byte
of limit options (bit 0: max_header 64, bit 1: max_body 1000, bit 2:
size_key "total_size"), then the frame stream itself.  Run it again after
changing the seeds and commit the result.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "frame")


def frame(header, body=b"", raw=None):
    """A frame; `raw` gives the header bytes verbatim (for invalid JSON)."""
    if raw is None:
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return struct.pack("<I", len(raw)) + raw + body


def seed(cut, opts, *frames):
    return bytes([cut, opts]) + b"".join(frames)


SEEDS = {
    "simple": seed(128, 0, frame({"cmd": "put", "size": 5}, b"hello")),
    "multi": seed(77, 0,
                  frame({"cmd": "put", "name": "a.txt", "size": 3}, b"abc"),
                  frame({"cmd": "ls"}),
                  frame({"size": 0, "x": [1, {"y": "\u00e9"}]}),
                  frame({"cmd": "get", "size": 1}, b"Z")),
    "binary-body": seed(200, 0, frame({"size": 10}, b"\x02\x00\x00\x00{}\x00\xff\x80\x01"),
                        frame({})),
    "total-size": seed(40, 4, frame({"total_size": 4, "size": 99}, b"data"),
                       frame({"filesize": 1, "total_size": 0})),
    "small-limits": seed(10, 3, frame({"size": 1000}, b"x" * 20),
                         frame({"pad": "y" * 60})),
    "empty-prefix": seed(2, 0, b"\x00\x00\x00\x00"),
    "huge-prefix": seed(3, 0, b"\xff\xff\xff\xff{}"),
    "dup-key": seed(90, 0, frame({"size": 1}, b"k"), frame(None, raw=b'{"a":1,"a":2}')),
    "bad-utf8": seed(50, 0, frame(None, raw=b'{"a":"\xc0\xaf"}')),
    "size-edge": seed(60, 0, frame(None, raw=b'{"size":9223372036854775807}', body=b"abc"),
                      frame(None, raw=b'{"size":1.0}')),
    "not-object": seed(1, 0, frame(None, raw=b"[1,2,3]")),
    "truncated": seed(255, 0, frame({"size": 8}, b"1234")),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
