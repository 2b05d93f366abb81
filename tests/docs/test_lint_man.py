# test_lint_man.py: lint_man.py fails on each kind of problem it exists to catch.  The pages of
# generator/tests/fixtures/mini.yaml (plus a hand-written overview holding every required
# section) pass; each case breaks one thing and expects exit 1 with a message naming it.
#   python3 -m unittest discover -s tests/docs -p 'test_*.py'
import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "generator"))

import generate  # noqa: E402
import lint_man  # noqa: E402

MINI = os.path.join(ROOT, "generator", "tests", "fixtures", "mini.yaml")
TOOLS = ("mandoc", "groff", "man")


def overview(sections):
    """A small overview page named mini with the given sections."""
    lines = ['.TH MINI 3 "2026-01-01" "mini" "mini C API"']
    for s in sections:
        lines.append(f".SH {s}")
        if s == "NAME":
            lines.append("mini \\- test overview")
        elif s == "SEE ALSO":
            lines.append(".BR nbd_pread (3)")
        else:
            lines.append("Text about \\fBnbd_close\\fR(3).")
    return "\n".join(lines) + "\n"


# (case, page to edit, old text, new text (None deletes the page), expected message)
CASES = [
    ("call without a page", "nbd_get_name.3", None, None, "missing: the header declares"),
    ("no overview page", "mini.3", None, None, "missing: there is no overview page"),
    ("overview lacks a section", "mini.3", ".SH TLS\n", ".SS TLS\n",
     "overview lacks the sections ['TLS']"),
    ("mandoc warning", "nbd_pread.3", ".SH DESCRIPTION\n", ".SH DESCRIPTION\n.PP\n",
     "skipping paragraph macro"),
    ("groff warning", "nbd_pread.3", "Reads into", "\\fXReads into", "groff:"),
    ("broken inline link", "nbd_pread.3", "Reads into", "See \\fBnbd_gone\\fR(3).\nReads into",
     "link nbd_gone(3) has no page"),
    ("broken link to the overview", "nbd_pread.3", "Reads into",
     "See \\fBnbd\\-rust\\fR(3).\nReads into", "link nbd-rust(3) has no page"),
    ("mention not linked", "nbd_pread.3", "Reads into", "See \\fBnbd_close\\fR.\nReads into",
     "nbd_close is mentioned but not linked"),
    ("broken SEE ALSO", "nbd_pread.3", ".BR nbd_aio_pread (3),", ".BR nbd_aio_gone (3),",
     "link nbd_aio_gone(3) has no page"),
    ("SEE ALSO without the overview", "nbd_pread.3", ".BR nbd_aio_pread (3),\n.BR mini (3)",
     ".BR nbd_aio_pread (3)", "SEE ALSO does not name the overview page"),
    ("section missing", "nbd_pread.3", ".SH HANDLE STATE\n", ".SS HANDLE STATE\n",
     "are not ['NAME'"),
    ("too wide when rendered", "nbd_pread.3", ".fi\n.SH DESCRIPTION",
     "x" * 90 + "\n.fi\n.SH DESCRIPTION", "columns wide"),
]


@unittest.skipUnless(all(shutil.which(t) for t in TOOLS), "needs mandoc, groff and man")
class LintMan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.gen = os.path.join(cls.tmp.name, "gen")
        with contextlib.redirect_stdout(io.StringIO()):
            assert generate.main([MINI, cls.gen]) == 0

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def tree(self):
        """A fresh copy of the generated pages with the full overview; returns its man3 dir."""
        root = tempfile.mkdtemp(dir=self.tmp.name)
        man3 = os.path.join(root, "man", "man3")
        shutil.copytree(os.path.join(self.gen, "man", "man3"), man3)
        with open(os.path.join(man3, "mini.3"), "w", encoding="utf-8") as f:
            f.write(overview(lint_man.OVERVIEW_SECTIONS))
        return man3

    def lint(self, man3):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = lint_man.main([os.path.dirname(man3), "--overview", "mini", "--jobs", "2",
                                "--header", os.path.join(self.gen, "include", "libnbd.h")])
        return rc, out.getvalue()

    def test_clean_pages_pass(self):
        rc, out = self.lint(self.tree())
        self.assertEqual(rc, 0, out)

    def test_each_problem_fails(self):
        for case, page, old, new, message in CASES:
            with self.subTest(case=case):
                man3 = self.tree()
                path = os.path.join(man3, page)
                if old is None:
                    os.remove(path)
                else:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                    self.assertEqual(text.count(old), 1, f"{case}: {old!r} not once in {page}")
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(text.replace(old, new))
                rc, out = self.lint(man3)
                self.assertEqual(rc, 1, f"{case}: lint passed:\n{out}")
                self.assertIn(message, out, case)

    def test_extra_page_satisfies_a_link(self):
        man3 = self.tree()
        path = os.path.join(man3, "nbd_pread.3")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("Reads into", "See \\fBnbd\\-rust\\fR(3).\nReads into", 1))
        extra = os.path.join(self.tmp.name, "nbd-rust.3")
        with open(extra, "w", encoding="utf-8") as f:
            f.write(".TH NBD-RUST 3\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = lint_man.main([os.path.dirname(man3), "--overview", "mini", "--extra-page", extra,
                                "--header", os.path.join(self.gen, "include", "libnbd.h")])
        self.assertEqual(rc, 0, out.getvalue())


if __name__ == "__main__":
    unittest.main()
