#!/usr/bin/env python3
# nbdpp_test.py: the nbdpp command end to end against nbdkit and qemu-nbd, each started by the
# test on a private Unix socket and stopped by PID.  Standard library only; answers of the
# library are compared through Debian's Python binding (/usr/bin/python3 `import nbd`), run
# as a separate process.
#
# Usage: nbdpp_test.py NBDPP [unittest arguments, e.g. class names]
# Exit status 77 (skipped) when nbdkit is missing.
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

NBDPP = None  # set from argv
DEBIAN_PYTHON = "/usr/bin/python3"
MiB = 1024 * 1024
TIMEOUT = int(os.environ.get("NBDPP_TEST_TIMEOUT", "60"))

HAVE_NBDKIT = shutil.which("nbdkit") is not None
HAVE_QEMU_NBD = shutil.which("qemu-nbd") is not None


def have_debian_nbd():
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return False
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    return subprocess.run([DEBIAN_PYTHON, "-c", "import nbd"], env=env,
                          capture_output=True).returncode == 0


HAVE_DEBIAN_NBD = have_debian_nbd()

# What Debian's libnbd says about an export, as JSON shaped like `nbdpp info --json`.
PROBE = r"""
import json, sys, nbd
uri, context = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.set_full_info(True)
h.set_opt_mode(True)
h.connect_uri(uri)
contexts = []
h.opt_list_meta_context(lambda name: contexts.append(name))
h.add_meta_context(context)
h.opt_go()
out = {"protocol": h.get_protocol(), "tls": bool(h.get_tls_negotiated()),
       "structured_replies": bool(h.get_structured_replies_negotiated()),
       "export_size": h.get_size(), "contexts": contexts}
try:
    out["description"] = h.get_export_description()
except nbd.Error:
    out["description"] = None
for f in ["is_read_only", "can_flush", "can_fua", "is_rotational", "can_trim", "can_zero",
          "can_fast_zero", "can_df", "can_multi_conn", "can_cache"]:
    out[f] = bool(getattr(h, f)())
for name, which in [("minimum", nbd.SIZE_MINIMUM), ("preferred", nbd.SIZE_PREFERRED),
                    ("maximum", nbd.SIZE_MAXIMUM)]:
    out["block_size_" + name] = h.get_block_size(which)
extents, pos, size = [], 0, h.get_size()
while pos < size:
    got = []
    def cb(meta, offset, entries, err):
        if meta == context and not got:
            got.append(list(entries))
        return 0
    h.block_status(min(size - pos, 1 << 30), pos, cb)
    for i in range(0, len(got[0]), 2):
        length = min(got[0][i], size - pos)
        flags = got[0][i + 1]
        if extents and extents[-1][2] == flags:
            extents[-1][1] += length
        else:
            extents.append([pos, length, flags])
        pos += length
out["map"] = extents
h.shutdown()
print(json.dumps(out))
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def allocated(path):
    return os.stat(path).st_blocks * 512


def stop_pid(pid):
    """SIGTERM a server we started (not our child: it daemonised) and wait for it to go."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        p = select.poll()
        p.register(fd, select.POLLIN)
        if not p.poll(10000):
            os.kill(pid, signal.SIGKILL)
            p.poll(10000)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def stacks(pid):
    """Every thread's backtrace of a hung process, when gdb is there to ask."""
    if shutil.which("gdb") is None:
        return "(no gdb for a backtrace)"
    r = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    return r.stdout + r.stderr


class ToolTest(unittest.TestCase):
    """Base: a private temporary directory, servers started per test, helpers to run nbdpp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nbdpp-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.servers = 0

    def path(self, name):
        return os.path.join(self.tmp, name)

    def _daemon(self, argv, pidfile):
        log = open(self.path(f"server{self.servers}.log"), "ab")
        self.addCleanup(log.close)
        # qemu-nbd --fork returns once it listens and has written the pid file: no polling.
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                           timeout=TIMEOUT)
        if r.returncode != 0:
            with open(log.name, "rb") as f:
                self.fail(f"{argv[0]} did not start: {f.read().decode(errors='replace')}")
        with open(pidfile) as f:
            pid = int(f.read().strip())
        self.addCleanup(stop_pid, pid)

    def server_logs(self):
        """The last lines each server wrote, for a failure message."""
        out = ""
        for name in sorted(os.listdir(self.tmp)):
            if name.startswith("server") and name.endswith(".log"):
                with open(self.path(name), errors="replace") as f:
                    out += f"--- {name}:\n" + "".join(f.readlines()[-10:])
        return out

    def nbdkit(self, *args, filters=()):
        """Starts nbdkit with plugin ARGS on a private socket and returns its URI."""
        path = self.path(f"nbdkit{self.servers + 1}.sock")
        self._start_nbdkit(path, args, filters)
        return f"nbd+unix:///?socket={path}"

    def restartable_nbdkit(self, *args, filters=()):
        """As nbdkit(), but returns (URI, restart): restart() kills nbdkit with SIGKILL,
        waits for it to die and starts another with the same ARGS on the same socket path."""
        path = self.path(f"nbdkit{self.servers + 1}.sock")
        current = [self._start_nbdkit(path, args, filters)]

        def restart():
            current[0].kill()  # by PID: it is our child
            current[0].wait(timeout=TIMEOUT)
            os.unlink(path)  # a new socket, as a restarted server makes
            current[0] = self._start_nbdkit(path, args, filters)

        return f"nbd+unix:///?socket={path}", restart

    def _start_nbdkit(self, path, args, filters):
        if not HAVE_NBDKIT:
            self.skipTest("nbdkit is not installed")
        self.servers += 1
        log = open(self.path(f"server{self.servers}.log"), "ab")
        self.addCleanup(log.close)
        # Socket activation: the socket listens before nbdkit starts, so clients simply queue
        # until it accepts (no readiness to wait for), and nbdkit stays our direct child.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)

        def hand_over_socket():  # in the child, before exec: fd 3 and the LISTEN_* variables
            if listener.fileno() != 3:
                os.dup2(listener.fileno(), 3)
            os.set_inheritable(3, True)  # dup2 onto itself would leave close-on-exec set
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())

        argv = ["nbdkit", "-f", "--exit-with-parent", "--log=stderr"]
        argv += [f"--filter={f}" for f in filters] + list(args)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             close_fds=False, preexec_fn=hand_over_socket)
        listener.close()
        self.addCleanup(self._stop_child, p)
        return p

    @staticmethod
    def _stop_child(p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # by PID: it is our child
            try:
                p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def qemu_nbd(self, image, *args, fmt="raw"):
        """Starts qemu-nbd serving IMAGE (4 clients) and returns its URI."""
        if not HAVE_QEMU_NBD:
            self.skipTest("qemu-nbd is not installed")
        self.servers += 1
        sock = self.path(f"qemu{self.servers}.sock")
        pidfile = self.path(f"qemu{self.servers}.pid")
        self._daemon(["qemu-nbd", "-k", sock, "-f", fmt, "-t", "--shared=4", "--fork",
                      f"--pid-file={pidfile}", *args, image], pidfile)
        return f"nbd+unix:///?socket={sock}"

    def restartable_qemu_nbd(self, *args):
        """qemu-nbd with ARGS (ending with the image) on a private socket; returns (URI,
        restart): restart() kills it with SIGKILL, waits for it to die and starts another
        with the same ARGS on the same socket path."""
        if not HAVE_QEMU_NBD:
            self.skipTest("qemu-nbd is not installed")
        self.servers += 1
        sock = self.path(f"qemu{self.servers}.sock")
        pidfile = self.path(f"qemu{self.servers}.pid")
        argv = ["qemu-nbd", "-k", sock, "-t", "--shared=4", "--fork", f"--pid-file={pidfile}",
                *args]
        self._daemon(argv, pidfile)

        def restart():
            with open(pidfile) as f:
                pid = int(f.read().strip())
            fd = os.pidfd_open(pid)
            try:
                os.kill(pid, signal.SIGKILL)
                p = select.poll()
                p.register(fd, select.POLLIN)
                self.assertTrue(p.poll(TIMEOUT * 1000), "qemu-nbd did not die")
            finally:
                os.close(fd)
            os.unlink(sock)
            os.unlink(pidfile)
            self._daemon(argv, pidfile)

        return f"nbd+unix:///?socket={sock}", restart

    def nbdpp(self, *args, stdin=None, input=None, ok=True):
        """Runs nbdpp; with ok, asserts success.  Returns the CompletedProcess (bytes)."""
        p = subprocess.Popen([NBDPP, *args], stdin=stdin if input is None else subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(input, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"nbdpp {' '.join(args)} hung:\n{stacks(p.pid)}\n{self.server_logs()}")
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if ok:
            self.assertEqual(r.returncode, 0,
                             f"nbdpp {' '.join(args)} failed: {r.stderr.decode(errors='replace')}"
                             f"{self.server_logs()}")
        return r

    def assert_one_error_line(self, r, status, pattern):
        """nbdpp failed with STATUS and said so in one line "nbdpp: ..." matching PATTERN."""
        err = r.stderr.decode(errors="replace")
        context = err + self.server_logs()
        self.assertEqual(r.returncode, status, context)
        lines = [l for l in err.splitlines()
                 if l.startswith("nbdpp:") and not re.match(r"nbdpp: copy \d+%$", l)]
        self.assertEqual(len(lines), 1, context)
        self.assertRegex(lines[0], pattern, context)
        self.assertNotIn("copied", err)

    def sparse_image(self, name="in.img", size=64 * MiB, offsets=(1, 9, 30, 50)):
        """A sparse file of SIZE with 1 MiB of random data at each offset (in MiB)."""
        path = self.path(name)
        with open(path, "wb") as f:
            f.truncate(size)
            for off in offsets:
                f.seek(off * MiB)
                f.write(os.urandom(MiB))
        return path

    def assert_sparse_copy(self, src, dst):
        self.assertEqual(os.path.getsize(dst), os.path.getsize(src))
        self.assertEqual(sha256(dst), sha256(src))
        # 4 MiB of data in 64 MiB: the copy must not have filled the holes.
        self.assertLess(allocated(dst), 16 * MiB,
                        f"{dst} has {allocated(dst)} bytes allocated: holes were written")


class CliTest(ToolTest):
    def test_help(self):
        for args in [["--help"], ["-h"]]:
            r = self.nbdpp(*args)
            self.assertIn(b"usage: nbdpp COMMAND", r.stdout)
        self.assertIn(b"usage: nbdpp info", self.nbdpp("info", "--help").stdout)
        self.assertIn(b"usage: nbdpp copy", self.nbdpp("copy", "--help").stdout)
        self.assertIn(b"--connections", self.nbdpp("copy", "-h").stdout)

    def test_version_comes_from_the_library(self):
        out = self.nbdpp("--version").stdout.decode().strip()
        self.assertRegex(out, r"^nbdpp 1\.24\.0\+nbdpp\.\d+\.\d+\.\d+$")
        if HAVE_DEBIAN_NBD:
            # Debian's binding on our library (next to nbdpp in the build tree) says the same.
            libdir = os.path.dirname(os.path.dirname(os.path.abspath(NBDPP)))
            env = dict(os.environ, LD_LIBRARY_PATH=libdir)
            r = subprocess.run([DEBIAN_PYTHON, "-c", "import nbd; h = nbd.NBD(); "
                                "print(h.get_package_name(), h.get_version())"],
                               env=env, capture_output=True, text=True, timeout=TIMEOUT)
            if r.returncode == 0 and r.stdout.startswith("nbdpp "):
                self.assertEqual(out, r.stdout.strip())

    def test_man_page_lints_clean(self):
        page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                            "nbdpp.1")
        if shutil.which("mandoc") is None:
            self.skipTest("mandoc is not installed")
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        # Every option of the help texts is documented.
        with open(page) as f:
            text = f.read().replace("\\-", "-")
        for command in ["info", "copy"]:
            helptext = self.nbdpp(command, "--help").stdout.decode()
            for option in set(re.findall(r"--[a-z-]+", helptext)):
                self.assertIn(option, text, f"{command} {option} is not in nbdpp.1")

    def test_usage_errors_exit_2(self):
        cases = [
            ([], r"no command given"),
            (["frobnicate"], r"unknown command"),
            (["info"], r"info needs a SOURCE"),
            (["info", "--bogus", "nbd://x"], r"unknown option --bogus"),
            (["info", "/some/file"], r"not an NBD URI"),
            (["info", "[", "nbdkit", "-s", "memory", "1M"], r"missing \"\]\""),
            (["info", "[", "]"], r"empty server command"),
            (["copy", "a"], r"copy needs SRC and DST"),
            (["copy", "a", "b", "c"], r"two operands"),
            (["copy", "--requests", "0", "a", "b"], r"--requests"),
            (["copy", "--connections", "x", "a", "b"], r"--connections"),
            (["copy", "--request-size", "3000", "a", "b"], r"power of 2"),
            (["copy", "--request-size", "12Q", "a", "b"], r"not a size"),
            (["copy", "--timeout", "abc", "a", "b"], r"--timeout: expected milliseconds"),
            (["copy", "--timeout=-1", "a", "b"], r"--timeout: expected milliseconds"),
            (["copy", "--timeout=", "a", "b"], r"--timeout: expected milliseconds"),
            (["copy", "--timeout=1s", "a", "b"], r"--timeout: expected milliseconds"),
            (["copy", "--timeout=99999999999", "a", "b"], r"--timeout: expected milliseconds"),
            (["copy", "--reconnect-delay=1.5", "a", "b"],
             r"--reconnect-delay: expected milliseconds"),
            (["copy", "--reconnect-delay"], r"--reconnect-delay needs a value"),
            (["copy", "--writer", "--reconnect-delay=100", "a", "b"],
             r"--writer cannot be combined with --reconnect-delay"),
            (["info", "--timeout=x", "nbd://x"], r"--timeout: expected milliseconds"),
            (["info", "--reconnect-delay=-5", "nbd://x"],
             r"--reconnect-delay: expected milliseconds"),
        ]
        for args, pattern in cases:
            with self.subTest(args=args):
                self.assert_one_error_line(self.nbdpp(*args, ok=False), 2, pattern)

    def test_runtime_errors_exit_1(self):
        missing = self.path("missing")
        cases = [
            (["info", f"nbd+unix:///?socket={missing}.sock"], r"nbd_connect_uri"),
            (["copy", missing, self.path("out")], r"cannot open .*missing: No such file"),
            (["copy", self.sparse_image(size=MiB, offsets=(0,)),
              self.path("no/such/dir/out")], r"cannot open .* for writing"),
            (["copy", f"nbd+unix:///?socket={missing}.sock", self.path("out")],
             r"nbd_connect_uri"),
            (["copy", self.tmp, self.path("out")], r"is a directory"),
        ]
        for args, pattern in cases:
            with self.subTest(args=args):
                self.assert_one_error_line(self.nbdpp(*args, ok=False), 1, pattern)

    def test_unreadable_file(self):
        path = self.sparse_image(size=MiB, offsets=(0,))
        os.chmod(path, 0)
        argv = [NBDPP, "copy", path, "/dev/null"]
        if os.geteuid() == 0:
            # root reads every file: run as nobody (the private directory is closed to it too).
            if shutil.which("setpriv") is None:
                self.skipTest("root, and no setpriv to drop privileges")
            setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            if subprocess.run(setpriv + [NBDPP, "--version"], capture_output=True,
                              timeout=TIMEOUT).returncode != 0:
                self.skipTest("nobody cannot run nbdpp from this build directory")
            argv = setpriv + argv
        r = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
        self.assert_one_error_line(r, 1, r"cannot open .*: Permission denied")


class InfoTest(ToolTest):
    def probe(self, uri, context="base:allocation"):
        if not HAVE_DEBIAN_NBD:
            self.skipTest("/usr/bin/python3 has no nbd module (python3-libnbd)")
        env = dict(os.environ)
        env.pop("LD_LIBRARY_PATH", None)  # Debian's libnbd: an independent answer
        r = subprocess.run([DEBIAN_PYTHON, "-c", PROBE, uri, context], env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def info_json(self, *args):
        return json.loads(self.nbdpp("info", "--json", *args).stdout)

    def assert_matches_library(self, uri, context="base:allocation"):
        got = self.info_json(f"--map={context}", uri)
        want = self.probe(uri, context)
        self.assertEqual(sorted(got), ["exports", "protocol", "structured_replies", "tls"])
        for key in ["protocol", "tls", "structured_replies"]:
            self.assertEqual(got[key], want[key], key)
        self.assertEqual(len(got["exports"]), 1)
        e = got["exports"][0]
        self.assertEqual(list(e), [
            "export_name", "description", "export_size", "uri", "is_read_only", "can_flush",
            "can_fua", "is_rotational", "can_trim", "can_zero", "can_fast_zero", "can_df",
            "can_multi_conn", "can_cache", "block_size_minimum", "block_size_preferred",
            "block_size_maximum", "contexts", "map"])
        for key, value in want.items():
            if key in ("protocol", "tls", "structured_replies", "map", "contexts"):
                continue
            self.assertEqual(e[key], value, key)
        self.assertEqual(sorted(e["contexts"]), sorted(want["contexts"]))
        self.assertEqual(e["uri"], uri)
        self.assertEqual(e["map"]["context"], context)
        self.assertEqual([[x["offset"], x["length"], x["flags"]] for x in e["map"]["extents"]],
                         want["map"])
        return e

    def test_nbdkit_json_matches_the_library(self):
        uri = self.nbdkit("data", "( 0x55 0xaa ) * 2048 @4194304 ( 1 2 3 4 ) * 1024",
                          "size=8M")
        e = self.assert_matches_library(uri)
        self.assertEqual(e["export_size"], 8 * MiB)
        self.assertEqual([x["description"] for x in e["map"]["extents"]],
                         ["data", "hole,zero", "data", "hole,zero"])

    def test_nbdkit_read_only_with_block_sizes(self):
        uri = self.nbdkit("-r", "memory", "16M", "blocksize-minimum=512",
                          "blocksize-preferred=4096", "blocksize-maximum=65536",
                          filters=["blocksize-policy"])
        e = self.assert_matches_library(uri)
        self.assertTrue(e["is_read_only"])
        self.assertEqual([e["block_size_minimum"], e["block_size_preferred"],
                          e["block_size_maximum"]], [512, 4096, 65536])

    def test_qemu_nbd_json_matches_the_library(self):
        image = self.sparse_image(size=16 * MiB, offsets=(2, 5))
        uri = self.qemu_nbd(image, "-A")
        e = self.assert_matches_library(uri)
        self.assertIn("qemu:allocation-depth", e["contexts"])
        e = self.assert_matches_library(uri, "qemu:allocation-depth")
        self.assertIn("local", {x["description"] for x in e["map"]["extents"]})

    def test_text(self):
        uri = self.nbdkit("memory", "3M")
        out = self.nbdpp("info", uri).stdout.decode()
        self.assertIn("protocol: newstyle-fixed\n", out)
        self.assertIn("export size: 3145728\n", out)
        self.assertIn("can_multi_conn: true\n", out)
        self.assertIn("contexts: base:allocation\n", out)
        self.assertNotIn("map of", out)
        out = self.nbdpp("info", "--map", uri).stdout.decode()
        self.assertRegex(out, r"map of base:allocation:\n +0 +3145728 +3  hole,zero\n")
        self.assertEqual(self.nbdpp("info", "--size", uri).stdout, b"3145728\n")

    def test_list_with_descriptions(self):
        uri = self.nbdkit("memory", "1M",
                          "exportname=alpha", "exportname=beta", "exportname-list=explicit",
                          "exportdesc=fixed:described", filters=["exportname"])
        got = self.info_json("--list", "--map", uri)
        names = [e["export_name"] for e in got["exports"]]
        self.assertEqual(names, ["alpha", "beta"])
        for e in got["exports"]:
            self.assertEqual(e["export_size"], MiB)
            self.assertEqual(e["description"], "described")
            self.assertEqual(e["contexts"], ["base:allocation"])
            self.assertEqual([x["flags"] for x in e["map"]["extents"]], [3])
        out = self.nbdpp("info", "--list", uri).stdout.decode()
        self.assertIn('export "alpha":', out)
        self.assertIn('export "beta":', out)

    def test_server_commands(self):
        if not HAVE_NBDKIT:
            self.skipTest("nbdkit is not installed")
        e = self.info_json("--", "[", "nbdkit", "-s", "--exit-with-parent", "memory", "5M",
                           "]")["exports"][0]
        self.assertEqual(e["export_size"], 5 * MiB)
        self.assertIsNone(e["uri"])  # stdin/stdout: no URI reaches it
        e = self.info_json("--socket-activation", "[", "nbdkit", "--exit-with-parent",
                           "memory", "6M", "]")["exports"][0]
        self.assertEqual(e["export_size"], 6 * MiB)
        self.assertRegex(e["uri"], r"^nbd\+unix://")

    def test_unknown_context_is_an_error(self):
        uri = self.nbdkit("memory", "1M")
        self.assert_one_error_line(self.nbdpp("info", "--map=no:such", uri, ok=False), 1,
                                   r"does not offer metadata context no:such")

    def test_json_strings_are_escaped(self):
        uri = self.nbdkit("memory", "1M", "exportname=\"odd\\name\"\t\x01",
                          "exportname-list=explicit", "exportdesc=fixed:caf\xe9 \"x\"",
                          filters=["exportname"])
        got = self.info_json("--list", uri)  # json.loads is the check
        self.assertEqual(got["exports"][0]["export_name"], "\"odd\\name\"\t\x01")
        self.assertEqual(got["exports"][0]["description"], "caf\xe9 \"x\"")


class CopyTest(ToolTest):
    def copy(self, *args, **kw):
        return self.nbdpp("copy", *args, **kw)

    def read_export(self, uri, name="readback.img"):
        out = self.path(name)
        self.copy("-q", uri, out)
        return out

    def test_file_to_nbdkit_and_back(self):
        src = self.sparse_image()
        uri = self.nbdkit("memory", "64M")
        r = self.copy(src, uri)
        self.assertRegex(r.stderr.decode(),
                         r"nbdpp: copied 67108864 bytes \(4194304 data, 62914560 zero\) in "
                         r"[0-9.]+ s, [0-9.]+ MiB/s\n$")
        self.assert_sparse_copy(src, self.read_export(uri))

    def test_qemu_nbd_both_ways(self):
        src = self.sparse_image()
        disk = self.path("disk.img")
        with open(disk, "wb") as f:
            f.truncate(64 * MiB)
        uri = self.qemu_nbd(disk)
        self.copy("--flush", src, uri)
        self.assert_sparse_copy(src, self.read_export(uri))

    def test_nbd_to_nbd(self):
        src = self.sparse_image()
        a = self.nbdkit("memory", "64M")
        self.copy("-q", src, a)
        disk = self.path("disk.img")
        with open(disk, "wb") as f:
            f.truncate(64 * MiB)
        b = self.qemu_nbd(disk)
        self.copy("-q", a, b)
        self.assert_sparse_copy(src, self.read_export(b))
        self.assertLess(allocated(disk), 16 * MiB)

    def test_stdin_to_nbd_and_nbd_to_stdout(self):
        src = self.sparse_image()
        uri = self.nbdkit("memory", "64M")
        with open(src, "rb") as f:
            r = self.copy("-", uri, stdin=f)
        self.assertIn(b"(4194304 data, 62914560 zero)", r.stderr)
        r = self.copy("-q", uri, "-")
        self.assertEqual(len(r.stdout), 64 * MiB)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), sha256(src))

    def test_stdin_to_new_file_stays_sparse(self):
        src = self.sparse_image()
        out = self.path("out.img")
        with open(src, "rb") as f:
            self.copy("-q", "-", out, stdin=f)
        self.assert_sparse_copy(src, out)

    def test_server_command_to_file(self):
        if not HAVE_NBDKIT:
            self.skipTest("nbdkit is not installed")
        pattern = "( 0x11 0x22 ) * 4096 @16777216 ( 7 ) * 8192"
        out = self.path("cmd.img")
        self.copy("-q", "[", "nbdkit", "-s", "--exit-with-parent", "data", pattern,
                  "size=32M", "]", out)
        want = self.path("want.img")
        uri = self.nbdkit("data", pattern, "size=32M")
        r = self.copy("-v", "--socket-activation", "[", "nbdkit", "--exit-with-parent",
                      "data", pattern, "size=32M", "]", want)
        self.assertIn(b"4 connections", r.stderr)  # socket activation: more via its socket
        self.assertEqual(sha256(out), sha256(want))
        self.assertEqual(sha256(out), sha256(self.read_export(uri)))
        self.assertLess(allocated(out), 8 * MiB)

    def connections_in(self, log):
        with open(log) as f:
            return len(re.findall(r"connection=\d+ Connect ", f.read()))

    def test_multi_conn_when_offered(self):
        src = self.sparse_image()
        log = self.path("log.txt")
        uri = self.nbdkit("memory", "64M", f"logfile={log}", filters=["log"])
        r = self.copy("-v", src, uri)
        self.assertIn(b"nbdpp: 4 connections (the servers offer multi-conn)", r.stderr)
        self.assertEqual(self.connections_in(log), 4)
        self.copy("-q", "--connections=1", src, uri)
        self.assertEqual(self.connections_in(log), 5)
        self.copy("-q", "-C", "3", uri, self.path("o.img"))
        self.assertEqual(self.connections_in(log), 8)

    def test_one_connection_without_multi_conn(self):
        src = self.sparse_image()
        log = self.path("log.txt")
        uri = self.nbdkit("memory", "64M", f"logfile={log}", "multi-conn-mode=disable",
                          filters=["log", "multi-conn"])
        r = self.copy("-v", "--connections", "4", src, uri)
        self.assertIn(b"does not offer multi-conn", r.stderr)
        self.assertEqual(self.connections_in(log), 1)
        self.assert_sparse_copy(src, self.read_export(uri))

    def test_writer_and_request_options(self):
        src = self.path("rand.img")
        with open(src, "wb") as f:
            f.write(os.urandom(24 * MiB))
        uri = self.nbdkit("memory", "32M")
        r = self.copy("-v", "--writer", "--requests", "8", "--request-size", "1M", src, uri)
        self.assertIn(b"8 requests of 1048576 bytes", r.stderr)
        self.assertIn(b"concurrent writer on", r.stderr)
        back = self.path("back.img")
        self.copy("-q", "--no-writer", "-R", "3", "--request-size=64K", uri, back)
        with open(back, "rb") as f:
            data = f.read()
        self.assertEqual(len(data), 32 * MiB)
        with open(src, "rb") as f:
            self.assertEqual(data[:24 * MiB], f.read())
        self.assertEqual(data[24 * MiB:], bytes(8 * MiB))

    def test_flush(self):
        log = self.path("log.txt")
        uri = self.nbdkit("memory", "8M", f"logfile={log}", filters=["log"])
        self.copy("-q", "-C", "2", "--flush", self.sparse_image(size=8 * MiB, offsets=(1,)), uri)
        with open(log) as f:
            self.assertEqual(len(re.findall(r" Flush id=", f.read())), 2)

    def test_destination_smaller_than_source(self):
        uri = self.nbdkit("memory", "1M")
        self.assert_one_error_line(self.copy(self.sparse_image(), uri, ok=False), 1,
                                   r"smaller than the source \(67108864 bytes\)")
        with open(self.sparse_image(), "rb") as f:
            self.assert_one_error_line(self.copy("-", uri, stdin=f, ok=False), 1,
                                       r"standard input is larger than the destination")

    def test_read_only_destination(self):
        uri = self.nbdkit("-r", "memory", "64M")
        self.assert_one_error_line(self.copy(self.sparse_image(), uri, ok=False), 1,
                                   r"the export is read-only")

    def test_injected_read_error(self):
        uri = self.nbdkit("pattern", "16M", "error-pread-rate=1", filters=["error"])
        for dst in [self.path("o.img"), "-"]:
            with self.subTest(dst=dst):
                self.assert_one_error_line(self.copy(uri, dst, ok=False), 1,
                                           r"^nbdpp: reading nbd\+unix:.* at offset \d+: "
                                           r"Input/output error$")
        # The failed copies ended their connections in order: the server is still there.
        self.assertEqual(self.nbdpp("info", "--size", uri).stdout, b"16777216\n")

    def test_injected_write_error(self):
        src = self.sparse_image()
        uri = self.nbdkit("memory", "64M", "error=ENOSPC", "error-pwrite-rate=1",
                          filters=["error"])
        for args in [[], ["--writer"], ["-C", "1", "--progress"]]:
            with self.subTest(args=args):
                self.assert_one_error_line(self.copy(*args, src, uri, ok=False), 1,
                                           r"^nbdpp: writing nbd\+unix:.* at offset \d+: "
                                           r"No space left on device$")
        self.assertEqual(self.nbdpp("info", "--size", uri).stdout, b"67108864\n")

    def test_injected_zero_error(self):
        # A source of zeroes only sends zero requests: their errors count too.
        src = self.path("zero.img")
        with open(src, "wb") as f:
            f.truncate(8 * MiB)
        uri = self.nbdkit("memory", "8M", "error-zero-rate=1", filters=["error"])
        self.assert_one_error_line(self.copy(src, uri, ok=False), 1, r"^nbdpp: writing ")

    def test_progress_lines_off_a_terminal(self):
        uri = self.nbdkit("memory", "64M")
        r = self.copy("--progress", self.sparse_image(), uri)
        lines = r.stderr.decode().splitlines()
        percents = [int(m.group(1)) for l in lines for m in [re.match(r"nbdpp: copy (\d+)%$", l)]
                    if m]
        self.assertEqual(percents[-1], 100)
        self.assertEqual(percents, sorted(set(percents)))
        self.assertNotIn("\r", r.stderr.decode())

    def test_progress_bar_on_a_terminal(self):
        src = self.sparse_image()
        uri = self.nbdkit("memory", "64M")
        master, slave = pty.openpty()
        p = subprocess.Popen([NBDPP, "copy", "--progress", src, uri], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            if not select.select([master], [], [], TIMEOUT)[0]:
                trace = stacks(p.pid)
                p.kill()
                self.fail(f"nbdpp copy --progress hung:\n{trace}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the last holder of the terminal closed it
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(timeout=TIMEOUT), 0, out)
        text = out.decode()
        self.assertIn("\rnbdpp: [", text)
        self.assertRegex(text, r"\rnbdpp: \[#{30}\] 100% +[0-9.]+ MiB/s \r?\n")
        self.assertNotIn("nbdpp: copy ", text)
        self.assertRegex(text, r"nbdpp: copied 67108864 bytes")


class CopyRecoveryTest(ToolTest):
    """--reconnect-delay and --timeout: a server killed under a copy, and one that stalls."""

    SIZE = 32 * MiB

    def finish(self, p):
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"nbdpp copy hung:\n{stacks(p.pid)}\n{self.server_logs()}")
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def copy_through_restart(self, src, dst, restart, written, *args):
        """Runs nbdpp copy ARGS SRC DST and, half a second in, once the file WRITTEN holds
        data, restart()s the server; the copy must still be running then.  Returns the
        CompletedProcess of the copy."""
        p = subprocess.Popen([NBDPP, "copy", "-C", "4", "-R", "2", "--request-size", "64K",
                              *args, src, dst], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def reap():
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.addCleanup(reap)
        time.sleep(0.5)  # not to synchronise: the kill should come in the middle of the copy
        deadline = time.monotonic() + TIMEOUT
        while not (os.path.exists(written) and allocated(written) > 0):
            self.assertLess(time.monotonic(), deadline, f"nothing reached {written}")
            time.sleep(0.01)
        if p.poll() is not None:
            self.fail("the copy ended before the server was killed: "
                      f"{p.communicate()[1].decode(errors='replace')}")
        restart()
        return self.finish(p)

    def assert_copied(self, r, src, dst):
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace") + self.server_logs())
        # Every connection was lost and made again, once.
        self.assertRegex(r.stderr.decode(), r"nbdpp: nbd\+unix:.*: connected again 4 times\n")
        self.assertIn(f"nbdpp: copied {self.SIZE} bytes".encode(), r.stderr)
        self.assertEqual(sha256(dst), sha256(src))

    def random_image(self, name):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(os.urandom(self.SIZE))
        return path

    def empty_image(self, name):
        path = self.path(name)
        with open(path, "wb") as f:
            f.truncate(self.SIZE)
        return path

    def slow_file_export(self, disk):
        # 20 ms per write, 8 writes in flight (4 connections of 2): about 1.5 s in all.
        return self.restartable_nbdkit("file", disk, "wdelay=20ms", filters=["delay"])

    def test_file_to_nbdkit_survives_a_restart(self):
        src = self.random_image("in.img")
        disk = self.empty_image("disk.img")
        uri, restart = self.slow_file_export(disk)
        r = self.copy_through_restart(src, uri, restart, disk, "--reconnect-delay=20000")
        self.assert_copied(r, src, disk)

    def test_nbdkit_to_file_survives_a_restart(self):
        # The source side: reads, and the base:allocation context negotiated again.
        disk = self.random_image("disk.img")
        uri, restart = self.restartable_nbdkit("file", disk, "rdelay=20ms", filters=["delay"])
        out = self.path("out.img")
        r = self.copy_through_restart(uri, out, restart, out, "--reconnect-delay=20000")
        self.assert_copied(r, disk, out)

    def test_qemu_nbd_to_file_survives_a_restart(self):
        disk = self.random_image("disk.img")
        # qemu's throttle driver reads 16 MB/s: about 2 s for the image.
        uri, restart = self.restartable_qemu_nbd(
            "--object", "throttle-group,id=tg0,x-bps-read=16000000", "--image-opts",
            f"driver=throttle,throttle-group=tg0,file.driver=raw,file.file.driver=file,"
            f"file.file.filename={disk}")
        out = self.path("out.img")
        r = self.copy_through_restart(uri, out, restart, out, "--reconnect-delay=20000")
        self.assert_copied(r, disk, out)

    def test_without_reconnect_delay_a_restart_fails_the_copy(self):
        src = self.random_image("in.img")
        disk = self.empty_image("disk.img")
        uri, restart = self.slow_file_export(disk)
        r = self.copy_through_restart(src, uri, restart, disk)
        self.assert_one_error_line(r, 1, r"^nbdpp: nbd\+unix:.*: connection \d+ lost: "
                                         r"nbd_aio_notify_\w+: ")

    def test_timeout_fails_a_stalled_copy_quickly(self):
        uri = self.nbdkit("pattern", "16M", "rdelay=5", filters=["delay"])
        t0 = time.monotonic()
        r = self.nbdpp("copy", "--timeout=300", uri, self.path("out.img"), ok=False)
        elapsed = time.monotonic() - t0
        self.assert_one_error_line(r, 1, r"^nbdpp: nbd\+unix:.*: no reply for 300 ms: "
                                         r"Connection timed out$")
        self.assertLess(elapsed, 3.0, r.stderr.decode(errors="replace"))

    def test_info_with_both_options(self):
        uri = self.nbdkit("memory", "1M")
        r = self.nbdpp("info", "--timeout=5000", "--reconnect-delay=1000", "--size", uri)
        self.assertEqual(r.stdout, b"1048576\n")

    def test_timeout_bounds_info(self):
        # The handshake itself stalls: nbdkit's delay filter has no delay for it, but a server
        # that never accepts does (a listening socket nobody serves).
        path = self.path("silent.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(4)
        self.addCleanup(listener.close)
        t0 = time.monotonic()
        r = self.nbdpp("info", "--timeout=300", f"nbd+unix:///?socket={path}", ok=False)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assert_one_error_line(r, 1, r"timed out after 300 ms")


def main():
    global NBDPP
    if len(sys.argv) < 2:
        print("usage: nbdpp_test.py NBDPP [unittest args]", file=sys.stderr)
        return 2
    NBDPP = os.path.abspath(sys.argv[1])
    if not HAVE_NBDKIT:
        print("SKIP: nbdkit is not installed", file=sys.stderr)
        return 77
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
