# test_rust_async.py: lang_rust_async refuses, by name, an asynchronous call it cannot give an
# async form, and an argument that would clash with a local of the generated method; a call
# without a completion waits for the state _WAIT_FOR names; each argument's handling comes from
# the module's KindTable.
import os
import tempfile
import unittest

from nbdgen import lang_rust_async
from nbdgen.load import load
from nbdgen.validate import validate
from tests.test_validate import copy_fixtures

HERE = os.path.dirname(os.path.abspath(__file__))
MINI = os.path.join(HERE, "fixtures", "mini.yaml")

# A call added to mini.yaml before its last call (connect_vsock).
AIO_ABORT = """\
  aio_opt_abort:
    since: TEST_1.1
    ret: err
    states: [connected]
    short: end the session
    doc: |
      Ends it.

"""


def view_of(old="", new="", extra=""):
    """The async view of mini.yaml with old replaced by new and extra calls added."""
    with open(MINI, encoding="utf-8") as f:
        original = f.read()
    assert old in original, old
    text = original.replace(old, new).replace("  connect_vsock:\n", extra + "  connect_vsock:\n")
    with tempfile.TemporaryDirectory() as tmp:
        copy_fixtures(tmp, {"mini.yaml": (original, text)})
        spec = os.path.join(tmp, "mini.yaml")
        return lang_rust_async.view(validate(load(spec), spec))


class RustAsync(unittest.TestCase):
    def test_forms_of_each_call(self):
        methods = {m.name: m for m in view_of().methods}
        # A read with a persistent buffer gets a _vec form; a connect waits for its state.
        self.assertEqual(list(methods), ["pread", "connect", "pwrite"])
        self.assertEqual([m.vec and m.vec.name for m in methods.values()],
                         ["pread_vec", None, None])
        self.assertEqual((methods["pread"].vec.buf, methods["pread"].vec.len), ("buf", "count"))
        self.assertEqual(methods["connect"].until, "Connected")
        self.assertIsNone(methods["pread"].until)

    def test_handling_of_each_argument(self):
        pread = view_of().methods[0]
        self.assertEqual([(a.ident, a.handling) for a in pread.args], [
            ("buf", lang_rust_async.VEC_BUFFER), ("offset", lang_rust_async.PASSED),
            ("chunk_callback", lang_rust_async.PASSED),
            ("completion_callback", lang_rust_async.COMPLETION),
            ("flags", lang_rust_async.PASSED)])
        # The completion is made by the method: it is no parameter.
        self.assertEqual([a.param for a in pread.args][2:4],
                         ["chunk_callback: impl FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send "
                          "+ 'static", None])

    def test_call_without_completion_waits_for_its_state(self):
        methods = {m.name: m for m in view_of(extra=AIO_ABORT).methods}
        self.assertEqual(methods["opt_abort"].until, "Closed")

    def test_unknown_call_without_completion_is_refused_by_name(self):
        with self.assertRaisesRegex(ValueError, "call aio_opt_bogus: an asynchronous call without "
                                    "a completion closure has no async form"):
            view_of(extra=AIO_ABORT.replace("aio_opt_abort", "aio_opt_bogus"))

    def test_second_completion_is_refused_by_name(self):
        with self.assertRaisesRegex(ValueError, "call aio_pread: two arguments of completion "
                                    "handling have no async form"):
            view_of("{name: chunk_callback, kind: closure, closure: chunk,",
                    "{name: done_first, kind: closure, closure: completion,")

    def test_argument_clashing_with_a_local_is_refused(self):
        with self.assertRaisesRegex(ValueError, "call aio_pread: argument done clashes"):
            view_of("{name: offset, kind: uint64},\n           {name: chunk_callback",
                    "{name: done, kind: uint64},\n           {name: chunk_callback")


if __name__ == "__main__":
    unittest.main()
