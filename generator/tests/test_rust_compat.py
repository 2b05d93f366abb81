# test_rust_compat.py: the libnbd compatibility crate, as lang_rust_compat renders it from the
# real api.yaml, has every enum, flag set, constant and method signature of libnbd's own crate
# (abi/libnbd-rust-1.22.txt), and the nbd crate has libnbd's type names as aliases.
import os
import re
import unittest

from nbdgen import lang_rust, lang_rust_compat
from nbdgen.load import load
from nbdgen.validate import validate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
SPEC = os.path.join(ROOT, "api.yaml")
REFERENCE = os.path.join(ROOT, "generator", "abi", "libnbd-rust-1.22.txt")


def _params(text):
    """Splits a parameter list at its top-level commas; each parameter's type, name dropped."""
    out, depth, cur = [], 0, ""
    for ch in text.replace("->", "~"):  # the > of -> closes nothing
        depth += ch in "(<[" and 1 or 0
        depth -= ch in ")>]" and 1 or 0
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    out = [p.strip().replace("~", "->") for p in out if p.strip()]
    return [p.split(":", 1)[1].strip() if ":" in p and not p.startswith("&") else p for p in out]


def signature_line(sig_lines):
    """`fn NAME(TYPE, ...) -> RET` from a generated method's signature lines."""
    text = " ".join(" ".join(sig_lines).split())
    text = re.sub(r"([(<]) ", r"\1", re.sub(r",? ([)>])", r"\1", text))
    m = re.match(r"pub fn (\w+)\((.*)\)(?: -> (.*?))? \{$", text)
    return f"fn {m.group(1)}({', '.join(_params(m.group(2)))}) -> {m.group(3) or '()'}"


class CompatApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = validate(load(SPEC), SPEC)
        cls.view = lang_rust_compat.view(cls.api)
        with open(REFERENCE, encoding="utf-8") as f:
            cls.reference = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]

    def ours(self):
        lines = set()
        for vs in self.api.enums:
            lines.add(f"enum {lang_rust.libnbd_type_name(vs)}: " + " ".join(
                f"{lang_rust._pascal(v.name)}={v.value}" for v in vs.values))
        for vs in self.api.flags:
            lines.add(f"flags {lang_rust.libnbd_type_name(vs)}: " + " ".join(
                f"{v.name}={v.value}" for v in vs.values))
        for c in self.view.constants:
            lines.add(f"const {c.name}: {c.type} = {c.value}")
        for m in self.view.methods:
            lines.add(signature_line(lang_rust.HELPERS["wrap"](
                "pub fn " + m.ident, m.receiver + m.params, 4, m.tail)))
        return lines

    def test_every_name_and_signature_of_libnbds_crate(self):
        ours = self.ours()
        missing = [l for l in self.reference if l not in ours]
        self.assertEqual(missing, [], "lines of libnbd-rust-1.22.txt the libnbd crate lacks")
        self.assertGreater(len(self.reference), 150)

    def test_signature_parsing(self):
        sig = ["    pub fn aio_zero(", "        &self,", "        count: u64,",
               "        completion: Option<impl FnMut(&mut c_int) -> c_int + Send>,",
               "    ) -> Result<Cookie> {"]
        self.assertEqual(signature_line(sig),
                         "fn aio_zero(&self, u64, Option<impl FnMut(&mut c_int) -> c_int + Send>)"
                         " -> Result<Cookie>")

    def test_nbd_crate_aliases_libnbds_type_names(self):
        view = lang_rust.view(self.api)
        aliases = {t.alias: t.name for t in view.enums + view.flags if t.alias}
        self.assertEqual(aliases, {"Size": "BlockSize", "CmdFlag": "CmdFlags",
                                   "HandshakeFlag": "HandshakeFlags", "Strict": "StrictFlags",
                                   "AllowTransport": "AllowTransportFlags",
                                   "Shutdown": "ShutdownFlags"})
        self.assertEqual(set(self.view.types), set(aliases) | {"Tls"})

    def test_a_kind_without_a_form_fails_generation(self):
        with self.assertRaisesRegex(ValueError, "lang_rust_compat: method arguments: no entry "
                                                "for argument kind.s. fd"):
            lang_rust_compat._ARG.without("fd").check()

    def test_only_libnbds_calls(self):
        names = {m.name for m in self.view.methods}
        self.assertIn("get_version_extra", names)          # LIBNBD_1.24
        self.assertNotIn("set_concurrent_writer", names)   # NBDPP_1.0: the nbd crate has it
        self.assertNotIn("create", names)


if __name__ == "__main__":
    unittest.main()
