"""Rust binding generation: names, types and the files under rust/ in the output directory.

The crate `nbd` (bindings/rust) includes two generated files:
  rust/sys.rs   the raw layer: one `extern "C"` declaration per call, the closure structs and
                every constant, spelled as in libnbd.h;
  rust/api.rs   the safe layer: enums, flag sets, constants, one boxed callback type per closure
                kind with its trampoline, and one method of `Handle` per call.
The hand-written runtime they rely on (Handle, Error, AioBuffer, SockAddr, closure boxing, the
panic relay, argument conversions) is in bindings/rust/src.  What each kind of argument, closure
argument and result becomes is declared once per kind in KindTables (RustArg, RustRet,
CallbackArg entries of format strings); method() turns a call into a view by looking its kinds
up, for this crate and for lang_rust_compat's (a Crate names the tables), and the templates
under templates/rust/ lay the views out with the helpers in HELPERS (wrap, let_lines,
unsafe_call) -- the same for the nbd and libnbd crates (nbd-tokio's are lang_rust_async's).

Type map, Rust side (the C side is in lang_c):
  bool -> bool; int -> i32; uint32 -> u32; uint64 -> u64; size, uintptr -> usize;
  string -> &str; path -> impl AsRef<Path>; string_list -> &[impl AsRef<OsStr>];
  fd -> OwnedFd (handed over to the handle); sockaddr -> &SockAddr; enum -> the Rust enum;
  flags -> the flag set (optional flags: impl Into<Option<Set>>); bytes_in -> &[u8];
  bytes_out -> &mut [u8]; a persistent buffer -> &AioBuffer (leased until the command retires);
  closure -> impl FnMut(..) -> i32 + Send + 'static (optional: impl Into<Option<XCallback>>).
Results: err -> (); bool -> bool; fd -> RawFd; int (a count, or poll's 0/1), uint -> u32;
  int64 (a size, a cookie, a pid), cookie, uint64 -> u64; size, uintptr -> usize; string,
  static_string -> String; enum, flags -> their types; every call that may fail returns
  Result<T>.  Sizes, counts and cookies are unsigned as in libnbd's own crate: an int or int64
  result is never negative once -1 (failure) is ruled out.
Each enum and flag set also gets libnbd's crate's name for it as an alias where that differs
(libnbd_type_name: the value prefix in PascalCase, CMD_FLAG -> CmdFlag beside our CmdFlags).
lang_rust_compat builds the `libnbd` compatibility crate on the names and helpers here.
Closure arguments: extent64_array -> &[NbdExtent] (src/lib.rs, laid out as C's nbd_extent).
"""
import re
import textwrap
from dataclasses import dataclass
from types import SimpleNamespace

from .markdown import LINK_RE, doc_blocks
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS, KindTable, expand_kind

WIDTH = 99          # line width of the generated code and doc comments

# Calls with no method: Handle::new and Drop own nbd_create and nbd_close, and nbd::Error carries
# what nbd_get_error and nbd_get_errno report.  Doc mentions of them link to these instead.
_NOT_BOUND = {"create": "Handle::new", "close": "Handle", "get_error": "Error::message",
              "get_errno": "Error::errno"}
# Names the hand-written part of the crate defines at its root (src/lib.rs).
_CRATE_NAMES = {"Handle", "Error", "Result", "AioBuffer", "BufferRef", "BufferMut", "SockAddr",
                "set_errno", "sys"}
# Methods of Handle written by hand (src/handle.rs).
_HANDLE_METHODS = {"new", "as_raw", "into_raw", "from_raw", "last_error"}
# Locals of the generated method bodies besides the arguments themselves.
_LOCAL_SUFFIXES = ("_lease", "_ptr", "_len")
_LOCALS = {"r", "h"}

_KEYWORDS = set("""
as break const continue crate else enum extern false fn for if impl in let loop match mod move
mut pub ref return self Self static struct super trait true type unsafe use where while async
await dyn abstract become box do final macro override priv typeof unsized virtual yield try gen
union""".split())
_NOT_RAW = {"self", "Self", "super", "crate", "_"}

# ---- Per-kind tables (KindTables: each covers its kind list of the model exactly) -------------

# The raw layer's parameters of each argument kind, as libnbd.h declares them (lang_c): {n} the
# identifier, {len} its count's, {cl} the closure kind.
_SYS_ARG = KindTable("lang_rust", "raw parameters", ARG_KINDS, {
    "bool": ["{n}: bool"], "int": ["{n}: c_int"], "uint32": ["{n}: u32"], "uint64": ["{n}: u64"],
    "size": ["{n}: usize"], "uintptr": ["{n}: usize"], "string": ["{n}: *const c_char"],
    "path": ["{n}: *const c_char"], "string_list": ["{n}: *mut *mut c_char"],
    "fd": ["{n}: c_int"], "enum": ["{n}: c_int"], "flags": ["{n}: u32"],
    "closure": ["{n}: nbd_{cl}_callback"], "bytes_in": ["{n}: *const c_void", "{len}: usize"],
    "bytes_out": ["{n}: *mut c_void", "{len}: usize"],
    "sockaddr": ["{n}: *const sockaddr", "{len}: socklen_t"],
})
# The raw layer's result type of each result kind ("": none).
_SYS_RET = KindTable("lang_rust", "raw results", RET_KINDS, {
    "err": "c_int", "bool": "c_int", "int": "c_int", "int64": "i64", "cookie": "i64",
    "size": "isize", "fd": "c_int", "uint": "c_uint", "uint64": "u64", "uintptr": "usize",
    "enum": "c_int", "flags": "u32", "string": "*mut c_char", "static_string": "*const c_char",
    "void": "", "handle": "*mut nbd_handle",
})


@dataclass(frozen=True)
class CallbackArg:
    """A closure argument kind in a trampoline: its C parameter types (a sized kind's pointer and
    count), the statements turning them into what the callable takes, and the argument passed.
    Fields: {n} the identifier, {name} the spec name, {len} the count's identifier, {rt} the
    runtime's path, {string_arg} and {string_ref} the crate's string conversion (the spelling
    _closure is given: NBD_CALLBACKS, or lang_rust_compat's)."""
    c_types: tuple
    conv: tuple = ()
    arg: str = "{n}"


_CALLBACK_ARG = KindTable("lang_rust", "trampoline arguments", CLOSURE_ARG_KINDS, {
    "string": CallbackArg(("*const c_char",), ("let {n} = {rt}::{string_arg}({n});",),
                          "{string_ref}{n}"),
    "uint64": CallbackArg(("u64",)),
    "uint": CallbackArg(("c_uint",)),
    "mutable_int": CallbackArg(("*mut c_int",), (
        "let mut {name}_slot = 0;", "let {n} = {rt}::int_arg({n}, &mut {name}_slot);")),
    "bytes_in": CallbackArg(("*const c_void", "usize"),
                            ("let {n} = {rt}::bytes_arg({n}, {len});",)),
    "uint32_array": CallbackArg(("*mut u32", "usize"), ("let {n} = {rt}::u32s_arg({n}, {len});",)),
    "extent64_array": CallbackArg(("*mut crate::NbdExtent", "usize"),
                                  ("let {n} = {rt}::extents_arg({n}, {len});",)),
})
# The nbd crate's parameter type of the callable for each closure argument kind.
_CB_RUST = KindTable("lang_rust", "callback arguments", CLOSURE_ARG_KINDS, {
    "string": "&str", "uint64": "u64", "uint": "u32", "mutable_int": "&mut i32",
    "bytes_in": "&[u8]", "uint32_array": "&[u32]", "extent64_array": "&[NbdExtent]",
})


@dataclass(frozen=True)
class RustArg:
    """How a method takes an argument of one kind: its parameter, the statements converting it
    before the C call, those that must come last (closures: from then on the C library owns
    them), and the C arguments it becomes.  Fields: {n} the identifier, {name} the spec name,
    {len} the count's identifier, {fn} the C function, {type} the generated enum, flag set or
    callback type, and the crate's own (Crate.fields).  An entry may be a dict of variants
    (KindTable.form)."""
    param: str
    prelude: tuple = ()
    c_args: tuple = ("{n}",)
    late: tuple = ()


@dataclass(frozen=True)
class RustRet:
    """A result kind: the Rust type, the value made of the C result r in a call that returns a
    Result, the value in one that does not (None: the same), and the test of r for failure.
    Fields: {type} the generated enum or flag set, {fn} the C function."""
    type: str
    value: str
    infallible: str = None
    failed: str = "r == -1"


def scalar_args(int_type):
    """The entries of the kinds passed to C as they are; only int's type differs by crate."""
    return {"bool": RustArg("{n}: bool"), "int": RustArg("{n}: " + int_type),
            "uint32": RustArg("{n}: u32"), "uint64": RustArg("{n}: u64"),
            "size": RustArg("{n}: usize"), "uintptr": RustArg("{n}: usize")}


# The nbd crate's methods ({keep}: what a closure keeps alive, {sig}: a closure's FnMut).
_ARG = KindTable("lang_rust", "method arguments", ARG_KINDS, {
    **scalar_args("i32"),
    "string": RustArg("{n}: &str", ('let {n} = c_string({n}, "{fn}", "{name}")?;',),
                      ("{n}.as_ptr()",)),
    "path": RustArg("{n}: impl AsRef<std::path::Path>",
                    ('let {n} = c_string({n}.as_ref(), "{fn}", "{name}")?;',), ("{n}.as_ptr()",)),
    "string_list": RustArg("{n}: &[impl AsRef<std::ffi::OsStr>]",
                           ('let mut {n} = CStringList::new({n}, "{fn}", "{name}")?;',),
                           ("{n}.as_mut_ptr()",)),
    # Settled when the method returns or unwinds (FdHandOver's Drop, handle.rs).
    "fd": RustArg("{n}: std::os::fd::OwnedFd", ("let {n} = self.hand_over({n});",),
                  ("{n}.raw()",)),
    "enum": RustArg("{n}: {type}", c_args=("{n} as c_int",)),
    "flags": {"": RustArg("{n}: {type}", c_args=("{n}.bits()",)),
              "optional": RustArg("{n}: impl Into<Option<{type}>>",
                                  c_args=("{n}.into().unwrap_or_default().bits()",))},
    "closure": {"": RustArg("{n}: impl {sig} + Send + 'static",
                            late=("let {n} = {type}::new({n}).into_c({keep});",)),
                "optional": RustArg(
                    "{n}: impl Into<Option<{type}>>",
                    late=("let {n} = {type}::into_c_option({n}.into(), {keep});",))},
    "bytes_in": {"": RustArg("{n}: &[u8]", c_args=("{n}.as_ptr() as *const c_void", "{n}.len()")),
                 "persist": RustArg("{n}: &AioBuffer", (
                     'let {name}_lease = {n}.lease(false, "{fn}", "{name}")?;',
                     "let {name}_ptr = {name}_lease.as_ptr();",
                     "let {name}_len = {name}_lease.len();"),
                     ("{name}_ptr as *const c_void", "{name}_len"))},
    "bytes_out": {"": RustArg("{n}: &mut [u8]",
                              c_args=("{n}.as_mut_ptr() as *mut c_void", "{n}.len()")),
                  "persist": RustArg("{n}: &AioBuffer", (
                      'let {name}_lease = {n}.lease(true, "{fn}", "{name}")?;',
                      "let {name}_ptr = {name}_lease.as_ptr();",
                      "let {name}_len = {name}_lease.len();"),
                      ("{name}_ptr as *mut c_void", "{name}_len"))},
    "sockaddr": RustArg("{n}: &SockAddr", c_args=("{n}.as_ptr()", "{n}.socklen()")),
})
# Results: sizes, counts and cookies are unsigned (see the type map above).  Handle::new owns
# nbd_create, and _check_call refuses any other call returning a handle.
_RET = KindTable("lang_rust", "method results", RET_KINDS, {
    "err": RustRet("()", "()"), "bool": RustRet("bool", "r != 0"),
    "int": RustRet("u32", "r as u32"), "int64": RustRet("u64", "r as u64"),
    "cookie": RustRet("u64", "r as u64"), "size": RustRet("usize", "r as usize"),
    "fd": RustRet("std::os::fd::RawFd", "r"), "uint": RustRet("u32", "r"),
    "uint64": RustRet("u64", "r"), "uintptr": RustRet("usize", "r"),
    "enum": RustRet("{type}", '{type}::from_c(r, "{fn}")?',
                    '{type}::from_c(r, "{fn}").expect("a known value")'),
    "flags": RustRet("{type}", "{type}::from_bits_retain(r)"),
    "string": RustRet("String", "unsafe {{ crate::callback::take_c_string(r) }}",
                      failed="r.is_null()"),
    "static_string": RustRet("String", "unsafe {{ crate::callback::copy_c_string(r) }}",
                             "if r.is_null() {{ String::new() }} else {{ unsafe {{ "
                             "crate::callback::copy_c_string(r) }} }}", "r.is_null()"),
    "void": RustRet("()", "()"),
    "handle": None,
})
KIND_TABLES = [_SYS_ARG, _SYS_RET, _CALLBACK_ARG, _CB_RUST, _ARG, _RET]


def _ident(name):
    """A Rust identifier for a spec name: keywords become raw identifiers."""
    if name in _NOT_RAW:
        raise ValueError(f"{name!r} cannot be a Rust identifier")
    return "r#" + name if name in _KEYWORDS else name


def _pascal(snake):
    """block_size -> BlockSize, FAST_ZERO -> FastZero, allocation-depth -> AllocationDepth."""
    words = snake.replace("-", "_").replace(":", "_").lower().split("_")
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def _const_name(text):
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def _let(statement, indent=8, width=WIDTH):
    """`let x = expr;` as rustfmt lays it out: on one line, or broken after the `=`."""
    if indent + len(statement) <= width:
        return [statement]
    lhs, rhs = statement.split(" = ", 1)
    return [lhs + " =", "    " + rhs]


def _wrap(head, params, indent=0, tail="", width=WIDTH):
    """`head(p1, p2, ...)tail` indented; when too long, one parameter per line (rustfmt's
    layout).  Returns the lines, indentation included."""
    pad = " " * indent
    one = pad + head + "(" + ", ".join(params) + ")" + tail
    if len(one) <= width or not params:
        return [one]
    return [pad + head + "("] + [pad + "    " + p + "," for p in params] + [pad + ")" + tail]


# ---- Names of generated types ------------------------------------------------------------------

def _enum_type(vs):
    return _pascal(vs.key)


def _flags_type(vs):
    return _pascal(vs.key) + "Flags"


def _type_name(vs):
    return _enum_type(vs) if vs.kind == "enum" else _flags_type(vs)


def libnbd_type_name(vs):
    """The name libnbd's own crate gives an enum or flag set: its value prefix in PascalCase
    (CMD_FLAG -> CmdFlag, SIZE -> Size, TLS -> Tls)."""
    return _pascal(vs.prefix)


def _alias(vs, ours):
    """libnbd's crate's name for the type, when it is not ours already."""
    theirs = libnbd_type_name(vs)
    return theirs if theirs != ours else None


def _callback_type(closure_name):
    return _pascal(closure_name) + "Callback"


def _macro(vs, name):
    return f"LIBNBD_{vs.prefix}_{name}"


def _bound(call):
    return call.name not in _NOT_BOUND and call.ret != "handle"


def _is_method(call):
    return call.handle != "none"


# ---- Doc comments ------------------------------------------------------------------------------

def _link_map(api, enum_type=None, flags_type=None, call_link=None, closure_link=None):
    """nbd_CALL / LIBNBD_CONST / nbd_NAME_callback -> rustdoc intra-doc link.  The keyword
    arguments name things the way another crate on the same spec does (lang_rust_compat)."""
    enum_type, flags_type = enum_type or _enum_type, flags_type or _flags_type
    call_link = call_link or _call_link
    closure_link = closure_link or (lambda cl: f"[`{_callback_type(cl.name)}`]")
    links = {"nbd_handle": "[`Handle`]"}
    for c in api.calls:
        link = call_link(c)
        if link:
            links[c.c_name] = link
    for cl in api.closures:
        links[cl.c_type] = closure_link(cl)
    for vs in api.enums:
        for v in vs.values:
            links[_macro(vs, v.name)] = f"[`{enum_type(vs)}::{_pascal(v.name)}`]"
    for vs in api.flags:
        for v in vs.values:
            links[_macro(vs, v.name)] = f"[`{flags_type(vs)}::{v.name}`]"
        links[_macro(vs, "MASK")] = f"[`{flags_type(vs)}::all`]"
    for const in _constants(api):
        links[const.macro] = f"[`{const.name}`]"
    return links


def _call_link(c):
    if c.name in _NOT_BOUND:
        return f"[`{_NOT_BOUND[c.name]}`]"
    if _bound(c):
        return f"[`Handle::{c.name}`]" if _is_method(c) else f"[`{c.name}`]"
    return None


_IDENT_RE = re.compile(r"(?<![\w`])([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+)(?![\w`])")
_MD_SPECIAL = re.compile(r"([\\`*<>\[\]#|~])")
_LINE_START = re.compile(r"^(?:[-+=]|\d+[.)])")


def _inline(text, links):
    """Doc text -> Markdown: names linked, identifiers in code spans, the rest escaped."""
    out, pos = [], 0
    for m in LINK_RE.finditer(text):
        out.append(_plain(text[pos:m.start()]))
        out.append(links.get(m.group(0), f"`{m.group(0)}`"))
        pos = m.end()
    out.append(_plain(text[pos:]))
    return "".join(out)


def _plain(text):
    pieces = []
    for i, part in enumerate(_IDENT_RE.split(text)):
        pieces.append(f"`{part}`" if i % 2 else _MD_SPECIAL.sub(r"\\\1", part))
    return "".join(pieces)


def _fill(text, width, first="", rest=""):
    """Word-wraps Markdown, escaping what would start a list or heading on a continuation line."""
    lines = textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                          break_on_hyphens=False, break_long_words=False) or [first.rstrip()]
    for i in range(1, len(lines)):
        body = lines[i][len(rest):]
        if _LINE_START.match(body):
            m = re.match(r"^\d+", body)
            cut = m.end() if m else 0
            lines[i] = rest + body[:cut] + "\\" + body[cut:]
    return lines


def _markdown(text, links, width):
    """api.yaml doc markup -> lines of Markdown (paragraphs, lists, text code blocks)."""
    lines = []
    for kind, body in doc_blocks(text):
        if lines:
            lines.append("")
        if kind == "para":
            lines += _fill(_inline(body, links), width)
        elif kind == "list":
            for item in body:
                lines += _fill(_inline(item, links), width, "- ", "  ")
        else:
            lines += ["```text"] + body + ["```"]
    return lines


def _doc(lines, indent):
    pad = " " * indent
    return [(pad + "///" + (" " + l if l else "")) for l in lines]


def _sentence(short):
    return short[:1].upper() + short[1:] + "."


# ---- Value sets and constants -----------------------------------------------------------------

def _constants(api):
    """Plain constants and the metadata names the header defines, as Rust constants."""
    out = []
    for vs in api.constants:
        for v in vs.values:
            out.append(SimpleNamespace(name=f"{vs.prefix}_{v.name}", type="u32",
                                       value=str(v.value), macro=_macro(vs, v.name), doc=v.doc))
    for ns in api.meta:
        if not ns.header:
            continue
        out.append(SimpleNamespace(
            name=f"NAMESPACE_{_const_name(ns.name)}", type="&str", value=f'"{ns.name}:"',
            macro=f"LIBNBD_NAMESPACE_{ns.name.upper()}",
            doc=f'The "{ns.name}:" metadata context namespace'))
        docs = dict(ns.contexts)
        for ctx, _ in ns.contexts:
            out.append(SimpleNamespace(
                name=_const_name(f"CONTEXT_{ns.name}_{ctx}"), type="&str",
                value=f'"{ns.name}:{ctx}"',
                macro=ns.context_macro(ctx),
                doc=docs.get(ctx) or f'The "{ns.name}:{ctx}" metadata context'))
        for _, values in ns.constants:
            for v in values:
                out.append(SimpleNamespace(name=v.name, type="u32", value=str(v.value),
                                           macro=f"LIBNBD_{v.name}", doc=v.doc))
    return out


def _value_doc(doc, macro, links):
    lines = _markdown(doc, links, WIDTH - 8) if doc else []
    return lines + ([""] if lines else []) + [f"C: `{macro}`."]


def _enum(vs, links):
    values = [SimpleNamespace(name=_pascal(v.name), value=v.value, macro=_macro(vs, v.name),
                              doc=_doc(_value_doc(v.doc, _macro(vs, v.name), links), 4))
              for v in vs.values]
    return SimpleNamespace(name=_enum_type(vs), values=values,
                           alias=_alias(vs, _enum_type(vs)),
                           doc=_doc(_markdown(vs.doc, links, WIDTH - 4) if vs.doc else
                                    [f"Values of the `LIBNBD_{vs.prefix}_*` constants."], 0))


def _flags(vs, links):
    values = [SimpleNamespace(name=v.name, value=f"{v.value:#x}", macro=_macro(vs, v.name),
                              doc=_doc(_value_doc(v.doc, _macro(vs, v.name), links), 4))
              for v in vs.values]
    doc = (_markdown(vs.doc, links, WIDTH - 4) if vs.doc else
           [f"A set of `LIBNBD_{vs.prefix}_*` flags."])
    doc += [""] + _fill("Bits the library does not know are kept as they are; [`Self::all`] is "
                        f"`LIBNBD_{vs.prefix}_MASK`.", WIDTH - 4)
    return SimpleNamespace(name=_flags_type(vs), values=values, mask=f"{vs.mask:#x}",
                           alias=_alias(vs, _flags_type(vs)),
                           mask_macro=_macro(vs, "MASK"), doc=_doc(doc, 0))


# ---- Closures ----------------------------------------------------------------------------------

# How a crate built by this generator spells callback arguments: the nbd crate's way here; the
# `libnbd` compatibility crate (lang_rust_compat) passes strings as bytes and ints as c_int.
# runtime is the path of the helpers (str_arg, int_arg, ...; see src/callback.rs).
NBD_CALLBACKS = SimpleNamespace(runtime="crate::callback", types=_CB_RUST, string_arg="str_arg",
                                string_ref="&", ret="i32")


def _closure(cl, links, spelling=NBD_CALLBACKS):
    what = f"closure {cl.name}"
    sys_params, names = ["user_data: *mut c_void"], {"user_data"}
    conv, call_args = [], []
    for a in cl.args:
        if (a.name in names or (a.len and a.len in names) or a.name in ("f", "scope")
                or a.name.endswith("_slot")):
            raise ValueError(f"{what}: argument {a.name} clashes with a trampoline local")
        names.update({a.name, a.len} if a.len else {a.name})
        form = _CALLBACK_ARG[a.kind]
        f = dict(n=_ident(a.name), name=a.name, len=_ident(a.len) if a.len else "",
                 rt=spelling.runtime, string_arg=spelling.string_arg,
                 string_ref=spelling.string_ref)
        sys_params += [f"{p}: {t}" for p, t in zip((f["n"], f["len"]), form.c_types)]
        conv += [c.format(**f) for c in form.conv]
        call_args.append(form.arg.format(**f))
    error_slot = next((_ident(a.name) for a in cl.args if a.kind == "mutable_int"), None)
    typ = _callback_type(cl.name)
    fn_sig = f"FnMut({', '.join(spelling.types[a.kind] for a in cl.args)}) -> {spelling.ret}"
    doc = (_markdown(cl.doc, links, WIDTH - 4) if cl.doc else
           [f"A callback of the `{cl.c_type}` kind."])
    doc += [""] + _fill(f"A boxed `{fn_sig} + Send`; the C library frees it exactly once.",
                        WIDTH - 4) + ["", f"C: `{cl.c_type}`."]
    return SimpleNamespace(
        name=cl.name, c_type=cl.c_type, type=typ, fn_sig=fn_sig, dyn=f"{typ}Fn",
        sys_fn=("unsafe extern \"C\" fn(" + ", ".join(p.split(": ", 1)[1] for p in sys_params)
                + ") -> c_int"),
        trampoline=f"{cl.name}_trampoline", sys_params=sys_params,
        conv=conv, call=f"f({', '.join(call_args)})",
        error_slot=error_slot or "std::ptr::null_mut()",
        doc=_doc(doc, 0))


# ---- Calls -------------------------------------------------------------------------------------

def _check_call(call):
    what = f"call {call.name}"
    if call.ret == "handle" and call.name != "create":
        raise ValueError(f"{what}: a second constructor call has no Rust form")
    if _bound(call) and _is_method(call) and call.name in _HANDLE_METHODS:
        raise ValueError(f"{what}: clashes with a method of nbd::Handle written by hand")
    if _bound(call) and not _is_method(call) and call.name in _CRATE_NAMES:
        raise ValueError(f"{what}: clashes with a name of the nbd crate")
    names = set()
    for a in call.all_args:
        for n in ([a.name, a.len] if a.len else [a.name]):
            if n in _LOCALS or n.endswith(_LOCAL_SUFFIXES) or n in names:
                raise ValueError(f"{what}: argument {n} clashes with a local of the generated "
                                 "method")
            names.add(n)
        _ident(a.name)


@dataclass(frozen=True)
class Crate:
    """How one crate built on the spec makes its methods: its per-kind tables (args: RustArg,
    rets: RustRet), the name it gives an enum or flag set, its own format fields for an argument
    (fields(arg, call, api) -> dict), whether a call returns a Result, persist_note(name),
    what the doc says about a persistent buffer, and the expression of the C handle."""
    args: KindTable
    rets: KindTable
    type_name: object
    fields: object
    result: object
    persist_note: object
    handle: str                 # the C handle in a method body


def method(call, api, links, crate):
    """The view of one call's method (or free function) in crate; the templates lay it out."""
    fn = call.c_name
    params, prelude, late, c_args = [], [], [], [crate.handle] if _is_method(call) else []
    for a in call.all_args:
        form = crate.args.form(a, call)
        f = dict(n=_ident(a.name), name=a.name, len=_ident(a.len) if a.len else "", fn=fn,
                 type=crate.type_name(api.value_sets[a.type]) if a.type else "")
        f.update(crate.fields(a, call, api))
        params.append(form.param.format(**f))
        prelude += [st.format(**f) for st in form.prelude]
        late += [st.format(**f) for st in form.late]
        c_args += [arg.format(**f) for arg in form.c_args]
    ret, result = crate.rets[call.ret], crate.result(call)
    f = dict(fn=fn, type=crate.type_name(api.value_sets[call.ret_type]) if call.ret_type else "")
    ret_type = ret.type.format(**f)
    full = f"Result<{ret_type}>" if result else ret_type
    return SimpleNamespace(
        name=call.name, ident=_ident(call.name), receiver=["&self"] if _is_method(call) else [],
        params=params, tail=(f" -> {full}" if full != "()" else "") + " {",
        prelude=prelude + late, c_name=fn, c_args=c_args,
        head="" if call.ret == "void" else "let r = ",
        may_fail=call.may_fail, result=result, failed=ret.failed,
        error_of="self.last_error()" if _is_method(call) else "Error::last(std::ptr::null_mut())",
        value=(ret.value if result else ret.infallible or ret.value).format(**f),
        returns=call.ret != "void" and full != "()",
        doc=_doc(_call_doc(call, api, links, crate.persist_note), 4))


def _nbd_fields(arg, call, api):
    """The nbd crate's own fields: a closure's callback type, FnMut signature and what it keeps
    alive (the completion closure keeps the call's persistent buffer leased)."""
    if arg.kind != "closure":
        return {}
    persist = next((a for a in call.args if a.persist), None)
    keeper = persist is not None and arg.optional and arg.closure == "completion"
    return dict(type=_callback_type(arg.closure), sig=_closure_sig(api.closure_map[arg.closure]),
                keep=f"Some({persist.name}_lease)" if keeper else "None")


def param(arg, call, api):
    """The nbd crate's parameter for an argument (nbd-tokio's methods take the same)."""
    f = dict(n=_ident(arg.name), type=_type_name(api.value_sets[arg.type]) if arg.type else "")
    f.update(_nbd_fields(arg, call, api))
    return _ARG.form(arg, call).param.format(**f)


def _closure_sig(cl):
    return f"FnMut({', '.join(_CB_RUST[a.kind] for a in cl.args)}) -> i32"


def _lease_note(name):
    return (f"`{name}` is leased to the command until it retires (see [`AioBuffer`]): reading "
            "or writing it from Rust before then fails, and the library never touches it "
            "afterwards. The completion callback may already use it.")


def _call_doc(call, api, links, persist_note=_lease_note):
    """The doc comment lines of a call's method; persist_note(name) says how the crate keeps a
    persistent buffer alive."""
    width = WIDTH - 8
    lines = [_sentence(call.short), ""] + _markdown(call.doc, links, width)
    persist = [a.name for a in call.args if a.persist]
    for name in persist:
        lines += [""] + _fill(persist_note(name), width)
    for a in call.all_args:
        if a.kind == "fd":
            lines += [""] + _fill(
                f"`{a.name}` is handed over in any case: the handle keeps it if it took it "
                "(on success, or on a failure after the state check, such as a failed "
                "handshake), and a descriptor the call refused is closed here.", width)
    if call.states:
        words = ", or ".join(api.states[s] for s in call.states)
        lines += [""] + _fill(f"The handle must be {words}.", width)
    if call.errors:
        lines += ["", "# Errors", ""]
        for errno, sentence in call.errors:
            lines += _fill(f"`{errno}`: " + _inline(sentence, links), width, "- ", "  ")
    if call.see_also:
        refs = [links.get(f"nbd_{o}", f"`nbd_{o}`") for o in call.see_also]
        lines += [""] + _fill("See also " + ", ".join(refs) + ".", width)
    lines += ["", f"C: `{call.c_name}(3)`" + (f", since {call.since}." if call.since.startswith(
        "NBDPP") else ".")]
    return lines


# The nbd crate: its methods return a Result when the call may fail.
NBD = Crate(_ARG, _RET, _type_name, _nbd_fields, lambda call: call.may_fail, _lease_note, "self.h")


# ---- The raw layer -----------------------------------------------------------------------------

def _sys_call(call):
    params = ["h: *mut nbd_handle"] if call.handle != "none" else []
    for a in call.all_args:
        params += expand_kind(_SYS_ARG[a.kind], a, n=_ident(a.name),
                              len=_ident(a.len) if a.len else "", cl=a.closure)
    ret = _SYS_RET[call.ret]
    return SimpleNamespace(
        c_name=call.c_name, doc=_doc(_fill(f"`{call.c_name}(3)`: {call.short}.", WIDTH - 8), 4),
        params=params, tail=(f" -> {ret}" if ret else "") + ";")


def _sys_closure(cl, links):
    fn = _closure(cl, links).sys_fn
    one = f"    pub callback: Option<{fn}>,"
    if len(one) <= WIDTH:
        lines = [one]
    else:
        head, params = fn[:fn.index("(")], fn[fn.index("(") + 1:fn.rindex(")")].split(", ")
        tail = fn[fn.rindex(")") + 1:]
        lines = (["    pub callback: Option<"] + _wrap(head, params, 8, tail + ",")
                 + ["    >,"])
    return SimpleNamespace(c_type=cl.c_type, callback=lines)


def _sys_constants(api):
    out = []
    for vs in api.enums:
        out += [(_macro(vs, v.name), "c_int", str(v.value)) for v in vs.values]
    for vs in api.flags:
        out += [(_macro(vs, v.name), "u32", f"{v.value:#x}") for v in vs.values]
        out.append((_macro(vs, "MASK"), "u32", f"{vs.mask:#x}"))
    for c in _constants(api):
        if c.type == "&str":
            out.append((c.macro, "&str", c.value))
        else:
            out.append((c.macro, "c_uint" if c.type == "u32" else c.type, c.value))
    return out


# ---- View model --------------------------------------------------------------------------------

def view(api):
    links = _link_map(api)
    # Every type name the crate defines, each claimed once: the hand-written ones, then the
    # generated types and aliases.
    claimed = dict.fromkeys(_CRATE_NAMES, "the hand-written part of the crate")
    types = []
    for vs in api.enums + api.flags:
        ours = _enum_type(vs) if vs.kind == "enum" else _flags_type(vs)
        types += [(f"{vs.kind} {vs.key}", ours), (f"{vs.kind} {vs.key} (libnbd's name)",
                                                  _alias(vs, ours))]
    types += [(f"closure {cl.name}", _callback_type(cl.name)) for cl in api.closures]
    for what, name in types:
        if name is None:
            continue
        if name in claimed:
            raise ValueError(f"{what}: its Rust name {name} clashes with {claimed[name]}")
        claimed[name] = what
    calls = [c for c in api.calls if _bound(c)]
    for c in api.calls:
        _check_call(c)
    constants = _constants(api)
    for c in constants:
        c.doc_lines = _doc(_value_doc(c.doc, c.macro, links), 0)
    return SimpleNamespace(
        # The formatting traits of a flag set's bits (`{:x}`, `{:b}`), as for a bitflags type.
        bits_formats=["Binary", "Octal", "LowerHex", "UpperHex"],
        sys_calls=[_sys_call(c) for c in api.calls],
        sys_closures=[_sys_closure(cl, links) for cl in api.closures],
        sys_constants=_sys_constants(api),
        enums=[_enum(vs, links) for vs in api.enums],
        flags=[_flags(vs, links) for vs in api.flags],
        constants=constants,
        closures=[_closure(cl, links) for cl in api.closures],
        functions=[method(c, api, links, NBD) for c in calls if not _is_method(c)],
        methods=[method(c, api, links, NBD) for c in calls if _is_method(c)],
    )


def outputs(api, common):
    """(target, relative path, template, extra context) for every generated Rust file."""
    extra = {"rs": view(api)}
    yield "rust", "rust/sys.rs", "rust/sys.rs.j2", extra
    yield "rust", "rust/api.rs", "rust/api.rs.j2", extra


def _unsafe_call(head, fn, args):
    """`head unsafe { fn(args) };`, the C call of a method body (indented by 8), its lines
    relative to the body: on one line, or the arguments one per line (rustfmt's layout)."""
    one = f"{head}unsafe {{ {fn}({', '.join(args)}) }};"
    if len(one) + 8 <= WIDTH:
        return [one]
    return [f"{head}unsafe {{"] + _wrap(fn, args, 4, width=WIDTH - 8) + ["};"]


# What the templates of the nbd and libnbd crates under templates/rust/ call.
HELPERS = {"wrap": _wrap, "let_lines": _let, "unsafe_call": _unsafe_call}
