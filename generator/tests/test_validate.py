# test_validate.py: each validator rule rejects one broken variant of fixtures/mini.yaml, naming
# the right line.
import os
import tempfile
import unittest

from nbdgen.load import SpecError, load
from nbdgen.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
MINI = os.path.join(HERE, "fixtures", "mini.yaml")

# (rule, text to replace in mini.yaml, replacement, expected message, text on the reported line)
CASES = [
    ("unknown key", "    short: choose the mode\n", "    short: choose the mode\n    colour: red\n",
     "call set_mode: unknown key 'colour'", "colour: red"),
    ("duplicate key", "    short: read the mode\n", "    short: read the mode\n    short: again\n",
     "duplicate key 'short'", "short: again"),
    ("snake_case call name", "  get_mode:\n", "  getMode:\n",
     "call getMode: name must be snake_case", "getMode:"),
    ("since names a node", "  get_name:\n    since: TEST_1.1\n", "  get_name:\n    since: TEST_9.9\n",
     "call get_name: since 'TEST_9.9' is not a symbol version", "since: TEST_9.9"),
    ("frozen node membership", "  pread:\n    since: TEST_1.0\n", "  pread:\n    since: TEST_1.1\n",
     "call pread: must be in frozen node TEST_1.0, not TEST_1.1", "  pread:"),
    ("frozen node gains no member", "  get_name:\n    since: TEST_1.1\n",
     "  get_name:\n    since: TEST_1.0\n",
     "call get_name: frozen node TEST_1.0 does not contain nbd_get_name", "  get_name:"),
    ("cannot fail means no states", "    ret_type: mode\n    may_fail: false\n",
     "    ret_type: mode\n    may_fail: false\n    states: [created]\n",
     "call get_mode: a call that cannot fail may have no states", ("get_mode:", "may_fail: false")),
    ("return without an error value", "    ret_type: mode\n    may_fail: false\n",
     "    ret_type: mode\n    may_fail: false\n    args: [{name: p, kind: string}]\n",
     "call get_mode: a call that cannot fail may have no states or pointer",
     ("get_mode:", "may_fail: false")),
    ("uint return cannot fail", "    ret: string\n    locked: false\n", "    ret: uint\n    locked: false\n",
     "call get_name: ret uint has no error value, so may_fail must be false", "ret: uint"),
    ("libnbd_may_fail only for calls that cannot fail", "    ret: string\n    locked: false\n",
     "    ret: string\n    locked: false\n    libnbd_may_fail: true\n",
     "call get_name: libnbd_may_fail applies only to a call that cannot fail",
     "libnbd_may_fail: true"),
    ("pending must be able to fail", "    ret_type: mode\n    may_fail: false\n",
     "    ret_type: mode\n    may_fail: false\n    status: pending\n",
     "call get_mode: a pending call fails with ENOTSUP", "status: pending"),
    ("persistent buffer needs completion",
     "    optargs: [{name: completion_callback, kind: closure, closure: completion, lifetime: command},\n"
     "              {name: flags, kind: flags, type: cmd, allowed: []}]\n",
     "    optargs: [{name: flags, kind: flags, type: cmd, allowed: []}]\n",
     "call aio_pread: a persistent buffer needs a completion closure", "  aio_pread:"),
    ("one persistent buffer", "{name: offset, kind: uint64},\n           {name: chunk_callback",
     "{name: b2, kind: bytes_out, len: c2, persist: true},\n           {name: chunk_callback",
     "call aio_pread: at most one persistent buffer per call", "  aio_pread:"),
    ("see_also resolves", "    see_also: [get_mode]\n", "    see_also: [get_mood]\n",
     "call set_mode: see_also names unknown call 'get_mood'", "see_also: [get_mood]"),
    ("doc links resolve", "      Returns the mode.\n", "      Returns the mode, see nbd_get_mood.\n",
     "call get_mode: doc mentions unknown 'nbd_get_mood'", ("get_mode:", "    doc: |")),
    ("flags do not overlap", "values: {FUA: 0x01, DF: 0x04}", "values: {FUA: 0x01, DF: 0x01}",
     "flags cmd: DF = 0x1 overlaps another flag", "values: {FUA: 0x01, DF: 0x01}"),
    ("flags are single bits", "values: {FUA: 0x01, DF: 0x04}", "values: {FUA: 0x01, DF: 0x06}",
     "flags cmd: DF = 0x6 must be a single bit of a uint32", "values: {FUA: 0x01, DF: 0x06}"),
    ("enum values fit an int", "values: {IDLE: 0, BUSY: 1}", "values: {IDLE: 0, BUSY: 2147483648}",
     "enum mode: BUSY = 2147483648 does not fit in an int", "values: {IDLE: 0, BUSY"),
    ("known argument kinds",
     "{name: offset, kind: uint64}]\n    optargs: [{name: flags, kind: flags, type: cmd, allowed: [DF",
     "{name: offset, kind: uint128}]\n    optargs: [{name: flags, kind: flags, type: cmd, allowed: [DF",
     "call pread: argument 'offset' has unknown kind 'uint128'", "kind: uint128"),
    ("allowed flags exist", "allowed: [DF]", "allowed: [NO_HOLE]",
     "call pread: argument 'flags': 'NO_HOLE' is not a cmd flag", "allowed: [NO_HOLE]"),
    ("known states", "    states: [created]\n    short: choose",
     "    states: [sleeping]\n    short: choose",
     "call set_mode: unknown state 'sleeping'", "states: [sleeping]"),
    ("known closures", "closure: debug, lifetime: persistent", "closure: trace, lifetime: persistent",
     "call set_debug_callback: argument 'debug_callback': unknown closure 'trace'", "closure: trace"),
    ("closure lifetimes", "closure: debug, lifetime: persistent", "closure: debug, lifetime: forever",
     "call set_debug_callback: argument 'debug_callback': lifetime must be one of", "lifetime: forever"),
    ("short is a phrase", "    short: read data\n", "    short: Read data.\n",
     "call pread: 'short' must be a lowercase phrase", "short: Read data."),
    ("setting needs a plain setter or getter", "    ret: string\n    locked: false\n",
     "    ret: string\n    locked: false\n    setting: name\n    args: [{name: x, kind: int}]\n",
     "call get_name: 'setting' needs a setter", "setting: name"),
    ("argument names unique",
     "{name: offset, kind: uint64}]\n    optargs: [{name: flags, kind: flags, type: cmd, allowed: [DF",
     "{name: buf, kind: uint64}]\n    optargs: [{name: flags, kind: flags, type: cmd, allowed: [DF",
     "call pread: argument name 'buf' is used twice", "  pread:"),
    ("example uses its call", "        return nbd_pread (h, buf, sizeof buf, 0, 0) == -1;\n",
     "        return 0;\n", "call pread: 'example' does not use nbd_pread", "    example: |"),
    ("example names resolve", "        char buf[512];\n", "        char buf[512]; nbd_gone ();\n",
     "call pread: example mentions unknown 'nbd_gone'", "    example: |"),
    ("example fits the page", "        char buf[512];\n", "        char buf[512];" + " " * 60 + "\n",
     "call pread: example: line is 76 columns, more than 69", "char buf[512];"),
    ("errors are errno names", "      ERANGE: count", "      Erange: count",
     "call pread: errors: 'Erange' is not an errno name", "Erange: count"),
    ("errors are sentences", "ERANGE: count is more than the buf can take.",
     "ERANGE: count is more than the buf can take",
     "call pread: errors: ERANGE needs a sentence ending in a period", "ERANGE: count"),
    ("infallible calls list no errors", "    ret_type: mode\n    may_fail: false\n",
     "    ret_type: mode\n    may_fail: false\n    errors: {EIO: Never.}\n",
     "call get_mode: a call that cannot fail has no 'errors'", "errors: {EIO: Never.}"),
    ("overview file exists", "overview: mini-overview.md", "overview: missing.md",
     "spec: overview: cannot read missing.md", "overview: missing.md"),
]

# (rule, text to replace in mini-overview.md, replacement, expected message, text on its line)
OVERVIEW_CASES = [
    ("overview names resolve", "another, mentioning nbd_close", "another, mentioning nbd_gone",
     "mentions unknown 'nbd_gone'", "nbd_gone"),
    ("sections are upper case", "## DESCRIPTION\n", "## Description\n",
     "section title 'Description' must be upper case", "## Description"),
    ("NAME comes first", "## NAME\n", "## NAMES\n", "the first section must be ## NAME", None),
    ("fences are closed", "cc prog.c -lnbd\n```\n", "cc prog.c -lnbd\n",
     "code fence is not closed", "```"),
    ("comments are closed", "<!-- a comment inside a paragraph -->", "<!-- a comment",
     "comment is not closed with -->", "<!-- a comment"),
    ("backquotes pair up", "`a literal`,", "`a literal,", "unbalanced ` in this block",
     "A paragraph that mentions"),
    ("definitions follow a term", "LIBNBD_READ_DATA\n: a data chunk", ": a data chunk",
     "a ': ' definition needs a term line before it", ": a data chunk"),
    ("lists are not mixed", "2. the second step", "- the second step",
     "a list mixes - items and numbered items", "1. the first step"),
]


def copy_fixtures(tmp, replace=None):
    """Copies the fixture files into tmp, applying replace = {file: (old, new)}."""
    fixtures = os.path.join(HERE, "fixtures")
    for name in os.listdir(fixtures):
        with open(os.path.join(fixtures, name), encoding="utf-8") as f:
            text = f.read()
        if replace and name in replace:
            text = text.replace(*replace[name])
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write(text)


def line_of(text, marker):
    """Line number of the first line holding the marker; (anchor, needle) looks after anchor."""
    anchor, needle = marker if isinstance(marker, tuple) else ("", marker)
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if anchor in line)
    for number, line in enumerate(lines[start:], start + 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the fixture")


class ValidatorRules(unittest.TestCase):
    def test_mini_is_valid(self):
        api = validate(load(MINI), MINI)
        self.assertEqual([c.name for c in api.calls][:3], ["close", "create", "set_mode"])

    def check_cases(self, fixture, cases, default_line=None):
        """Each (rule, old, new, message, marker) of cases: the fixture file with old replaced by
        new fails validation with message on the line of marker (None: default_line)."""
        with open(os.path.join(HERE, "fixtures", fixture), encoding="utf-8") as f:
            original = f.read()
        for rule, old, new, message, marker in cases:
            with self.subTest(rule=rule):
                self.assertEqual(original.count(old), 1, f"{fixture} text for {rule!r} not unique")
                text = original.replace(old, new)
                with tempfile.TemporaryDirectory() as tmp:
                    copy_fixtures(tmp, {fixture: (old, new)})
                    path = os.path.join(tmp, "mini.yaml")
                    with self.assertRaises(SpecError) as ctx:
                        validate(load(path), path)
                line = line_of(text, marker) if marker else default_line
                expected = f"{fixture}:{line}: {message}"
                self.assertTrue(any(l.startswith(expected) for l in str(ctx.exception).split("\n")),
                                f"{rule}: wanted {expected!r} in:\n{ctx.exception}")

    def test_each_rule_rejects_its_fixture(self):
        self.check_cases("mini.yaml", CASES)

    def test_each_overview_rule_rejects_its_fixture(self):
        self.check_cases("mini-overview.md", OVERVIEW_CASES, default_line=1)

    def test_every_rule_has_a_case(self):
        rules = [c[0] for c in CASES + OVERVIEW_CASES]
        self.assertEqual(len(set(rules)), len(rules))


if __name__ == "__main__":
    unittest.main()
