#!/usr/bin/env python3
# generate.py: api.yaml -> every generated surface of nbdpp.  Usage:
#   generate.py SPEC OUTDIR [--only TARGET ...]     render (TARGETS: see outputs() below)
#   generate.py SPEC --check                         validate only
# Load (nbdgen/load.py) -> check that every language's per-kind tables cover the model's kind
# lists (nbdgen/model.py) -> validate into the model (nbdgen/validate.py) -> render each target's
# templates with that language's own helpers (nbdgen/lang_*.py HELPERS).  Writes a file only when
# its content changes, and makes generated files read-only.
import argparse
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jinja2  # noqa: E402

from nbdgen import (lang_c, lang_cpp, lang_man, lang_ocaml, lang_rust,  # noqa: E402
                    lang_rust_async, lang_rust_compat)
from nbdgen.load import SpecError, load  # noqa: E402
from nbdgen.model import KindCoverageError, check_kind_tables  # noqa: E402
from nbdgen.validate import validate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BANNER = "GENERATED from api.yaml by generator/generate.py: DO NOT EDIT."
# The language modules; each has KIND_TABLES, its per-kind tables checked before rendering.
# (lang_rust_async's covers argument kinds only: nbd-tokio's methods take the nbd crate's
# parameters, lang_rust's, and discard the result of the nbd method they call.)
LANGUAGES = (lang_c, lang_cpp, lang_man, lang_rust, lang_rust_async, lang_rust_compat,
             lang_ocaml)
# The language whose helpers render each target's templates (lang_rust's serve the nbd crate and
# the libnbd compatibility crate) ...
TARGETS = {"c": lang_c, "cpp": lang_cpp, "man": lang_man, "rust": lang_rust, "ocaml": lang_ocaml}
# ... but for the templates of a language with helpers of its own (nbd-tokio's, in target rust).
OWN_HELPERS = {"rust/async_api.rs.j2": lang_rust_async}


def environment(language):
    """The Jinja environment of one language: its module's HELPERS (the functions its templates
    call) and FILTERS are the only names there, so no template sees another language's."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(language.HELPERS)
    env.filters.update(getattr(language, "FILTERS", {}))
    return env


def write_if_changed(path, text):
    """Returns True when the file was (re)written."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(tmp, path)
    return True


def remove_stale_pages(outdir, rendered):
    """Deletes man pages of calls that left the spec, so the build tree mirrors api.yaml."""
    mandir = os.path.join(outdir, "man", "man3")
    if not os.path.isdir(mandir):
        return
    for name in os.listdir(mandir):
        if os.path.join("man", "man3", name) not in rendered:
            os.remove(os.path.join(mandir, name))


def outputs(api):
    """(target, relative path, template, extra context) for every generated file."""
    common = {
        "no_handle_calls": [c for c in api.calls if c.handle != "required"],
        "handle_calls": [c for c in api.calls if c.handle == "required"],
        "optional_closures": sorted({a.closure for c in api.calls for a in c.closures if a.optional}),
    }
    yield "c", "include/libnbd.h", "libnbd.h.j2", common
    yield "c", "src/api.cpp", "api.cpp.j2", common
    yield "c", "src/unlocked.hpp", "unlocked.hpp.j2", common
    yield "c", "src/settings.cpp", "settings.cpp.j2", common
    yield "c", "libnbd.syms", "libnbd.syms.j2", common
    yield "cpp", "include/nbd/nbd.hpp", "nbd.hpp.j2", common
    for call in api.calls:
        yield "man", f"man/man3/{call.c_name}.3", "man3.j2", {"call": call}
    if lang_man.overview_page(api):
        yield "man", f"man/man3/{lang_man.overview_page(api)}.3", "overview.j2", {}
    # The bindings' generated files go under rust/ and ocaml/ (see bindings/).
    yield from lang_rust.outputs(api, common)
    yield from lang_rust_async.outputs(api, common)
    yield from lang_rust_compat.outputs(api, common)
    yield from lang_ocaml.outputs(api, common)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("spec")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--check", action="store_true", help="validate the spec and exit")
    ap.add_argument("--only", action="append", help="render only these targets (c, cpp, man, rust, ocaml)")
    ap.add_argument("--stamp", help="touch this file after a successful run")
    args = ap.parse_args(argv)
    try:
        check_kind_tables(LANGUAGES)
        api = validate(load(args.spec), args.spec)
    except (KindCoverageError, SpecError) as e:
        print(e, file=sys.stderr)
        return 1
    if args.check:
        return 0
    if not args.outdir:
        ap.error("OUTDIR is required unless --check is given")
    envs = {language: environment(language)
            for language in set(TARGETS.values()) | set(OWN_HELPERS.values())}
    written, rendered = 0, set()
    for target, rel, template, extra in outputs(api):
        if args.only and target not in args.only:
            continue
        env = envs[OWN_HELPERS.get(template, TARGETS[target])]
        text = env.get_template(template).render(api=api, banner=BANNER, **extra)
        written += write_if_changed(os.path.join(args.outdir, rel), text)
        rendered.add(rel)
    if not args.only or "man" in args.only:
        remove_stale_pages(args.outdir, rendered)
    if args.stamp:
        with open(args.stamp, "w", encoding="utf-8") as f:
            f.write("ok\n")
    print(f"generate.py: {written} file(s) updated in {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
