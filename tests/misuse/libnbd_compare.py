#!/usr/bin/env python3
# libnbd_compare.py: the same misuses through Debian's python3-libnbd, once on Debian's libnbd
# 1.14 and once on ours (LD_LIBRARY_PATH), compared errno for errno.
#
# Usage: libnbd_compare.py LIBDIR        (LIBDIR holds our libnbd.so.0)
#
# Each probe records OK or the errno name, the "nbd_CALL: " prefix of the message, and for
# state errors the permitted states it names ("the handle must be ..."); state names differ by
# design (libnbd's CONNECT.START is our RECV_GREETING) and so do most message texts, so only
# these are compared.  Differences listed in KNOWN are reported but do not fail; any other
# difference fails.  Exit 77 (skip) without python3-libnbd, Debian's libnbd or nbdkit.
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

# label -> why our library answers differently from libnbd 1.14: the behaviour changes of
# libnbd 1.16-1.24, which our library follows.
_SHUTDOWN = "libnbd 1.18: nbd_shutdown is permitted while negotiating (it ends the negotiation)"
KNOWN: dict = {f"{state}/shutdown": _SHUTDOWN for state in ("created", "connecting", "negotiating", "closed", "dead")}

PROBE = r'''
import errno, json, os, signal, socket, subprocess, sys
import nbd
d, uri, failing_uri, nbdkit_pid = sys.argv[1], sys.argv[2], sys.argv[3], None
out = {}
def record(label, f):
    try:
        f()
        out[label] = ["OK", "", ""]
    except nbd.Error as e:
        msg = e.string or ""
        words = ""
        m = re.search(r"invalid state: [^:]*: the handle must be (.*?)(: [A-Z][a-z ]+)?$", msg)
        if m:
            words = m.group(1)
        prefix = msg.split(":", 1)[0]
        out[label] = [errno.errorcode.get(e.errno, str(e.errno)), prefix, words]
import re
def handle(state):
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    if state == "negotiating":
        h.set_opt_mode(True); h.connect_uri(uri)
    elif state == "connected":
        h.connect_uri(uri)
    elif state == "closed":
        h.connect_uri(uri); h.shutdown()
    elif state == "dead":
        a, b = socket.socketpair(); b.close()
        try:
            h.connect_socket(a.detach())
        except nbd.Error:
            pass
    elif state == "connecting":
        path = os.path.join(d, "listener-%d.sock" % len(out))
        l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen(4)
        h.aio_connect_unix(path)
        h._listener = l
    return h
M = 1 << 20
calls = {
    "pread": lambda h: h.pread(512, 0),
    "pwrite": lambda h: h.pwrite(b"x" * 512, 0),
    "aio_pread": lambda h: h.aio_pread(nbd.Buffer(512), 0),
    "block_status": lambda h: h.block_status(512, 0, lambda *a: 0),
    "flush": lambda h: h.flush(),
    "shutdown": lambda h: h.shutdown(),
    "aio_disconnect": lambda h: h.aio_disconnect(),
    "opt_go": lambda h: h.opt_go(),
    "opt_info": lambda h: h.opt_info(),
    "opt_list": lambda h: h.opt_list(lambda *a: 0),
    "opt_abort": lambda h: h.opt_abort(),
    "set_tls": lambda h: h.set_tls(1),
    "set_opt_mode": lambda h: h.set_opt_mode(True),
    "set_export_name": lambda h: h.set_export_name("x"),
    "add_meta_context": lambda h: h.add_meta_context("x"),
    "set_handshake_flags": lambda h: h.set_handshake_flags(0),
    "connect_uri": lambda h: h.connect_uri(uri),
    "aio_connect_uri": lambda h: h.aio_connect_uri(uri),
    "get_size": lambda h: h.get_size(),
    "get_protocol": lambda h: h.get_protocol(),
    "is_read_only": lambda h: h.is_read_only(),
    "can_meta_context": lambda h: h.can_meta_context("base:allocation"),
    "get_block_size": lambda h: h.get_block_size(nbd.SIZE_MINIMUM),
    "get_canonical_export_name": lambda h: h.get_canonical_export_name(),
    "get_tls_negotiated": lambda h: h.get_tls_negotiated(),
    "aio_in_flight": lambda h: h.aio_in_flight(),
    "get_uri": lambda h: h.get_uri(),
    "aio_get_fd": lambda h: h.aio_get_fd(),
    "aio_notify_read": lambda h: h.aio_notify_read(),
    "aio_notify_write": lambda h: h.aio_notify_write(),
    "aio_peek_command_completed": lambda h: h.aio_peek_command_completed(),
    "kill_subprocess": lambda h: h.kill_subprocess(0),
}
for state in ["created", "connecting", "negotiating", "connected", "closed", "dead"]:
    for name, f in calls.items():
        h = handle(state)
        record(state + "/" + name, lambda: f(h))
        del h
# Bad flags and enums.
h = handle("connected")
# Values unknown to libnbd 1.14 and to the 1.24 level alike (1.16-1.18 added strict 0x20 and 0x40,
# transport 0x8 and block size 3).
for label, f in [("set_strict_mode 0x80", lambda: h.set_strict_mode(0x80)),
                 ("set_handshake_flags 0x4", lambda: h.set_handshake_flags(4)),
                 ("set_uri_allow_transports 0x10", lambda: h.set_uri_allow_transports(0x10)),
                 ("set_tls 3", lambda: h.set_tls(3)),
                 ("get_block_size 4", lambda: h.get_block_size(4)),
                 ("pread flags 0x20", lambda: h.pread(512, 0, 0x20)),
                 ("pread flags FUA", lambda: h.pread(512, 0, nbd.CMD_FLAG_FUA)),
                 ("pwrite flags NO_HOLE", lambda: h.pwrite(b"x" * 512, 0, nbd.CMD_FLAG_NO_HOLE)),
                 ("zero flags DF", lambda: h.zero(512, 0, nbd.CMD_FLAG_DF)),
                 ("shutdown flags 0x1", lambda: h.shutdown(1)),
                 ("get_meta_context 5", lambda: h.get_meta_context(5))]:
    record("flags/" + label, f)
# Requests past the end, with the default strict mode.
for label, f in [("pread", lambda: h.pread(512, M)), ("pwrite", lambda: h.pwrite(b"x" * 512, M)),
                 ("trim", lambda: h.trim(512, M)), ("zero", lambda: h.zero(512, M)),
                 ("cache", lambda: h.cache(512, M)),
                 ("block_status", lambda: h.block_status(512, M, lambda *a: 0)),
                 ("pread 64M+1", lambda: h.pread(64 * M + 1, 0))]:
    record("bounds/" + label, f)
del h
# The server failing requests and options (tests/misuse/misuse_support.cpp's failing plugin).
h = nbd.NBD(); h.add_meta_context("base:allocation"); h.set_opt_mode(True); h.connect_uri(failing_uri)
record("failing/opt_list", lambda: h.opt_list(lambda *a: 0))
h.set_export_name("refuse")
record("failing/opt_info", lambda: h.opt_info())
record("failing/opt_go", lambda: h.opt_go())
h.set_export_name("")
h.opt_go()
for label, f in [("pread", lambda: h.pread(512, 0)), ("pwrite", lambda: h.pwrite(b"x" * 512, 0)),
                 ("flush", lambda: h.flush()), ("trim", lambda: h.trim(512, 0)),
                 ("zero", lambda: h.zero(512, 0)), ("cache", lambda: h.cache(512, 0)),
                 ("block_status", lambda: h.block_status(512, 0, lambda *a: 0)),
                 ("pread_structured", lambda: h.pread_structured(512, 0, lambda *a: 0))]:
    record("failing/" + label, f)
del h
json.dump(out, sys.stdout)
'''

# Killed in flight needs a server per run; done here so the probe needs only the URIs.
KILLED = r'''
import errno, json, os, signal, subprocess, sys
import nbd
d = sys.argv[1]
out = {}
def start(tag):
    sock, pidf = os.path.join(d, tag + ".sock"), os.path.join(d, tag + ".pid")
    p = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-U", sock, "-P", pidf, "memory", "1M"])
    while not (os.path.exists(pidf) and os.path.getsize(pidf)):
        if p.poll() is not None:
            sys.exit("nbdkit exited")
    return p, "nbd+unix:///?socket=" + sock
def completion(label):
    def cb(err):
        out[label] = [errno.errorcode.get(err.value, str(err.value)), "", ""]
        return 0
    return cb
for opt in (False, True):
    p, uri = start("killed%d" % opt)
    h = nbd.NBD()
    h.set_opt_mode(opt)
    h.connect_uri(uri)
    # kill() returns before the server has stopped: wait until it has, or it may still answer.
    os.kill(p.pid, signal.SIGSTOP)
    os.waitpid(p.pid, os.WUNTRACED)
    if opt:
        h.aio_opt_go(completion("killed/aio_opt_go completion"))
    else:
        c = h.aio_pread(nbd.Buffer(512), 0, completion("killed/aio_pread completion"))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # (libnbd moves to CLOSED, not DEAD, on end of file with nothing in flight: stopping
    # there too keeps a wrong outcome a difference rather than a loop.)
    while not (h.aio_is_dead() or h.aio_is_closed()):
        try:
            h.poll(-1)
        except nbd.Error:
            pass
    if not opt:
        try:
            h.aio_command_completed(c)
            out["killed/aio_command_completed"] = ["OK", "", ""]
        except nbd.Error as e:
            out["killed/aio_command_completed"] = [errno.errorcode.get(e.errno, str(e.errno)),
                                                   e.string.split(":", 1)[0], ""]
    del h
json.dump(out, sys.stdout)
'''

FAILING_PLUGIN = r'''#!/bin/sh
case "$1" in
  get_size) echo 1M ;;
  can_write|can_flush|can_trim|can_zero|can_extents|can_fast_zero) exit 0 ;;
  can_multi_conn) exit 3 ;;
  can_cache|can_fua) echo native ;;
  open) if [ "$3" = refuse ]; then echo "EACCES refused" >&2; exit 1; fi; echo handle ;;
  list_exports) echo "EINVAL refused" >&2; exit 1 ;;
  pread) if [ "$4" -eq 0 ]; then echo "EIO refused" >&2; exit 1; fi; head -c "$3" /dev/zero ;;
  pwrite) cat >/dev/null; if [ "$4" -eq 0 ]; then echo "ENOSPC refused" >&2; exit 1; fi ;;
  flush) echo "ESHUTDOWN refused" >&2; exit 1 ;;
  trim) if [ "$4" -eq 0 ]; then echo "EPERM refused" >&2; exit 1; fi ;;
  zero) if [ "$4" -eq 0 ]; then echo "EINVAL refused" >&2; exit 1; fi ;;
  cache) if [ "$4" -eq 0 ]; then echo "ENOMEM refused" >&2; exit 1; fi ;;
  extents) if [ "$4" -eq 0 ]; then echo "EOVERFLOW refused" >&2; exit 1; fi; echo "$4 $3 0" ;;
  *) exit 2 ;;
esac
'''

PYTHON = "/usr/bin/python3"
DEBIAN_LIB = "/usr/lib/x86_64-linux-gnu/libnbd.so.0"


def start_nbdkit(d, tag, args):
    sock, pidf = os.path.join(d, tag + ".sock"), os.path.join(d, tag + ".pid")
    p = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-U", sock, "-P", pidf] + args,
                         stderr=subprocess.DEVNULL)
    while not (os.path.exists(pidf) and os.path.getsize(pidf)):
        if p.poll() is not None:
            sys.exit(f"nbdkit {args} exited with {p.returncode}")
    return p, "nbd+unix:///?socket=" + sock


def run(libdir, d, env_extra):
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    env.update(env_extra)
    results = {}
    servers = [start_nbdkit(d, "mem", ["memory", "1M"])]
    script = os.path.join(d, "failing.sh")
    with open(script, "w") as f:
        f.write(FAILING_PLUGIN)
    os.chmod(script, 0o755)
    servers.append(start_nbdkit(d, "failing", ["sh", script]))
    try:
        for code, args in ((PROBE, [d, servers[0][1], servers[1][1]]), (KILLED, [d])):
            r = subprocess.run([PYTHON, "-c", code] + args, env=env, capture_output=True,
                               text=True, timeout=300)
            if r.returncode != 0:
                sys.exit(f"probe failed ({libdir}):\n{r.stderr}")
            results.update(json.loads(r.stdout))
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait()
    return results


def loaded_library(env_extra):
    code = ("import nbd; nbd.NBD(); print([l.split()[-1] for l in open('/proc/self/maps') "
            "if 'libnbd.so' in l][0])")
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    env.update(env_extra)
    return subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True).stdout.strip()


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} LIBDIR", file=sys.stderr)
        return 2
    ours_dir = os.path.abspath(sys.argv[1])
    if subprocess.run([PYTHON, "-c", "import nbd"], capture_output=True).returncode != 0:
        print("SKIP: python3-libnbd is not installed")
        return 77
    if not os.path.exists(DEBIAN_LIB) or shutil.which("nbdkit") is None:
        print("SKIP: Debian's libnbd or nbdkit is not installed")
        return 77
    ours_env = {"LD_LIBRARY_PATH": ours_dir}
    theirs, ours = loaded_library({}), loaded_library(ours_env)
    if not ours.startswith(ours_dir) or theirs.startswith(ours_dir):
        print(f"FAIL: could not load both libraries (Debian: {theirs!r}, ours: {ours!r})")
        return 1
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        a = run("Debian", d1, {})
        b = run("ours", d2, ours_env)
    unexpected, known, same = [], [], 0
    for label in sorted(set(a) | set(b)):
        x, y = a.get(label), b.get(label)
        if x == y:
            same += 1
            continue
        line = f"{label}: libnbd {x} / nbdpp {y}"
        if label in KNOWN:
            known.append(line + f"\n    known: {KNOWN[label]}")
        else:
            unexpected.append(line)
    stale = [k for k in KNOWN if k in a and a.get(k) == b.get(k)]
    print(f"{same} probes agree, {len(known)} known differences, {len(unexpected)} unexpected")
    for line in known:
        print("  " + line)
    for line in unexpected:
        print("  UNEXPECTED " + line)
    for k in stale:
        print(f"  STALE known difference (now the same): {k}")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
