#!/usr/bin/env python3
# compile_examples.py: every EXAMPLE program of api.yaml (the man pages show them verbatim)
# compiles without warnings against the generated libnbd.h and links against libnbd.so.  Usage:
#   compile_examples.py SPEC INCLUDE_DIR LIBRARY [--cc CC]
# Exits 1 naming the call whose example fails, 77 (ctest SKIP_RETURN_CODE) without a C compiler.
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "generator"))

from nbdgen.load import SpecError, load  # noqa: E402
from nbdgen.validate import validate  # noqa: E402

SKIP = 77
# Examples are short programs, so unused callback parameters are expected.
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("spec")
    ap.add_argument("include_dir")
    ap.add_argument("library", help="libnbd.so to link the examples against")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args(argv)
    if not shutil.which(args.cc):
        print(f"SKIP: no C compiler {args.cc}")
        return SKIP
    try:
        api = validate(load(args.spec), args.spec)
    except SpecError as e:
        print(e, file=sys.stderr)
        return 1
    examples = [c for c in api.calls if c.example]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for call in examples:
            src = os.path.join(tmp, f"{call.name}.c")
            with open(src, "w", encoding="utf-8") as f:
                f.write(call.example)
            r = subprocess.run([args.cc, *CFLAGS, "-I", args.include_dir, src, args.library,
                                "-o", os.path.join(tmp, call.name)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failed.append(call.name)
                print(f"{call.c_name}: the EXAMPLE does not compile:\n{r.stdout}{r.stderr}")
    print(f"compile_examples: {len(examples)} example(s), {len(failed)} failed")
    if not examples:
        print("error: api.yaml has no examples", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
