#!/usr/bin/env python3
"""Runs nbdbench on Debian's libnbd and on ours in the same invocation, alternating, and prints a
Markdown table of medians (min-max) with ratios ours/libnbd.

Usage: bench/run.py BUILD_DIR [--set writer|smoke] [--reps N]

Each workload runs against nbdkit's memory plugin on a private Unix socket, started here and
prefilled with one sequential write pass so reads and rewrites hit allocated memory.  The
libraries are chosen with LD_LIBRARY_PATH (nbdbench has no RPATH) and each run's JSON says which
one it loaded, which is checked.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

DEBIAN_LIBDIR = "/usr/lib/x86_64-linux-gnu"
EXPORT_SIZE = "1G"

# name, nbdbench arguments.  Sizes are picked so each run takes roughly half a second here.
SETS = {
    "writer": [
        ("256 KiB seq write, depth 16", ["--op", "write", "--bs", "256K", "--depth", "16", "--bytes", "2G"]),
        ("256 KiB seq write, depth 64", ["--op", "write", "--bs", "256K", "--depth", "64", "--bytes", "2G"]),
        ("256 KiB mixed r/w, depth 16", ["--op", "mixed", "--bs", "256K", "--depth", "16", "--bytes", "2G"]),
        ("256 KiB mixed r/w, depth 64", ["--op", "mixed", "--bs", "256K", "--depth", "64", "--bytes", "2G"]),
        ("4 KiB random write, depth 64", ["--op", "randwrite", "--bs", "4K", "--depth", "64", "--requests", "200000"]),
    ],
    "smoke": [
        ("256 KiB seq write, depth 4", ["--op", "write", "--bs", "256K", "--depth", "4", "--bytes", "4M"]),
        ("4 KiB random read, depth 8", ["--op", "randread", "--bs", "4K", "--depth", "8", "--requests", "256"]),
    ],
}

# variant name, library directory (None: ours), extra nbdbench arguments.
VARIANTS = [
    ("libnbd", DEBIAN_LIBDIR, []),
    ("nbdpp", None, []),
    ("nbdpp+writer", None, ["--writer"]),
]


def start_nbdkit(tmp):
    sock = os.path.join(tmp, "sock")
    pidfile = os.path.join(tmp, "pid")
    subprocess.run(["nbdkit", "-U", sock, "-P", pidfile, "memory", EXPORT_SIZE], check=True)
    for _ in range(100):
        if os.path.exists(pidfile) and os.path.getsize(pidfile) > 0:
            break
        time.sleep(0.05)
    with open(pidfile) as f:
        pid = int(f.read())
    return pid, "nbd+unix:///?socket=" + sock


def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_bench(exe, libdir, uri, args, server_pid=None):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    before = process_cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run([exe, "--uri", uri] + args, env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    r = json.loads(out)
    if server_pid:
        r["server_cpu_seconds"] = process_cpu_seconds(server_pid) - before
    return r


def fmt(values, scale):
    med = statistics.median(values) * scale
    return f"{med:,.0f} ({min(values) * scale:,.0f}-{max(values) * scale:,.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("--set", choices=sorted(SETS), default="writer")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    if not os.path.exists(os.path.join(DEBIAN_LIBDIR, "libnbd.so.0")):
        print("Debian's libnbd0 is not installed: nothing to compare with")
        sys.exit(77)
    exe = os.path.join(build, "bench", "nbdbench")
    with tempfile.TemporaryDirectory() as tmp:
        pid, uri = start_nbdkit(tmp)
        try:
            run_bench(exe, build, uri, ["--op", "write", "--bs", "1M", "--depth", "8", "--bytes", EXPORT_SIZE])
            rows = []
            for name, args in SETS[a.set]:
                results = {v[0]: [] for v in VARIANTS}
                for _ in range(a.reps):
                    for vname, libdir, extra in VARIANTS:  # alternate, so drift hits all alike
                        r = run_bench(exe, libdir or build, uri, args + extra, pid)
                        want = "libnbd" if vname == "libnbd" else "nbdpp"
                        if not r["library"].startswith(want + " "):
                            sys.exit(f"{vname}: loaded {r['library']}, not {want}")
                        results[vname].append(r)
                rows.append((name, args, results))
        finally:
            os.kill(pid, signal.SIGTERM)
    print(f"| workload | {' | '.join(v[0] for v in VARIANTS)} | "
          + " | ".join(f"{v[0]}/libnbd" for v in VARIANTS[1:]) + " |")
    print("|---" * (1 + 2 * len(VARIANTS) - 1) + "|")
    for name, args, results in rows:
        small = "4K" in args
        unit_scale = (lambda r: r["requests"] / r["seconds"]) if small else (lambda r: r["bytes"] / r["seconds"] / 2**20)
        cells, medians = [], {}
        for vname, _, _ in VARIANTS:
            vals = [unit_scale(r) for r in results[vname]]
            medians[vname] = statistics.median(vals)
            cells.append(fmt(vals, 1.0) + (" IOPS" if small else " MiB/s"))
        ratios = [f"{medians[v[0]] / medians['libnbd']:.2f}" for v in VARIANTS[1:]]
        print(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    # Where the CPU went: the client's and the server's seconds per GiB, and how many of the
    # machine's cores the pair kept busy (os.cpu_count() is the ceiling).
    print()
    print(f"CPU per GiB moved, client + server (cores busy; this machine has {os.cpu_count()}):")
    print()
    print(f"| workload | {' | '.join(v[0] for v in VARIANTS)} |")
    print("|---" * (1 + len(VARIANTS)) + "|")
    for name, args, results in rows:
        cells = []
        for vname, _, _ in VARIANTS:
            rs = results[vname]
            gib = statistics.median(r["bytes"] for r in rs) / 2**30
            client = statistics.median(r["cpu_seconds"] for r in rs) / gib
            server = statistics.median(r["server_cpu_seconds"] for r in rs) / gib
            busy = statistics.median((r["cpu_seconds"] + r["server_cpu_seconds"]) / r["seconds"] for r in rs)
            cells.append(f"{client:.2f} + {server:.2f} s ({busy:.1f})")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
