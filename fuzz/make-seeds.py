#!/usr/bin/env python3
"""Write the seed corpora of the harnesses other than fuzz_frame
(fuzz/make-corpus.py writes that one) into fuzz/corpus/<name>/.

Each harness's file comment says its input layout; the seeds here are the
messages of docs/PROTOCOL.md in that layout, so the fuzzer starts from
inputs that reach deep into each parser.  Run it again after changing the
seeds and commit the result.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HEX = "6f1c" * 16


def j(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def frame(header, body=b""):
    raw = header if isinstance(header, bytes) else j(header)
    return struct.pack("<I", len(raw)) + raw + body


HELLO = {"type": "hello", "version": 1, "server": "ferryd 0.1.0"}

SEEDS = {
    # byte 0: bit0 TLS, bit1 allow none, bit2 have a key, bit3/4 bodies
    "handshake": {
        "hmac": bytes([4]) + j(dict(HELLO, auth="hmac-sha256", nonce=HEX)) + b"\0" +
                j({"type": "welcome", "proof": HEX}),
        "tls": bytes([1]) + j(dict(HELLO, auth="tls")) + b"\0" + j({"type": "welcome"}),
        "none": bytes([2]) + j(dict(HELLO, auth="none")) + b"\0" + j({"type": "welcome"}),
        "error": bytes([0]) + j({"type": "error", "code": "tls-required", "message": "x"}),
        "auth-error": bytes([4]) + j(dict(HELLO, auth="hmac-sha256", nonce=HEX)) + b"\0" +
                      j({"type": "error", "code": "auth", "message": "authentication failed"}),
        "version": bytes([6]) + j({"type": "hello", "version": 2, "auth": "none"}),
    },
    "keys": {
        "two": b"# keys\nferry " + HEX.encode() + b"\nlaptop " + HEX.upper().encode() + b"\n",
        "bad-hex": b"ferry 6f1c\n",
        "dup": b"a " + HEX.encode() + b"\na " + HEX.encode() + b"\n",
        "blank": b"\n\n   \n# only comments\n",
        "no-newline": b"x " + HEX.encode(),
        "crlf": b"ferry " + HEX.encode() + b"\r\n",
    },
    # byte 0: bits 0-1 read / O_PATH / create / parent, bit 2 fallback
    "path": {},
    # byte 0 % 7: stat, list, mkdir, rm, get, get -r, exec; the rest is
    # what the server sends (fuzz_client.c)
    "client": {},
}
SRV = frame(dict(HELLO, auth="none")) + frame({"type": "welcome"})
META = {"kind": "file", "mode": 420, "filesize": 3, "mtime": 1795000000, "mtime_nsec": 0}
DIR = dict(META, kind="dir", filesize=4096)
SUM = "f4d0497cf9394caab34d1a3ab2bece70"   # xxh3-128 of "hi\n" (PROTOCOL.md)
GET = (frame(dict(META, type="get-ready", offset=0)) +
       frame({"type": "data", "offset": 0, "size": 3}, b"hi\n") +
       frame({"type": "get-end", "checksum": SUM}))
FS_ERR = frame({"type": "error", "code": "fs", "errno": "ENOENT", "message": "a: gone"})
SEEDS["client"] = {
    "stat": b"\0" + SRV + frame(dict(META, type="stat", path="a/b.txt")),
    "stat-error": b"\0" + SRV + FS_ERR,
    "list": b"\1" + SRV + frame({"type": "entries", "entries": [dict(META, name="b.txt"),
                                                             dict(DIR, name="d")]}) +
            frame({"type": "list-end", "count": 2}),
    "stat-link": b"\0" + SRV + frame(dict(META, type="stat", path="a/b.txt", kind="link",
                                           target="/etc/passwd")),
    "list-links": b"\1" + SRV + frame({"type": "entries", "entries": [
        dict(META, name="in", kind="link", target="b.txt"),
        dict(META, name="out", kind="link", target="/etc/passwd")]}) +
        frame({"type": "list-end", "count": 2}),
    "list-bad-target": b"\1" + SRV + frame({"type": "entries", "entries": [
        dict(META, name="in", kind="link", target=7)]}) + frame({"type": "list-end", "count": 1}),
    "list-nul-target": b"\1" + SRV + frame({"type": "entries", "entries": [
        dict(META, name="in", kind="link", target="a\0b")]}) +
        frame({"type": "list-end", "count": 1}),
    "mkdir": b"\2" + SRV + frame({"type": "ok"}),
    "rm": b"\3" + SRV + frame({"type": "ok"}),
    "rm-error": b"\3" + SRV + frame({"type": "error", "code": "path", "message": "no"}),
    "get": b"\4" + SRV + frame(dict(META, type="stat", path="a")) + GET,
    "get-direct": b"\4" + SRV + GET,
    "get-short": b"\4" + SRV + frame(dict(META, type="stat", path="a")) +
                 frame(dict(META, type="get-ready", offset=0)) +
                 frame({"type": "data", "offset": 0, "size": 9}, b"hi\n"),
    "get-r": b"\5" + SRV + frame(dict(DIR, type="stat", path="a")) +
             frame({"type": "entries", "entries": [dict(META, name="b"), dict(DIR, name="d")]}) +
             frame({"type": "list-end", "count": 2}) + GET +
             frame({"type": "entries", "entries": []}) + frame({"type": "list-end", "count": 0}),
    "get-r-evil": b"\5" + SRV + frame(dict(DIR, type="stat", path="a")) +
                  frame({"type": "entries", "entries": [dict(META, name="../beside/x"),
                                                        dict(META, name="..")]}) +
                  frame({"type": "list-end", "count": 2}) + GET,
    "exec": b"\6" + SRV + frame({"type": "stdout", "size": 3}, b"hi\n") +
            frame({"type": "stderr", "size": 2}, b"e\n") + frame({"type": "exit", "status": 0}),
    "exec-signal": b"\6" + SRV + frame({"type": "exit", "signal": 9, "core": False}),
    "exec-spawn": b"\6" + SRV + frame({"type": "error", "code": "spawn", "message": "x"}) +
                  frame({"type": "exit", "status": 127}),
    "tls-required": b"\0" + frame({"type": "error", "code": "tls-required", "message": "x"}),
}
for op in range(8):
    for p in ["a/b/f", "a/in", "a/up", "a/out", "a/outdir/secret", "abs/x", "etc",
              "self", "dangling", "a/b/deep/secret", ".", "file", "a/b/new",
              "a/../file", "/etc/passwd", "a//b", "a/b/"]:
        SEEDS["path"]["op%d-%s" % (op, p.replace("/", "_"))] = bytes([op]) + p.encode()

# byte 0 % 3: session (handshake), files (the file service), classic
# (detector and framed upload); the rest is what the client sends
# (fuzz_server.c)
PUT = (frame({"type": "put", "path": "d/hi.txt", "filesize": 3, "mode": 420,
              "checksum": "xxh3-128", "resume": False, "fsync": False}) +
       frame({"type": "data", "offset": 0, "size": 3}, b"hi\n") +
       frame({"type": "put-end", "checksum": SUM}))
SEEDS["server"] = {
    "hello": b"\0" + frame({"type": "hello", "version": 1}),
    "hello-auth": b"\0" + frame({"type": "hello", "version": 1}) +
                  frame({"type": "auth", "version": 1, "key": "ferry", "nonce": HEX,
                         "proof": HEX}),
    "hello-auth-tls": b"\0" + frame({"type": "hello", "version": 1}) +
                      frame({"type": "auth", "version": 1}),
    "not-hello": b"\0" + frame({"type": "exec", "argv": ["true"]}),
    "files-mkdir-put-get": b"\1" + frame({"type": "mkdir", "path": "d", "parents": True}) +
                           PUT + frame({"type": "get", "path": "d/hi.txt",
                                        "checksum": "xxh3-128"}),
    "files-stat-list": b"\1" + frame({"type": "mkdir", "path": "a/b/c", "parents": True}) +
                       frame({"type": "stat", "path": "a"}) + frame({"type": "list", "path": "a"}) +
                       frame({"type": "list", "path": "."}),
    "files-rm": b"\1" + frame({"type": "mkdir", "path": "a/b", "parents": True}) +
                frame({"type": "rm", "path": "a", "recursive": True}) +
                frame({"type": "rm", "path": "a", "recursive": False}),
    "files-resume": b"\1" + frame({"type": "mkdir", "path": "d", "parents": False}) +
                    frame({"type": "put", "path": "d/r", "filesize": 6, "mode": 384,
                           "checksum": "xxh3-128", "resume": True}) +
                    frame({"type": "data", "offset": 0, "size": 3}, b"abc") +
                    frame({"type": "put-end", "abort": True}) +
                    frame({"type": "put", "path": "d/r", "filesize": 6, "mode": 384,
                           "checksum": "xxh3-128", "resume": True}),
    "files-get-offset": b"\1" + PUT + frame({"type": "get", "path": "d/hi.txt",
                                              "checksum": "sha256", "offset": 1,
                                              "prefix": "00"}),
    "files-escape": b"\1" + frame({"type": "stat", "path": "../x"}) +
                    frame({"type": "put", "path": "/tmp/x", "filesize": 1, "mode": 420,
                           "checksum": "xxh3-128"}),
    "classic-put": b"\2" + frame({"cmd": "put", "filename": "c.txt", "filesize": 3}, b"abc") +
                   frame({"cmd": "put", "filename": "../up.txt", "filesize": 1}, b"x"),
    "classic-short": b"\2" + frame({"cmd": "put", "filename": "c.txt", "filesize": 30}, b"ab"),
}


def main():
    for name, seeds in SEEDS.items():
        out = os.path.join(HERE, "corpus", name)
        os.makedirs(out, exist_ok=True)
        for seed_name, data in seeds.items():
            with open(os.path.join(out, seed_name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
