#!/usr/bin/env python3
# lint_man.py: checks the generated section 3 man pages.  Usage:
#   lint_man.py MANDIR [--header LIBNBD_H] [--jobs N]
# MANDIR is GEN_OUT/man (or its man3 directory); the header defaults to GEN_OUT/include/libnbd.h.
# Fails (exit 1) on: a call in the header without a page; a page that is not plain ASCII or lacks
# the expected sections; any `mandoc -T lint -W warning` message; any `groff -man -ww -z` warning;
# a page that does not render cleanly at 80 columns with man(1); a link to an nbd_* page that does
# not exist.  Exits 77 (ctest SKIP_RETURN_CODE) when mandoc, groff or man is missing.
import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
WIDTH = 80
# Links allowed although no page of ours provides them: the overview page (not written yet) and
# anything outside our nbd_* namespace, such as free(3).
EXTERNAL = {"libnbd"}
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "HANDLE STATE", "VERSION",
            "SEE ALSO"]      # in this order; ERRORS (between) only for calls that can fail
PROTO_RE = re.compile(r"^extern\b[^(;]*?\b(nbd_[a-z0-9_]+) \(", re.M)
# A reference NAME(SECTION), with optional font escapes around the name (\fBnbd_x\fR(3)) or as
# the arguments of .BR (".BR nbd_x (3),").
LINK_RE = re.compile(r"(?:\\f[BI])?\b([A-Za-z_][A-Za-z0-9_.+-]*)(?:\\f[RP])? ?\(([1-9][a-z]*)\)")
OVERSTRIKE_RE = re.compile(r".\x08")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", **kw)


def find_header(mandir, given):
    if given:
        return given
    for rel in ("../include/libnbd.h", "../../include/libnbd.h"):
        path = os.path.normpath(os.path.join(mandir, rel))
        if os.path.exists(path):
            return path
    return None


def check_source(path, text, pages):
    """Problems found by reading the roff source: encoding, structure, links."""
    problems = []
    stem = os.path.basename(path)[:-2]
    for n, line in enumerate(text.split("\n"), 1):
        if any(ord(c) > 126 or (ord(c) < 32 and c != "\t") for c in line):
            problems.append(f"line {n}: non-ASCII or control character (write \\[uXXXX])")
    if stem.startswith("nbd_"):
        th = re.search(r"^\.TH (\S+) 3 ", text, re.M)
        if not th or th.group(1) != stem.upper():
            problems.append(f".TH must name {stem.upper()} in section 3")
        found = re.findall(r"^\.SH (.+)$", text, re.M)
        wanted = [s for s in found if s in SECTIONS]
        if wanted != SECTIONS:
            problems.append(f"sections {wanted} are not {SECTIONS}")
        if not re.search(rf"^\.SH NAME\n{re.escape(stem)} \\- \S", text, re.M):
            problems.append(f"NAME must read '{stem} \\- SHORT DESCRIPTION'")
    for name, section in LINK_RE.findall(text):
        if name.startswith("nbd_") and (section != "3" or name not in pages):
            problems.append(f"link {name}({section}) has no page")
        elif name in EXTERNAL and section != "3":
            problems.append(f"link {name}({section}): expected section 3")
    see_also = re.search(r"^\.SH SEE ALSO\n((?:.*\n?)*?)(?=^\.SH |\Z)", text, re.M)
    if see_also:
        entries = [l for l in see_also.group(1).split("\n") if l.strip()]
        for i, entry in enumerate(entries):
            comma = "," if i + 1 < len(entries) else ""
            if not re.fullmatch(rf"\.BR \S+ \([1-9][a-z]*\){comma}", entry):
                problems.append(f"SEE ALSO entry {entry!r}: expected '.BR NAME (N){comma}'")
    return problems


def check_render(path):
    """Problems reported by groff and man(1) for one page."""
    problems = []
    r = run(["groff", "-man", "-ww", "-z", path])
    for line in (r.stderr or "").splitlines():
        problems.append(f"groff: {line}")
    if r.returncode != 0:
        problems.append(f"groff exited with {r.returncode}")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH=str(WIDTH), MANPAGER="cat", PAGER="cat")
    env.pop("MANOPT", None)
    r = run(["man", "--warnings=w", "-l", path], env=env)
    for line in (r.stderr or "").splitlines():
        problems.append(f"man: {line}")
    if r.returncode != 0:
        problems.append(f"man exited with {r.returncode}")
    rendered = ANSI_RE.sub("", OVERSTRIKE_RE.sub("", r.stdout or ""))
    if not rendered.strip():
        problems.append("man rendered nothing")
    for n, line in enumerate(rendered.split("\n"), 1):
        width = len(line.rstrip())
        if width > WIDTH:
            problems.append(f"rendered line {n} is {width} columns wide: {line.strip()[:60]}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description="Lint the generated section 3 man pages.")
    ap.add_argument("mandir", help="GEN_OUT/man or GEN_OUT/man/man3")
    ap.add_argument("--header", help="libnbd.h listing every call (default: MANDIR/../include)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)

    for tool in ("mandoc", "groff", "man"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed")
            return SKIP
    man3 = os.path.join(args.mandir, "man3")
    if not os.path.isdir(man3):
        man3 = args.mandir
    header = find_header(args.mandir, args.header)
    if not header:
        print(f"error: cannot find libnbd.h near {args.mandir}; pass --header", file=sys.stderr)
        return 1

    with open(header, encoding="utf-8") as f:
        calls = sorted(set(PROTO_RE.findall(f.read())))
    files = sorted(glob.glob(os.path.join(man3, "*.3")))
    pages = {os.path.basename(p)[:-2] for p in files}
    problems = {}      # page (or "") -> [message]

    def report(page, messages):
        if messages:
            problems.setdefault(page, []).extend(messages)

    if not calls:
        report("", [f"no nbd_* prototypes found in {header}"])
    for call in calls:
        if call not in pages:
            report(f"{call}.3", ["missing: the header declares this call but there is no page"])
    for page in sorted(pages - set(calls) - EXTERNAL):
        print(f"note: {page}.3 documents no call in {header} (stale?)")

    if files:
        r = run(["mandoc", "-T", "lint", "-W", "warning"] + files)
        for line in (r.stdout + r.stderr).splitlines():
            m = re.match(r"mandoc: ([^:]+):", line)
            report(os.path.basename(m.group(1)) if m else "", [line])
        if r.returncode != 0 and not (r.stdout + r.stderr).strip():
            report("", [f"mandoc exited with {r.returncode}"])

    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            report(os.path.basename(path), check_source(path, f.read(), pages))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for path, messages in zip(files, pool.map(check_render, files)):
            report(os.path.basename(path), messages)

    count = sum(len(v) for v in problems.values())
    for page in sorted(problems):
        for message in problems[page]:
            print(f"{page or man3}: {message}")
    print(f"lint_man: {len(files)} page(s), {len(calls)} call(s), {count} problem(s)")
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
