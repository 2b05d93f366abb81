#!/usr/bin/env python3
# lint_man.py: checks the generated section 3 man pages.  Usage:
#   lint_man.py MANDIR [--header LIBNBD_H] [--overview NAME] [--extra-page PAGE ...] [--jobs N]
# MANDIR is GEN_OUT/man (or its man3 directory); the header defaults to GEN_OUT/include/libnbd.h.
# Fails (exit 1) on: a call in the header without a page; no overview page NAME.3 (default
# nbdpp), or one that lacks a required section; a page that is not plain ASCII or lacks the
# expected sections; any `mandoc -T lint -W warning` message; any `groff -man -ww -z` warning;
# a page that does not render cleanly at 80 columns with man(1); a reference NAME(N) in our
# namespace (nbd_*, nbd-*, nbdpp, libnbd) to a page that is neither generated nor given with
# --extra-page; a mention of another call that is not a link; a SEE ALSO entry that is not
# '.BR NAME (N),'.  Exits 77 (ctest SKIP_RETURN_CODE) when mandoc, groff or man is missing.
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
# Sections of a call's page, in this order; ERRORS only for calls that can fail and EXAMPLE only
# where api.yaml has one.
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "ERRORS", "HANDLE STATE", "VERSION",
            "EXAMPLE", "SEE ALSO"]
OPTIONAL_SECTIONS = {"ERRORS", "EXAMPLE"}
# The overview page must have these sections, in this order (others may come between).
OVERVIEW_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "HANDLES", "ERRORS", "CALLBACKS",
                     "ASYNCHRONOUS I/O", "CONCURRENT WRITER", "TLS", "URIS", "MULTI-CONN",
                     "BLOCK STATUS AND METADATA CONTEXTS", "DEBUGGING", "C++ API",
                     "OTHER LANGUAGES", "SEE ALSO"]
# References to names in our namespace must lead to a page we have; others (free(3), poll(2))
# belong to the system.
OURS_RE = re.compile(r"^(nbd_|nbd-|nbdpp|libnbd)")
# A mention of a call in the text: linked when "(3)" follows, possibly after a font change
# (\fBnbd_x\fR(3)) or as .BR arguments ("nbd_x (3)").
MENTION_RE = re.compile(r"(?:(?<=\\f[BIR])|(?<![\w\\&]))(nbd_[a-z0-9_]+)")
LINKED_AFTER_RE = re.compile(r"(?:\\f[RP])?(?:\\:)? ?\(3\)")
PROTO_RE = re.compile(r"^extern\b[^(;]*?\b(nbd_[a-z0-9_]+) \(", re.M)
# A reference NAME(SECTION), with optional font escapes around the name (\fBnbd_x\fR(3)) or as
# the arguments of .BR (".BR nbd_x (3),").  A name may hold escaped hyphens (nbd\-rust).
LINK_RE = re.compile(r"(?:\\f[BI]|(?<![\w\\-]))((?:[A-Za-z_])(?:[A-Za-z0-9_.+]|\\-)*)"
                     r"(?:\\f[RP])? ?\(([1-9][a-z]*)\)")
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


def prose_lines(text):
    """(number, line) of the lines a reader sees as running text: not comments, not verbatim
    (.nf to .fi) and not the SYNOPSIS."""
    out, verbatim, section = [], False, ""
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith(".SH "):
            section = line[4:].strip()
        if line.startswith(".nf"):
            verbatim = True
        elif line.startswith(".fi"):
            verbatim = False
        elif not verbatim and section != "SYNOPSIS" and not line.startswith(('.\\"', ".TH")):
            out.append((n, line))
    return out


def check_sections(stem, text, overview):
    """The .TH line, NAME line and section order of one page."""
    problems = []
    th = re.search(r"^\.TH (\S+) 3 ", text, re.M)
    if not th or th.group(1) != stem.upper():
        problems.append(f".TH must name {stem.upper()} in section 3")
    if not re.search(rf"^\.SH NAME\n{re.escape(stem)} \\- \S", text, re.M):
        problems.append(f"NAME must read '{stem} \\- SHORT DESCRIPTION'")
    found = re.findall(r"^\.SH (.+)$", text, re.M)
    if stem == overview:
        missing = [s for s in OVERVIEW_SECTIONS if s not in found]
        if missing:
            problems.append(f"overview lacks the sections {missing}")
        elif [s for s in found if s in OVERVIEW_SECTIONS] != OVERVIEW_SECTIONS:
            problems.append(f"overview sections {found} are not in the order {OVERVIEW_SECTIONS}")
    elif stem.startswith("nbd_"):
        required = [s for s in SECTIONS if s not in OPTIONAL_SECTIONS]
        if [s for s in found if s in required] != required or \
                [s for s in SECTIONS if s in found] != found:
            problems.append(f"sections {found} are not {SECTIONS} (ERRORS, EXAMPLE optional)")
    return problems


def check_source(path, text, pages, overview="nbdpp"):
    """Problems found by reading the roff source: encoding, structure, links.  pages holds every
    page name a link may point to."""
    problems = []
    stem = os.path.basename(path)[:-2]
    for n, line in enumerate(text.split("\n"), 1):
        if any(ord(c) > 126 or (ord(c) < 32 and c != "\t") for c in line):
            problems.append(f"line {n}: non-ASCII or control character (write \\[uXXXX])")
    if stem.startswith("nbd_") or stem == overview:
        problems += check_sections(stem, text, overview)
    for name, section in LINK_RE.findall(text):
        name = name.replace("\\-", "-")
        if OURS_RE.match(name) and (section != "3" or name not in pages):
            problems.append(f"link {name}({section}) has no page")
    for n, line in prose_lines(text):
        for m in MENTION_RE.finditer(line):
            name = m.group(1)
            if name in pages and name != stem and not LINKED_AFTER_RE.match(line, m.end()):
                problems.append(f"line {n}: {name} is mentioned but not linked as {name}(3)")
    see_also = re.search(r"^\.SH SEE ALSO\n((?:.*\n?)*?)(?=^\.SH |\Z)", text, re.M)
    if see_also:
        entries = [l for l in see_also.group(1).split("\n") if l.strip()]
        for i, entry in enumerate(entries):
            comma = "," if i + 1 < len(entries) else ""
            if not re.fullmatch(rf"\.BR \S+ \([1-9][a-z]*\){comma}", entry):
                problems.append(f"SEE ALSO entry {entry!r}: expected '.BR NAME (N){comma}'")
        if stem.startswith("nbd_") and overview in pages and \
                not any(e.startswith(f".BR {overview} (3)") for e in entries):
            problems.append(f"SEE ALSO does not name the overview page {overview}(3)")
    elif stem.startswith("nbd_") or stem == overview:
        problems.append("no SEE ALSO section")
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
    ap.add_argument("--overview", default="nbdpp", help="name of the overview page (default nbdpp)")
    ap.add_argument("--extra-page", action="append", default=[], metavar="PAGE",
                    help="a section 3 page outside MANDIR that links may point to (NAME.3)")
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
    targets = set(pages)
    problems = {}      # page (or "") -> [message]

    def report(page, messages):
        if messages:
            problems.setdefault(page, []).extend(messages)

    for extra in args.extra_page:
        if not extra.endswith(".3") or not os.path.isfile(extra):
            report("", [f"--extra-page {extra}: not an existing NAME.3 file"])
        targets.add(os.path.basename(extra)[:-2])
    if not calls:
        report("", [f"no nbd_* prototypes found in {header}"])
    for call in calls:
        if call not in pages:
            report(f"{call}.3", ["missing: the header declares this call but there is no page"])
    if args.overview not in pages:
        report(f"{args.overview}.3", ["missing: there is no overview page"])
    for page in sorted(pages - set(calls) - {args.overview}):
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
            report(os.path.basename(path), check_source(path, f.read(), targets, args.overview))
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
