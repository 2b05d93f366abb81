"""OCaml binding generation: names, types and the files under ocaml/ in the output directory.

The binding is module NBD (NBD.mli, NBD.ml) over C stubs (nbd_stubs.c) that call the C ABI; the
shared C helpers the stubs use (handle custom block, closure boxes, runtime lock, errors) are
hand-written in bindings/ocaml/src/nbdpp_runtime.c.  Everything per call, per enum and per closure
is computed here as a view model, so the templates under templates/ocaml/ only loop over it.

Type map, OCaml side (C side in lang_c):
  bool -> bool; int, size, uintptr, uint -> int; uint32, uint64, int64 -> int64; cookie -> cookie
  (= int64); plain constants -> int32;
  string, path -> string; string_list -> string list; fd -> Unix.file_descr;
  sockaddr -> Unix.sockaddr; bytes_in, bytes_out -> bytes (copied around the call), or
  Buffer.t when the buffer persists past the call; enum -> MODULE.t; flags -> MODULE.t list;
  closure -> NAME_callback (an OCaml function returning int).
Where libnbd's own OCaml binding (module NBD, findlib package nbd) fixes a type, ours is the same,
so a program written for it builds against ours: uint32 is int64 (all its values fit), a
uint32_array in a callback is an int64 array, constants are int32, cookies are type cookie.
Optional arguments come first, labelled (?flags, ?completion); then the handle; then the
positional arguments in C order.  A call without any argument takes unit.
"""
import re
import textwrap
from types import SimpleNamespace

from .lang_c import closure_params, err_value as _c_err_value, ret_type
from .markdown import LINK_RE, doc_blocks

HELPERS = {}

WIDTH = 95          # OCaml comment fill width
STUB_PREFIX = "nbdpp_ocaml_"

# get_error and get_errno are what NBD.Error carries, so they have no function of their own.
_SKIPPED = {"get_error", "get_errno"}
# The one call that ends a handle: its stub takes the pointer out of the custom block (so the
# finaliser does nothing), releases the runtime lock although nbd_close takes no handle lock (it
# waits for a server subprocess and runs free hooks), and drops callback exceptions.  nbd_create
# needs nothing special: a "handle" result becomes a new custom block.
_CLOSE = "close"

_OCAML_KEYWORDS = set("""
and as assert asr begin class constraint do done downto else end exception external false for
fun function functor if in include inherit initializer land lazy let lor lsl lsr lxor match method
mod module mutable new nonrec object of open or private rec sig struct then to true try type val
virtual when while with""".split())
# Names the generated NBD module defines besides the calls (see NBD.ml.j2).
_RESERVED_VALUES = {"with_handle", "callbacks_held", "errno_of_unix_error", "cookie", "extent"}
_RESERVED_MODULES = {"Buffer"}
# C locals of every stub; argument names must not collide with them.
_C_LOCALS = {"h", "r", "rv", "failure", "oom", "unitv"}

_ARG_ML = {
    "bool": "bool", "int": "int", "uint32": "int64", "uint64": "int64", "size": "int",
    "uintptr": "int", "string": "string", "path": "string", "string_list": "string list",
    "fd": "Unix.file_descr", "sockaddr": "Unix.sockaddr", "bytes_in": "bytes", "bytes_out": "bytes",
}
_RET_ML = {
    "err": "unit", "bool": "bool", "int": "int", "int64": "int64", "cookie": "cookie",
    "size": "int", "fd": "Unix.file_descr", "uint": "int", "uint64": "int64", "uintptr": "int",
    "string": "string",
    "static_string": "string", "void": "unit", "handle": "t",
}
_CB_ML = {
    "string": "string", "uint64": "int64", "uint": "int", "mutable_int": "int ref",
    "bytes_in": "bytes", "uint32_array": "int64 array", "extent64_array": "extent array",
}
# C expression turning an OCaml argument NAMEv into the C value of scalar kinds.
_ARG_C = {
    "bool": ("bool", "Bool_val({v})"),
    "int": ("int", "Int_val({v})"),
    "fd": ("int", "Int_val({v})"),
    "uint64": ("uint64_t", "(uint64_t)Int64_val({v})"),
    "size": ("size_t", "(size_t)Long_val({v})"),
    "uintptr": ("uintptr_t", "(uintptr_t)Long_val({v})"),
}
# C expression turning the C result r into an OCaml value (string is handled apart: freed).
_RET_C = {
    "err": "Val_unit", "void": "Val_unit", "bool": "Val_bool(r)", "int": "Val_int(r)",
    "fd": "Val_int(r)", "uint": "Val_long(r)", "uintptr": "Val_long((intnat)r)",
    "size": "Val_long(r)", "int64": "caml_copy_int64(r)", "cookie": "caml_copy_int64(r)",
    "uint64": "caml_copy_int64((int64_t)r)",
    "static_string": "caml_copy_string(r)", "handle": STUB_PREFIX + "alloc_handle(r)",
}


def err_value(call):
    """The C result that means failure (lang_c spells null pointers for C++)."""
    v = _c_err_value(call)
    return "NULL" if v == "nullptr" else v


def _wrap(head, params, indent=0, tail="", width=99):
    """`head(p1, p2, ...)tail` at indent, continuation lines aligned after the bracket; returns
    the lines without the first line's indentation."""
    first = " " * indent + head + "("
    one = first + ", ".join(params) + ")" + tail
    if len(one) <= width or not params:
        return one[indent:].split("\n")
    pad = " " * len(first)
    lines, cur = [], first
    for i, p in enumerate(params):
        piece = p + (", " if i + 1 < len(params) else ")" + tail)
        if len(cur) + len(piece.rstrip()) > width and cur != first:
            lines.append(cur.rstrip())
            cur = pad
        cur += piece
    lines.append(cur.rstrip())
    lines[0] = lines[0][indent:]
    return [l[indent:] if i else l for i, l in enumerate(lines)]


def _assign(decl, head, params, indent=2):
    """`decl = head(params);`, broken after the `=` when it does not fit on one line."""
    lines = _wrap(f"{decl} = {head}", params, indent, ";")
    if len(lines) == 1:
        return lines
    return [f"{decl} ="] + ["    " + l for l in _wrap(head, params, indent + 4, ";")]


def _signature(keyword, name, types, width=99):
    """`val name : t1 -> t2 -> r` (or external), wrapped after arrows when too long."""
    one = f"{keyword} {name} : {' -> '.join(types)}"
    if len(one) <= width:
        return [one]
    lines, cur = [f"{keyword} {name} :"], "  "
    for i, t in enumerate(types):
        piece = t + (" ->" if i + 1 < len(types) else "")
        if len(cur) + len(piece) + 1 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = "  "
        cur += piece + " "
    lines.append(cur.rstrip())
    return lines


# ---- Names -----------------------------------------------------------------------------------

def _module(vs):
    """The OCaml module of an enum or flag set: its C prefix (TLS, CMD_FLAG)."""
    return vs.prefix


def _c_conv(vs, direction):
    """Names of the stub helpers converting a value set: nbdpp_ocaml_cmd_val / _alloc_cmd."""
    return f"{STUB_PREFIX}{vs.key}_val" if direction == "val" else f"{STUB_PREFIX}alloc_{vs.key}"


def _macro(vs, name):
    return f"LIBNBD_{vs.prefix}_{name}"


def _callback_type(closure_name):
    return f"{closure_name}_callback"


def _label(arg):
    """Label of an optional argument: completion_callback -> completion."""
    return arg.name[: -len("_callback")] if arg.name.endswith("_callback") else arg.name


def _stub_name(call):
    return STUB_PREFIX + call.name


def _closure_maker(closure_name):
    """The stub helper boxing an OCaml function as a C closure of that kind."""
    return f"{STUB_PREFIX}{closure_name}_closure"


def _handled(call):
    return call.name not in _SKIPPED


# ---- Doc comments ------------------------------------------------------------------------------

def _link_map(api):
    """nbd_CALL / LIBNBD_CONST / nbd_NAME_callback -> odoc reference."""
    links = {}
    for c in api.calls:
        if _handled(c):
            links[c.c_name] = "{!" + c.name + "}"
    for cl in api.closures:
        links[cl.c_type] = "{!type:" + _callback_type(cl.name) + "}"
    for vs in api.enums + api.flags:
        # Constructors as code: references to them resolve in neither ocamldoc nor every odoc.
        for v in vs.values:
            links[_macro(vs, v.name)] = f"[{_module(vs)}.{v.name}]"
        if vs.kind == "flags":
            links[_macro(vs, "MASK")] = "{!" + f"{_module(vs)}.mask" + "}"
    for name, _, _, macro, _ in _constants(api):
        links[macro] = "{!" + name + "}"
    return links


def _escape_odoc(text):
    for ch in "\\{}[]@":
        text = text.replace(ch, "\\" + ch)
    # Keep the comment closed where we close it.
    return text.replace("*)", "* )").replace("(*", "( *")


def _inline(text, links):
    text = _escape_odoc(text)
    return LINK_RE.sub(lambda m: links.get(m.group(0), "[" + m.group(0) + "]"), text)


def _check_comment(what, text):
    # The OCaml lexer reads string literals inside comments: an odd number of double quotes
    # would leave one open and swallow the rest of the file.
    if text.count('"') % 2:
        raise ValueError(f"{what}: unbalanced double quote in doc text "
                         "(OCaml comments lex strings)")


def _comment(paragraphs, indent=0):
    """The lines of an odoc comment made of blocks already converted: ("text", str),
    ("list", [str]) or ("code", [str])."""
    pad = " " * indent
    lines = []
    first = True
    for kind, body in paragraphs:
        if not first:
            lines.append("")
        if kind == "text":
            lines += textwrap.wrap(body, WIDTH - indent - 4, break_on_hyphens=False,
                                   break_long_words=False) or [""]
        elif kind == "list":
            lines.append("{ul")
            for item in body:
                wrapped = textwrap.wrap(item, WIDTH - indent - 12, break_on_hyphens=False,
                                        break_long_words=False)
                lines.append("  {li " + wrapped[0] + ("}" if len(wrapped) == 1 else ""))
                for i, w in enumerate(wrapped[1:], 1):
                    lines.append("      " + w + ("}" if i == len(wrapped) - 1 else ""))
            lines.append("}")
        elif kind == "code":
            lines.append("{v")
            lines += body
            lines.append("v}")
        first = False
    out = []
    for i, l in enumerate(lines):
        head = "(** " if i == 0 else "    "
        out.append((pad + head + l).rstrip())
    out[-1] += " *)"
    return out


def _doc_paragraphs(text, links, what):
    _check_comment(what, text)
    out = []
    for kind, body in doc_blocks(text):
        if kind == "para":
            out.append(("text", _inline(body, links)))
        elif kind == "list":
            out.append(("list", [_inline(item, links) for item in body]))
        else:
            for line in body:
                if "v}" in line or "*)" in line:
                    raise ValueError(f"{what}: verbatim doc line cannot appear in an OCaml comment")
            out.append(("code", body))
    return out


def _short_comment(text, links, what, indent=0):
    _check_comment(what, text)
    return _comment([("text", _inline(text, links))], indent)


# ---- Enums, flags, constants ------------------------------------------------------------------

_CTOR_RE = re.compile(r"^[A-Z][A-Za-z0-9_]*$")
_VALUE_RE = re.compile(r"^[a-z_][a-z0-9_']*$")


def _constants(api):
    """(OCaml name, OCaml type, OCaml literal, C macro, doc) of every plain constant and every
    metadata namespace name the header defines."""
    out = []
    for vs in api.constants:
        for v in vs.values:
            out.append((f"{vs.prefix}_{v.name}".lower(), "int32", f"{v.value}l",
                        _macro(vs, v.name), v.doc))
    for ns in api.meta:
        if not ns.header:
            continue
        out.append((f"namespace_{ns.name}", "string", f'"{ns.name}:"',
                    f"LIBNBD_NAMESPACE_{ns.name.upper()}", f"the {ns.name} namespace"))
        docs = dict(ns.contexts)
        for ctx, _ in ns.contexts:
            ident = re.sub(r"[^a-z0-9]+", "_", f"context_{ns.name}_{ctx}".lower()).strip("_")
            out.append((ident, "string", f'"{ns.name}:{ctx}"',
                        ns.context_macro(ctx), docs.get(ctx) or ""))
        for _, values in ns.constants:
            for v in values:
                out.append((v.name.lower(), "int32", f"{v.value}l", f"LIBNBD_{v.name}", v.doc))
    return out


def _value_set(vs, links):
    what = f"{vs.kind} {vs.key}"
    if not _CTOR_RE.match(_module(vs)) or _module(vs) in _RESERVED_MODULES:
        raise ValueError(f"{what}: prefix {vs.prefix} cannot name an OCaml module")
    ctors = []
    for i, v in enumerate(vs.values):
        if not _CTOR_RE.match(v.name) or v.name == "UNKNOWN":
            raise ValueError(f"{what}: value {v.name} cannot be an OCaml constructor")
        doc = _short_comment(v.doc, links, what, 4) if v.doc else []
        ctors.append(SimpleNamespace(name=v.name, index=i, macro=_macro(vs, v.name), doc=doc))
    return SimpleNamespace(
        key=vs.key, kind=vs.kind, module=_module(vs), ctors=ctors,
        doc=_short_comment(vs.doc, links, what) if vs.doc else [],
        mask=_macro(vs, "MASK") if vs.kind == "flags" else None,
        c_val=_c_conv(vs, "val"), c_alloc=_c_conv(vs, "alloc"))


# ---- Closures ----------------------------------------------------------------------------------

# Locals and parameters of the generated trampolines; closure argument names must differ.
_CLOSURE_LOCALS = {"cl", "r", "rv", "args", "reacquired", "user_data"}


def _closure(cl, links):
    what = f"closure {cl.name}"
    for a in cl.args:
        if a.name in _CLOSURE_LOCALS or a.len in _CLOSURE_LOCALS:
            raise ValueError(f"{what}: argument {a.name} clashes with a local of nbd_stubs.c")
    ml_args = [_CB_ML[a.kind] for a in cl.args] or ["unit"]
    conv = []          # C statements filling args[i]
    writeback = []     # C statements after a normal return
    for i, a in enumerate(cl.args):
        n = a.name
        if a.kind == "string":
            conv.append(f"args[{i}] = {STUB_PREFIX}copy_string({n});")
        elif a.kind == "uint64":
            conv.append(f"args[{i}] = caml_copy_int64((int64_t){n});")
        elif a.kind == "uint":
            conv.append(f"args[{i}] = Val_long({n});")
        elif a.kind == "mutable_int":
            conv.append(f"args[{i}] = {STUB_PREFIX}alloc_ref(*{n});")
            writeback.append(f"*{n} = Int_val(Field(args[{i}], 0));")
        elif a.kind == "bytes_in":
            conv.append(f"args[{i}] = {STUB_PREFIX}copy_bytes({n}, {a.len});")
        elif a.kind == "uint32_array":
            conv.append(f"args[{i}] = {STUB_PREFIX}copy_uint32_array({n}, {a.len});")
        elif a.kind == "extent64_array":
            conv.append(f"args[{i}] = {STUB_PREFIX}copy_extent64_array({n}, {a.len});")
        else:
            raise ValueError(f"{what}: argument kind {a.kind} has no OCaml form")
    error_slot = next((a.name for a in cl.args if a.kind == "mutable_int"), "NULL")
    params = closure_params(cl)
    # The trampoline hands its C parameters on to the invoker, which gets the box for user_data.
    forwarded = ["user_data"] + [p.split()[-1].lstrip("*") for p in params[1:]]
    invoke = f"{STUB_PREFIX}{cl.name}_invoke"
    trampoline = f"{STUB_PREFIX}{cl.name}_trampoline"
    return SimpleNamespace(
        name=cl.name, c_type=cl.c_type, type_name=_callback_type(cl.name),
        ml_type=" -> ".join(ml_args + ["int"]),
        doc=_comment(_doc_paragraphs(cl.doc, links, what)) if cl.doc else [],
        nargs=len(cl.args), conv=conv, writeback=writeback, error_slot=error_slot,
        invoke_sig=_wrap(f"static int {invoke}", [f"struct {STUB_PREFIX}closure *cl"] + params[1:],
                         0, " {"),
        trampoline_sig=_wrap(f"static int {trampoline}", params, 0, " {"),
        invoke_call=_wrap(f"const int r = {invoke}", forwarded, 2, ";"),
        trampoline=trampoline, make=_closure_maker(cl.name))


# ---- Calls -------------------------------------------------------------------------------------

def _check_names(call):
    what = f"call {call.name}"
    if not _VALUE_RE.match(call.name) or call.name in _OCAML_KEYWORDS:
        raise ValueError(f"{what}: name cannot be an OCaml value")
    if call.name in _RESERVED_VALUES or call.name == "t":
        raise ValueError(f"{what}: clashes with a definition of the NBD module")
    c_names = set()
    for a in call.all_args:
        for n in ([a.name, a.len] if a.len else [a.name]):
            if n in _C_LOCALS or n in c_names:
                raise ValueError(f"{what}: argument {n} clashes with a local of nbd_stubs.c")
            c_names.add(n)
    for a in call.all_args:
        if a.name + "v" in c_names or a.name + "_u" in c_names or a.name + "64" in c_names:
            raise ValueError(f"{what}: argument {a.name} clashes with a local of nbd_stubs.c")


def _arg_ml(arg, api):
    if arg.kind == "enum":
        return f"{_module(api.value_sets[arg.type])}.t"
    if arg.kind == "flags":
        return f"{_module(api.value_sets[arg.type])}.t list"
    if arg.kind == "closure":
        return _callback_type(arg.closure)
    if arg.kind in ("bytes_in", "bytes_out") and arg.persist:
        return "Buffer.t"
    return _ARG_ML[arg.kind]


def _ml_params(call, api):
    """[(OCaml type with label, C parameter name, arg or None)] in OCaml order."""
    out = []
    for a in call.optargs:
        t = _arg_ml(a, api)
        if a.kind == "flags" or (a.kind == "closure" and a.optional):
            out.append((f"?{_label(a)}:{t}", a.name + "v", a))
        else:
            out.append((f"{_label(a)}:{t}", a.name + "v", a))
    if call.handle != "none":
        out.append(("t", "hv", None))
    for a in call.args:
        out.append((_arg_ml(a, api), a.name + "v", a))
    if not out:
        out.append(("unit", "unitv", None))
    return out


def _ml_ret(call, api):
    if call.ret in ("enum", "flags"):
        t = f"{_module(api.value_sets[call.ret_type])}.t"
        return t + (" list" if call.ret == "flags" else "")
    return _RET_ML[call.ret]


def _usage(call, params):
    """[pread ?flags t buf offset] for the first line of the doc comment."""
    words = [call.name]
    for ml, cname, a in params:
        if a is None:
            words.append("t" if cname == "hv" else "()")
        elif ml.startswith("?"):
            words.append(f"?{_label(a)}")
        elif a in call.optargs:
            words.append(f"~{_label(a)}")
        else:
            words.append(a.name)
    return "[" + " ".join(words) + "]"


def _camlparams(names):
    out = [f"CAMLparam{min(len(names), 5)}({', '.join(names[:5])});"]
    rest = names[5:]
    while rest:
        out.append(f"CAMLxparam{min(len(rest), 5)}({', '.join(rest[:5])});")
        rest = rest[5:]
    return out


def _stub(call, api, params):
    """The C lines of one stub (without the signature), and the list of C parameter names."""
    names = [cname for _, cname, _ in params]
    body = _camlparams(names) + ["CAMLlocal1(rv);"]
    c_args = []
    if call.handle != "none":
        if call.name == _CLOSE:
            body.append(f"struct nbd_handle *h = {STUB_PREFIX}take_handle(hv);")
        else:
            body.append(f"struct nbd_handle *h = {STUB_PREFIX}handle(hv, \"{call.c_name}\");")
        c_args.append("h")
    convert, allocate, cleanup, after = [], [], [], []
    closures = []
    persist = next((a for a in call.all_args if a.persist), None)
    for a in call.all_args:
        n, k, v = a.name, a.kind, a.name + "v"
        if k == "uint32":
            # An int64 on the OCaml side, as in libnbd's binding, which also refuses values
            # outside uint32_t this way.
            convert += [f"int64_t {n}64 = Int64_val({v});",
                        f"if ({n}64 < 0 || {n}64 > (int64_t)UINT32_MAX)",
                        f"  caml_invalid_argument(\"{call.c_name}: {n} out of range\");",
                        f"uint32_t {n} = (uint32_t){n}64;"]
            c_args.append(n)
        elif k in _ARG_C:
            t, expr = _ARG_C[k]
            convert.append(f"{t} {n} = {expr.format(v=v)};")
            c_args.append(n)
        elif k == "enum":
            vs = api.value_sets[a.type]
            convert.append(f"int {n} = {_c_conv(vs, 'val')}({v});")
            c_args.append(n)
        elif k == "flags":
            vs = api.value_sets[a.type]
            conv = _c_conv(vs, "val")
            if a in call.optargs:
                convert.append(f"uint32_t {n} = Is_none({v}) ? 0 : {conv}(Some_val({v}));")
            else:
                convert.append(f"uint32_t {n} = {conv}({v});")
            c_args.append(n)
        elif k == "sockaddr":
            convert += [f"union sock_addr_union {n}_u;", f"socklen_param_type {a.len};",
                        f"get_sockaddr({v}, &{n}_u, &{a.len});"]
            c_args += [f"&{n}_u.s_gen", f"(socklen_t){a.len}"]
        elif k in ("string", "path"):
            allocate.append(f"char *{n} = {STUB_PREFIX}strdup({v}, &oom);")
            cleanup.append(f"free({n});")
            c_args.append(n)
        elif k == "string_list":
            allocate.append(f"char **{n} = {STUB_PREFIX}string_list({v}, &oom);")
            cleanup.append(f"{STUB_PREFIX}free_string_list({n});")
            c_args.append(n)
        elif k in ("bytes_in", "bytes_out") and a.persist:
            # A Buffer.t's data is outside the OCaml heap and never moves; the completion
            # closure keeps the Buffer.t alive until the command has retired.
            convert += [f"size_t {a.len} = {STUB_PREFIX}buffer_size({v});",
                        f"void *{n} = {STUB_PREFIX}buffer_data({v});"]
            c_args += [n, a.len]
        elif k in ("bytes_in", "bytes_out"):
            # bytes live in the OCaml heap, which may move while the runtime lock is released:
            # the call works on a copy.
            convert.append(f"size_t {a.len} = caml_string_length({v});")
            helper = "copy_in" if k == "bytes_in" else "malloc"
            allocate.append(f"void *{n} = {STUB_PREFIX}{helper}({v}, &oom);")
            if k == "bytes_out":
                ok = f"r != {err_value(call)}" if call.may_fail else "true"
                after.append(f"if ({ok})")
                after.append(f"  memcpy(Bytes_val({v}), {n}, {a.len});")
            cleanup.append(f"free({n});")
            c_args += [n, a.len]
        elif k == "closure":
            cl = api.closure_map[a.closure]
            fn = f"{STUB_PREFIX}option_fn({v})" if a.optional else v
            keep = "Val_unit"
            if persist is not None and a.closure == "completion":
                keep = persist.name + "v"
            allocate += _assign(f"{cl.c_type} {n}", _closure_maker(cl.name),
                                [fn, keep, "&oom"])
            closures.append(n)
            c_args.append(n)
    body += convert
    if allocate:
        body.append("bool oom = false;")
        body += allocate
        body.append("if (oom) {")
        body += [f"  {STUB_PREFIX}closure_free({n}.user_data);" for n in closures]
        body += ["  " + l for l in cleanup]
        body += ["  caml_raise_out_of_memory();", "}"]
    release = call.locked or call.name == _CLOSE
    if call.may_fail:
        body.append(f"struct {STUB_PREFIX}error failure = {{NULL, 0}};")
    if release:
        body.append(f"{STUB_PREFIX}release();")
    rt = ret_type(call)
    if call.ret == "void":
        body += _wrap(call.c_name, c_args, 2, ";")
    else:
        body += _assign(f"{rt}{'' if rt.endswith('*') else ' '}r", call.c_name, c_args)
    if call.may_fail:
        body += [f"if (r == {err_value(call)})", f"  {STUB_PREFIX}save_error(&failure);"]
    if release:
        body.append(f"{STUB_PREFIX}acquire();")
    body += after + cleanup
    if call.ret == "string":
        body += ["if (r != NULL) {", "  rv = caml_copy_string(r);", "  free(r);", "}"]
    if call.name == _CLOSE:
        # A cleanup must not fail: what a callback raised while closing is dropped.
        body.append(f"{STUB_PREFIX}drop_pending();")
    else:
        body.append(f"{STUB_PREFIX}raise_pending({'&failure' if call.may_fail else 'NULL'});")
    if call.may_fail:
        body += [f"if (r == {err_value(call)})",
                 f"  {STUB_PREFIX}raise_error(&failure, \"{call.c_name}\");"]
    if call.ret == "enum" or call.ret == "flags":
        body.append(f"rv = {_c_conv(api.value_sets[call.ret_type], 'alloc')}(r);")
    elif call.ret != "string":
        body.append(f"rv = {_RET_C[call.ret]};")
    body.append("CAMLreturn(rv);")
    return body


def _call(call, api, links):
    _check_names(call)
    params = _ml_params(call, api)
    what = f"call {call.name}"
    _check_comment(what, call.short)
    doc = [("text", f"{_usage(call, params)}: {_inline(call.short, links)}.")]
    doc += _doc_paragraphs(call.doc, links, what)
    notes = []
    if call.name == _CLOSE:
        notes.append("In OCaml: closing a closed handle does nothing, and exceptions raised by "
                     "callbacks while closing are dropped.  The garbage collector closes "
                     "unreachable handles by itself.")
    for a in call.all_args:
        if a.persist:
            notes.append(f"The buffer {a.name} is kept alive until the command has completed.")
        if a.kind == "uint32":
            notes.append(f"{a.name} must fit in 32 bits unsigned, else Invalid_argument is raised.")
    if call.see_also:
        notes.append("See also " + ", ".join(
            (links.get(f"nbd_{s}", f"[nbd_{s}]")) for s in call.see_also) + ".")
    notes.append(f"C function: [{call.c_name}]; since {call.since}.")
    doc += [("text", n) for n in notes]
    types = [ml for ml, _, _ in params] + [_ml_ret(call, api)]
    stub = _stub_name(call)
    byte = stub + "_byte" if len(params) > 5 else None
    c_params = [f"value {cname}" for _, cname, _ in params]
    return SimpleNamespace(
        name=call.name, c_name=call.c_name, short=call.short, doc=_comment(doc),
        val=_signature("val", call.name, types), external=_signature("external", call.name, types),
        stub=stub, byte_stub=byte,
        prototype=_wrap(f"value {stub}", c_params, 0, ";"),
        definition=_wrap(f"value {stub}", c_params, 0, " {"),
        byte_forward=_wrap(f"return {stub}", [f"argv[{i}]" for i in range(len(params))], 2, ";"),
        body=_stub(call, api, params))


# ---- Entry points ------------------------------------------------------------------------------

def view(api):
    """Everything the OCaml templates render."""
    links = _link_map(api)
    handled = [c for c in api.calls if _handled(c)]
    calls = [_call(c, api, links) for c in handled]
    names = {c.name for c in calls}
    # Only the converters and closure helpers some stub uses are emitted (no unused statics).
    used_val = {a.type for c in handled for a in c.all_args if a.kind in ("enum", "flags")}
    used_alloc = {c.ret_type for c in handled if c.ret in ("enum", "flags")}
    used_closures = {a.closure for c in handled for a in c.closures}
    value_sets = []
    for vs in api.enums + api.flags:
        v = _value_set(vs, links)
        v.need_val, v.need_alloc = vs.key in used_val, vs.key in used_alloc
        value_sets.append(v)
    consts = []
    for n, t, val, m, doc in _constants(api):
        text = f"[{m}]" + (f": {_inline(doc, links)}" if doc else "")
        _check_comment(f"constant {m}", doc)
        consts.append(SimpleNamespace(name=n, type=t, value=val, macro=m,
                                      doc=_comment([("text", text)])))
    for cst in consts:
        if cst.name in names or cst.name in _RESERVED_VALUES or not _VALUE_RE.match(cst.name):
            raise ValueError(f"constant {cst.macro}: OCaml name {cst.name} is taken or invalid")
    return SimpleNamespace(
        package=api.package,
        enums=[v for v in value_sets if v.kind == "enum"],
        flags=[v for v in value_sets if v.kind == "flags"],
        constants=consts,
        closures=[_closure(cl, links) for cl in api.closures],
        used_closures=used_closures,
        calls=calls,
        # with_handle needs both ends of a handle's life.
        has_lifecycle="create" in names and _CLOSE in names,
        # Writer_channel (nbdpp_writer.c) is built on these three.
        has_writer_channel={"aio_get_fd", "set_concurrent_writer",
                            "concurrent_writer_error"} <= names,
        prefix=STUB_PREFIX)


def outputs(api, common):
    """(target, relative path, template, extra context) for every generated OCaml file."""
    extra = {"ml": view(api)}
    yield "ocaml", "ocaml/NBD.mli", "ocaml/NBD.mli.j2", extra
    yield "ocaml", "ocaml/NBD.ml", "ocaml/NBD.ml.j2", extra
    yield "ocaml", "ocaml/nbd_stubs.c", "ocaml/nbd_stubs.c.j2", extra
