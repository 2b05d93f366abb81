#!/usr/bin/env python3
# gen_misuse_calls.py: api.yaml -> misuse_calls.hpp, the table the misuse suite is driven by.
#
# Usage: gen_misuse_calls.py SPEC OUTPUT
#
# For every call in the validated model (generator/nbdgen, the same view the library's entry
# points are generated from) the table holds its states, return kind and arguments, and an
# invoker that calls the C entry point with arguments taken from a misuse::Args, so a call added
# to api.yaml is exercised by every generic misuse test without anyone listing it by hand.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "generator"))

from nbdgen.lang_c import err_value, ret_type  # noqa: E402
from nbdgen.load import SpecError, load  # noqa: E402
from nbdgen.model import POINTER_KINDS, RET_WITHOUT_ERROR, STATE_BITS  # noqa: E402
from nbdgen.validate import validate  # noqa: E402

BANNER = "GENERATED from api.yaml by tests/misuse/gen_misuse_calls.py: DO NOT EDIT."


def enumerator(kind):
    """misuse_model.hpp's enumerator for an api.yaml kind: string_list -> StringList."""
    return "".join(part.capitalize() for part in kind.split("_"))


# How Args hands out a value of each scalar kind.
_GETTER = {
    "bool": "boolean", "int": "integer", "uint32": "u32", "uint64": "u64", "size": "size",
    "uintptr": "uptr", "string": "str", "path": "str", "string_list": "strv", "fd": "fd",
    "enum": "enum_value", "flags": "flags",
}


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def c_args(call):
    out = ["h"] if call.handle != "none" else []
    for i, a in enumerate(call.all_args):
        k = a.kind
        if k == "closure":
            out.append(f"a.closure<nbd_{a.closure}_callback>({i})")
        elif k == "bytes_in":
            out += [f"a.in({i})", f"a.len({i})"]
        elif k == "bytes_out":
            out += [f"a.out({i})", f"a.len({i})"]
        elif k == "sockaddr":
            out += [f"a.addr({i})", f"a.addr_len({i})"]
        else:
            out.append(f"a.{_GETTER[k]}({i})")
    return out


def invoker(call):
    """A captureless lambda: Outcome(nbd_handle* h, Args& a)."""
    # The C result type and failure test the entry points are generated with (lang_c).
    ctype = None if call.ret == "void" else ret_type(call)
    failed = None if call.ret in RET_WITHOUT_ERROR else f"r == {err_value(call)}"
    expr = f"{call.c_name}({', '.join(c_args(call))})"
    body = []
    if call.handle == "none":
        body.append("(void)h;")
    if ctype is None:
        body += [f"{expr};", "return Outcome{false, \"\"};"]
    else:
        body.append(f"{ctype} r = {expr};")
        test = failed if failed else "false"
        if call.ret == "string":
            body += [f"const bool failed = {test};", "std::string text = r != nullptr ? r : \"\";",
                     "std::free(r);", "return Outcome{failed, text};"]
        elif call.ret == "static_string":
            body.append(f"return Outcome{{{test}, r != nullptr ? r : \"\"}};")
        elif call.ret == "handle":
            body += [f"const bool failed = {test};", "nbd_close(r);", "return Outcome{failed, \"\"};"]
        else:
            body.append(f"return Outcome{{{test}, std::to_string(r)}};")
    inner = "\n".join("       " + line for line in body)
    return f"[](nbd_handle* h, Args& a) -> Outcome {{\n       (void)a;\n{inner}\n     }}"


def arg_info(a, api):
    fields = [c_string(a.name), f"ArgKind::{enumerator(a.kind)}"]
    values, mask, has_allowed, allowed = [], 0, "false", 0
    set_key = a.type or ""
    if a.kind in ("enum", "flags"):
        vs = api.value_sets[a.type]
        values = [v.value for v in vs.values]
        mask = vs.mask
        if a.kind == "flags" and a.allowed is not None:
            has_allowed = "true"
            for name in a.allowed:
                allowed |= vs.value_named(name).value
    fields += [c_string(set_key), "{" + ", ".join(str(v) for v in values) + "}", f"{mask:#x}U",
               has_allowed, f"{allowed:#x}U", "true" if a.optional else "false",
               c_string(a.closure or ""), c_string(a.lifetime or ""),
               "true" if a.kind in POINTER_KINDS else "false",
               "true" if a.kind == "closure" and api.closure_map[a.closure].needs_callback else "false"]
    return "{" + ", ".join(fields) + "}"


def render(api):
    out = [f"// misuse_calls.hpp: the misuse suite's table of calls, from api.yaml.",
           f"// {BANNER}", "#pragma once", "", "#include <libnbd.h>", "",
           "#include <cstdint>", "#include <cstdlib>", "#include <string>", "#include <vector>", "",
           '#include "misuse/misuse_model.hpp"', "", "namespace misuse {", ""]
    out.append("// The handle states of api.yaml, in its order, with the words of its error messages.")
    out.append("inline const std::vector<StateInfo>& model_states() {")
    out.append("  static const std::vector<StateInfo> states = {")
    for name, words in api.states.items():
        out.append(f"      {{{c_string(name)}, {STATE_BITS[name]}U, {c_string(words)}}},")
    out += ["  };", "  return states;", "}", ""]
    out.append("// Every call of api.yaml, in its order.")
    out.append("inline const std::vector<CallInfo>& model_calls() {")
    out.append("  static const std::vector<CallInfo> calls = {")
    for call in api.calls:
        args = ",\n       ".join(arg_info(a, api) for a in call.all_args)
        states = "{" + ", ".join(c_string(s) for s in call.states) + "}"
        out.append(f"    {{{c_string(call.name)}, {c_string(call.since)}, "
                   f"HandleKind::{enumerator(call.handle)}, {str(call.may_fail).lower()}, "
                   f"{str(call.locked).lower()}, RetKind::{enumerator(call.ret)}, {states}, "
                   f"{str(call.pending).lower()},")
        out.append(f"     {{{args}}},")
        out.append(f"     {invoker(call)}}},")
    out += ["  };", "  return calls;", "}", "", "}  // namespace misuse", ""]
    return "\n".join(out)


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} SPEC OUTPUT", file=sys.stderr)
        return 2
    try:
        api = validate(load(argv[1]), argv[1])
    except SpecError as e:
        print(e, file=sys.stderr)
        return 1
    text = render(api)
    try:
        with open(argv[2], encoding="utf-8") as f:
            if f.read() == text:
                return 0
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(argv[2])), exist_ok=True)
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o444)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
