"""OCaml binding generation: names, types and the files under ocaml/ in the output directory.

The binding is module NBD (NBD.mli, NBD.ml) over C stubs (nbd_stubs.c) that call the C ABI; the
shared C helpers the stubs use (handle custom block, closure boxes, runtime lock, errors) are
hand-written in bindings/ocaml/src/nbdpp_runtime.c.  What each kind of argument, result and
callback argument becomes is declared once per kind in KindTables (an argument's OcamlArg gives
its C lines stage by stage); the views here are made by looking the kinds up, and the templates
under templates/ocaml/ lay them out (nbd_stubs.c.j2's stub_body) with the helpers in HELPERS.

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
from dataclasses import dataclass
from types import SimpleNamespace

from .lang_c import closure_params, err_value as _c_err_value, ret_type
from .markdown import LINK_RE, doc_blocks
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS, KindTable

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

# ---- Per-kind tables (KindTables: each covers its kind list of the model exactly) -------------

@dataclass(frozen=True)
class OcamlArg:
    """How a stub takes an argument of one kind: its OCaml type, then C lines in the stub's order:
    conversions (they may raise, so they come before anything is allocated), allocations (they
    set oom instead of raising), what an out-of-memory exit frees besides the cleanups, what runs
    after a successful call, and the cleanups; last the C arguments it becomes.  Fields: {n} the
    name, {v} the OCaml value, {len} the count, {fn} the C function, {p} the stub prefix, {type}
    the OCaml type of an enum, flag set or closure, {conv} a value set's converter, {ok} the test
    of a successful call, {box} the lines boxing a closure.  An entry may be a dict of variants
    (KindTable.form)."""
    ml: str
    convert: tuple = ()
    allocate: tuple = ()
    on_oom: tuple = ()
    after: tuple = ()
    cleanup: tuple = ()
    c_args: tuple = ("{n}",)


def _scalar(ml, c_type, expr):
    return OcamlArg(ml, (f"{c_type} {{n}} = {expr};",))


# bytes live in the OCaml heap, which may move while the runtime lock is released: the call works
# on a copy.  A Buffer.t's data is outside the OCaml heap and never moves; the completion closure
# keeps the Buffer.t alive until the command has retired.
_BUFFER = OcamlArg("Buffer.t", ("size_t {len} = {p}buffer_size({v});",
                                "void *{n} = {p}buffer_data({v});"), c_args=("{n}", "{len}"))
_ARG = KindTable("lang_ocaml", "stub arguments", ARG_KINDS, {
    "bool": _scalar("bool", "bool", "Bool_val({v})"),
    "int": _scalar("int", "int", "Int_val({v})"),
    # An int64 on the OCaml side, as in libnbd's binding, which also refuses values outside
    # uint32_t this way.
    "uint32": OcamlArg("int64", ("int64_t {n}64 = Int64_val({v});",
                                 "if ({n}64 < 0 || {n}64 > (int64_t)UINT32_MAX)",
                                 "  caml_invalid_argument(\"{fn}: {n} out of range\");",
                                 "uint32_t {n} = (uint32_t){n}64;")),
    "uint64": _scalar("int64", "uint64_t", "(uint64_t)Int64_val({v})"),
    "size": _scalar("int", "size_t", "(size_t)Long_val({v})"),
    "uintptr": _scalar("int", "uintptr_t", "(uintptr_t)Long_val({v})"),
    "string": OcamlArg("string", allocate=("char *{n} = {p}strdup({v}, &oom);",),
                       cleanup=("free({n});",)),
    "path": OcamlArg("string", allocate=("char *{n} = {p}strdup({v}, &oom);",),
                     cleanup=("free({n});",)),
    "string_list": OcamlArg("string list", allocate=("char **{n} = {p}string_list({v}, &oom);",),
                            cleanup=("{p}free_string_list({n});",)),
    "fd": _scalar("Unix.file_descr", "int", "Int_val({v})"),
    "enum": _scalar("{type}", "int", "{conv}({v})"),
    "flags": {"": _scalar("{type}", "uint32_t", "{conv}({v})"),
              "optional": _scalar("{type}", "uint32_t",
                                  "Is_none({v}) ? 0 : {conv}(Some_val({v}))")},
    "closure": OcamlArg("{type}", allocate=("{box}",),
                        on_oom=("{p}closure_free({n}.user_data);",)),
    "bytes_in": {"": OcamlArg("bytes", ("size_t {len} = caml_string_length({v});",),
                              ("void *{n} = {p}copy_in({v}, &oom);",), cleanup=("free({n});",),
                              c_args=("{n}", "{len}")),
                 "persist": _BUFFER},
    "bytes_out": {"": OcamlArg("bytes", ("size_t {len} = caml_string_length({v});",),
                               ("void *{n} = {p}malloc({v}, &oom);",),
                               after=("if ({ok})", "  memcpy(Bytes_val({v}), {n}, {len});"),
                               cleanup=("free({n});",), c_args=("{n}", "{len}")),
                  "persist": _BUFFER},
    "sockaddr": OcamlArg("Unix.sockaddr", ("union sock_addr_union {n}_u;",
                                           "socklen_param_type {len};",
                                           "get_sockaddr({v}, &{n}_u, &{len});"),
                         c_args=("&{n}_u.s_gen", "(socklen_t){len}")),
})
# Each result kind: its OCaml type, the OCaml value of the C result r (None: none to make here),
# and the lines that take a result the caller owns ({type}: an enum or flag set's OCaml type,
# {alloc}: its converter, {p}: the stub prefix).
_RET = KindTable("lang_ocaml", "stub results", RET_KINDS, {
    "err": ("unit", "Val_unit", ()), "bool": ("bool", "Val_bool(r)", ()),
    "int": ("int", "Val_int(r)", ()), "int64": ("int64", "caml_copy_int64(r)", ()),
    "cookie": ("cookie", "caml_copy_int64(r)", ()), "size": ("int", "Val_long(r)", ()),
    "fd": ("Unix.file_descr", "Val_int(r)", ()), "uint": ("int", "Val_long(r)", ()),
    "uint64": ("int64", "caml_copy_int64((int64_t)r)", ()),
    "uintptr": ("int", "Val_long((intnat)r)", ()), "enum": ("{type}", "{alloc}(r)", ()),
    "flags": ("{type} list", "{alloc}(r)", ()),
    "string": ("string", None, ("if (r != NULL) {", "  rv = caml_copy_string(r);", "  free(r);",
                                "}")),
    "static_string": ("string", "caml_copy_string(r)", ()), "void": ("unit", "Val_unit", ()),
    "handle": ("t", "{p}alloc_handle(r)", ()),
})
# Each closure argument kind: its OCaml type, the C statement filling the callback's args[{i}],
# and the one writing it back after a normal return (None: nothing to write back).
_CLOSURE_ARG = KindTable("lang_ocaml", "callback arguments", CLOSURE_ARG_KINDS, {
    "string": ("string", "args[{i}] = {p}copy_string({n});", None),
    "uint64": ("int64", "args[{i}] = caml_copy_int64((int64_t){n});", None),
    "uint": ("int", "args[{i}] = Val_long({n});", None),
    "mutable_int": ("int ref", "args[{i}] = {p}alloc_ref(*{n});",
                    "*{n} = Int_val(Field(args[{i}], 0));"),
    "bytes_in": ("bytes", "args[{i}] = {p}copy_bytes({n}, {len});", None),
    "uint32_array": ("int64 array", "args[{i}] = {p}copy_uint32_array({n}, {len});", None),
    "extent64_array": ("extent array", "args[{i}] = {p}copy_extent64_array({n}, {len});", None),
})
KIND_TABLES = [_ARG, _RET, _CLOSURE_ARG]


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
    conv, writeback = [], []
    for i, a in enumerate(cl.args):
        _, fill, back = _CLOSURE_ARG[a.kind]
        conv.append(fill.format(i=i, n=a.name, len=a.len, p=STUB_PREFIX))
        if back:
            writeback.append(back.format(i=i, n=a.name))
    ml_args = [_CLOSURE_ARG[a.kind][0] for a in cl.args] or ["unit"]
    error_slot = next((a.name for a in cl.args if a.kind == "mutable_int"), "NULL")
    params = closure_params(cl)
    return SimpleNamespace(
        name=cl.name, c_type=cl.c_type, type_name=_callback_type(cl.name),
        ml_type=" -> ".join(ml_args + ["int"]),
        doc=_comment(_doc_paragraphs(cl.doc, links, what)) if cl.doc else [],
        nargs=len(cl.args), conv=conv, writeback=writeback, error_slot=error_slot,
        params=params,
        # The trampoline hands its C parameters on to the invoker, which gets the box for
        # user_data.
        forwarded=["user_data"] + [p.split()[-1].lstrip("*") for p in params[1:]],
        invoke=f"{STUB_PREFIX}{cl.name}_invoke", trampoline=f"{STUB_PREFIX}{cl.name}_trampoline",
        make=_closure_maker(cl.name))


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


def _fields(arg, call, api):
    """The format fields of an argument's _ARG entry."""
    f = dict(n=arg.name, v=arg.name + "v", len=arg.len, fn=call.c_name, p=STUB_PREFIX, type="",
             conv="", ok=f"r != {err_value(call)}" if call.may_fail else "true", box="")
    if arg.type:
        vs = api.value_sets[arg.type]
        f.update(type=f"{_module(vs)}.t" + (" list" if arg.kind == "flags" else ""),
                 conv=_c_conv(vs, "val"))
    if arg.kind == "closure":
        cl = api.closure_map[arg.closure]
        fn = f"{STUB_PREFIX}option_fn({arg.name}v)" if arg.optional else arg.name + "v"
        persist = next((a for a in call.all_args if a.persist), None)
        keep = persist.name + "v" if persist and arg.closure == "completion" else "Val_unit"
        f.update(type=_callback_type(arg.closure), box="\n".join(
            _assign(f"{cl.c_type} {arg.name}", _closure_maker(cl.name), [fn, keep, "&oom"])))
    return f


def _ml_params(call, api):
    """[(OCaml type with label, C parameter name, arg or None)] in OCaml order."""
    out = []
    for a in call.optargs:
        t = _ARG.form(a, call).ml.format(**_fields(a, call, api))
        if a.kind == "flags" or (a.kind == "closure" and a.optional):
            out.append((f"?{_label(a)}:{t}", a.name + "v", a))
        else:
            out.append((f"{_label(a)}:{t}", a.name + "v", a))
    if call.handle != "none":
        out.append(("t", "hv", None))
    for a in call.args:
        out.append((_ARG.form(a, call).ml.format(**_fields(a, call, api)), a.name + "v", a))
    if not out:
        out.append(("unit", "unitv", None))
    return out


def _ret_fields(call, api):
    f = dict(p=STUB_PREFIX, type="", alloc="")
    if call.ret_type:
        vs = api.value_sets[call.ret_type]
        f.update(type=f"{_module(vs)}.t", alloc=_c_conv(vs, "alloc"))
    return f


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


def _stub(call, api):
    """The parts of a call's stub the template lays out: the argument lines of each stage (see
    OcamlArg), the C arguments, and the result's handling."""
    stages = {stage: [] for stage in ("convert", "allocate", "on_oom", "after", "cleanup")}
    c_args = ["h"] if call.handle != "none" else []
    for a in call.all_args:
        form, f = _ARG.form(a, call), _fields(a, call, api)
        for stage, lines in stages.items():
            lines += [l for st in getattr(form, stage) for l in st.format(**f).split("\n")]
        c_args += [x.format(**f) for x in form.c_args]
    if call.handle == "none":
        handle = None
    elif call.name == _CLOSE:
        handle = f"struct nbd_handle *h = {STUB_PREFIX}take_handle(hv);"
    else:
        handle = f"struct nbd_handle *h = {STUB_PREFIX}handle(hv, \"{call.c_name}\");"
    rt = ret_type(call)
    _, value, take = _RET[call.ret]
    return SimpleNamespace(
        handle=handle, c_args=c_args, **stages,
        # The runtime lock is released around calls that take the handle lock, and nbd_close.
        release=call.locked or call.name == _CLOSE, closes=call.name == _CLOSE,
        result=None if call.ret == "void" else f"{rt}{'' if rt.endswith('*') else ' '}r",
        err=err_value(call) if call.may_fail else None,
        value=value.format(**_ret_fields(call, api)) if value else None, take=list(take))


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
    types = [ml for ml, _, _ in params] + [_RET[call.ret][0].format(**_ret_fields(call, api))]
    stub = _stub_name(call)
    byte = stub + "_byte" if len(params) > 5 else None
    return SimpleNamespace(
        name=call.name, c_name=call.c_name, short=call.short, doc=_comment(doc), types=types,
        stub=stub, byte_stub=byte, names=[cname for _, cname, _ in params],
        c_params=[f"value {cname}" for _, cname, _ in params],
        argv=[f"argv[{i}]" for i in range(len(params))], may_fail=call.may_fail,
        parts=_stub(call, api))


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



# What the templates under templates/ocaml/ call.
HELPERS = {"wrap": _wrap, "assign": _assign, "signature": _signature,
           "camlparams": _camlparams}
