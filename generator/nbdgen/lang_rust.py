"""Rust binding generation: names, types and the files under rust/ in the output directory.

The crate `nbd` (bindings/rust) includes two generated files:
  rust/sys.rs   the raw layer: one `extern "C"` declaration per call, the closure structs and
                every constant, spelled as in libnbd.h;
  rust/api.rs   the safe layer: enums, flag sets, constants, one boxed callback type per closure
                kind with its trampoline, and one method of `Handle` per call.
The hand-written runtime they rely on (Handle, Error, AioBuffer, SockAddr, closure boxing, the
panic relay, argument conversions) is in bindings/rust/src.  Everything per call, per closure and
per value set is computed here as a view model, so the templates under templates/rust/ only loop.

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
from types import SimpleNamespace

from .markdown import LINK_RE, doc_blocks
from .model import CLOSURE_ARRAY_KINDS

HELPERS = {}

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

# Raw layer: C types of arguments and results (see lang_c._SCALAR and _RET).
_SYS_ARG = {
    "bool": "bool", "int": "c_int", "uint32": "u32", "uint64": "u64", "size": "usize",
    "uintptr": "usize", "string": "*const c_char", "path": "*const c_char",
    "string_list": "*mut *mut c_char", "fd": "c_int", "enum": "c_int", "flags": "u32",
}
_SYS_RET = {
    "err": "c_int", "bool": "c_int", "int": "c_int", "int64": "i64", "cookie": "i64",
    "size": "isize", "fd": "c_int", "uint": "c_uint", "uint64": "u64", "uintptr": "usize",
    "enum": "c_int",
    "flags": "u32", "string": "*mut c_char", "static_string": "*const c_char", "void": "",
    "handle": "*mut nbd_handle",
}
# Closure argument kinds: C parameters, and the Rust parameter types the callable takes.
_SYS_CB = {
    "string": ["*const c_char"], "uint64": ["u64"], "uint": ["c_uint"],
    "mutable_int": ["*mut c_int"],
    "bytes_in": ["*const c_void", "usize"], "uint32_array": ["*mut u32", "usize"],
    "extent64_array": ["*mut crate::NbdExtent", "usize"],
}
_CB_RUST = {
    "string": "&str", "uint64": "u64", "uint": "u32", "mutable_int": "&mut i32",
    "bytes_in": "&[u8]", "uint32_array": "&[u32]", "extent64_array": "&[NbdExtent]",
}
# Safe layer: scalar argument types and how they reach C.
_ARG_RUST = {
    "bool": "bool", "int": "i32", "uint32": "u32", "uint64": "u64", "size": "usize",
    "uintptr": "usize", "string": "&str", "path": "impl AsRef<std::path::Path>",
    "string_list": "&[impl AsRef<std::ffi::OsStr>]", "fd": "std::os::fd::OwnedFd",
    "sockaddr": "&SockAddr", "bytes_in": "&[u8]", "bytes_out": "&mut [u8]",
}
_RET_RUST = {
    "err": "()", "bool": "bool", "int": "u32", "fd": "std::os::fd::RawFd", "int64": "u64",
    "cookie": "u64", "size": "usize", "uint": "u32", "uint64": "u64", "uintptr": "usize",
    "string": "String",
    "static_string": "String", "void": "()",
}
# The Rust value of a successful result r (string kinds are converted by the runtime).
_RET_EXPR = {
    "err": "()", "bool": "r != 0", "int": "r as u32", "fd": "r", "int64": "r as u64",
    "cookie": "r as u64", "size": "r as usize", "uint": "r", "uint64": "r", "uintptr": "r", "void": "()",
    "string": "unsafe { crate::callback::take_c_string(r) }",
    "static_string": "unsafe { crate::callback::copy_c_string(r) }",
}


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
    rt = spelling.runtime
    sys_params, names = ["user_data: *mut c_void"], {"user_data"}
    rust_types, conv, call_args = [], [], []
    for a in cl.args:
        if (a.name in names or (a.len and a.len in names) or a.name in ("f", "scope")
                or a.name.endswith("_slot")):
            raise ValueError(f"{what}: argument {a.name} clashes with a trampoline local")
        names.update({a.name, a.len} if a.len else {a.name})
        n = _ident(a.name)
        c_types = _SYS_CB[a.kind]
        sys_params.append(f"{n}: {c_types[0]}")
        if a.kind in CLOSURE_ARRAY_KINDS:
            sys_params.append(f"{_ident(a.len)}: {c_types[1]}")
        rust_types.append(spelling.types[a.kind])
        if a.kind == "string":
            conv.append(f"let {n} = {rt}::{spelling.string_arg}({n});")
            call_args.append(f"{spelling.string_ref}{n}")
        elif a.kind == "mutable_int":
            conv.append(f"let mut {a.name}_slot = 0;")
            conv.append(f"let {n} = {rt}::int_arg({n}, &mut {a.name}_slot);")
            call_args.append(n)
        elif a.kind == "bytes_in":
            conv.append(f"let {n} = {rt}::bytes_arg({n}, {_ident(a.len)});")
            call_args.append(n)
        elif a.kind == "uint32_array":
            conv.append(f"let {n} = {rt}::u32s_arg({n}, {_ident(a.len)});")
            call_args.append(n)
        elif a.kind == "extent64_array":
            conv.append(f"let {n} = {rt}::extents_arg({n}, {_ident(a.len)});")
            call_args.append(n)
        else:
            call_args.append(n)
    error_slot = next((_ident(a.name) for a in cl.args if a.kind == "mutable_int"), None)
    typ = _callback_type(cl.name)
    fn_sig = f"FnMut({', '.join(rust_types)}) -> {spelling.ret}"
    doc = (_markdown(cl.doc, links, WIDTH - 4) if cl.doc else
           [f"A callback of the `{cl.c_type}` kind."])
    doc += [""] + _fill(f"A boxed `{fn_sig} + Send`; the C library frees it exactly once.",
                        WIDTH - 4) + ["", f"C: `{cl.c_type}`."]
    return SimpleNamespace(
        name=cl.name, c_type=cl.c_type, type=typ, fn_sig=fn_sig, dyn=f"{typ}Fn",
        sys_fn=("unsafe extern \"C\" fn(" + ", ".join(p.split(": ", 1)[1] for p in sys_params)
                + ") -> c_int"),
        trampoline=f"{cl.name}_trampoline",
        trampoline_sig=_wrap(f"unsafe extern \"C\" fn {cl.name}_trampoline", sys_params, 0,
                             " -> c_int {"),
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


def _keeper(call):
    """The optional completion closure that keeps the call's persistent buffer, if any."""
    if not any(a.persist for a in call.args):
        return None
    return next(a for a in call.optargs if a.kind == "closure" and a.closure == "completion")


def _method(call, api, links):
    _check_call(call)
    params, prelude, leases, closures, c_args = [], [], [], [], []
    if _is_method(call):
        c_args.append("self.h")
    keeper = _keeper(call)
    lease = None
    fn = call.c_name
    for a in call.all_args:
        n, k = _ident(a.name), a.kind
        if k == "enum":
            params.append(f"{n}: {_enum_type(api.value_sets[a.type])}")
            c_args.append(f"{n} as c_int")
        elif k == "flags":
            t = _flags_type(api.value_sets[a.type])
            if a in call.optargs:
                params.append(f"{n}: impl Into<Option<{t}>>")
                c_args.append(f"{n}.into().unwrap_or_default().bits()")
            else:
                params.append(f"{n}: {t}")
                c_args.append(f"{n}.bits()")
        elif k == "closure":
            typ = _callback_type(a.closure)
            keep = f"Some({lease})" if a is keeper else "None"
            if a.optional:
                params.append(f"{n}: impl Into<Option<{typ}>>")
                closures.append(f"let {n} = {typ}::into_c_option({n}.into(), {keep});")
            else:
                cl = api.closure_map[a.closure]
                params.append(f"{n}: impl {_closure_sig(cl)} + Send + 'static")
                closures.append(f"let {n} = {typ}::new({n}).into_c({keep});")
            c_args.append(n)
        elif k in ("bytes_in", "bytes_out") and a.persist:
            params.append(f"{n}: &AioBuffer")
            lease = f"{a.name}_lease"
            exclusive = "true" if k == "bytes_out" else "false"
            leases.append(f'let {lease} = {n}.lease({exclusive}, "{fn}", "{a.name}")?;')
            leases.append(f"let {a.name}_ptr = {lease}.as_ptr();")
            leases.append(f"let {a.name}_len = {lease}.len();")
            cast = "*mut c_void" if k == "bytes_out" else "*const c_void"
            c_args += [f"{a.name}_ptr as {cast}", f"{a.name}_len"]
        elif k == "bytes_in":
            params.append(f"{n}: &[u8]")
            c_args += [f"{n}.as_ptr() as *const c_void", f"{n}.len()"]
        elif k == "bytes_out":
            params.append(f"{n}: &mut [u8]")
            c_args += [f"{n}.as_mut_ptr() as *mut c_void", f"{n}.len()"]
        elif k == "sockaddr":
            params.append(f"{n}: &SockAddr")
            c_args += [f"{n}.as_ptr()", f"{n}.socklen()"]
        elif k in ("string", "path"):
            params.append(f"{n}: {_ARG_RUST[k]}")
            src = n if k == "string" else f"{n}.as_ref()"
            prelude.append(f'let {n} = c_string({src}, "{fn}", "{a.name}")?;')
            c_args.append(f"{n}.as_ptr()")
        elif k == "string_list":
            params.append(f"{n}: {_ARG_RUST[k]}")
            prelude.append(f'let mut {n} = CStringList::new({n}, "{fn}", "{a.name}")?;')
            c_args.append(f"{n}.as_mut_ptr()")
        elif k == "fd":
            params.append(f"{n}: {_ARG_RUST[k]}")
            # Settled when the method returns or unwinds (FdHandOver's Drop, handle.rs).
            prelude.append(f"let {n} = self.hand_over({n});")
            c_args.append(f"{n}.raw()")
        else:
            params.append(f"{n}: {_ARG_RUST[k]}")
            c_args.append(n)
    if call.ret == "enum":
        t = _enum_type(api.value_sets[call.ret_type])
        value = f'{t}::from_c(r, "{fn}")'
        ret_type = t
    elif call.ret == "flags":
        ret_type = _flags_type(api.value_sets[call.ret_type])
        value = f"{ret_type}::from_bits_retain(r)"
    else:
        ret_type = _RET_RUST[call.ret]
        value = _RET_EXPR[call.ret]
    failed = "r.is_null()" if call.ret in ("string", "static_string") else "r == -1"
    if call.ret == "enum" and call.may_fail:
        value += "?"
    elif call.ret == "enum":
        value += '.expect("a known value")'
    if not call.may_fail and call.ret == "static_string":
        value = "if r.is_null() { String::new() } else { " + value + " }"
    receiver = ["&self"] if _is_method(call) else []
    result = f"Result<{ret_type}>" if call.may_fail else ret_type
    sig = _wrap(f"pub fn {_ident(call.name)}", receiver + params, 4,
                (f" -> {result}" if result != "()" else "") + " {")
    # The C call, its lines indented relative to the method body.
    head = "" if call.ret == "void" else "let r = "
    one = f"{head}unsafe {{ sys::{call.c_name}({', '.join(c_args)}) }};"
    if len(one) + 8 <= WIDTH:
        c_call = [one]
    else:
        c_call = ([f"{head}unsafe {{"] + _wrap(f"sys::{call.c_name}", c_args, 4, width=WIDTH - 8)
                  + ["};"])
    error_of = "self.last_error()" if _is_method(call) else "Error::last(std::ptr::null_mut())"
    return SimpleNamespace(
        name=call.name, sig=sig,
        prelude=[line for s in prelude + leases + closures for line in _let(s)], c_call=c_call,
        may_fail=call.may_fail, result=call.may_fail,
        failed=failed, error_of=error_of, value=value,
        returns=call.ret != "void" and result != "()",
        doc=_doc(_call_doc(call, api, links), 4))


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


# ---- The raw layer -----------------------------------------------------------------------------

def _sys_params(call):
    out = ["h: *mut nbd_handle"] if call.handle != "none" else []
    for a in call.all_args:
        n = _ident(a.name)
        if a.kind == "closure":
            out.append(f"{n}: nbd_{a.closure}_callback")
        elif a.kind == "bytes_in":
            out += [f"{n}: *const c_void", f"{_ident(a.len)}: usize"]
        elif a.kind == "bytes_out":
            out += [f"{n}: *mut c_void", f"{_ident(a.len)}: usize"]
        elif a.kind == "sockaddr":
            out += [f"{n}: *const sockaddr", f"{_ident(a.len)}: socklen_t"]
        else:
            out.append(f"{n}: {_SYS_ARG[a.kind]}")
    return out


def _sys_call(call):
    ret = _SYS_RET[call.ret]
    return SimpleNamespace(
        c_name=call.c_name, doc=_doc(_fill(f"`{call.c_name}(3)`: {call.short}.", WIDTH - 8), 4),
        decl=_wrap(f"pub fn {call.c_name}", _sys_params(call), 4,
                   (f" -> {ret}" if ret else "") + ";"))


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
        functions=[_method(c, api, links) for c in calls if not _is_method(c)],
        methods=[_method(c, api, links) for c in calls if _is_method(c)],
    )


def outputs(api, common):
    """(target, relative path, template, extra context) for every generated Rust file."""
    extra = {"rs": view(api)}
    yield "rust", "rust/sys.rs", "rust/sys.rs.j2", extra
    yield "rust", "rust/api.rs", "rust/api.rs.j2", extra
