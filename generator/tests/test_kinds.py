# test_kinds.py: every language module covers every argument, closure argument and result kind
# of the model (or the kind lists NOT_COVERED names for it), and a missing entry stops generation
# naming the language and the kind.
import contextlib
import io
import os
import tempfile
import unittest
from unittest import mock

import generate
from nbdgen import lang_rust_async
from nbdgen.model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS, check_kind_tables

MINI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mini.yaml")


# The kind lists a language has no per-kind decisions for: nbd-tokio's methods take the nbd
# crate's parameters (closures whole) and discard the result of the nbd method they call.
NOT_COVERED = {lang_rust_async: {CLOSURE_ARG_KINDS.what, RET_KINDS.what}}


class KindCoverage(unittest.TestCase):
    def test_every_language_covers_every_kind_list(self):
        check_kind_tables(generate.LANGUAGES)
        for module in generate.LANGUAGES:
            covered = {t.kinds.what for t in module.KIND_TABLES}
            with self.subTest(language=module.__name__):
                self.assertEqual(covered, {k.what for k in (ARG_KINDS, CLOSURE_ARG_KINDS,
                                                             RET_KINDS)}
                                 - NOT_COVERED.get(module, set()))

    def test_a_missing_entry_fails_generation_by_name(self):
        for module in generate.LANGUAGES:
            for i, table in enumerate(module.KIND_TABLES):
                kind = table.kinds.names[-1]
                tables = list(module.KIND_TABLES)
                tables[i] = table.without(kind)
                err = io.StringIO()
                with self.subTest(language=module.__name__, table=table.table), \
                        mock.patch.object(module, "KIND_TABLES", tables), \
                        tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(err):
                    self.assertEqual(generate.main([MINI, tmp]), 1)
                    self.assertEqual(os.listdir(tmp), [])
                    self.assertIn(f"{table.language}: {table.table}: no entry for "
                                  f"{table.kinds.what} kind(s) {kind}", err.getvalue())

    def test_an_unknown_entry_is_refused(self):
        table = generate.LANGUAGES[0].KIND_TABLES[0]
        extra = table.without("")
        extra["blob"] = None
        with self.assertRaisesRegex(ValueError, "unknown argument kind"):
            extra.check()


if __name__ == "__main__":
    unittest.main()
