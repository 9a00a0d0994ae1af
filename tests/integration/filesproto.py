"""filesproto - an independent client of ferry's file service (docs/PROTOCOL.md
2.1 and 2.4; plaintext sessions, for ferryd --plaintext), written from the
document with the standard library only, plus
the helpers the file tests share: checksums (xxh3-128 through Debian's
libxxhash with ctypes, sha256 through hashlib), a TCP relay that can hold or
count the bytes of a transfer, and polling with a deadline.

Nothing here sleeps to synchronise: waits are on sockets, or bounded polls of
file and process state against a deadline."""
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import select
import socket
import struct
import threading
import time

from ferrytest import SLOW, recv_exact

CLIENT_LABEL = b"ferry-v1 client proof"
SERVER_LABEL = b"ferry-v1 server proof"
PART = ".ferry-part"
MiB = 1 << 20


# ---- checksums ---------------------------------------------------------------

class _XXH128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


def _load_xxhash():
    for name in ("libxxhash.so.0", ctypes.util.find_library("xxhash") or "libxxhash.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.XXH3_createState.restype = ctypes.c_void_p
        lib.XXH3_freeState.argtypes = [ctypes.c_void_p]
        lib.XXH3_128bits_reset.argtypes = [ctypes.c_void_p]
        lib.XXH3_128bits_update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.XXH3_128bits_digest.argtypes = [ctypes.c_void_p]
        lib.XXH3_128bits_digest.restype = _XXH128
        return lib
    return None


_XXH = _load_xxhash()


class Digest:
    """A running checksum named as the protocol names it."""

    def __init__(self, alg="xxh3-128"):
        self.alg = alg
        if alg == "sha256":
            self._h = hashlib.sha256()
        elif alg == "xxh3-128":
            if _XXH is None:
                raise RuntimeError("libxxhash is not installed (apt-get install libxxhash0)")
            self._state = _XXH.XXH3_createState()
            _XXH.XXH3_128bits_reset(self._state)
        else:
            raise ValueError(alg)

    def update(self, data):
        if self.alg == "sha256":
            self._h.update(data)
        else:
            data = bytes(data)
            _XXH.XXH3_128bits_update(self._state, data, len(data))
        return self

    def hexdigest(self):
        if self.alg == "sha256":
            return self._h.hexdigest()
        h = _XXH.XXH3_128bits_digest(self._state)
        # The canonical form is big-endian: the high half first.
        return "%016x%016x" % (h.high64, h.low64)

    def __del__(self):
        if getattr(self, "alg", None) == "xxh3-128" and getattr(self, "_state", None):
            _XXH.XXH3_freeState(self._state)
            self._state = None


def digest(data, alg="xxh3-128"):
    return Digest(alg).update(data).hexdigest()


def digest_file(path, alg="xxh3-128", limit=None):
    """Checksum of a file (its first `limit` bytes), read in pieces so
    that files of many GiB need no memory."""
    d = Digest(alg)
    left = os.path.getsize(path) if limit is None else limit
    with open(path, "rb", buffering=0) as f:
        while left > 0:
            b = f.read(min(left, 8 * MiB))
            if not b:
                break
            d.update(b)
            left -= len(b)
    return d.hexdigest()


# ---- waiting -----------------------------------------------------------------

def wait_until(pred, timeout, what, interval=0.005):
    """Poll pred() until it is true or the deadline (scaled by SLOW) passes."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out (%.1f s) waiting for %s" % (timeout * SLOW, what))
        select.select([], [], [], interval)     # a bounded pause between polls


def parts_under(root):
    """Every *.ferry-part beneath root (relative paths)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            if n.endswith(PART):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def process_tree(pid):
    """pid and all its descendants."""
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(e))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def open_by(pid, path_suffix):
    """True when pid or one of its descendants holds a descriptor whose
    target ends with path_suffix."""
    for p in process_tree(pid):
        try:
            fds = os.listdir("/proc/%d/fd" % p)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (p, fd)).endswith(path_suffix):
                    return True
            except OSError:
                pass
    return False


# ---- the session -------------------------------------------------------------

class ProtoError(AssertionError):
    pass


class FileSession:
    """One authenticated connection to ferryd, driven frame by frame.  It
    speaks the session protocol in the clear, so the ferryd it talks to runs
    with --plaintext (Python's ssl module cannot do TLS 1.3 with an
    external PSK)."""

    def __init__(self, hostport, key, timeout=20, rcvbuf=None, login=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Set before connect, so the window is small from the start and
            # the server cannot push a whole file into our buffers.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect(hostport)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if login:
            self.login(key)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with an RST, as a killed process's socket may."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    # frames
    def send(self, header, body=b""):
        if body or "size" in header:
            header = dict(header, size=len(body))
        raw = json.dumps(header, separators=(",", ":")).encode()
        self.sock.sendall(struct.pack("<I", len(raw)) + raw + bytes(body))

    def send_header_bytes(self, raw):
        self.sock.sendall(struct.pack("<I", len(raw)) + raw)

    def recv_header(self):
        try:
            (n,) = struct.unpack("<I", recv_exact(self.sock, 4))
            return json.loads(recv_exact(self.sock, n))
        except ConnectionResetError as e:
            raise EOFError("connection reset") from e

    def recv(self):
        h = self.recv_header()
        size = h.get("size", 0)        # "size" always announces a body (PROTOCOL.md 1.1)
        body = recv_exact(self.sock, size) if size else b""
        return h, body

    def hello(self):
        """The client speaks first (PROTOCOL.md 2.1): our hello, then the
        server's, which is returned."""
        self.send({"type": "hello", "version": 1})
        h, _ = self.recv()
        if h.get("type") != "hello":
            raise ProtoError("expected hello, got %r" % h)
        return h

    def login(self, key):
        h = self.hello()
        if h.get("auth") != "hmac-sha256":
            raise ProtoError("expected HMAC authentication (is ferryd --plaintext?), got %r" % h)
        sn = bytes.fromhex(h["nonce"])
        cn = os.urandom(32)
        self.send({"type": "auth", "version": 1, "nonce": cn.hex(),
                   "proof": hmac.new(key, CLIENT_LABEL + b"\0" + sn + cn, hashlib.sha256).hexdigest()})
        h, _ = self.recv()
        if h.get("type") != "welcome":
            raise ProtoError("expected welcome, got %r" % h)
        want = hmac.new(key, SERVER_LABEL + b"\0" + sn + cn, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(h.get("proof", ""), want):
            raise ProtoError("bad server proof")
        return self

    # simple requests: one answer
    def request(self, msg):
        self.send(msg)
        h, _ = self.recv()
        return h

    def stat(self, path):
        return self.request({"type": "stat", "path": path})

    def mkdir(self, path, parents=False):
        return self.request({"type": "mkdir", "path": path, "parents": parents})

    def rm(self, path, recursive=False):
        return self.request({"type": "rm", "path": path, "recursive": recursive})

    def list(self, path):
        """(entries, final header): final is list-end or error."""
        self.send({"type": "list", "path": path})
        entries = []
        while True:
            h, _ = self.recv()
            if h.get("type") == "entries":
                if len(h["entries"]) > 256:
                    raise ProtoError("more than 256 entries in one frame")
                entries.extend(h["entries"])
            else:
                return entries, h

    # put
    def put_begin(self, path, size, mode=0o644, alg="xxh3-128", resume=False, fsync=False,
                  **extra):
        msg = {"type": "put", "path": path, "filesize": size, "mode": mode, "checksum": alg,
               "resume": resume, "fsync": fsync}
        msg.update(extra)
        self.send(msg)
        h, _ = self.recv()
        return h

    def send_data(self, data, offset, segment=4 * MiB):
        for i in range(0, len(data), segment):
            chunk = data[i:i + segment]
            self.send({"type": "data", "offset": offset + i}, chunk)

    def put_end(self, checksum=None, abort=False):
        self.send({"type": "put-end", "abort": True} if abort else
                  {"type": "put-end", "checksum": checksum})

    def put(self, path, data, mode=0o644, alg="xxh3-128", checksum=None, resume=False,
            segment=4 * MiB, **extra):
        """A whole upload, as a client following PROTOCOL.md 2.4 does it:
        an error that arrives while data is going out stops the data and is
        followed by put-end abort.  Returns (put-ready or error, final
        answer or None)."""
        ready = self.put_begin(path, len(data), mode=mode, alg=alg, resume=resume, **extra)
        if ready.get("type") != "put-ready":
            return ready, None
        off = ready.get("offset", 0)
        if off and ready.get("prefix") != digest(data[:off], alg):
            off = 0
        try:
            for i in range(off, len(data), segment):
                self.send({"type": "data", "offset": i}, data[i:i + segment])
                r, _, _ = select.select([self.sock], [], [], 0)
                if r:
                    h, _ = self.recv()
                    if h.get("type") == "error":
                        self.put_end(abort=True)
                    return ready, h
            self.put_end(checksum or digest(data, alg))
        except (BrokenPipeError, ConnectionResetError):
            pass
        h, _ = self.recv()
        return ready, h

    # get
    def get_begin(self, path, alg="xxh3-128", offset=None, prefix=None):
        msg = {"type": "get", "path": path, "checksum": alg}
        if offset is not None:
            msg["offset"] = offset
        if prefix is not None:
            msg["prefix"] = prefix
        self.send(msg)
        h, _ = self.recv()
        return h

    def get_rest(self, stop_after=None, sink=None):
        """Read data frames until get-end or error.  Returns (bytes or
        count, final header, data headers).  With sink, bytes are passed to
        sink(body) and only counted.  stop_after: return after at least that
        many bytes, with final None."""
        got = bytearray()
        count = 0
        frames = []
        while True:
            h = self.recv_header()
            if h.get("type") == "data":
                size = h.get("size", 0)
                frames.append(h)
                if sink is not None:
                    left = size
                    while left:
                        b = self.sock.recv(min(left, 4 * MiB))
                        if not b:
                            raise EOFError("closed inside a data frame")
                        sink(b)
                        left -= len(b)
                else:
                    got += recv_exact(self.sock, size)
                count += size
                if stop_after is not None and count >= stop_after:
                    return (count if sink else bytes(got)), None, frames
            else:
                return (count if sink else bytes(got)), h, frames

    def get(self, path, alg="xxh3-128", offset=None, prefix=None):
        """(get-ready or error, data, final header or None)."""
        ready = self.get_begin(path, alg, offset, prefix)
        if ready.get("type") != "get-ready":
            return ready, b"", None
        data, end, _ = self.get_rest()
        return ready, data, end


# ---- a relay between a client and the server ----------------------------------

class Relay:
    """A loopback TCP relay to `target` for one connection at a time.
    up_limit / down_limit: forward at most that many bytes client->server /
    server->client, then stop reading that side (the sender blocks).
    rate: bytes per second, both ways (paced in small slices).
    corrupt: {"up" or "down": offset}: flip one bit of the byte at that
    offset of the stream (to show that checksums catch it).
    Counts the bytes forwarded each way."""

    def __init__(self, target, up_limit=None, down_limit=None, rate=None, corrupt=None):
        self.target = target
        self.limits = {"up": up_limit, "down": down_limit}
        self.corrupt = corrupt or {}      # {"up"|"down": stream offset of a byte to flip}
        self.rate = rate
        self.count = {"up": 0, "down": 0}
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.socks = []
        self.held = threading.Event()     # a limit was reached
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            with self._lock:
                self.socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()

    def _pump(self, src, dst, way):
        t0 = time.monotonic()
        try:
            while True:
                limit = self.limits[way]
                want = 65536
                if limit is not None:
                    want = min(want, limit - self.count[way])
                    if want <= 0:
                        self.held.set()
                        return          # stop reading: the sender blocks
                if self.rate:
                    want = min(want, max(1024, self.rate // 50))
                    due = t0 + self.count[way] / self.rate
                    pause = due - time.monotonic()
                    if pause > 0:
                        select.select([], [], [], pause)   # pacing, not synchronisation
                b = src.recv(want)
                if not b:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                at = self.corrupt.get(way)
                if at is not None and self.count[way] <= at < self.count[way] + len(b):
                    i = at - self.count[way]
                    b = b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]
                dst.sendall(b)
                with self._lock:
                    self.count[way] += len(b)
        except OSError:
            return

    def close(self):
        with self._lock:
            self._closed = True
            socks, self.socks = self.socks, []
        # shutdown first: a close() alone does not end a connection that
        # another thread is blocked reading (the kernel keeps it open).
        for s in socks + [self.lsock]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


# ---- the tutorial's FTP client (seed 002), faithfully -------------------------

class TutorialFtpClient:
    """Seed 002's MYTCPClient, with input() replaced by method calls and
    print() by a list.  struct.pack('i', ...) is native-endian as in the
    tutorial (little-endian here)."""
    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    allow_reuse_address = False
    max_packet_size = 8192
    coding = 'utf-8'
    request_queue_size = 5

    def __init__(self, server_address, connect=True):
        self.server_address = server_address
        self.printed = []
        self.socket = socket.socket(self.address_family, self.socket_type)
        self.socket.settimeout(60 * SLOW)    # the tutorial has none: a hang fails, not wedges
        if connect:
            try:
                self.client_connect()
            except:  # noqa: E722 (as in the tutorial)
                self.client_close()
                raise

    def client_connect(self):
        self.socket.connect(self.server_address)

    def client_close(self):
        self.socket.close()

    def run_line(self, inp):
        inp = inp.strip()
        if not inp:
            return
        l = inp.split()  # noqa: E741
        cmd = l[0]
        if hasattr(self, cmd):
            func = getattr(self, cmd)
            func(l)

    def put(self, args):
        cmd = args[0]
        filename = args[1]
        if not os.path.isfile(filename):
            self.printed.append('file:%s is not exists' % filename)
            return
        else:
            filesize = os.path.getsize(filename)

        head_dic = {'cmd': cmd, 'filename': os.path.basename(filename), 'filesize': filesize}
        self.printed.append(head_dic)
        head_json = json.dumps(head_dic)
        head_json_bytes = bytes(head_json, encoding=self.coding)

        head_struct = struct.pack('i', len(head_json_bytes))
        self.socket.send(head_struct)
        self.socket.send(head_json_bytes)
        send_size = 0
        with open(filename, 'rb') as f:
            for line in f:
                self.socket.send(line)
                send_size += len(line)
            else:
                self.printed.append('upload successful')
