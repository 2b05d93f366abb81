# test_man.py: the man page text conversion in nbdgen/lang_man.py: escaping, linking of call
# names, and the overview markup (markdown.markup_blocks + lang_man.inline_markup).
import os
import unittest

from nbdgen import lang_man
from nbdgen.load import load
from nbdgen.markdown import MarkupError, markup_blocks
from nbdgen.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
MINI = os.path.join(HERE, "fixtures", "mini.yaml")


class Linking(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = validate(load(MINI), MINI)

    def fill(self, text, page="nbd_close"):
        return "\n".join(lang_man._fill(text, self.api, page))

    def test_calls_become_links(self):
        self.assertEqual(self.fill("See nbd_pread, nbd_get_mode() and nbd_set_mode(3)."),
                         "See \\fBnbd_pread\\fR(3), \\fBnbd_get_mode\\fR(3) and "
                         "\\fBnbd_set_mode\\fR(3).")

    def test_own_name_and_non_calls_are_only_bold(self):
        self.assertEqual(self.fill("nbd_close frees nbd_chunk_callback and LIBNBD_MODE_BUSY."),
                         "\\fBnbd_close\\fR frees \\fBnbd_chunk_callback\\fR and "
                         "\\fBLIBNBD_MODE_BUSY\\fR.")

    def test_symbol_versions_stay_plain(self):
        self.assertEqual(self.fill("New in LIBNBD_1.4."), "New in LIBNBD_1.4.")

    def test_no_break_point_beside_punctuation(self):
        self.assertEqual(self.fill("(nbd_set_debug_callback)."),
                         "(\\fBnbd_set_debug_callback\\fR(3)).")

    def test_escaping(self):
        self.assertEqual(lang_man.roff_escape(".x \\ -y"), "\\&.x \\e \\-y")
        self.assertEqual(self.fill("A line - with \\ and a dot:\n.start"),
                         "A line \\- with \\e and a dot: \\&.start")

    def test_overview_inline_markup(self):
        text = lang_man.inline_markup(
            "`lit` *em* poll(2) nbd-rust(3) `nbd_pread` `nbd_pread (h)` nbd_close(3)")
        self.assertEqual(lang_man._markup(lang_man.roff_escape(text), self.api, "mini"),
                         "\\fBlit\\fR \\fIem\\fR \\fBpoll\\fR(2) \\fBnbd\\-rust\\fR(3) "
                         "\\fBnbd_pread\\fR(3) \\fBn\\&bd_pread (h)\\fR \\fBnbd_close\\fR(3)")

    def test_overview_see_also(self):
        self.assertEqual(lang_man._see_also_refs("nbd_pread(3), poll(2), nbd_close."),
                         [("nbd_pread", "3"), ("poll", "2"), ("nbd_close", "3")])
        with self.assertRaises(ValueError):
            lang_man._see_also_refs("nbd_pread(3) and more")

    def test_overview_sections_render(self):
        sections = lang_man.overview_sections(self.api)
        titles = [t for t, _, _ in sections]
        self.assertEqual(titles, ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"])
        self.assertEqual(sections[-1], ("SEE ALSO", "refs",
                                        ["nbd_pread (3),", "nbd_close (3),", "poll (2)"]))
        kinds = [k for _, blocks in sections[2][2] for k, _ in blocks]
        self.assertEqual(kinds, ["para", "list", "steps", "terms"])


class Markup(unittest.TestCase):
    def test_blocks(self):
        text = ("<!-- c -->\n## NAME\nx - y\n\n## MORE\n### Sub\na\nb\n\n- i\n  j\n- k\n\n"
                "1. s\n2. t\n\nterm\n: def\n  more\n\n```\n  code\n\nx\n```\n")
        self.assertEqual(markup_blocks(text), [
            ("sh", "NAME", 2), ("para", "x - y", 3), ("sh", "MORE", 5), ("ss", "Sub", 6),
            ("para", "a b", 7), ("list", ["i j", "k"], 10), ("steps", [("1", "s"), ("2", "t")], 14),
            ("tags", [("term", "def more")], 17), ("code", ["  code", "", "x"], 21)])

    def test_comment_lines_do_not_split_paragraphs(self):
        self.assertEqual(markup_blocks("## A\none\n<!-- note -->\ntwo\n"),
                         [("sh", "A", 1), ("para", "one two", 2)])

    def test_errors_name_their_line(self):
        for text, line in [("# NAME\n", 1), ("## NAME\n```\nx\n", 2), ("x\n## NAME\n", 1),
                           ("## NAME\n- a\nb\n", 3)]:
            with self.subTest(text=text), self.assertRaises(MarkupError) as ctx:
                markup_blocks(text)
            self.assertEqual(ctx.exception.line, line)


if __name__ == "__main__":
    unittest.main()
