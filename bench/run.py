#!/usr/bin/env python3
"""Benchmarks nbdpp against Debian's libnbd 1.14 side by side and prints Markdown tables.

Usage: bench/run.py BUILD_DIR [--set smoke|writer|full] [--reps N] [--only SECTIONS]
                    [--markdown FILE [--markers NAME]] [--json FILE] [--keep DIR]

Sections (--only takes a comma-separated subset; the default is every section of the set):
  workloads  nbdbench (bench/nbdbench.c, one binary on the C ABI) on each library, chosen with
             LD_LIBRARY_PATH: libnbd / nbdpp / nbdpp+writer alternating, --reps repetitions,
             medians and min-max, against nbdkit memory (prefilled) and nbdkit null on private
             Unix sockets.  Client CPU from getrusage inside nbdbench; server CPU from /proc.
  extended   the same nbdbench workloads (a subset) against nbd_ext_server, the test tree's
             server that speaks extended headers (BUILD_DIR/tests/nbd_ext_server): libnbd /
             nbdpp-ext-off / nbdpp-ext-on alternating, each run checked for the header mode it
             claims; and their instructions per request under callgrind.
  nbdcopy    Debian's nbdcopy binary on both libraries (LD_LIBRARY_PATH).
  sockrate   the raw Unix-socket streaming rate between two processes (bench/sockrate.c),
             compared with sequential 256 KiB reads from nbdkit null.
  callgrind  instructions (Ir) per request of the client process under valgrind's callgrind
             (the server runs outside valgrind), split by object.
  syscalls   system calls and context switches per request (perf stat; skipped without perf).
  handles    what a connection costs (bench/handlebench.c): anonymous resident memory and heap
             per connected, idle handle, and the time to connect and to close one, at 1, 100
             and 1,000 handles; and the memory one handle adds while it streams (nbdbench
             --rss).  Same three variants, alternating.

--markdown FILE replaces the text between the lines <!-- bench:begin --> and <!-- bench:end -->
in FILE with the tables (or writes FILE if it does not exist); --markers NAME uses the lines
<!-- NAME:begin --> and <!-- NAME:end --> instead (a subset kept apart from the full set's
tables).  The tables always go to stdout; progress goes to stderr.  Exit status 77: nbdkit or Debian's libnbd is missing (nothing to do).
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DEBIAN_LIBDIR = "/usr/lib/x86_64-linux-gnu"
SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["workloads", "extended", "nbdcopy", "sockrate", "callgrind", "syscalls", "handles"]

# The targets of issue 10.
T_THROUGHPUT = 1.0        # nbdpp/libnbd throughput on every workload, at least
T_RANDOM64 = 1.2          # the same on 4 KiB random I/O at depth 64, at least
T_CPU = 0.75              # nbdpp/libnbd client CPU per GiB, at most
T_IR = 0.75               # nbdpp/libnbd instructions per request, at most
T_RAW = 0.90              # sequential read from nbdkit null / raw Unix-socket rate, at least
# The targets of issue 22: an idle connected handle's memory, and connecting and closing one,
# nbdpp/libnbd at most.
T_HANDLE_MEMORY = 1.0
T_HANDLE_TIME = 1.0


def seq(op, depth, total="1G", conns=1):
    a = ["--op", op, "--bs", "256K", "--depth", str(depth), "--bytes", total]
    return a + (["--conns", str(conns)] if conns > 1 else [])


def rnd(op, depth, requests, conns=1):
    a = ["--op", op, "--bs", "4K", "--depth", str(depth), "--requests", str(requests)]
    return a + (["--conns", str(conns)] if conns > 1 else [])


# Each set: the export size, the workloads (name, server, nbdbench arguments), the nbdcopy size,
# the raw socket transfer size, and the fixed-count runs for callgrind and perf stat.
# Full-set sizes are picked so one run takes about half a second on the reference machine.
SETS = {
    "smoke": {
        "export": "64M",
        "workloads": [
            ("256 KiB seq read, depth 4", "null", seq("read", 4, "8M")),
            ("256 KiB seq write, depth 4", "memory", seq("write", 4, "8M")),
            ("4 KiB random read, depth 8", "memory", rnd("randread", 8, 256)),
            ("4 KiB random mixed, depth 8, 2 conns", "memory", rnd("randmixed", 8, 256, conns=2)),
        ],
        "nbdcopy": "16M",
        "sockrate": "64M",
        "fixed": [
            ("4 KiB random read, depth 8", rnd("randread", 8, 200)),
            ("256 KiB seq write, depth 4", seq("write", 4, "5M")),
        ],
        "extended": [
            ("256 KiB seq read, depth 4", seq("read", 4, "8M")),
            ("4 KiB random mixed, depth 8", rnd("randmixed", 8, 256)),
        ],
        "extended_fixed": [("4 KiB random read, depth 8", rnd("randread", 8, 200))],
        "handles": [1, 10],
        "streams": [("256 KiB seq read, depth 4", "null", seq("read", 4, "8M"))],
    },
    # The concurrent writer's home ground: writes and mixed I/O on one connection.
    "writer": {
        "export": "1G",
        "workloads": [
            ("256 KiB seq write, depth 16", "memory", seq("write", 16, "2G")),
            ("256 KiB seq write, depth 64", "memory", seq("write", 64, "2G")),
            ("256 KiB seq mixed r/w, depth 16", "memory", seq("mixed", 16, "2G")),
            ("256 KiB seq mixed r/w, depth 64", "memory", seq("mixed", 64, "2G")),
            ("4 KiB random write, depth 64", "memory", rnd("randwrite", 64, 200000)),
        ],
        # Instructions per request where the writer's queue does the most work.
        "fixed": [
            ("4 KiB random write, depth 64", rnd("randwrite", 64, 20000)),
            ("256 KiB seq write, depth 16", seq("write", 16, "1G")),
        ],
        "sections": ["workloads", "callgrind"],
    },
    "full": {
        "export": "1G",
        "workloads": [
            (f"256 KiB seq {op}, depth {d}", srv, seq(op, d, "2G"))
            for op in ("read", "write") for d in (16, 64) for srv in ("memory", "null")
        ] + [
            (f"4 KiB random {op[4:]}, depth {d}", srv, rnd(op, d, 30000 if d == 1 else 100000))
            for op in ("randread", "randwrite") for d in (1, 64) for srv in ("memory", "null")
        ] + [
            ("256 KiB seq read, depth 16, pread_initialize off", "null",
             seq("read", 16, "2G") + ["--no-pread-initialize"]),
            ("256 KiB seq mixed r/w, depth 16", "memory", seq("mixed", 16, "2G")),
            ("256 KiB seq mixed r/w, depth 16", "null", seq("mixed", 16, "2G")),
            ("4 KiB random mixed r/w, depth 64", "memory", rnd("randmixed", 64, 100000)),
            ("256 KiB seq read, depth 16, 4 conns", "memory", seq("read", 16, "2G", conns=4)),
            ("256 KiB seq read, depth 16, 4 conns", "null", seq("read", 16, "2G", conns=4)),
            ("256 KiB seq write, depth 16, 4 conns", "memory", seq("write", 16, "2G", conns=4)),
            ("4 KiB random read, depth 64, 4 conns", "memory", rnd("randread", 64, 100000, conns=4)),
            ("4 KiB random write, depth 64, 4 conns", "memory", rnd("randwrite", 64, 100000, conns=4)),
        ],
        # Against nbd_ext_server, with extended headers off and on (issue 17).
        "extended": [
            ("256 KiB seq read, depth 16", seq("read", 16, "2G")),
            ("256 KiB seq write, depth 16", seq("write", 16, "2G")),
            ("4 KiB random read, depth 64", rnd("randread", 64, 100000)),
            ("4 KiB random write, depth 64", rnd("randwrite", 64, 100000)),
            ("4 KiB random mixed r/w, depth 64", rnd("randmixed", 64, 100000)),
        ],
        "extended_fixed": [
            ("4 KiB random read, depth 64", rnd("randread", 64, 20000)),
            ("4 KiB random write, depth 64", rnd("randwrite", 64, 20000)),
            ("256 KiB seq read, depth 16", ["--op", "read", "--bs", "256K", "--depth", "16",
                                            "--requests", "2000"]),
            ("256 KiB seq write, depth 16", ["--op", "write", "--bs", "256K", "--depth", "16",
                                             "--requests", "2000"]),
        ],
        "nbdcopy": "1G",
        "sockrate": "4G",
        "fixed": [
            ("4 KiB random read, depth 64", rnd("randread", 64, 20000)),
            ("256 KiB seq write, depth 16", ["--op", "write", "--bs", "256K", "--depth", "16",
                                             "--requests", "2000"]),
            ("256 KiB seq read, depth 16", ["--op", "read", "--bs", "256K", "--depth", "16",
                                            "--requests", "2000"]),
        ],
        "handles": [1, 100, 1000],
        "streams": [("256 KiB seq read, depth 64", "null", seq("read", 64, "1G")),
                    ("256 KiB seq write, depth 64", "null", seq("write", 64, "1G")),
                    ("4 KiB random read, depth 64", "memory", rnd("randread", 64, 50000))],
    },
}

# variant name, library ("ours" or Debian's directory), extra nbdbench arguments.
VARIANTS = [("libnbd", DEBIAN_LIBDIR, []), ("nbdpp", "ours", []), ("nbdpp+writer", "ours", ["--writer"])]
# The extended section's variants, likewise, and the values of nbdbench's "extended_headers" that
# fit the header mode each claims (null: no nbd_get_extended_headers_negotiated, as in libnbd
# 1.14, which knows no extended headers); every one must have negotiated structured replies.
EXT_VARIANTS = [("libnbd", DEBIAN_LIBDIR, [], (None, False)),
                ("nbdpp-ext-off", "ours", ["--no-extended-headers"], (False,)),
                ("nbdpp-ext-on", "ours", [], (True,))]
LIB_PREFIX = {"libnbd": "libnbd ", "nbdpp": "nbdpp ", "nbdpp+writer": "nbdpp ", "nbdpp-ext-off": "nbdpp ",
              "nbdpp-ext-on": "nbdpp "}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def arg_of(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def run(cmd, env=None, timeout=600):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed with status {p.returncode}:\n{p.stderr}")
    return p


class Server:
    """A server in the foreground as our child, on a Unix socket in a private directory.
    command(sock, pidfile) is its command line; it writes the pid file once it listens."""

    def __init__(self, tmp, name, what, command):
        self.sock = os.path.join(tmp, name + ".sock")
        pidfile = os.path.join(tmp, name + ".pid")
        self.proc = subprocess.Popen(command(self.sock, pidfile))
        deadline = time.monotonic() + 30
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile) > 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"run.py: {what} did not start")
            time.sleep(0.01)
        self.uri = "nbd+unix:///?socket=" + self.sock

    def cpu_seconds(self):
        """utime + stime of the server, all its threads, from /proc/PID/stat."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Nbdkit(Server):
    def __init__(self, tmp, plugin, size, name=None, options=()):
        super().__init__(tmp, name or plugin, f"nbdkit {plugin}", lambda sock, pidfile: [
            "nbdkit", "-f", "--exit-with-parent", "-U", sock, "-P", pidfile] + list(options) + [plugin, size])


class ExtServer(Server):
    """nbd_ext_server (tests/extserver), the only server here that speaks extended headers: an
    in-memory export served by one thread per connection."""

    def __init__(self, tmp, exe, size):
        super().__init__(tmp, "ext", "nbd_ext_server", lambda sock, pidfile: [
            exe, "--unix", sock, "--pid-file", pidfile, "--exit-with-parent", "--size", size])


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build_dir)
        self.exe = os.path.join(self.build, "bench", "nbdbench")
        self.handlebench = os.path.join(self.build, "bench", "handlebench")
        self.sockrate = os.path.join(self.build, "bench", "sockrate")
        self.cfg = SETS[a.set]
        self.loads = [("before", os.getloadavg())]
        self.libs = {}
        self.results = {"set": a.set, "reps": a.reps}
        self.keep = None
        cache = os.path.join(self.build, "CMakeCache.txt")
        # Programs not built with the sanitizer (nbdcopy, valgrind) cannot load a sanitized lib.
        self.sanitized = os.path.exists(cache) and re.search(
            r"^NBD_(SANITIZE|TSAN):BOOL=ON", open(cache).read(), re.M) is not None

    def libdir(self, lib):
        return self.build if lib == "ours" else lib

    def nbdbench(self, vname, lib, uri, args, server=None, wrap=(), exe=None):
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir(lib))
        before = server.cpu_seconds() if server else 0.0
        p = run(list(wrap) + [exe or self.exe, "--uri", uri] + args, env=env)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if server:
            r["server_cpu_seconds"] = server.cpu_seconds() - before
        if not r["library"].startswith(LIB_PREFIX[vname]):
            sys.exit(f"run.py: {vname} loaded {r['library']}")
        self.libs[vname] = r["library"]
        return r

    def alternate(self, variants, run_one, runs=None):
        """run_one(vname, lib, extra) for each variant, `runs` (default --reps) times, the order
        rotated each time so drift in the machine's load hits all alike: {vname: [results]}."""
        res = {v[0]: [] for v in variants}
        for rep in range(runs or self.a.reps):
            k = rep % len(variants)
            for vname, lib, extra, *_ in variants[k:] + variants[:k]:
                res[vname].append(run_one(vname, lib, extra))
        return res

    # -- workloads ------------------------------------------------------------------------------
    def workloads(self, servers):
        rows = []
        for name, srv, args in self.cfg["workloads"]:
            log(f"  {name} on {srv}")
            res = self.alternate(VARIANTS, lambda vname, lib, extra: self.nbdbench(
                vname, lib, servers[srv].uri, args + extra, servers[srv]))
            rows.append({"name": name, "server": srv, "args": args, "runs": res})
            self.loads.append((name, os.getloadavg()))
        self.results["workloads"] = rows

    # -- nbdcopy --------------------------------------------------------------------------------
    def nbdcopy(self, servers, tmp):
        size = parse_size(self.cfg["nbdcopy"])
        nbdcopy = shutil.which("nbdcopy")
        if nbdcopy is None:
            self.results["nbdcopy_skipped"] = "nbdcopy is not installed (libnbd-bin)"
            return
        if self.sanitized:
            self.results["nbdcopy_skipped"] = "sanitizer build"
            return
        for vname, lib in (("libnbd", DEBIAN_LIBDIR), ("nbdpp", "ours")):
            out = run([nbdcopy, "--version"], env=dict(os.environ, LD_LIBRARY_PATH=self.libdir(lib))).stdout
            if LIB_PREFIX[vname] not in out:
                sys.exit(f"run.py: nbdcopy on {vname} reports {out!r}")
            self.results["nbdcopy_version"] = out.splitlines()[0]
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tmp
        src = tempfile.NamedTemporaryFile(dir=shm, prefix="nbdbench-", delete=False)
        dst = src.name + ".out"
        try:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                src.write(block)
            src.close()
            mem = servers["memory"].uri
            label = human(size)
            copies = [
                (f"nbdkit memory ({label}, prefilled) -> null:", mem, "null:"),
                (f"file on {shm} ({label}) -> nbdkit memory", src.name, mem),
                (f"nbdkit memory ({label}) -> new file on {shm}", mem, dst),
            ]
            rows = []
            for name, frm, to in copies:
                log(f"  nbdcopy {name}")
                res = {"libnbd": [], "nbdpp": []}
                for rep in range(self.a.reps):
                    order = [("libnbd", DEBIAN_LIBDIR), ("nbdpp", "ours")]
                    for vname, lib in (order if rep % 2 == 0 else order[::-1]):
                        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir(lib))
                        if os.path.exists(dst):
                            os.unlink(dst)      # every run allocates the file's pages afresh
                        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        t0 = time.monotonic()
                        run([nbdcopy, frm, to], env=env)
                        wall = time.monotonic() - t0
                        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                        res[vname].append({"bytes": size, "seconds": wall, "mib_per_s": size / 2**20 / wall,
                                           "cpu_seconds": cpu, "cpu_seconds_per_gib": cpu / (size / 2**30)})
                rows.append({"name": name, "runs": res})
            self.results["nbdcopy"] = rows
        finally:
            for f in (src.name, dst):
                if os.path.exists(f):
                    os.unlink(f)

    # -- raw socket rate ------------------------------------------------------------------------
    def raw_depths(self):
        return sorted({1} | {int(arg_of(args, "--depth")) for _, srv, args in self.cfg["workloads"]
                             if is_plain_null_read(srv, args)})

    def sockrate_section(self):
        rows = {}
        for n in self.raw_depths():
            log(f"  sockrate, {n} buffer(s)")
            rows[n] = [json.loads(run([self.sockrate, "--bs", "256K", "--bytes", self.cfg["sockrate"],
                                       "--buffers", str(n)]).stdout) for _ in range(self.a.reps)]
        self.results["sockrate"] = rows

    # -- callgrind ------------------------------------------------------------------------------
    def callgrind_unavailable(self):
        """Why callgrind cannot count here, or None."""
        if shutil.which("valgrind") is None:
            return "valgrind is not installed"
        return "sanitizer build" if self.sanitized else None

    def callgrind_rows(self, variants, fixed, uri, prefix, check=None):
        """The Ir of each fixed-count run under callgrind, or None if callgrind counted nothing."""
        rows = []
        for name, args in fixed:
            res = {}
            for vname, lib, extra, *_ in variants:
                log(f"  callgrind {name}, {vname}")
                out = os.path.join(self.keep, f"{prefix}.{slug(name)}.{vname}.out")
                r = self.nbdbench(vname, lib, uri, args + extra,
                                  wrap=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                        f"--callgrind-out-file={out}"])
                if check:
                    check(vname, r)
                total, by_obj = parse_callgrind(out)
                if total == 0:
                    return None
                res[vname] = {"requests": r["requests"], "ir": total, "by_object": by_obj, "file": out}
            rows.append({"name": name, "runs": res})
        return rows

    def callgrind(self, servers):
        why = self.callgrind_unavailable()
        rows = None if why else self.callgrind_rows(VARIANTS, self.cfg["fixed"], servers["memory"].uri,
                                                    "callgrind")
        if why or rows is None:
            self.results["callgrind_skipped"] = why or CALLGRIND_EMPTY
            return
        self.results["callgrind"] = rows

    # -- extended headers: nbd_ext_server, compact and extended ---------------------------------
    def extended(self, tmp):
        if "extended" not in self.cfg:
            self.results["extended_skipped"] = f"set {self.a.set} has no extended-header workloads"
            return
        exe = os.path.join(self.build, "tests", "nbd_ext_server")
        if not os.access(exe, os.X_OK):
            self.results["extended_skipped"] = (f"{exe} is not built (a test program: BUILD_TESTING=ON, "
                                                f"target nbd_ext_server)")
            return
        srv = ExtServer(tmp, exe, self.cfg["export"])
        try:
            # Prefilled like nbdkit memory: one sequential pass of random data, so reads are of
            # data (one chunk each), not holes, and writes rewrite allocated blocks.
            self.nbdbench("nbdpp", "ours", srv.uri,
                          ["--op", "write", "--bs", "1M", "--depth", "8", "--bytes", self.cfg["export"]])

            def one(vname, lib, extra, args):
                r = self.nbdbench(vname, lib, srv.uri, args + extra, srv)
                check_header_mode(vname, r)
                return r

            rows = []
            for name, args in self.cfg["extended"]:
                log(f"  {name} on nbd_ext_server")
                res = self.alternate(EXT_VARIANTS, lambda vname, lib, extra: one(vname, lib, extra, args))
                rows.append({"name": name, "args": args, "runs": res})
                self.loads.append((name + ", extended", os.getloadavg()))
            self.results["extended"] = rows
            why = self.callgrind_unavailable()
            rows = None if why else self.callgrind_rows(EXT_VARIANTS, self.cfg.get("extended_fixed", []),
                                                        srv.uri, "callgrind.ext", check_header_mode)
            if why or rows is None:
                self.results["extended_callgrind_skipped"] = why or CALLGRIND_EMPTY
            else:
                self.results["extended_callgrind"] = rows
        finally:
            srv.stop()

    # -- perf stat: syscalls and context switches -----------------------------------------------
    def syscalls(self, servers):
        perf = shutil.which("perf")
        events = "raw_syscalls:sys_enter,context-switches"
        if perf is None or subprocess.run([perf, "stat", "-e", events, "true"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL).returncode != 0:
            self.results["syscalls_skipped"] = "perf is missing or cannot read the syscall tracepoint"
            return

        def count(vname, lib, args):
            out = os.path.join(self.keep, "perf.txt")
            r = self.nbdbench(vname, lib, servers["memory"].uri, args,
                              wrap=[perf, "stat", "-x,", "-o", out, "-e", events, "--"])
            vals = {}
            for line in open(out):
                f = line.strip().split(",")
                if len(f) > 2 and f[0].replace(".", "").isdigit():
                    vals[f[2]] = float(f[0])
            return r["requests"], vals.get("raw_syscalls:sys_enter", 0.0), vals.get("context-switches", 0.0)

        rows = []
        for name, args in self.cfg["fixed"]:
            res = {}
            for vname, lib, extra in VARIANTS:
                log(f"  perf stat {name}, {vname}")
                # Two runs, N and N/10 requests: the difference leaves out connecting and setup.
                n_big, sc_big, cs_big = count(vname, lib, args + extra)
                args_small = list(args)
                for opt in ("--requests", "--bytes"):
                    if opt in args_small:
                        i = args_small.index(opt)
                        del args_small[i:i + 2]
                args_small += ["--requests", str(max(1, n_big // 10))]
                n_small, sc_small, cs_small = count(vname, lib, args_small + extra)
                dn = n_big - n_small
                res[vname] = {"syscalls_per_request": (sc_big - sc_small) / dn,
                              "switches_per_request": (cs_big - cs_small) / dn}
            rows.append({"name": name, "runs": res})
        self.results["syscalls"] = rows


    # -- cost per connection --------------------------------------------------------------------
    def handles(self, servers, tmp):
        # Its own server: a thousand connections at once, nbdkit's default 16 worker threads
        # each (16,000 threads) would make the server, not the client, what is timed.
        srv = Nbdkit(tmp, "memory", "1M", name="handles", options=["--threads", "1"])
        try:
            rows = []
            # Three descriptors per handle with the writer (socket, two eventfds), in handlebench;
            # one per connection in nbdkit.  main() raised the limit as far as it goes.
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            for n in self.cfg["handles"]:
                if 3 * n + 64 > limit:
                    self.results.setdefault("handles_skipped", []).append(
                        f"{n} handles: the descriptor limit is {limit}")
                    continue
                log(f"  {n} handle(s)")
                # A close or a connect takes microseconds, and the machine's noise is as large:
                # more runs where they are cheap (5, 3 and 2 per repetition at 1, 100, 1,000).
                runs = (5 if n == 1 else 3 if n <= 100 else 2) * self.a.reps
                res = self.alternate(VARIANTS, lambda vname, lib, extra: self.nbdbench(
                    vname, lib, srv.uri, ["--handles", str(n)] + extra, exe=self.handlebench), runs)
                rows.append({"handles": n, "runs": res})
            self.results["handles"] = rows
        finally:
            srv.stop()
        rows = []
        for name, server, args in self.cfg["streams"]:
            log(f"  {name} on {server}, resident memory")
            res = self.alternate(VARIANTS, lambda vname, lib, extra: self.nbdbench(
                vname, lib, servers[server].uri, args + extra + ["--rss"]))
            rows.append({"name": name, "server": server, "runs": res})
        self.results["streams"] = rows


CALLGRIND_EMPTY = "callgrind counted nothing: nbdbench was built without <valgrind/callgrind.h>"


def check_header_mode(vname, r):
    """Ends the whole run unless the handle of this run of variant vname negotiated the header mode
    the variant claims, as nbdbench read it back from the library."""
    allowed = next(v[3] for v in EXT_VARIANTS if v[0] == vname)
    ext = r["extended_headers"]
    if r["structured_replies"] and ext in allowed:
        return
    claim = "extended headers" if True in allowed else "compact headers with structured replies"
    if ext is None and None not in allowed:
        got = f"a mode it cannot tell: {r['library']} has no nbd_get_extended_headers_negotiated"
    else:
        got = "extended headers" if ext else (
            "compact headers with " + ("structured" if r["structured_replies"] else "simple") + " replies")
    sys.exit(f"run.py: {vname} claims {claim} but negotiated {got}")


def is_plain_null_read(server, args):
    """A one-connection sequential read from nbdkit null with the library's defaults."""
    return (server == "null" and arg_of(args, "--op") == "read" and "--conns" not in args
            and "--no-pread-initialize" not in args)


def human(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def parse_callgrind(path):
    """Total Ir and self Ir per object from a callgrind output file (name compression, relative
    positions and inclusive call costs handled: the cost line after calls= is not self cost)."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl",
               "fn": "fn", "cfn": "fn"}
    ob = fn = None
    by = {}
    total = 0
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    ir = int(parts[1])
                    by[(ob, fn)] = by.get((ob, fn), 0) + ir
                continue
            if "=" not in line:
                continue
            key, val = line.split("=", 1)
            if key == "calls":
                skip_next = True
                continue
            if key == "totals" or key == "summary":
                total = max(total, int(val.split()[0]))
                continue
            if key not in kind_of:
                continue
            m = re.match(r"\((\d+)\)(?: (.*))?$", val)
            table = names[kind_of[key]]
            if m:
                if m.group(2) is not None:
                    table[m.group(1)] = m.group(2)
                name = table.get(m.group(1), "?")
            else:
                name = val
            if key == "ob":
                ob = name
            elif key == "fn":
                fn = name
    cats = {}
    for (ob, fn), ir in by.items():
        cat = categorise(ob or "", fn or "")
        cats[cat] = cats.get(cat, 0) + ir
    if total == 0:
        total = sum(by.values())
    return total, cats


CATEGORIES = ["libnbd.so.0", "libc mem*", "libc other", "ld.so", "libstdc++", "nbdbench", "other"]


def categorise(ob, fn):
    base = os.path.basename(ob)
    if base.startswith("libnbd.so"):
        return "libnbd.so.0"
    if base.startswith("libc.so"):
        return "libc mem*" if re.search(r"mem(set|cpy|move)", fn) else "libc other"
    if base.startswith("ld-linux"):
        return "ld.so"
    if base.startswith("libstdc++"):
        return "libstdc++"
    if base == "nbdbench":
        return "nbdbench"
    return "other"


# -- report ---------------------------------------------------------------------------------------
def med(vals):
    return statistics.median(vals)


def num(v, digits=0):
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return a / b if b else float("nan")


def r2(x):
    return round(x, 2)


def machine_info(b, started):
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
            m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
            info["cpu"] = m.group(1) if m else platform.processor()
            if re.search(r"^flags\s*:.*\bhypervisor\b", text, re.M):
                info["cpu"] += " (virtual machine)"
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = os.cpu_count()
    info["kernel"] = platform.release()
    with open("/proc/meminfo") as f:
        info["memory"] = f"{int(f.readline().split()[1]) // 1024 // 1024} GiB"
    info["nbdkit"] = subprocess.run(["nbdkit", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    if "nbdcopy_version" in b.results:
        info["nbdcopy"] = b.results["nbdcopy_version"]
    if shutil.which("valgrind"):
        info["valgrind"] = subprocess.run(["valgrind", "--version"], stdout=subprocess.PIPE,
                                          text=True).stdout.strip()
    info["libraries"] = ", ".join(sorted(set(b.libs.values())))
    rev = subprocess.run(["git", "-C", SRC_DIR, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    info["source"] = rev or "unknown"
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    info["runtime"] = f"{time.monotonic() - started:.0f} s"
    loads = b.loads
    info["load average"] = ("1 min: before {:.2f}, highest seen during the run {:.2f}, after {:.2f} "
                            "(1/5/15 min after: {})").format(
        loads[0][1][0], max(l[1][0] for l in loads), loads[-1][1][0],
        " ".join(f"{x:.2f}" for x in loads[-1][1]))
    return info


def report(b, started):
    a, R, out = b.a, b.results, []
    p = out.append
    missed = {k: [] for k in ("thr", "thr_w", "rand", "cpu", "ir", "raw", "hmem", "htime")}
    counted = {k: 0 for k in missed}
    info = machine_info(b, started)
    R["machine"] = info
    p(f"Set `{a.set}`, {a.reps} repetitions per variant, alternating runs (order rotated each "
      f"repetition); cells are medians (min-max).")
    p("")
    p("Machine:")
    p("")
    for k, v in info.items():
        p(f"- {k}: {v}")
    p("")
    if "workloads" in R:
        p("### Workloads (nbdbench)")
        p("")
        p("Throughput in MiB/s (256 KiB requests) or IOPS (4 KiB requests); client CPU = user + sys "
          "seconds of the nbdbench process (all threads) per GiB moved.")
        p("")
        p("| workload | server | unit | libnbd | nbdpp | nbdpp+writer | nbdpp/libnbd | writer/libnbd "
          "| CPU s/GiB libnbd | nbdpp | writer | CPU nbdpp/libnbd | CPU writer/libnbd | targets (nbdpp) |")
        p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in R["workloads"]:
            args, runs = row["args"], row["runs"]
            small = arg_of(args, "--bs") == "4K"
            key, unit = ("iops", "IOPS") if small else ("mib_per_s", "MiB/s")
            cells, m, cpu = [], {}, {}
            for vname, _, _ in VARIANTS:
                vals = [r[key] for r in runs[vname]]
                m[vname] = med(vals)
                cpu[vname] = med([r["cpu_seconds_per_gib"] for r in runs[vname]])
                cells.append(f"{num(m[vname])} ({num(min(vals))}-{num(max(vals))})")
            # Targets are judged on the ratios as printed (two decimals).
            tr, trw = r2(ratio(m["nbdpp"], m["libnbd"])), r2(ratio(m["nbdpp+writer"], m["libnbd"]))
            cr, crw = r2(ratio(cpu["nbdpp"], cpu["libnbd"])), r2(ratio(cpu["nbdpp+writer"], cpu["libnbd"]))
            label = f"{row['name']} ({row['server']})"
            notes = []
            counted["thr"] += 1
            counted["thr_w"] += 1
            counted["cpu"] += 1
            if tr < T_THROUGHPUT:
                missed["thr"].append(f"{label}: {tr:.2f}")
                notes.append(f"thr {tr:.2f} < {T_THROUGHPUT}")
            if trw < T_THROUGHPUT:
                missed["thr_w"].append(f"{label}: {trw:.2f}")
            if arg_of(args, "--op", "").startswith("rand") and arg_of(args, "--depth") == "64":
                counted["rand"] += 1
                if tr < T_RANDOM64:
                    missed["rand"].append(f"{label}: {tr:.2f}")
                    notes.append(f"thr {tr:.2f} < {T_RANDOM64}")
            if cr > T_CPU:
                missed["cpu"].append(f"{label}: {cr:.2f}")
                notes.append(f"CPU {cr:.2f} > {T_CPU}")
            p(f"| {row['name']} | {row['server']} | {unit} | {' | '.join(cells)} | {tr:.2f} | {trw:.2f} "
              f"| {cpu['libnbd']:.3f} | {cpu['nbdpp']:.3f} | {cpu['nbdpp+writer']:.3f} | {cr:.2f} | {crw:.2f} "
              f"| {'missed: ' + '; '.join(notes) if notes else 'met'} |")
        p("")
        p("Server side (nbdkit CPU seconds per GiB, median) and cores kept busy by client + server "
          f"(this machine has {os.cpu_count()}):")
        p("")
        p("| workload | server | nbdkit s/GiB: libnbd | nbdpp | nbdpp+writer | cores busy: libnbd | nbdpp "
          "| nbdpp+writer |")
        p("|---|---|---:|---:|---:|---:|---:|---:|")
        for row in R["workloads"]:
            runs = row["runs"]
            srv = [med([r["server_cpu_seconds"] / (r["bytes"] / 2**30) for r in runs[v[0]]]) for v in VARIANTS]
            busy = [med([(r["cpu_seconds"] + r["server_cpu_seconds"]) / r["seconds"] for r in runs[v[0]]])
                    for v in VARIANTS]
            p(f"| {row['name']} | {row['server']} | " + " | ".join(f"{x:.3f}" for x in srv) + " | "
              + " | ".join(f"{x:.2f}" for x in busy) + " |")
        p("")
    if "extended" in R:
        report_extended(R, p)
    elif "extended_skipped" in R:
        p(f"Extended headers (nbd_ext_server) skipped: {R['extended_skipped']}.")
        p("")
    if "handles" in R:
        report_handles(R, p, missed, counted)
    if "sockrate" in R:
        p("### Raw Unix-socket rate vs sequential 256 KiB reads from nbdkit null")
        p("")
        p("sockrate: two processes, a socketpair, 256 KiB write(2) calls on one side and reads into N "
          "buffers in turn on the other (N = the queue depth, for the same cache footprint).")
        p("")
        p("| N buffers / depth | raw MiB/s | libnbd MiB/s (of raw) | nbdpp (of raw) | nbdpp+writer (of raw) "
          f"| target nbdpp >= {T_RAW:.0%} of raw |")
        p("|---:|---:|---:|---:|---:|---|")
        reads = {int(arg_of(r["args"], "--depth")): r for r in R.get("workloads", [])
                 if is_plain_null_read(r["server"], r["args"])}
        for n, runs in sorted(R["sockrate"].items()):
            raw = med([r["mib_per_s"] for r in runs])
            rawcell = f"{num(raw)} ({num(min(r['mib_per_s'] for r in runs))}-{num(max(r['mib_per_s'] for r in runs))})"
            if n not in reads:
                p(f"| {n} | {rawcell} | | | | |")
                continue
            cells, frac = [], {}
            for vname, _, _ in VARIANTS:
                v = med([r["mib_per_s"] for r in reads[n]["runs"][vname]])
                frac[vname] = v / raw
                cells.append(f"{num(v)} ({frac[vname]:.0%})")
            counted["raw"] += 1
            ok = frac["nbdpp"] >= T_RAW
            if not ok:
                missed["raw"].append(f"depth {n}: {frac['nbdpp']:.0%} of {num(raw)} MiB/s")
            p(f"| {n} | {rawcell} | {' | '.join(cells)} | {'met' if ok else 'missed'} |")
        p("")
    if "nbdcopy" in R:
        p("### Debian's nbdcopy on both libraries")
        p("")
        p("The same /usr/bin/nbdcopy (default options: 4 connections where the server allows "
          "multi-conn, 64 requests of 256 KiB in flight) with LD_LIBRARY_PATH on our build or "
          "Debian's lib dir; wall time of the whole command, CPU = its user + sys seconds.")
        p("")
        p("| copy | libnbd MiB/s | nbdpp MiB/s | nbdpp/libnbd | CPU s/GiB libnbd | nbdpp | CPU nbdpp/libnbd |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for row in R["nbdcopy"]:
            runs = row["runs"]
            m = {v: med([r["mib_per_s"] for r in runs[v]]) for v in runs}
            c = {v: med([r["cpu_seconds_per_gib"] for r in runs[v]]) for v in runs}
            rng = {v: f"{num(m[v])} ({num(min(r['mib_per_s'] for r in runs[v]))}-"
                      f"{num(max(r['mib_per_s'] for r in runs[v]))})" for v in runs}
            p(f"| {row['name']} | {rng['libnbd']} | {rng['nbdpp']} | {ratio(m['nbdpp'], m['libnbd']):.2f} "
              f"| {c['libnbd']:.3f} | {c['nbdpp']:.3f} | {ratio(c['nbdpp'], c['libnbd']):.2f} |")
        p("")
    elif "nbdcopy_skipped" in R:
        p(f"nbdcopy skipped: {R['nbdcopy_skipped']}.")
        p("")
    if "callgrind" in R:
        p("### Instructions per request (callgrind)")
        p("")
        p("Ir of the whole client process (every thread) over the request loop only, divided by the "
          "requests; against nbdkit memory running outside valgrind. Kernel instructions are not "
          "counted. Note: valgrind counts a `rep stosb`/`rep movsb` as one instruction per byte, so "
          "glibc's memset/memcpy of large buffers (libnbd's zeroing of every read buffer before "
          "the read, `nbd_set_pread_initialize`) weighs far more in Ir than in time.")
        p("")
        p(f"| workload | libnbd | nbdpp | nbdpp+writer | nbdpp/libnbd | writer/libnbd | target <= {T_IR} |")
        p("|---|---:|---:|---:|---:|---:|---|")
        for row in R["callgrind"]:
            per = {v: row["runs"][v]["ir"] / row["runs"][v]["requests"] for v in row["runs"]}
            rr = r2(ratio(per["nbdpp"], per["libnbd"]))
            counted["ir"] += 1
            if rr > T_IR:
                missed["ir"].append(f"{row['name']}: {rr:.2f} ({num(per['nbdpp'])} vs {num(per['libnbd'])})")
            p(f"| {row['name']} | {num(per['libnbd'])} | {num(per['nbdpp'])} | {num(per['nbdpp+writer'])} "
              f"| {rr:.2f} | {ratio(per['nbdpp+writer'], per['libnbd']):.2f} | {'met' if rr <= T_IR else 'missed'} |")
        p("")
        p("Where the instructions go (self Ir per request, by object; `libc mem*` = memset/memcpy/memmove):")
        p("")
        p("| workload | variant | " + " | ".join(CATEGORIES) + " | total |")
        p("|---|---|" + "---:|" * (len(CATEGORIES) + 1))
        for row in R["callgrind"]:
            for vname, _, _ in VARIANTS:
                r = row["runs"][vname]
                n = r["requests"]
                p(f"| {row['name']} | {vname} | " + " | ".join(num(r["by_object"].get(c, 0) / n)
                                                           for c in CATEGORIES) + f" | {num(r['ir'] / n)} |")
        p("")
    elif "callgrind_skipped" in R:
        p(f"callgrind skipped: {R['callgrind_skipped']}.")
        p("")
    if "syscalls" in R:
        p("### System calls and context switches per request (perf stat)")
        p("")
        p("| workload | syscalls: libnbd | nbdpp | nbdpp+writer | switches: libnbd | nbdpp | nbdpp+writer |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for row in R["syscalls"]:
            r = row["runs"]
            p(f"| {row['name']} | "
              + " | ".join(f"{max(0.0, r[v[0]]['syscalls_per_request']):.2f}" for v in VARIANTS) + " | "
              + " | ".join(f"{max(0.0, r[v[0]]['switches_per_request']):.2f}" for v in VARIANTS) + " |")
        p("")
    elif "syscalls_skipped" in R:
        p(f"syscall counts skipped: {R['syscalls_skipped']}.")
        p("")
    if any(counted.values()):
        p("### Targets")
        p("")

    def line(key, text):
        if counted[key] == 0:
            return
        ms = missed[key]
        status = "met" if not ms else f"missed on {len(ms)} of {counted[key]}: " + "; ".join(ms)
        p(f"- {text}: {status if not ms else status}" + ("" if ms else f" ({counted[key]} of {counted[key]})"))

    line("thr", f"throughput nbdpp/libnbd >= {T_THROUGHPUT} on every workload")
    line("thr_w", f"(for information) throughput nbdpp+writer/libnbd >= {T_THROUGHPUT}")
    line("rand", f"throughput nbdpp/libnbd >= {T_RANDOM64} on 4 KiB random I/O at depth 64")
    line("cpu", f"client CPU per GiB nbdpp/libnbd <= {T_CPU}")
    line("ir", f"instructions per request nbdpp/libnbd <= {T_IR}")
    line("raw", f"sequential 256 KiB read from nbdkit null >= {T_RAW:.0%} of the raw Unix-socket rate")
    line("hmem", f"resident memory per idle connected handle nbdpp/libnbd <= {T_HANDLE_MEMORY}")
    line("htime", f"time to connect and to close a handle (medians) nbdpp/libnbd <= {T_HANDLE_TIME}")
    return "\n".join(out) + "\n"


def tally(missed, counted, key, medians, most, label):
    """The nbdpp/libnbd ratio of medians, as printed, counted against a target of at most `most`."""
    rr = r2(ratio(medians["nbdpp"], medians["libnbd"]))
    counted[key] += 1
    if rr > most:
        missed[key].append(f"{label}: {rr:.2f}")
    return rr


def spread(on, off, more, less):
    """How the runs of ext-on compare with those of ext-off: `more` or `less` when their min-max
    ranges do not overlap, else within the run-to-run spread."""
    if min(on) > max(off):
        return more
    if max(on) < min(off):
        return less
    return "within spread"


def report_extended(R, p):
    names = [v[0] for v in EXT_VARIANTS]
    reps = R["reps"]

    def cells(runs, key, digits):
        """Median (min-max) of each variant, and the medians."""
        m, out = {}, []
        for v in names:
            vals = [r[key] for r in runs[v]]
            m[v] = med(vals)
            out.append(f"{num(m[v], digits)} ({num(min(vals), digits)}-{num(max(vals), digits)})")
        return m, out

    def ratios(m):
        return (f"{ratio(m['nbdpp-ext-on'], m['nbdpp-ext-off']):.2f} | {ratio(m['nbdpp-ext-off'], m['libnbd']):.2f} "
                f"| {ratio(m['nbdpp-ext-on'], m['libnbd']):.2f}")

    p("### Extended headers (nbd_ext_server)")
    p("")
    p("The same nbdbench workloads against nbd_ext_server (tests/extserver; in memory, prefilled with "
      "one sequential pass of random data; one thread per connection, which reads a request, "
      "answers it and reads the next) on a private Unix socket. `libnbd`: Debian's 1.14 (compact "
      "headers, structured replies); `nbdpp-ext-off`: ours with `nbd_set_request_extended_headers "
      "(h, false)` (compact headers, structured replies); `nbdpp-ext-on`: ours as it comes "
      "(extended headers). Every run reads back the mode its handle negotiated "
      "(`nbd_get_extended_headers_negotiated`, `nbd_get_structured_replies_negotiated`) and the "
      "run stops if it is not the one its variant claims. on vs off: whether the min-max ranges of "
      f"the ext-on and ext-off runs overlap (with {reps} run{'s' if reps != 1 else ''} each and no difference at all, two "
      f"ranges fall apart by chance alone {2 / math.comb(2 * reps, reps):.0%} of the time). "
      "Throughput in MiB/s (256 KiB requests) or IOPS (4 KiB); client CPU = user + sys seconds of "
      "nbdbench per GiB; server = nbd_ext_server's CPU seconds per GiB.")
    p("")
    p("| workload | unit | libnbd | nbdpp-ext-off | nbdpp-ext-on | on/off | off/libnbd | on/libnbd | on vs off |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for row in R["extended"]:
        runs = row["runs"]
        key, unit = ("iops", "IOPS") if arg_of(row["args"], "--bs") == "4K" else ("mib_per_s", "MiB/s")
        m, c = cells(runs, key, 0)
        sp = spread([r[key] for r in runs["nbdpp-ext-on"]], [r[key] for r in runs["nbdpp-ext-off"]],
                    "on faster", "on slower")
        p(f"| {row['name']} | {unit} | {' | '.join(c)} | {ratios(m)} | {sp} |")
    p("")
    p("| workload | client CPU s/GiB: libnbd | nbdpp-ext-off | nbdpp-ext-on | on/off | off/libnbd | on/libnbd "
      "| on vs off | server s/GiB: libnbd | nbdpp-ext-off | nbdpp-ext-on | server on/off |")
    p("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for row in R["extended"]:
        runs = row["runs"]
        m, c = cells(runs, "cpu_seconds_per_gib", 3)
        sp = spread([r["cpu_seconds_per_gib"] for r in runs["nbdpp-ext-on"]],
                    [r["cpu_seconds_per_gib"] for r in runs["nbdpp-ext-off"]], "on costlier", "on cheaper")
        srv = {v: med([r["server_cpu_seconds"] / (r["bytes"] / 2**30) for r in runs[v]]) for v in names}
        p(f"| {row['name']} | {' | '.join(c)} | {ratios(m)} | {sp} | "
          + " | ".join(f"{srv[v]:.3f}" for v in names)
          + f" | {ratio(srv['nbdpp-ext-on'], srv['nbdpp-ext-off']):.2f} |")
    p("")
    if "extended_callgrind" in R:
        p("Instructions per request of the client (callgrind, fixed request counts, the same "
          "nbd_ext_server; see the callgrind section for what is counted):")
        p("")
        p("| workload | libnbd | nbdpp-ext-off | nbdpp-ext-on | on - off | on/off | off/libnbd | on/libnbd |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in R["extended_callgrind"]:
            per = {v: row["runs"][v]["ir"] / row["runs"][v]["requests"] for v in names}
            p(f"| {row['name']} | " + " | ".join(num(per[v]) for v in names)
              + f" | {round(per['nbdpp-ext-on'] - per['nbdpp-ext-off']):+,} | {ratios(per)} |")
        p("")
    elif "extended_callgrind_skipped" in R:
        p(f"Instructions per request skipped: {R['extended_callgrind_skipped']}.")
        p("")


def report_handles(R, p, missed, counted):
    names = [v[0] for v in VARIANTS]

    def cell(rows, key, digits):
        vals = [r[key] for r in rows]
        return med(vals), f"{num(med(vals), digits)} ({num(min(vals), digits)}-{num(max(vals), digits)})"

    p("### Cost per connection (handlebench)")
    p("")
    p("N handles to one nbdkit (`memory 1M --threads 1`) on a Unix socket, connected one after "
      "another, each reading 4 KiB once and then idle, while a first handle, connected before the "
      "baseline, stays open (so what a process pays once is left out). Memory: growth of the "
      "process's anonymous resident memory (RssAnon: heap, stacks; not the shared code pages) "
      "per handle, and of malloc's bytes in use per handle (exact, where RssAnon moves a page at "
      "a time). Connect: nbd_create + nbd_connect_uri; close: nbd_close of a connected idle "
      "handle; each the median over the handles of a run.")
    p("")
    p("| handles | RSS KiB/handle: libnbd | nbdpp | nbdpp+writer | nbdpp/libnbd | writer/libnbd "
      "| heap bytes/handle: libnbd | nbdpp | nbdpp+writer |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in R["handles"]:
        m, cells = {}, []
        for v in names:
            m[v], c = cell(row["runs"][v], "rss_per_handle_kib", 1)
            cells.append(c)
        heap = [num(med([r["heap_per_handle_bytes"] for r in row["runs"][v]])) for v in names]
        rr = tally(missed, counted, "hmem", m, T_HANDLE_MEMORY, f"{row['handles']} handles")
        p(f"| {num(row['handles'])} | {' | '.join(cells)} | {rr:.2f} "
          f"| {ratio(m['nbdpp+writer'], m['libnbd']):.2f} | {' | '.join(heap)} |")
    p("")
    p("| handles | connect µs: libnbd | nbdpp | nbdpp+writer | nbdpp/libnbd "
      "| close µs: libnbd | nbdpp | nbdpp+writer | nbdpp/libnbd |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in R["handles"]:
        line = f"| {num(row['handles'])} |"
        for what in ("connect", "close"):
            m, cells = {}, []
            for v in names:
                m[v], c = cell(row["runs"][v], f"{what}_us_median", 0)
                cells.append(c)
            rr = tally(missed, counted, "htime", m, T_HANDLE_TIME, f"{what}, {row['handles']} handles")
            line += f" {' | '.join(cells)} | {rr:.2f} |"
        p(line)
    for note in R.get("handles_skipped", []):
        p(f"\nSkipped: {note}.")
    p("")
    if R.get("streams"):
        p("One handle streaming (nbdbench --rss): what the handle added to the anonymous resident "
          "memory once connected, at the peak of the request loop (sampled each time the requests "
          "in flight have been topped up) and after it (idle again; memory malloc or the buffer "
          "pool keeps for reuse still counts). The request buffers are allocated before the "
          "baseline. KiB, medians.")
        p("")
        p("| stream | server | connected: libnbd | nbdpp | nbdpp+writer | peak: libnbd | nbdpp "
          "| nbdpp+writer | after: libnbd | nbdpp | nbdpp+writer |")
        p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in R["streams"]:
            cells = []
            for key in ("rss_connected_kib", "rss_peak_kib", "rss_after_kib"):
                cells += [num(med([r[key] for r in row["runs"][v]])) for v in names]
            p(f"| {row['name']} | {row['server']} | {' | '.join(cells)} |")
        p("")


def write_markdown(path, text, markers):
    begin, end = f"<!-- {markers}:begin -->", f"<!-- {markers}:end -->"
    block = f"{begin}\n{text}{end}\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if begin in old and end in old:
            new = old[:old.index(begin)] + block + old[old.index(end) + len(end):].lstrip("\n")
        else:
            new = old.rstrip("\n") + "\n\n" + block
    else:
        new = block
    with open(path + ".tmp", "w") as f:
        f.write(new)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("build_dir")
    ap.add_argument("--set", choices=sorted(SETS), default="full")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--markdown", metavar="FILE", help="put the tables between the bench markers in FILE")
    ap.add_argument("--markers", metavar="NAME", default="bench",
                    help="with --markdown: between <!-- NAME:begin --> and <!-- NAME:end -->")
    ap.add_argument("--json", metavar="FILE", help="write every run's figures to FILE")
    ap.add_argument("--keep", metavar="DIR", help="keep callgrind output files in DIR")
    a = ap.parse_args()
    if a.reps < 1:
        ap.error("--reps must be at least 1")
    started = time.monotonic()
    # A thousand handles and their server's thousand connections need more descriptors than the
    # usual soft limit of 1024; nbdkit inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if not os.path.exists(os.path.join(DEBIAN_LIBDIR, "libnbd.so.0")):
        print("Debian's libnbd0 is not installed: nothing to compare with")
        sys.exit(77)
    if shutil.which("nbdkit") is None:
        print("nbdkit is not installed")
        sys.exit(77)
    b = Bench(a)
    for exe in (b.exe, b.sockrate, b.handlebench):
        if not os.access(exe, os.X_OK):
            sys.exit(f"run.py: {exe} is missing: build the tree first")
    # The extended section only where the set has workloads for it.
    sections = b.cfg.get("sections", [s for s in SECTIONS if s != "extended" or "extended" in b.cfg])
    if a.only:
        sections = [s for s in a.only.split(",") if s]
        bad = set(sections) - set(SECTIONS)
        if bad:
            ap.error(f"unknown sections: {', '.join(sorted(bad))}")
        if "sockrate" in sections and "workloads" not in sections:
            log("note: without the workloads section the raw rate is shown alone")
    with tempfile.TemporaryDirectory(prefix="nbdbench-") as tmp:
        b.keep = os.path.abspath(a.keep) if a.keep else tmp
        os.makedirs(b.keep, exist_ok=True)
        servers = {}
        try:
            size = b.cfg["export"]
            if sections != ["extended"]:      # which starts a server of its own
                servers["memory"] = Nbdkit(tmp, "memory", size)
                servers["null"] = Nbdkit(tmp, "null", size)
                # One sequential pass of random data, so reads and rewrites hit allocated memory.
                b.nbdbench("nbdpp", "ours", servers["memory"].uri,
                           ["--op", "write", "--bs", "1M", "--depth", "8", "--bytes", size])
            steps = [("workloads", lambda: b.workloads(servers)),
                     ("extended", lambda: b.extended(tmp)),
                     ("handles", lambda: b.handles(servers, tmp)),
                     ("nbdcopy", lambda: b.nbdcopy(servers, tmp)),
                     ("sockrate", b.sockrate_section),
                     ("callgrind", lambda: b.callgrind(servers)),
                     ("syscalls", lambda: b.syscalls(servers))]
            for name, fn in steps:
                if name in sections:
                    log(f"{name} ({time.monotonic() - started:.0f} s)")
                    fn()
                    b.loads.append((name, os.getloadavg()))
        finally:
            for s in servers.values():
                s.stop()
        text = report(b, started)
    print(text, end="")
    if a.markdown:
        write_markdown(a.markdown, text, a.markers)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(b.results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
