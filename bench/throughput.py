#!/usr/bin/env python3
"""throughput.py - bulk transfer of one big file over loopback, ferry in
both its modes beside what users would pick instead (issue 5, comparison 2;
issue 6: encrypted throughput).

One source file (1 GiB of random data, made once in a temp dir) goes up and
comes down with each tool, side by side in one run, interleaved round-robin:

  ferry (TLS)        build/bin/ferry put / get against a ferryd --root TMP
                     (fresh key): TLS 1.3 keyed by it, ferry's default
  ferry (plaintext)  the same with --plaintext on both sides (a second ferryd,
                     its own root): authenticated, not encrypted
  nc         netcat-openbsd: nc -l ... > file / nc -N ... < file, and reversed
  socat      socat -u OPEN:file TCP:... / TCP-LISTEN:... CREATE:file, reversed
  iperf3     iperf3 -c 127.0.0.1 -n SIZE (and -R): the ceiling, no files
  scp        scp to / from a throw-away sshd on an ephemeral loopback port,
             logging in as a dedicated user (login shell /bin/sh, empty home:
             sshlib.BenchUser); uploads land in a directory it owns
  sftp       sftp -b (put / get) to / from the same sshd, the same user
  curl+vsftpd  curl -T / curl -o against a throw-away vsftpd (anonymous, write
             enabled, its config in the temp dir)
  python ftp the tutorials' FTP upload (seed 002): its ThreadingTCPServer and
             its client, as written (upload only: the tutorial has no download)

The time of one transfer is the wall time from starting the command that
sends (or fetches) until the file is complete: both ends have exited, or for
a long-lived server (ferryd, sshd, vsftpd, the tutorial's server) the client
has exited and the file has its full size.  Every file that arrives is
checked for its size, and ferry's (both modes) and nc's for their sha256,
before it counts; then it is deleted.  Nothing is dropped from the page
cache: every tool reads the same warm source file (hard links of one inode)
and writes into the same filesystem.

The machine is small and noisy: quote the ratios between columns of one run
(medians of --reps repetitions), never a lone absolute figure.  Nothing here
asserts; every loop is bounded in count and in time.

python3 standard library only.  Usage:

    bench/throughput.py [--install] [--quick] [--reps N] [--size BYTES]
                        [--tools TOOL,...] [--bin DIR] [--json FILE]

--tools takes column names (quote them: "ferry (TLS),ferry (plaintext),scp")
or these short names: ferry (both ferry columns), ferry-tls,
ferry-plaintext, nc, socat, iperf3, scp, sftp, curl+vsftpd (or vsftpd),
pyftp (the tutorial's FTP).

Ratios: issue 5's goals are for ferry in plaintext mode (ferry (plaintext) /
best of nc, socat, vsftpd >= 1x; / scp >= 3x); issue 6's for encrypted ferry
(ferry (TLS) / scp and / sftp >= 2x, put and get); issue 12's: ferry
(plaintext) / best of nc, socat, vsftpd >= 1x (as issue 5) and ferry (TLS) /
nc >= 1x, both directions; ferry (TLS) / ferry (plaintext) is what
encryption costs (no goal).

--install (root only) apt-gets iperf3 netcat-openbsd socat openssh-server
openssh-client vsftpd curl; a tool still missing gets "not installed".
"""

import argparse
import atexit
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import (ROOT, DEVNULL, note, stop_all, start, percentile,  # noqa: E402
                      summary, wait_for, free_port, machine_info, Ferryd,
                      apt_install, git_describe, dump_logs)
from sshlib import Sshd, ssh_baseline_line  # noqa: E402  (the fair ssh baseline)

benchlib.set_name("throughput")

PACKAGES = ["iperf3", "netcat-openbsd", "socat", "openssh-server",
            "openssh-client", "vsftpd", "curl"]
FERRY_TLS, FERRY_PLAIN = "ferry (TLS)", "ferry (plaintext)"
FERRY = (FERRY_TLS, FERRY_PLAIN)
TOOLS = [FERRY_TLS, FERRY_PLAIN, "nc", "socat", "iperf3", "scp", "sftp", "curl+vsftpd",
         "python ftp (seed 002)"]
# --tools also takes these (a column name with spaces needs quoting)
ALIASES = {"ferry": list(FERRY), "ferry-tls": [FERRY_TLS], "tls": [FERRY_TLS],
           "ferry-plaintext": [FERRY_PLAIN], "plaintext": [FERRY_PLAIN],
           "vsftpd": ["curl+vsftpd"], "pyftp": ["python ftp (seed 002)"],
           "python": ["python ftp (seed 002)"]}
SLOW = {"python ftp (seed 002)"}                # skipped by --quick
HASHED = {FERRY_TLS, FERRY_PLAIN, "nc"}         # sha256-checked every time
GB = 1e9


class Failed(Exception):
    pass


# ------------------------------------------------------------------ helpers

def listening(port):
    """True when something listens on 127.0.0.1:PORT (from /proc/net/tcp,
    so that checking does not use up a one-shot listener's accept)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == want and fields[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def wait_bounded(p, deadline, what):
    """Blocking wait (exact exit time, no polling) with a watchdog that kills
    the process at the deadline.  Raises Failed on a timeout or a nonzero
    status."""
    killed = []

    def kill():
        killed.append(1)
        try:
            p.kill()
        except OSError:
            pass
    t = threading.Timer(max(0.0, deadline - time.monotonic()), kill)
    t.daemon = True
    t.start()
    try:
        rc = p.wait()
    finally:
        t.cancel()
    if killed:
        raise Failed("%s: timed out" % what)
    if rc != 0:
        err = ""
        if getattr(p, "errfile", None):
            try:
                err = open(p.errfile, errors="replace").read().strip()[-300:]
            except OSError:
                pass
        raise Failed("%s: exit status %s %s" % (what, rc, err))
    return rc


def spawn(argv, tmp, stdin=DEVNULL, stdout=DEVNULL):
    """A process with its stderr in a file (shown if it fails)."""
    fd, errfile = tempfile.mkstemp(prefix="err-", dir=tmp)
    with os.fdopen(fd, "w") as err:
        p = start(argv, stdin=stdin, stdout=stdout, stderr=err)
    p.errfile = errfile
    return p


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def make_source(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    os.chmod(path, 0o644)


def fs_of(path):
    r = subprocess.run(["df", "-T", path], capture_output=True, text=True, timeout=30)
    lines = r.stdout.strip().splitlines()
    return lines[-1] if len(lines) > 1 else r.stdout.strip()


def pkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def fmt_gbps(x):
    return "-" if x is None else "%.2f" % x


# --------------------------------------------------------------- vsftpd

class Vsftpd:
    """A throw-away vsftpd on 127.0.0.1:EPHEMERAL: standalone, anonymous
    logins only (no local users, so no PAM), uploads allowed into up/,
    downloads from pub/, its config, log and directories in the temp dir.
    The anonymous root belongs to root and is not writable (vsftpd refuses a
    writable chroot); up/ belongs to the ftp user."""

    def __init__(self, tmp, binary):
        d = self.dir = os.path.join(tmp, "vsftpd")
        self.root = os.path.join(d, "root")
        self.up = os.path.join(self.root, "up")
        self.pub = os.path.join(self.root, "pub")
        os.makedirs(self.up)
        os.makedirs(self.pub)
        os.chmod(d, 0o755)
        os.chmod(self.root, 0o755)
        os.chmod(self.pub, 0o755)
        try:
            ftp = pwd.getpwnam("ftp")
        except KeyError:
            raise Failed("no 'ftp' user (the vsftpd package makes it)")
        os.chown(self.up, ftp.pw_uid, ftp.pw_gid)
        os.chmod(self.up, 0o755)
        empty = os.path.join(d, "empty")
        os.mkdir(empty, 0o755)
        self.port = free_port()
        pasv = free_port()
        pasv = min(max(pasv, 20000), 60000)
        self.log = os.path.join(d, "vsftpd.log")
        benchlib._logs.append(self.log)
        cfg = os.path.join(d, "vsftpd.conf")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "listen=YES", "listen_ipv6=NO", "background=NO",
                "listen_address=127.0.0.1", "listen_port=%d" % self.port,
                "anonymous_enable=YES", "local_enable=NO",
                "no_anon_password=YES", "anon_root=" + self.root,
                "write_enable=YES", "anon_upload_enable=YES",
                "anon_mkdir_write_enable=NO", "anon_other_write_enable=YES",
                "anon_umask=022", "anon_world_readable_only=YES",
                "ftp_username=ftp", "nopriv_user=ftp",
                "secure_chroot_dir=" + empty,
                "pasv_enable=YES", "pasv_address=127.0.0.1",
                "pasv_min_port=%d" % pasv, "pasv_max_port=%d" % (pasv + 50),
                "connect_from_port_20=NO", "port_enable=NO",
                "seccomp_sandbox=NO", "isolate=NO", "isolate_network=NO",
                "xferlog_enable=NO", "vsftpd_log_file=" + self.log,
                "dual_log_enable=NO", "syslog_enable=NO",
                "hide_ids=YES", "dirmessage_enable=NO",
                "max_clients=20", "idle_session_timeout=600",
                "data_connection_timeout=600",
                ""]))
        os.chmod(cfg, 0o600)        # vsftpd wants its config owned by root
        self.errlog = os.path.join(d, "stderr.log")
        benchlib._logs.append(self.errlog)
        self.proc = start([binary, cfg], stdin=DEVNULL, stdout=DEVNULL,
                          stderr=open(self.errlog, "w"))
        if not wait_for(lambda: self.proc.poll() is not None or listening(self.port), 10) \
                or self.proc.poll() is not None:
            raise Failed("vsftpd did not start: %s" %
                         open(self.errlog, errors="replace").read().strip()[-300:])

    def url(self, path):
        return "ftp://127.0.0.1:%d/%s" % (self.port, path)


# ------------------------------------------------- the tutorials' Python FTP

# Seed 002's ftp_server, as the tutorial writes it (quotes restored where the
# web page lost them): ThreadingTCPServer, recv(4) header length, recv(head_len)
# JSON header, then recv(8192) / write / print until filesize bytes.  Only
# the address differs (127.0.0.1:0, the port printed for the harness); the
# file runs from its own directory, so BASE_DIR/file_upload is in the temp dir.
PY_FTP_SERVER = r'''import socketserver     #导入多并发模块
import struct
import json
import subprocess
import os

class MYTCPServer(socketserver.BaseRequestHandler):

    max_packet_size = 8192

    coding='utf-8'
    BASE_DIR=os.path.dirname(os.path.abspath(__file__))

    server_dir='file_upload'

    def handle(self):
        while True:
            try:
                head_struct = self.request.recv(4)
                if not head_struct:break

                head_len = struct.unpack('i', head_struct)[0]
                head_json = self.request.recv(head_len).decode(self.coding)
                head_dic = json.loads(head_json)

                print(head_dic)
                #head_dic={'cmd':'put','filename':'a.txt','filesize':123123}
                cmd=head_dic['cmd']
                if hasattr(self,cmd):
                    func=getattr(self,cmd)
                    func(head_dic)
            except Exception:
                break

    def put(self,args):
        file_path=os.path.normpath(os.path.join(
            self.BASE_DIR,
            self.server_dir,
            args['filename']
        ))

        filesize=args['filesize']
        recv_size=0
        print('----->',file_path)
        with open(file_path,'wb') as f:
            while recv_size < filesize:
                recv_data=self.request.recv(self.max_packet_size)
                f.write(recv_data)
                recv_size+=len(recv_data)
                print('recvsize:%s filesize:%s' %(recv_size,filesize))




if __name__ == '__main__':
    obj=socketserver.ThreadingTCPServer(('127.0.0.1',0),MYTCPServer)
    print(obj.server_address[1], flush=True)
    obj.serve_forever()
'''

# Seed 002's ftp_client: the class as written; run()'s input() loop becomes
# one command from argv ("put FILE"), and the port comes from argv.  It
# prints send_size after every line, as the tutorial does (to /dev/null here).
PY_FTP_CLIENT = r'''import socket
import struct
import json
import os
import sys



class MYTCPClient:
    address_family = socket.AF_INET

    socket_type = socket.SOCK_STREAM

    allow_reuse_address = False

    max_packet_size = 8192

    coding='utf-8'

    request_queue_size = 5

    def __init__(self, server_address, connect=True):
        self.server_address=server_address
        self.socket = socket.socket(self.address_family,
                                    self.socket_type)
        if connect:
            try:
                self.client_connect()
            except:
                self.client_close()
                raise

    def client_connect(self):
        self.socket.connect(self.server_address)

    def client_close(self):
        self.socket.close()

    def run(self):
        inp=' '.join(sys.argv[2:]).strip()
        l=inp.split()
        cmd=l[0]
        if hasattr(self,cmd):
            func=getattr(self,cmd)
            func(l)


    def put(self,args):
        cmd=args[0]
        filename=args[1]
        if not os.path.isfile(filename):
            print('file:%s is not exists' %filename)
            return
        else:
            filesize=os.path.getsize(filename)

        head_dic={'cmd':cmd,'filename':os.path.basename(filename),'filesize':filesize}
        print(head_dic)
        head_json=json.dumps(head_dic)
        head_json_bytes=bytes(head_json,encoding=self.coding)

        head_struct=struct.pack('i',len(head_json_bytes))
        self.socket.send(head_struct)
        self.socket.send(head_json_bytes)
        send_size=0
        with open(filename,'rb') as f:
            for line in f:
                self.socket.send(line)
                send_size+=len(line)
                print(send_size)
            else:
                print('upload successful')




client=MYTCPClient(('127.0.0.1',int(sys.argv[1])))

client.run()
client.client_close()
'''


# ------------------------------------------------------------ the columns

class Bench:
    def __init__(self, a, tmp, snap):
        self.a, self.tmp, self.snap = a, tmp, snap
        self.size = a.size
        self.dst = os.path.join(tmp, "dst")
        os.mkdir(self.dst)
        self.src = os.path.join(tmp, "src.bin")
        self.deadline_for = lambda: time.monotonic() + a.timeout
        self.skip = {}          # tool -> why it has no column
        self.servers = {}
        self.sessions = {}      # ferry column -> what `ferry -v` says of its session

    def out(self, name):
        return os.path.join(self.dst, name)

    # Each returns (seconds, path of the file that arrived or None, extra)

    def pair(self, server_argv, client_argv, port, what, server_io=(DEVNULL, DEVNULL),
             client_io=(DEVNULL, DEVNULL)):
        """A one-shot server and its client: start the server, wait until it
        listens, then time from the client's start until both have exited."""
        srv = spawn(server_argv, self.tmp, *server_io)
        try:
            if not wait_for(lambda: srv.poll() is not None or listening(port), 10) \
                    or srv.poll() is not None:
                raise Failed("%s server did not listen (status %s)" % (what, srv.poll()))
            t0 = time.perf_counter()
            cli = spawn(client_argv, self.tmp, *client_io)
            dl = self.deadline_for()
            wait_bounded(cli, dl, what + " client")
            wait_bounded(srv, dl, what + " server")
            return time.perf_counter() - t0
        finally:
            for p in (srv,):
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)

    def client_only(self, argv, what, stdin=DEVNULL, stdout=DEVNULL):
        t0 = time.perf_counter()
        p = spawn(argv, self.tmp, stdin, stdout)
        wait_bounded(p, self.deadline_for(), what)
        return time.perf_counter() - t0

    # ferry, in either mode: the same put and get against the ferryd of that
    # mode (its own root); the client gets --plaintext exactly when ferryd has it
    def ferry_up(self, tool, rep):
        fd = self.servers[tool]
        name = "ferry-up-%s-%d.bin" % (fd.mode, rep)
        dt = self.client_only(fd.client("put", "-q", fd.host, self.src, name),
                              "ferry put (%s)" % fd.mode)
        return dt, os.path.join(fd.root, name), None

    def ferry_down(self, tool, rep):
        fd = self.servers[tool]
        out = self.out("ferry-down-%s-%d.bin" % (fd.mode, rep))
        dt = self.client_only(fd.client("get", "-q", fd.host, "src.bin", out),
                              "ferry get (%s)" % fd.mode)
        return dt, out, None

    # nc (netcat-openbsd)
    def nc_up(self, rep):
        out, port = self.out("nc-up.bin"), free_port()
        with open(out, "wb") as o, open(self.src, "rb") as i:
            dt = self.pair(["nc", "-l", "-d", "-s", "127.0.0.1", "-p", str(port)],
                           ["nc", "-N", "127.0.0.1", str(port)], port, "nc",
                           server_io=(DEVNULL, o), client_io=(i, DEVNULL))
        return dt, out, None

    def nc_down(self, rep):
        out, port = self.out("nc-down.bin"), free_port()
        with open(out, "wb") as o, open(self.src, "rb") as i:
            dt = self.pair(["nc", "-l", "-N", "-s", "127.0.0.1", "-p", str(port)],
                           ["nc", "-d", "127.0.0.1", str(port)], port, "nc",
                           server_io=(i, DEVNULL), client_io=(DEVNULL, o))
        return dt, out, None

    # socat
    def socat_up(self, rep):
        out, port = self.out("socat-up.bin"), free_port()
        dt = self.pair(["socat", "-u", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port,
                        "CREATE:" + out],
                       ["socat", "-u", "OPEN:" + self.src, "TCP:127.0.0.1:%d" % port],
                       port, "socat")
        return dt, out, None

    def socat_down(self, rep):
        out, port = self.out("socat-down.bin"), free_port()
        dt = self.pair(["socat", "-u", "OPEN:" + self.src,
                        "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port],
                       ["socat", "-u", "TCP:127.0.0.1:%d" % port, "CREATE:" + out],
                       port, "socat")
        return dt, out, None

    # iperf3: no files; its own report is kept as the extra
    def _iperf(self, rep, reverse):
        port = free_port()
        rep_file = os.path.join(self.tmp, "iperf3.json")
        with open(rep_file, "wb") as o:
            dt = self.pair(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                           ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n",
                            str(self.size), "-J"] + (["-R"] if reverse else []),
                           port, "iperf3", client_io=(DEVNULL, o))
        try:
            j = json.load(open(rep_file))
            sent, recv = j["end"]["sum_sent"], j["end"]["sum_received"]
            extra = {"iperf3_bytes_sent": sent["bytes"],
                     "iperf3_bytes_received": recv["bytes"],
                     "iperf3_gbps_own": recv["bits_per_second"] / 8 / GB}
        except (ValueError, KeyError, OSError) as e:
            raise Failed("iperf3: no report: %s" % e)
        # -n counts what the sender sent; the receiver's count can stop a
        # few socket buffers short of it when the test ends
        if sent["bytes"] < self.size:
            raise Failed("iperf3 sent %d of %d bytes" % (sent["bytes"], self.size))
        return dt, None, extra

    def iperf3_up(self, rep):
        return self._iperf(rep, False)

    def iperf3_down(self, rep):
        return self._iperf(rep, True)

    # scp / sftp to the throw-away sshd
    # Uploads land in the ssh user's own directory (it cannot write to dst/).
    def scp_up(self, rep):
        sshd = self.servers["sshd"]
        out = os.path.join(sshd.user.drop, "scp-up.bin")
        return self.client_only(sshd.scp(self.src, "localhost:" + out), "scp"), out, None

    def scp_down(self, rep):
        out = self.out("scp-down.bin")
        sshd = self.servers["sshd"]
        return self.client_only(sshd.scp("localhost:" + self.src, out), "scp"), out, None

    def _sftp(self, cmd, out):
        batch = os.path.join(self.tmp, "sftp.batch")
        with open(batch, "w") as f:
            f.write(cmd + "\n")
        return self.client_only(self.servers["sshd"].sftp(batch), "sftp"), out, None

    def sftp_up(self, rep):
        out = os.path.join(self.servers["sshd"].user.drop, "sftp-up.bin")
        return self._sftp('put "%s" "%s"' % (self.src, out), out)

    def sftp_down(self, rep):
        out = self.out("sftp-down.bin")
        return self._sftp('get "%s" "%s"' % (self.src, out), out)

    # curl against vsftpd
    def curl_up(self, rep):
        v = self.servers["vsftpd"]
        name = "curl-up-%d.bin" % rep
        dt = self.client_only(["curl", "-sS", "--fail", "-T", self.src,
                               v.url("up/" + name)], "curl -T")
        return dt, os.path.join(v.up, name), None

    def curl_down(self, rep):
        v = self.servers["vsftpd"]
        out = self.out("curl-down.bin")
        dt = self.client_only(["curl", "-sS", "--fail", "-o", out,
                               v.url("pub/src.bin")], "curl -o")
        return dt, out, None

    # the tutorials' Python FTP (upload only)
    def pyftp_up(self, rep):
        port, d = self.servers["pyftp"]
        out = os.path.join(d, "file_upload", "src.bin")
        t0 = time.perf_counter()
        p = spawn([sys.executable, os.path.join(d, "ftp_client.py"), str(port),
                   "put", self.src], self.tmp)
        dl = self.deadline_for()
        wait_bounded(p, dl, "tutorial ftp client")

        def full():
            try:
                return os.stat(out).st_size >= self.size
            except OSError:
                return False
        while not full():
            if time.monotonic() > dl:
                raise Failed("tutorial ftp server: file incomplete at the deadline")
            time.sleep(0.002)
        return time.perf_counter() - t0, out, None


def setup(b, a, tools, notes):
    """Starts the long-lived servers the columns need; a tool that cannot run
    gets its reason in b.skip."""
    tmp = b.tmp
    need = {FERRY_TLS: [], FERRY_PLAIN: [], "nc": ["nc"], "socat": ["socat"], "iperf3": ["iperf3"],
            "scp": ["scp", "ssh", "ssh-keygen"], "sftp": ["sftp", "ssh", "ssh-keygen"],
            "curl+vsftpd": ["curl"], "python ftp (seed 002)": []}
    for t in tools:
        missing = [x for x in need[t] if not shutil.which(x)]
        if t in ("scp", "sftp") and not (shutil.which("sshd") or
                                         os.path.exists("/usr/sbin/sshd")):
            missing.append("sshd")
        if t == "curl+vsftpd" and not os.path.exists("/usr/sbin/vsftpd") \
                and not shutil.which("vsftpd"):
            missing.append("vsftpd")
        if missing:
            b.skip[t] = "not installed (%s)" % ", ".join(missing)
    # ferry: one daemon per mode (TLS, ferryd's default, and --plaintext),
    # each serving its own root that holds a hard link of the source
    for t in FERRY:
        if t not in tools:
            continue
        plaintext = t == FERRY_PLAIN
        root = os.path.join(tmp, "ferry-root-plaintext" if plaintext else "ferry-root-tls")
        os.mkdir(root)
        os.link(b.src, os.path.join(root, "src.bin"))
        fd = Ferryd(b.snap, tmp, classic=False, root=root, plaintext=plaintext)
        b.servers[t] = fd
        note("ferryd (%s) on 127.0.0.1:%d, root %s" % (fd.mode, fd.port, root))
        b.sessions[t] = benchlib.tls_session_info(fd)
        note("%s session: %s" % (t, b.sessions[t]))
    if any(t in tools and t not in b.skip for t in ("scp", "sftp")):
        try:
            b.servers["sshd"] = Sshd(tmp)
            sshd = b.servers["sshd"]
            note("sshd on 127.0.0.1:%d; %s" % (sshd.port, ssh_baseline_line(sshd)))
            if not sshd.user.fair:
                notes.append("ssh baseline UNFAIR: " + sshd.user.why)
                note(notes[-1])
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            for t in ("scp", "sftp"):
                b.skip.setdefault(t, "sshd could not be used: %s" % e)
    if "curl+vsftpd" in tools and "curl+vsftpd" not in b.skip:
        try:
            v = Vsftpd(tmp, shutil.which("vsftpd") or "/usr/sbin/vsftpd")
            os.link(b.src, os.path.join(v.pub, "src.bin"))
            # one small round trip both ways before it counts
            probe = os.path.join(tmp, "probe.txt")
            with open(probe, "w") as f:
                f.write("probe\n")
            r = subprocess.run(["curl", "-sS", "--fail", "-T", probe, v.url("up/probe.txt")],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise Failed("curl -T to vsftpd failed: " + r.stderr.strip())
            r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-r", "0-99",
                                v.url("pub/src.bin")], capture_output=True, text=True,
                               timeout=30)
            if r.returncode != 0:
                raise Failed("curl download from vsftpd failed: " + r.stderr.strip())
            os.unlink(os.path.join(v.up, "probe.txt"))
            b.servers["vsftpd"] = v
            note("vsftpd on 127.0.0.1:%d (anonymous, uploads into up/)" % v.port)
        except (Failed, OSError, subprocess.SubprocessError) as e:
            b.skip["curl+vsftpd"] = "vsftpd could not be used here: %s" % e
            notes.append("curl+vsftpd: " + b.skip["curl+vsftpd"])
            note(notes[-1])
    if "python ftp (seed 002)" in tools:
        d = os.path.join(tmp, "pyftp")
        os.makedirs(os.path.join(d, "file_upload"))
        with open(os.path.join(d, "ftp_server.py"), "w") as f:
            f.write(PY_FTP_SERVER)
        with open(os.path.join(d, "ftp_client.py"), "w") as f:
            f.write(PY_FTP_CLIENT)
        srv = start([sys.executable, os.path.join(d, "ftp_server.py")], stdin=DEVNULL,
                    stdout=subprocess.PIPE, stderr=DEVNULL, cwd=d)
        port = int(srv.stdout.readline())
        # the tutorial's server prints per recv: keep draining its stdout
        threading.Thread(target=lambda: [None for _ in iter(
            lambda: srv.stdout.read(1 << 16), b"")], daemon=True).start()
        b.servers["pyftp"] = (port, d)
        note("tutorial FTP server on 127.0.0.1:%d" % port)


def columns(b, tools):
    def ferry_pair(t):
        return (lambda rep: b.ferry_up(t, rep), lambda rep: b.ferry_down(t, rep))
    m = {FERRY_TLS: ferry_pair(FERRY_TLS), FERRY_PLAIN: ferry_pair(FERRY_PLAIN),
         "nc": (b.nc_up, b.nc_down),
         "socat": (b.socat_up, b.socat_down), "iperf3": (b.iperf3_up, b.iperf3_down),
         "scp": (b.scp_up, b.scp_down), "sftp": (b.sftp_up, b.sftp_down),
         "curl+vsftpd": (b.curl_up, b.curl_down),
         "python ftp (seed 002)": (b.pyftp_up, None)}
    cols = []
    for t in tools:
        if t in b.skip:
            continue
        up, down = m[t]
        cols.append((t, "upload", up))
        if down:
            cols.append((t, "download", down))
    return cols


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true",
                    help="apt-get install the alternatives if missing (root)")
    ap.add_argument("--quick", action="store_true",
                    help="256 MiB, 2 reps, without the slowest tool (python ftp)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (5)")
    ap.add_argument("--size", type=int, default=1 << 30, help="bytes (1 GiB)")
    ap.add_argument("--tools", default=None,
                    help="comma-separated subset of: " + ", ".join(TOOLS) +
                    "; or short names: " + ", ".join(sorted(ALIASES)))
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds allowed per transfer (600)")
    ap.add_argument("--time-limit", type=float, default=3600,
                    help="seconds allowed for all repetitions (3600)")
    ap.add_argument("--tmpdir", default=None, help="where the temp dir goes "
                    "(default: $TMPDIR or /tmp)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                   "throughput.json"))
    a = ap.parse_args()
    tools = []
    for t in (a.tools.split(",") if a.tools else TOOLS):
        t = t.strip()
        if not t:
            continue
        names = ALIASES.get(t.lower(), [t])
        for n in names:
            if n not in TOOLS:
                sys.exit("throughput: unknown tool %r (known: %s; or %s)" %
                         (t, ", ".join(TOOLS), ", ".join(sorted(ALIASES))))
            if n not in tools:
                tools.append(n)
    tools.sort(key=TOOLS.index)
    if a.quick:
        a.size = min(a.size, 256 << 20)
        a.reps = min(a.reps, 2)
        if a.tools is None:
            tools = [t for t in tools if t not in SLOW]
    for prog in ("ferry", "ferryd"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            sys.exit("throughput: %s/%s not found: run `make` first" % (a.bin, prog))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.time()
    machine = machine_info()
    notes = []
    if a.install:
        have = lambda: all(shutil.which(x) for x in
                           ("iperf3", "nc", "socat", "ssh", "scp", "sftp", "curl")) and \
            os.path.exists("/usr/sbin/sshd") and os.path.exists("/usr/sbin/vsftpd")
        why = apt_install(PACKAGES, have, "the alternatives")
        if why:
            notes.append(why)
            note(why)
    tmp = tempfile.mkdtemp(prefix="ferry-bench-tp-", dir=a.tmpdir)
    atexit.register(shutil.rmtree, tmp, True)
    os.chmod(tmp, 0o755)
    snap = os.path.join(tmp, "bin")
    os.mkdir(snap)
    for prog in ("ferry", "ferryd"):
        shutil.copy2(os.path.join(a.bin, prog), snap)
    commit = git_describe()

    b = Bench(a, tmp, snap)
    note("making the %d-byte random source in %s" % (a.size, tmp))
    make_source(b.src, a.size)
    src_sha = sha256(b.src)          # also reads it once: the cache is warm
    fs = fs_of(tmp)
    setup(b, a, tools, notes)
    cols = columns(b, tools)
    for t in tools:
        if t in b.skip:
            note("%s: %s" % (t, b.skip[t]))

    samples = {(t, d): [] for t, d, _ in cols}
    extras = {(t, d): [] for t, d, _ in cols}
    failures = {(t, d): [] for t, d, _ in cols}
    hashed = {(t, d): 0 for t, d, _ in cols}
    note("%d reps, round-robin over: %s" %
         (a.reps, ", ".join("%s %s" % (t, d) for t, d, _ in cols)))
    end = time.monotonic() + a.time_limit
    for rep in range(a.reps):
        # rotate the starting column so that no tool always follows the same one
        k = rep % max(1, len(cols))
        for t, d, fn in cols[k:] + cols[:k]:
            if len(failures[(t, d)]) >= 2:
                continue
            out = None
            try:
                dt, out, extra = fn(rep)
                if out is not None:
                    size = os.stat(out).st_size
                    if size != a.size:
                        raise Failed("arrived with %d of %d bytes" % (size, a.size))
                    if t in HASHED:
                        if sha256(out) != src_sha:
                            raise Failed("sha256 differs from the source")
                        hashed[(t, d)] += 1
                samples[(t, d)].append(dt)
                extras[(t, d)].append(extra)
                note("rep %d %-22s %-8s %6.2f s  %5.2f GB/s" %
                     (rep + 1, t, d, dt, a.size / dt / GB))
            except (Failed, OSError, subprocess.SubprocessError) as e:
                failures[(t, d)].append(str(e))
                note("rep %d %s %s failed: %s" % (rep + 1, t, d, e))
            finally:
                if out is not None and os.path.exists(out):
                    os.unlink(out)
        if time.monotonic() > end:
            notes.append("time limit reached after %d of %d reps" % (rep + 1, a.reps))
            note(notes[-1])
            break

    stop_all()

    # ------------------------------------------------------------- results
    results = {}
    for t in tools:
        results[t] = {}
        for d in ("upload", "download"):
            key = (t, d)
            if t in b.skip:
                results[t][d] = {"status": b.skip[t]}
                continue
            if key not in samples:
                results[t][d] = {"status": "not offered (the tutorial has no download)"}
                continue
            s = samples[key]
            gbps = [a.size / x / GB for x in s]
            r = dict(summary(s), samples_s=s, gbps_samples=gbps,
                     median_gbps=percentile(gbps, 50) if gbps else None,
                     sha256_checked=hashed[key], failures=failures[key])
            # the median of an even count is its lower middle: take the GB/s
            # median from the same sample as the time median
            if s:
                r["median_gbps"] = a.size / r["median"] / GB
            if any(extras[key]):
                r["extra"] = extras[key]
            r["status"] = "ok" if s else ("failed: " + "; ".join(failures[key])[:300])
            results[t][d] = r
            if failures[key]:
                notes.append("%s %s: %d failed transfer(s): %s" %
                             (t, d, len(failures[key]), failures[key][0][:200]))

    def med(t, d):
        return results.get(t, {}).get(d, {}).get("median_gbps")

    ratios = []

    def add(what, num, den, goal=None):
        if num and den:
            ratios.append({"what": what, "ratio": num / den, "goal": goal})

    # "fair": scp and sftp log in as a user with /bin/sh and an empty home
    sshd = b.servers.get("sshd")
    fair = sshd.user.label if sshd else "fair"
    for d in ("upload", "download"):
        # issue 5: ferry in plaintext mode against the plain movers and scp
        p, t = med(FERRY_PLAIN, d), med(FERRY_TLS, d)
        best = [(med(x, d), x) for x in ("nc", "socat", "curl+vsftpd") if med(x, d)]
        if p and best:
            bv, bt = max(best)
            add("ferry (plaintext) / best of nc, socat, vsftpd (%s: %s)" % (d, bt), p, bv,
                ">= 1.0x (issue 5)")
            # issue 12 keeps issue 5's goal
            add("ferry (plaintext) / best of nc, socat, vsftpd (%s: %s)" % (d, bt), p, bv,
                ">= 1.0x (issue 12)")
        add("ferry (TLS) / nc (%s)" % d, t, med("nc", d), ">= 1.0x (issue 12)")
        add("ferry (plaintext) / scp (%s, %s)" % (fair, d), p, med("scp", d), ">= 3x (issue 5)")
        # issue 6: encrypted ferry against OpenSSH's file movers
        add("ferry (TLS) / scp (%s, %s)" % (fair, d), t, med("scp", d), ">= 2x (issue 6)")
        add("ferry (TLS) / sftp (%s, %s)" % (fair, d), t, med("sftp", d), ">= 2x (issue 6)")
        # what encryption costs, and the rest (no goals)
        add("ferry (TLS) / ferry (plaintext) (%s)" % d, t, p)
        if t and best:
            bv, bt = max(best)
            add("ferry (TLS) / best of nc, socat, vsftpd (%s: %s)" % (d, bt), t, bv)
        add("ferry (plaintext) / sftp (%s, %s)" % (fair, d), p, med("sftp", d))
        add("ferry (plaintext) / iperf3, the ceiling (%s)" % d, p, med("iperf3", d))
        add("ferry (TLS) / iperf3, the ceiling (%s)" % d, t, med("iperf3", d))
        add("ferry (plaintext) / python ftp, seed 002 (%s)" % d, p,
            med("python ftp (seed 002)", d))

    versions = benchlib.ferry_versions(snap)
    for pkg in PACKAGES:
        versions[pkg] = pkg_version(pkg) or "not installed"
    versions["python3"] = sys.version.split()[0]

    machine["loadavg_end"] = os.getloadavg()
    doc = {
        "benchmark": "throughput",
        "issue": [5, 6, 12],
        "ssh_baseline": sshd.describe() if sshd else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "duration_s": round(time.time() - started_at, 1),
        "machine": machine,
        "commit": commit,
        "versions": versions,
        "filesystem": fs,
        "page_cache": "nothing dropped: every tool reads the same warm source "
                      "(hard links of one inode) and writes into the same filesystem",
        "params": {"size": a.size, "reps": a.reps, "tools": tools, "quick": a.quick,
                   "timeout_s": a.timeout, "time_limit_s": a.time_limit,
                   "bin": benchlib.repo_path(a.bin)},
        "units": "seconds per transfer; GB/s with GB = 1e9 bytes",
        "source_sha256": src_sha,
        "ferry_modes": {t: {"mode": b.servers[t].mode, "session": b.sessions.get(t)}
                        for t in FERRY if t in b.servers},
        "results": results,
        "ratios": ratios,
        "notes": notes,
    }

    print("throughput: %d bytes, %d cpus, load %.2f -> %.2f, %s" %
          (a.size, os.cpu_count(), machine["loadavg_start"][0],
           machine["loadavg_end"][0], commit))
    print("filesystem: %s (nothing dropped from the page cache)" % fs)
    if sshd:
        print(ssh_baseline_line(sshd))
    for t in FERRY:
        if t in b.servers:
            print("%s: %s" % (t, b.sessions.get(t) or "-"))
    print("\nmedian GB/s (n reps)        upload              download")
    for t in tools:
        cells = []
        for d in ("upload", "download"):
            r = results[t][d]
            if r.get("median_gbps") is not None:
                cells.append("%6s  (n=%d)" % (fmt_gbps(r["median_gbps"]), r["n"]))
            else:
                cells.append(r["status"][:40])
        print("  %-24s %-19s %s" % (t, cells[0], cells[1]))
    benchlib.finish(doc, ratios, notes, a.json, width=66)


if __name__ == "__main__":
    benchlib.run(main)
