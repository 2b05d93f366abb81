# test_golden.py: the outputs rendered from fixtures/mini.yaml equal the committed golden files,
# so a generator change shows up as a reviewable diff.  Refresh with NBDGEN_UPDATE_GOLDEN=1.
import os
import tempfile
import unittest

import generate
from nbdgen.load import load
from nbdgen.model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS
from nbdgen.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
MINI = os.path.join(HERE, "fixtures", "mini.yaml")
GOLDEN = os.path.join(HERE, "golden")


def tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


class Golden(unittest.TestCase):
    def test_outputs_match_golden(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(generate.main([MINI, tmp]), 0)
            rendered = tree(tmp)
        if os.environ.get("NBDGEN_UPDATE_GOLDEN"):
            for rel, text in rendered.items():
                path = os.path.join(GOLDEN, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
        golden = tree(GOLDEN)
        self.assertEqual(sorted(rendered), sorted(golden))
        for rel in rendered:
            self.assertEqual(rendered[rel], golden[rel], f"{rel} differs from its golden copy")

    def test_mini_uses_every_kind(self):
        api = validate(load(MINI), MINI)
        used = {ARG_KINDS.what: {a.kind for c in api.calls for a in c.all_args},
                CLOSURE_ARG_KINDS.what: {a.kind for cl in api.closures for a in cl.args},
                RET_KINDS.what: {c.ret for c in api.calls}}
        for kinds in (ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS):
            with self.subTest(kinds=kinds.what):
                self.assertEqual(sorted(set(kinds) - used[kinds.what]), [])

    def test_unchanged_files_are_not_rewritten(self):
        with tempfile.TemporaryDirectory() as tmp:
            generate.main([MINI, tmp])
            path = os.path.join(tmp, "include", "libnbd.h")
            before = os.stat(path).st_mtime_ns
            os.utime(path, ns=(before - 10**9, before - 10**9))
            generate.main([MINI, tmp])
            self.assertEqual(os.stat(path).st_mtime_ns, before - 10**9)
            self.assertFalse(os.access(path, os.W_OK) and os.geteuid() != 0)


if __name__ == "__main__":
    unittest.main()
