#!/usr/bin/env python3
# install_check.py: `cmake --install` of the docs component puts every generated page into
# PREFIX/MANDIR/man3, and man(1) finds nbd_pread(3) and the overview there, also as libnbd(3).
# Usage:
#   install_check.py BUILD_DIR PREFIX MANDIR GENERATED_MAN3 [--cmake CMAKE] [--extra-page PAGE ...]
# (--extra-page: a hand-written page, such as a binding's, that is installed too)
# PREFIX is emptied first.  Exits 77 (ctest SKIP_RETURN_CODE) when man(1) is missing.
import argparse
import glob
import os
import shutil
import subprocess
import sys

SKIP = 77


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("build_dir")
    ap.add_argument("prefix")
    ap.add_argument("mandir", help="CMAKE_INSTALL_MANDIR, relative to the prefix")
    ap.add_argument("generated", help="GEN_OUT/man/man3")
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--extra-page", action="append", default=[], metavar="PAGE")
    args = ap.parse_args(argv)
    if not shutil.which("man"):
        print("SKIP: man is not installed")
        return SKIP
    shutil.rmtree(args.prefix, ignore_errors=True)
    r = subprocess.run([args.cmake, "--install", args.build_dir, "--component", "docs",
                        "--prefix", args.prefix], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"cmake --install failed:\n{r.stdout}{r.stderr}")
        return 1
    mandir = os.path.join(args.prefix, args.mandir)
    installed = {os.path.basename(p) for p in glob.glob(os.path.join(mandir, "man3", "*.3"))}
    generated = {os.path.basename(p) for p in glob.glob(os.path.join(args.generated, "*.3"))}
    generated |= {os.path.basename(p) for p in args.extra_page}
    problems = [f"{p} was not installed" for p in sorted(generated - installed)]
    problems += [f"{p} was installed but is neither generated nor given" for p in
                 sorted(installed - generated)]
    env = dict(os.environ, MANPATH=mandir, LC_ALL="C.UTF-8")
    env.pop("MANOPT", None)
    # libnbd(3) is a link to the overview: man(1) resolves it to nbdpp.3.
    for page, target in (("nbd_pread", "nbd_pread"), ("nbdpp", "nbdpp"), ("libnbd", "nbdpp")):
        r = subprocess.run(["man", "-w", page], capture_output=True, text=True, env=env)
        found = r.stdout.strip()
        want = os.path.join(mandir, "man3", f"{target}.3")
        if r.returncode != 0 or os.path.realpath(found) != os.path.realpath(want):
            problems.append(f"MANPATH={mandir} man -w {page}: {found or r.stderr.strip()!r}, "
                            f"expected {want}")
    for p in problems:
        print(p)
    print(f"install_check: {len(installed)} page(s) installed in {mandir}/man3, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
