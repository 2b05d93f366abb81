#!/usr/bin/env python3
# debian_tools_test.py: Debian's libnbd 1.14 programs (nbdinfo, nbdcopy, nbddump, nbdsh), built
# against the real libnbd, run unchanged on our libnbd.so.0 and behave as they do on Debian's.
#
# Usage: debian_tools_test.py OUR_LIB_DIR [unittest arguments, e.g. NbdinfoTest -v]
#
# Each command runs twice, once on Debian's /usr/lib/x86_64-linux-gnu/libnbd.so.0 and once with
# LD_LIBRARY_PATH=OUR_LIB_DIR, both under LD_DEBUG=libs so that every run proves which libnbd.so.0
# the dynamic loader initialised.  Exit codes and stdout must be equal.  stderr is compared line by
# line, but an error line of ours may word the middle of a libnbd error message differently: it
# must name the same call ("nbd_pread:") and end with the same strerror text (the errno); the
# wording differences are printed as NOTE lines (ctest -V shows them).
#
# Servers (nbdkit, qemu-nbd) are children of this test on Unix sockets in a private temp dir,
# stopped by PID.  A test skips only when a program it needs is not installed.
import ast
import ctypes
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NBDSH_SCRIPTS = os.path.join(HERE, "nbdsh")
DEBIAN_LIB = "/usr/lib/x86_64-linux-gnu/libnbd.so.0"
OUR_DIR = None  # set from argv in main()

OURS = "ours"
DEBIAN = "debian"

# nbdinfo --can/--is, as nbdinfo(1) of libnbd 1.14 lists them.  Exit codes: 0 true, 2 false.
NBDINFO_FLAGS = [
    ("--can", "cache"), ("--can", "connect"), ("--can", "df"), ("--can", "fast-zero"),
    ("--can", "flush"), ("--can", "fua"), ("--can", "multi-conn"), ("--can", "read"),
    ("--can", "structured-reply"), ("--can", "trim"), ("--can", "write"), ("--can", "zero"),
    ("--is", "read-only"), ("--is", "rotational"), ("--is", "tls"),
]

START_LIMIT = 10.0  # seconds for a server to write its pidfile (it does so after listen())
RUN_LIMIT = 60.0    # seconds for one program run


def die_with_parent():
    """preexec_fn: the server gets SIGTERM if this test dies before it stops the server itself."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def have(*programs):
    """The first program of `programs` that is not installed, or None."""
    for p in programs:
        if shutil.which(p, path="/usr/bin:/usr/sbin:" + os.environ.get("PATH", "")) is None:
            return p
    return None


def needs(*programs):
    """Class/method decorator: skip, naming the program, unless all `programs` are installed."""
    missing = have(*programs)
    return unittest.skipIf(missing is not None, f"{missing} is not installed")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pattern_bytes(size):
    """nbdkit's pattern plugin: each 8-byte word holds its own offset, big-endian."""
    return b"".join((o).to_bytes(8, "big") for o in range(0, size, 8))


# An nbd error line: "PROG: nbd_call: WORDING: STRERROR".  We keep the call and the strerror.
_ERROR_LINE = re.compile(r"^(?P<head>.*?\bnbd_[a-z_]+): (?P<wording>.*): (?P<strerror>[^:]+)$")


def error_key(line):
    """What of an error line must match libnbd: everything but the wording in the middle."""
    m = _ERROR_LINE.match(line)
    return (m.group("head"), m.group("strerror")) if m else line


class Run:
    def __init__(self, lib, argv, proc):
        self.lib, self.argv = lib, argv
        self.rc, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return f"{self.lib}: {' '.join(self.argv)} -> rc {self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class ToolTest(unittest.TestCase):
    """A private temp dir, servers that are our children, and the twice-run comparison."""

    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nbdpp-abi-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.runs = 0
        self.servers = 0

    def path(self, name):
        return os.path.join(self.tmp, name)

    # ---- servers ---------------------------------------------------------------------------

    def _start(self, argv, sock, pidfile):
        with open(self.path(os.path.basename(sock) + ".log"), "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=die_with_parent)
        self.addCleanup(self._stop, proc)
        deadline = time.monotonic() + START_LIMIT
        # The servers tell us nothing when they listen; both write the pidfile right after listen().
        while True:
            if proc.poll() is not None:
                with open(self.path(os.path.basename(sock) + ".log"), errors="replace") as log:
                    self.fail(f"{argv[0]} exited with {proc.returncode} before it listened: {log.read()}")
            try:
                with open(pidfile) as f:
                    if f.read().endswith("\n"):
                        return proc
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                self.fail(f"{' '.join(argv)}: no pidfile within {START_LIMIT} s")
            time.sleep(0.005)

    @staticmethod
    def _stop(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _socket(self, kind):
        self.servers += 1
        base = f"{kind}{self.servers}"
        return self.path(base + ".sock"), self.path(base + ".pid")

    def nbdkit(self, *args):
        """Starts `nbdkit ARGS` (plugin, filters, options) and returns its nbd+unix URI."""
        sock, pidfile = self._socket("nbdkit")
        self._start(["nbdkit", "-f", "--exit-with-parent", "-P", pidfile, "-U", sock, *args], sock, pidfile)
        return f"nbd+unix:///?socket={sock}"

    def qemu_nbd(self, *args):
        """Starts `qemu-nbd -t ARGS` (persistent) and returns its nbd+unix URI."""
        sock, pidfile = self._socket("qemu")
        self._start(["qemu-nbd", "-t", "-k", sock, f"--pid-file={pidfile}", *args], sock, pidfile)
        return f"nbd+unix:///?socket={sock}"

    # ---- running programs on either library -------------------------------------------------

    def run_on(self, lib, argv, stdin=None, env=None, binary=False):
        self.runs += 1
        trace = self.path(f"ld-{self.runs}")
        e = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
        # nbdsh is a bash script running `python3 -m nbd`: only Debian's python3 has the module.
        e["PATH"] = "/usr/bin:/bin:" + os.environ.get("PATH", "")
        e["LC_ALL"] = "C.UTF-8"
        e["LD_DEBUG"] = "libs"
        e["LD_DEBUG_OUTPUT"] = trace
        if lib == OURS:
            e["LD_LIBRARY_PATH"] = OUR_DIR
        e.update(env or {})
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=not binary, env=e, cwd=self.tmp,
                              timeout=RUN_LIMIT)
        run = Run(lib, argv, proc)
        self.assert_loaded(run, trace)
        return run

    def assert_loaded(self, run, trace):
        """Every libnbd.so the run's processes initialised is the one `run.lib` names."""
        want = os.path.realpath(os.path.join(OUR_DIR, "libnbd.so.0") if run.lib == OURS else DEBIAN_LIB)
        loaded = set()
        for name in os.listdir(self.tmp):
            if name.startswith(os.path.basename(trace) + "."):
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    for line in f:
                        m = re.search(r"calling init: (\S*/libnbd\.so[.0-9]*)$", line)
                        if m:
                            loaded.add(os.path.realpath(m.group(1)))
        self.assertEqual(loaded, {want},
                         f"libnbd.so.0 the loader initialised for {run.lib}: {' '.join(run.argv)}")

    def run_both(self, argv, stdin=None, env=None):
        return self.run_on(DEBIAN, argv, stdin, env), self.run_on(OURS, argv, stdin, env)

    def assert_same(self, argv, stdin=None, env=None):
        """Runs argv on both libraries; same exit code, stdout and (modulo wording) stderr."""
        theirs, ours = self.run_both(argv, stdin, env)
        self.assert_equivalent(theirs, ours)
        return theirs, ours

    def assert_equivalent(self, theirs, ours):
        what = " ".join(theirs.argv)
        self.assertEqual(ours.rc, theirs.rc, f"exit code of {what}\n{theirs!r}\n{ours!r}")
        self.assertMultiLineEqual(theirs.out, ours.out, f"stdout of {what}")
        self.assert_same_errors(what, theirs.err, ours.err)

    def assert_same_errors(self, what, theirs, ours):
        t, o = theirs.splitlines(), ours.splitlines()
        self.assertEqual([error_key(x) for x in t], [error_key(x) for x in o],
                         f"stderr of {what}\n--- debian:\n{theirs}--- ours:\n{ours}")
        for a, b in zip(t, o):
            if a != b:
                note(f"wording of {what}:\n  debian: {a}\n  ours:   {b}")


def note(text):
    print("NOTE " + text, file=sys.stderr)


# ---- the loaded library and the version calls ---------------------------------------------------

@needs("nbdinfo", "nbdcopy", "nbddump", "nbdsh")
class LoadedLibraryTest(ToolTest):
    def test_version_lines(self):
        """PROG --version: the program line is unchanged, the library line is ours."""
        for prog in ["nbdinfo", "nbdcopy", "nbddump", "nbdsh"]:
            with self.subTest(prog=prog):
                theirs, ours = self.run_both([prog, "--version"])
                self.assertEqual((theirs.rc, ours.rc), (0, 0), f"{theirs!r}\n{ours!r}")
                t, o = theirs.out.splitlines(), ours.out.splitlines()
                self.assertEqual(len(t), 2, theirs)
                self.assertEqual(o[0], t[0])
                self.assertRegex(t[1], r"^libnbd 1\.14\.\d+$")
                self.assertRegex(o[1], r"^nbdpp 1\.24\.0\+nbdpp\.\d+\.\d+\.\d+$")

    def test_package_name_and_version_calls(self):
        """nbd_get_package_name / nbd_get_version through the Python binding."""
        argv = ["nbdsh", "-c", "print(h.get_package_name()); print(h.get_version())"]
        theirs, ours = self.run_both(argv)
        self.assertEqual(theirs.out.splitlines()[0], "libnbd")
        name, version = ours.out.splitlines()
        self.assertEqual(name, "nbdpp")
        self.assertRegex(version, r"^1\.24\.0\+nbdpp\.\d+\.\d+\.\d+$")
        self.assertEqual(ours.rc, 0, ours)

    def test_proc_maps_of_running_nbdsh(self):
        """A running program has our libnbd.so.0 mapped, and no other libnbd."""
        script = ("print(sorted({l.split()[-1] for l in open('/proc/self/maps')"
                  " if '/libnbd.so' in l}))")
        ours = self.run_on(OURS, ["nbdsh", "-c", script])
        self.assertEqual(ours.rc, 0, ours)
        mapped = ast.literal_eval(ours.out)  # a printed list of paths
        self.assertEqual({os.path.realpath(p) for p in mapped},
                         {os.path.realpath(os.path.join(OUR_DIR, "libnbd.so.0"))}, ours)


# ---- nbdinfo ------------------------------------------------------------------------------------

class NbdinfoCase(ToolTest):
    def check_everything(self, uri):
        """Plain, --json, --size, --list, --map, --content and every --can/--is flag: same results."""
        for opts in [[], ["--json"], ["--size"], ["--size", "--json"], ["--list"], ["--list", "--json"],
                     ["--map"], ["--map", "--totals"], ["--map", "--json"], ["--content"],
                     ["--no-content"]]:
            with self.subTest(opts=opts):
                theirs, _ = self.assert_same(["nbdinfo", *opts, uri])
                if opts in ([], ["--size"]):
                    self.assertEqual(theirs.rc, 0, theirs)
        results = {}
        for flag in NBDINFO_FLAGS:
            with self.subTest(flag=flag):
                theirs, _ = self.assert_same(["nbdinfo", *flag, uri])
                self.assertIn(theirs.rc, (0, 2), theirs)
                results[flag[1]] = theirs.rc == 0
        return results


@needs("nbdinfo", "nbdkit")
class NbdinfoTest(NbdinfoCase):
    def exports(self):
        """nbdkit serving exports foo (the default) and bar, described "hello"; others refused."""
        return self.nbdkit("--filter=exportname", "memory", "1M", "exportname=foo", "exportname=bar",
                           "exportname-list=explicit", "exportdesc=fixed:hello", "exportname-strict=true",
                           "-e", "foo")

    def test_nbdkit_memory(self):
        flags = self.check_everything(self.nbdkit("memory", "64M"))
        self.assertTrue(flags["trim"] and flags["multi-conn"] and not flags["read-only"])

    def test_nbdkit_sparse_map(self):
        """--map of data, holes and zeroes, in all three forms."""
        uri = self.nbdkit("data", '"hello" * 2 @0x100000 ( 0xde 0xad ) * 4 @0x300000 0', "size=4M")
        theirs, _ = self.assert_same(["nbdinfo", "--map", uri])
        self.assertIn("data", theirs.out)
        self.assertIn("hole,zero", theirs.out)
        self.check_everything(uri)

    def test_nbdkit_eval_flags(self):
        """A server that says no to most things and yes to rotational."""
        # nbdkit eval: exit 0 = true, exit 3 = false; "echo none" for the tri-state fua/cache.
        uri = self.nbdkit("eval", "get_size=echo 1M",
                          "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
                          "pwrite=cat >/dev/null", "can_write=exit 0", "can_trim=exit 3", "can_zero=exit 3",
                          "can_flush=exit 3", "can_fua=echo none", "can_cache=echo none",
                          "is_rotational=exit 0", "can_multi_conn=exit 3", "can_fast_zero=exit 3",
                          "can_extents=exit 3")
        flags = self.check_everything(uri)
        self.assertEqual([flags[f] for f in ("rotational", "trim", "flush", "cache")],
                         [True, False, False, False])

    def test_nbdkit_read_only(self):
        flags = self.check_everything(self.nbdkit("-r", "pattern", "1M"))
        self.assertTrue(flags["read-only"] and not flags["write"])

    def test_nbdkit_no_structured_replies(self):
        """--no-sr: no meta contexts can be negotiated, so nbdinfo lists none."""
        flags = self.check_everything(self.nbdkit("--no-sr", "memory", "1M"))
        self.assertFalse(flags["structured-reply"])

    def test_nbdkit_oldstyle(self):
        self.check_everything(self.nbdkit("-o", "memory", "1M"))

    def test_exports_and_descriptions(self):
        """--list with names and descriptions; a missing export fails the same way."""
        base = self.exports().split("?", 1)[1]
        for opts in [["--list"], ["--list", "--json"], ["--list", "--content"]]:
            with self.subTest(opts=opts):
                theirs, _ = self.assert_same(["nbdinfo", *opts, f"nbd+unix:///foo?{base}"])
                self.assertIn("bar", theirs.out)
        for export in ["foo", "bar"]:
            self.assert_same(["nbdinfo", f"nbd+unix:///{export}?{base}"])
        theirs, _ = self.assert_same(["nbdinfo", f"nbd+unix:///nope?{base}"])
        self.assertEqual(theirs.rc, 1)
        theirs, _ = self.assert_same(["nbdinfo", "--can", "connect", f"nbd+unix:///nope?{base}"])
        self.assertNotEqual(theirs.rc, 0)

    def test_errors(self):
        """Unreachable servers, bad URIs and bad options fail with the same exit code and errno."""
        for argv in [["nbdinfo", f"nbd+unix:///?socket={self.path('absent.sock')}"],
                     ["nbdinfo", "--size", "bogus://host/"],
                     ["nbdinfo", "--size", "nbd+unix:///"],
                     ["nbdinfo", "--size", "nbd+vsock:///"],
                     ["nbdinfo", "--size", "nbd://[::1"],
                     ["nbdinfo", "--can", "bogus", f"nbd+unix:///?socket={self.path('absent.sock')}"]]:
            with self.subTest(argv=argv):
                theirs, _ = self.assert_same(argv)
                self.assertNotEqual(theirs.rc, 0)

    def test_uri_forms(self):
        """nbd_connect_uri accepts, ignores and refuses the same URI spellings as libnbd 1.14."""
        sock = self.exports().split("=", 1)[1]
        quoted = sock.replace("/", "%2F")
        absent = self.path("absent.sock")
        for uri in [f"nbd+unix:///f%6Fo?socket={sock}",                   # escaped export name
                    f"nbd+unix:///foo?socket={quoted}",                     # escaped socket path
                    f"nbd+unix:///foo?&socket={sock}&",                     # empty parameters
                    f"nbd+unix:///foo?socket={sock};x=1",                   # ';' separates too
                    f"nbd+unix://user@/foo?socket={sock}",                  # user info is ignored
                    f"nbd+unix:///foo?socket={sock}&tls-verify-peer=false&unknown=1",  # ignored
                    f"nbd+unix:////foo?socket={sock}",                      # export "/foo"
                    f"nbd+unix:/foo?socket={sock}",                         # no authority
                    f"nbd+unix:///foo?socket={absent}&socket={sock}",       # libnbd: the last wins
                    f"nbd+unix:///foo?socket={sock}#fragment",              # libnbd: ignored
                    f"nbd+unix://localhost/foo?socket={sock}",              # libnbd: host ignored
                    f"NBD+UNIX:///foo?socket={sock}"]:                      # libnbd: scheme is case-sensitive
            with self.subTest(uri=uri):
                self.assert_same(["nbdinfo", "--size", uri])

    def test_server_commands(self):
        """nbdinfo [ CMD ]: our nbd_connect_systemd_socket_activation starts and stops the server."""
        self.assert_same(["nbdinfo", "--size", "--", "[", "nbdkit", "memory", "1M", "]"])
        self.assert_same(["nbdinfo", "--json", "--", "[", "nbdkit", "-r", "pattern", "1M", "]"])
        if have("qemu-img", "qemu-nbd") is None:
            subprocess.run(["qemu-img", "create", "-q", "-f", "raw", self.path("d.img"), "8M"], check=True)
            self.assert_same(["nbdinfo", "--", "[", "qemu-nbd", "-f", "raw", self.path("d.img"), "]"])

    @needs("psktool")
    def test_tls_psk(self):
        """nbds+unix with a PSK: both connect and report the same."""
        keys = self.path("keys.psk")
        subprocess.run(["psktool", "-u", "alice", "-p", keys], check=True, capture_output=True)
        sock_uri = self.nbdkit("--tls=require", f"--tls-psk={keys}", "memory", "1M")
        uri = f"nbds+unix://alice@/?{sock_uri.split('?', 1)[1]}&tls-psk-file={keys}"
        for argv in [["nbdinfo", uri], ["nbdinfo", "--is", "tls", uri]]:
            with self.subTest(argv=argv):
                theirs, ours = self.run_both(argv)
                self.assertEqual(theirs.rc, 0, theirs)
                self.assert_equivalent(theirs, ours)
        # Without TLS the server refuses, in both.
        self.assert_same(["nbdinfo", sock_uri])


@needs("nbdinfo", "qemu-nbd", "qemu-img", "qemu-io")
class NbdinfoQemuTest(NbdinfoCase):
    def test_qemu_nbd_raw(self):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", self.path("disk.img"), "64M"], check=True)
        uri = self.qemu_nbd("-f", "raw", self.path("disk.img"))
        flags = self.check_everything(uri)
        self.assertFalse(flags["multi-conn"])

    def test_qemu_dirty_bitmap_and_allocation_depth(self):
        """qemu-nbd -B b0 -A on a qcow2 overlay: every map, in every form."""
        base, top = self.path("base.qcow2"), self.path("top.qcow2")
        for argv in [["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"],
                     ["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", base],
                     ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top],
                     ["qemu-img", "bitmap", "--add", "-f", "qcow2", top, "b0"],
                     ["qemu-io", "-f", "qcow2", "-c", "write -P 0x22 4M 64k", "-c", "write -z 8M 1M", top]]:
            subprocess.run(argv, check=True, capture_output=True)
        uri = self.qemu_nbd("-f", "qcow2", "-B", "b0", "-A", top)
        for ctx in ["", "=base:allocation", "=qemu:dirty-bitmap:b0", "=qemu:allocation-depth"]:
            for extra in [[], ["--totals"], ["--json"]]:
                with self.subTest(map=ctx, extra=extra):
                    theirs, _ = self.assert_same(["nbdinfo", "--map" + ctx, *extra, uri])
                    self.assertEqual(theirs.rc, 0, theirs)
        theirs, _ = self.assert_same(["nbdinfo", "--map=qemu:dirty-bitmap:b0", uri])
        self.assertEqual([line.split()[3] for line in theirs.out.splitlines()],
                         ["clean", "dirty", "clean", "dirty", "clean"])
        theirs, _ = self.assert_same(["nbdinfo", "--map=qemu:dirty-bitmap:nope", uri])
        self.assertNotEqual(theirs.rc, 0)
        theirs, _ = self.assert_same(["nbdinfo", uri])
        self.assertIn("qemu:dirty-bitmap:b0", theirs.out)
        self.check_everything(uri)


# ---- nbdcopy ------------------------------------------------------------------------------------

@needs("nbdcopy", "nbdkit")
class NbdcopyTest(ToolTest):
    def setUp(self):
        super().setUp()
        rng = random.Random(14)
        self.full = self.path("full.img")
        with open(self.full, "wb") as f:
            f.write(rng.randbytes(8 << 20))
        # Sparse: 32M with three 64k data blocks at 6.25M, 1M of data at 20M, 1M of written zeroes
        # at 24M (nbdcopy should find them zero) and a hole everywhere else.
        self.sparse = self.path("sparse.img")
        with open(self.sparse, "wb") as f:
            f.truncate(32 << 20)
            f.seek(100 * 65536)
            f.write(rng.randbytes(3 * 65536))
            f.seek(20 << 20)
            f.write(rng.randbytes(1 << 20))
            f.seek(24 << 20)
            f.write(bytes(1 << 20))

    def round_trip(self, start_server, image, opts, label):
        """file -> NBD -> file on both libraries, each with its own fresh server."""
        size = os.path.getsize(image)
        blocks = {}
        for lib in (DEBIAN, OURS):
            uri = start_server(size)
            out = self.path(f"out-{label}-{lib}.img")
            up = self.run_on(lib, ["nbdcopy", *opts, image, uri])
            self.assertEqual(up.rc, 0, up)
            down = self.run_on(lib, ["nbdcopy", *opts, uri, out])
            self.assertEqual(down.rc, 0, down)
            self.assertEqual((up.out + up.err, down.out + down.err), ("", ""), f"{up!r}\n{down!r}")
            self.assertEqual(os.path.getsize(out), size, f"{lib}: {label}")
            self.assertEqual(sha256(out), sha256(image), f"{lib}: {label}")
            blocks[lib] = os.stat(out).st_blocks
        # The same extents and zero detection leave the same holes in the output file.
        self.assertEqual(blocks[OURS], blocks[DEBIAN], f"allocated 512-byte blocks of the copy: {label}")

    def test_nbdkit_memory(self):
        for image in (self.full, self.sparse):
            for conns in ("1", "4"):
                with self.subTest(image=os.path.basename(image), connections=conns):
                    self.round_trip(lambda size: self.nbdkit("memory", str(size)), image,
                                    ["--connections", conns], f"mem-{os.path.basename(image)}-{conns}")

    def test_copy_options(self):
        """The options that change how nbdcopy drives the library."""
        for opts in [["--synchronous"], ["--flush"], ["--no-extents"], ["--allocated"],
                     ["--request-size=65536", "--requests=2"], ["--queue-size=65536"],
                     ["--threads=2", "-C", "2"], ["--destination-is-zero"]]:
            with self.subTest(opts=opts):
                self.round_trip(lambda size: self.nbdkit("memory", str(size)), self.sparse, opts,
                                "opt" + "".join(opts).replace("/", ""))

    @needs("qemu-nbd", "qemu-img")
    def test_qemu_nbd(self):
        def start(size):
            self.servers += 1
            disk = self.path(f"target{self.servers}.img")
            subprocess.run(["qemu-img", "create", "-q", "-f", "raw", disk, str(size)], check=True)
            return self.qemu_nbd("-f", "raw", "--shared=4", "--cache=unsafe", disk)

        for image in (self.full, self.sparse):
            for conns in ("1", "4"):
                with self.subTest(image=os.path.basename(image), connections=conns):
                    self.round_trip(start, image, ["--connections", conns],
                                    f"qemu-{os.path.basename(image)}-{conns}")

    @needs("qemu-nbd", "qemu-img", "psktool")
    def test_qemu_nbd_psk(self):
        """To and from a qemu-nbd export behind TLS with a pre-shared key.  qemu-nbd ends the
        connection without its own TLS close after nbdcopy's nbd_shutdown: libnbd takes that
        as the normal end, and so must we (nbdcopy exits 1 otherwise)."""
        keys = self.path("keys.psk")
        subprocess.run(["psktool", "-u", "alice", "-p", keys], check=True, capture_output=True)

        def start(size):
            self.servers += 1
            disk = self.path(f"psk{self.servers}.img")
            subprocess.run(["qemu-img", "create", "-q", "-f", "raw", disk, str(size)], check=True)
            plain = self.qemu_nbd("--object", f"tls-creds-psk,id=tls0,dir={self.tmp},endpoint=server",
                                  "--tls-creds", "tls0", "-f", "raw", disk)
            return plain.replace("nbd+unix://", "nbds+unix://alice@", 1) + f"&tls-psk-file={keys}"

        self.round_trip(start, self.full, [], "qemu-psk")

    def test_server_command_to_nbd(self):
        """[ nbdkit -r pattern ] -> NBD -> file: socket activation as source, two NBD ends."""
        want = pattern_bytes(4 << 20)
        for lib in (DEBIAN, OURS):
            uri = self.nbdkit("memory", "4M")
            out = self.path(f"pattern-{lib}.img")
            r = self.run_on(lib, ["nbdcopy", "-C", "4", "--", "[", "nbdkit", "-r", "pattern", "4M", "]", uri])
            self.assertEqual(r.rc, 0, r)
            r = self.run_on(lib, ["nbdcopy", uri, out])
            self.assertEqual(r.rc, 0, r)
            with open(out, "rb") as f:
                self.assertTrue(f.read() == want, f"{lib}: copied pattern differs")

    def test_stdin_stdout(self):
        """`nbdcopy - URI` and `nbdcopy URI -`: pipes on the other end."""
        with open(self.full, "rb") as f:
            data = f.read()[: 1 << 20]
        for lib in (DEBIAN, OURS):
            uri = self.nbdkit("memory", "1M")
            r = self.run_on(lib, ["nbdcopy", "-", uri], stdin=data, binary=True)
            self.assertEqual(r.rc, 0, r)
            r = self.run_on(lib, ["nbdcopy", uri, "-"], binary=True)
            self.assertEqual(r.rc, 0, r.err)
            self.assertTrue(r.out == data, f"{lib}: data read back through stdout differs")

    def test_read_errors_fail_the_copy(self):
        """A server whose every read fails (error filter): nbdcopy exits non-zero with EIO."""
        for conns in ("1", "4"):
            for dest in ("null:", "out.img"):
                with self.subTest(connections=conns, dest=dest):
                    for lib in (DEBIAN, OURS):
                        uri = self.nbdkit("--filter=error", "pattern", "1M", "error-pread-rate=1")
                        r = self.run_on(lib, ["nbdcopy", "-C", conns, uri, dest])
                        self.assertNotEqual(r.rc, 0, r)
                        self.assertRegex(r.err, r"nbdcopy: read at offset \d+ failed: Input/output error", r)

    def test_write_errors_fail_the_copy(self):
        """A server whose every write fails with ENOSPC: nbdcopy exits non-zero, naming the errno."""
        for lib in (DEBIAN, OURS):
            uri = self.nbdkit("--filter=error", "memory", "8M", "error-pwrite=ENOSPC", "error-pwrite-rate=1")
            r = self.run_on(lib, ["nbdcopy", self.full, uri])
            self.assertNotEqual(r.rc, 0, r)
            self.assertRegex(r.err, r"No space left on device", r)

    def test_size_mismatch(self):
        """A destination smaller than the source: the same refusal, before anything is written."""
        theirs, _ = self.assert_same(["nbdcopy", self.full, self.nbdkit("memory", "1M")])
        self.assertNotEqual(theirs.rc, 0, theirs)


# ---- nbddump (new in libnbd 1.14) --------------------------------------------------------------

@needs("nbddump", "nbdkit")
class NbddumpTest(ToolTest):
    def test_pattern(self):
        uri = self.nbdkit("pattern", "1M")
        for opts in [[], ["-n", "1000"], ["--length=100000"], ["--color"], ["--no-color", "-n", "64"]]:
            with self.subTest(opts=opts):
                theirs, _ = self.assert_same(["nbddump", *opts, uri])
                self.assertEqual(theirs.rc, 0, theirs)
        theirs, _ = self.assert_same(["nbddump", "-n", "32", uri])
        self.assertEqual(theirs.out.splitlines()[1],
                         "0000000010: 00 00 00 00 00 00 00 10  00 00 00 00 00 00 00 18 |................|")

    def test_data_with_holes(self):
        """Zero runs are folded into one line; the layout is the program's, the bytes the library's."""
        uri = self.nbdkit("data", '"hello" * 2 @0x1000 ( 0xde 0xad ) * 4 @0x30000 0x55', "size=256k")
        self.assert_same(["nbddump", uri])
        self.assert_same(["nbddump", "--", "[", "nbdkit", "data", "raw=hello world", "size=512", "]"])

    def test_read_error(self):
        uri = self.nbdkit("--filter=error", "pattern", "1M", "error-pread-rate=1")
        theirs, _ = self.assert_same(["nbddump", uri])
        self.assertNotEqual(theirs.rc, 0)


# ---- nbdsh: the Python binding on our library ---------------------------------------------------

@needs("nbdsh", "nbdkit")
class NbdshTest(ToolTest):
    def nbdsh(self, script, *nbdsh_args, env=None):
        """Runs tests/abi/nbdsh/SCRIPT (after prelude.py) on both libraries; compares the output."""
        prelude = os.path.join(NBDSH_SCRIPTS, "prelude.py")
        with open(os.path.join(NBDSH_SCRIPTS, script)) as f:
            text = f.read()
        argv = ["nbdsh", "-c", f"exec(open({prelude!r}).read())", *nbdsh_args, "-c", "-"]
        theirs, ours = self.run_both(argv, stdin=text, env=env)
        self.assertEqual(theirs.rc, 0, f"the script fails on Debian's libnbd too:\n{theirs!r}")
        self.assertEqual(ours.rc, 0, ours)
        t, o = theirs.out.splitlines(), ours.out.splitlines()
        self.assertEqual([error_key_nbdsh(x) for x in t], [error_key_nbdsh(x) for x in o],
                         f"nbdsh {script}\n--- debian:\n{theirs.out}--- ours:\n{ours.out}")
        for a, b in zip(t, o):
            if a != b:
                note(f"wording in nbdsh {script}:\n  debian: {a}\n  ours:   {b}")
        self.assert_same_errors(f"nbdsh {script}", theirs.err, ours.err)
        return ours.out.splitlines()

    def test_callbacks(self):
        """Debug, chunk (pread_structured), extent (block_status), completion closures."""
        out = self.nbdsh("callbacks.py", env={"ABI_MEMORY": self.nbdkit("memory", "1M"),
                                             "ABI_PATTERN": self.nbdkit("pattern", "1M")})
        self.assertIn("ok debug callback ran: True", out)
        self.assertIn("ok pread_structured data is the pattern: True", out)

    def test_opt_mode(self):
        """set_opt_mode, opt_list, opt_info, opt_list_meta_context, opt_go, opt_abort."""
        exports = self.nbdkit("--filter=exportname", "memory", "1M", "exportname=foo", "exportname=bar",
                              "exportname-list=explicit", "exportdesc=fixed:hello", "exportname-strict=true",
                              "-e", "foo")
        b = self.path("base.qcow2")
        env = {"ABI_EXPORTS": exports}
        if have("qemu-img", "qemu-nbd") is None:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", b, "8M"], check=True)
            subprocess.run(["qemu-img", "bitmap", "--add", "-f", "qcow2", b, "b0"], check=True)
            env["ABI_QEMU"] = self.qemu_nbd("-f", "qcow2", "-B", "b0", "-A", b)
        out = self.nbdsh("opt_mode.py", "--opt-mode", "-u", exports, env=env)
        self.assertIn("ok opt_list: 2", out)
        self.assertIn("exports: [('foo', 'hello'), ('bar', 'hello')]", out)

    def test_opt_mode_without_structured_replies(self):
        """opt_list_meta_context needs structured replies; libnbd refuses it client-side (ENOTSUP)."""
        out = self.nbdsh("opt_mode_no_sr.py", "--opt-mode", "-u", self.nbdkit("--no-sr", "memory", "1M"))
        self.assertIn("ok get_structured_replies_negotiated: False", out)

    def test_aio(self):
        """aio_* commands, aio_command_completed, aio_peek_command_completed, a hand-made event loop."""
        self.nbdsh("aio.py", env={"ABI_MEMORY": self.nbdkit("memory", "1M"),
                                  "ABI_FAILING": self.nbdkit("--filter=error", "pattern", "1M",
                                                              "error-pread-rate=1", "error=EIO")})

    def test_errors(self):
        """nbd.Error carries our message and errno; pread beyond the end is EINVAL from nbd_pread."""
        out = self.nbdsh("errors.py", env={"ABI_MEMORY": self.nbdkit("memory", "1M"),
                                           "ABI_PATTERN": self.nbdkit("pattern", "1M"),
                                           "ABI_NOSR": self.nbdkit("--no-sr", "memory", "1M")})
        line = [x for x in out if x.startswith("error pread beyond the end:")]
        self.assertEqual(len(line), 1, out)
        self.assertRegex(line[0], r"^error pread beyond the end: EINVAL: nbd_pread: .*: Invalid argument$")

    def test_errors_read_only_export(self):
        """trim/zero/pwrite on a read-only export: libnbd's errno for each."""
        self.nbdsh("errors_read_only.py", "-u", self.nbdkit("-r", "memory", "1M"))

    def test_errors_name_lengths(self):
        """Names longer than the protocol's 4096 bytes are refused when set."""
        self.nbdsh("errors_lengths.py")

    def test_shell_modes(self):
        """nbdsh -u/--base-allocation/-c, and the interactive banner (connection_state)."""
        uri = self.nbdkit("pattern", "1M")
        self.assert_same(["nbdsh", "-u", uri, "-c", "print(h.get_size(), h.is_read_only())"])
        self.assert_same(["nbdsh", "--base-allocation", "-u", uri, "-c",
                          "print(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))"])
        self.assert_same(["nbdsh", "-u", uri], stdin="print(h.pread(16, 8))\n")
        # The banner names the handle's state (nbd_connection_state); nbdsh 1.14's interactive
        # namespace lacks h, hence "1 + 1".
        self.assert_same(["nbdsh"], stdin="print(1 + 1)\n")
        self.assert_same(["nbdsh", "-u", f"nbd+unix:///?socket={self.path('absent.sock')}", "-c", "pass"])


def error_key_nbdsh(line):
    """An "error LABEL: ERRNO: nbd_call: WORDING" line of prelude.call() keeps label, errno and call."""
    m = re.match(r"^(error [^:]*: [A-Z0-9]*: nbd_[a-z_]+): .*$", line)
    return m.group(1) if m else line


def main():
    global OUR_DIR
    if len(sys.argv) < 2 or not os.path.exists(os.path.join(sys.argv[1], "libnbd.so.0")):
        sys.exit(f"usage: {sys.argv[0]} OUR_LIB_DIR [unittest args]  (OUR_LIB_DIR holds libnbd.so.0)")
    OUR_DIR = os.path.abspath(sys.argv[1])
    if not os.path.exists(DEBIAN_LIB):
        print(f"SKIP: {DEBIAN_LIB} (Debian's libnbd0) is not installed")
        sys.exit(77)
    result = unittest.main(argv=[sys.argv[0], *sys.argv[2:]], verbosity=2, exit=False).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)  # every test skipped: a program is missing (ctest SKIP_RETURN_CODE)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
