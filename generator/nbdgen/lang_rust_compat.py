"""The `libnbd` compatibility crate (bindings/rust/libnbd): the API of libnbd's own Rust crate
(crate `libnbd`, libnbd 1.18+), without its tokio AsyncHandle, over the nbd crate.

One generated file, rust/libnbd.rs, holds the per-call part: libnbd's type names (re-exported
from nbd, which has them as aliases), the constants, one private trampoline per closure kind,
and one method of `libnbd::Handle` per call of libnbd's (not our NBDPP_* calls).  It makes the C
calls through `nbd::sys` with the nbd crate's closure boxing and panic relay
(`nbd::__compat`); the hand-written rest (Handle, Error, Cookie, ...) is in
bindings/rust/libnbd/src.  Its per-kind tables (_ARG, _RET, the callback argument types) are
KindTables of lang_rust's entry types; lang_rust.method() makes the methods from them (CRATE).

Type map, libnbd's crate's (the facts to match; `names` below are shared with lang_rust):
  bool -> bool; int -> c_int; uint32 -> u32; uint64 -> u64; size, uintptr -> usize;
  string -> impl Into<Vec<u8>>; path -> impl Into<PathBuf>;
  string_list -> impl IntoIterator<Item = impl AsRef<[u8]>>; fd -> OwnedFd;
  sockaddr -> SocketAddr; enum, flags -> libnbd's type name (CmdFlag, Size: the prefix in
  PascalCase); optional flags -> Option<T>; bytes_in -> &[u8], bytes_out -> &mut [u8], and
  'static for a buffer the command keeps; closure -> impl FnMut(..) -> c_int + Send + Sync
  + 'static, an optional one in an Option.
Closure arguments: string -> &[u8]; uint64 -> u64; uint -> c_uint; mutable_int -> &mut c_int;
  bytes_in -> &[u8]; uint32_array -> &[u32]; extent64_array -> &[NbdExtent].
Results: err -> (); bool -> bool; int, uint -> c_uint; int64, uint64 -> u64; cookie -> Cookie;
  size, uintptr -> usize; fd -> RawFd; string -> Vec<u8>; static_string -> &'static [u8];
  enum, flags -> their types.  A call returns Result<T> when it may fail, or when libnbd's own
  description says so (api.yaml's libnbd_may_fail).
"""
from types import SimpleNamespace

from . import lang_rust as rs
from .lang_rust import RustArg, RustRet
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS, KindTable

# Calls with no method, as in the nbd crate; doc mentions of them link to these.
_NOT_BOUND = {"create": "Handle::new", "close": "Handle", "get_error": "Error",
              "get_errno": "Error::errno"}
# Names the hand-written part of the crate defines at its root, and Handle's own methods.
_CRATE_NAMES = {"Handle", "Error", "ErrorKind", "FatalErrorKind", "Errno", "Result", "Cookie",
                "NbdExtent", "types"}
_HANDLE_METHODS = {"new", "as_nbd", "into_nbd", "last_error", "raw"}

_CALLBACKS = SimpleNamespace(
    runtime="rt", string_arg="cstr_bytes_arg", string_ref="", ret="c_int",
    types=KindTable("lang_rust_compat", "callback arguments", CLOSURE_ARG_KINDS, {
        "string": "&[u8]", "uint64": "u64", "uint": "c_uint", "mutable_int": "&mut c_int",
        "bytes_in": "&[u8]", "uint32_array": "&[u32]", "extent64_array": "&[NbdExtent]"}))
_CLOSURE_BOUNDS = "Send + Sync + 'static"

# How a method takes each argument kind (lang_rust.RustArg; {closure_param} is the closure's
# whole parameter, {closure} its kind and {some} the argument as an Option).
_ARG = KindTable("lang_rust_compat", "method arguments", ARG_KINDS, {
    **rs.scalar_args("c_int"),
    "string": RustArg("{n}: impl Into<Vec<u8>>", ("let {n} = CString::new({n})?;",),
                      ("{n}.as_ptr()",)),
    "path": RustArg("{n}: impl Into<PathBuf>", ("let {n} = path_c_string({n}.into())?;",),
                    ("{n}.as_ptr()",)),
    "string_list": RustArg("{n}: impl IntoIterator<Item = impl AsRef<[u8]>>",
                           ("let mut {n} = c_string_list({n})?;",), ("{n}.as_mut_ptr()",)),
    # Settled when the method returns or unwinds, as in the nbd crate (FdHandOver).
    "fd": RustArg("{n}: OwnedFd", ("let {n} = rt::hand_over(&self.inner, {n});",),
                  ("{n}.raw()",)),
    "enum": RustArg("{n}: {type}", c_args=("{n} as c_int",)),
    "flags": {"": RustArg("{n}: {type}", c_args=("{n}.bits()",)),
              "optional": RustArg("{n}: Option<{type}>",
                                  c_args=("{n}.unwrap_or_default().bits()",))},
    "closure": RustArg("{closure_param}", late=("let {n} = {closure}_to_c({some});",)),
    "bytes_in": {"": RustArg("{n}: &[u8]", c_args=("{n}.as_ptr() as *const c_void", "{n}.len()")),
                 "persist": RustArg("{n}: &'static [u8]",
                                    c_args=("{n}.as_ptr() as *const c_void", "{n}.len()"))},
    "bytes_out": {"": RustArg("{n}: &mut [u8]",
                              c_args=("{n}.as_mut_ptr() as *mut c_void", "{n}.len()")),
                  "persist": RustArg("{n}: &'static mut [u8]",
                                     c_args=("{n}.as_mut_ptr() as *mut c_void", "{n}.len()"))},
    "sockaddr": RustArg("{n}: SocketAddr", ("let {n} = nbd::SockAddr::from({n});",),
                        ("{n}.as_ptr()", "{n}.socklen()")),
})
# Results, as libnbd's crate has them; like the nbd crate, no method returns a handle.
_RET = KindTable("lang_rust_compat", "method results", RET_KINDS, {
    "err": RustRet("()", "()"), "bool": RustRet("bool", "r != 0"),
    "int": RustRet("c_uint", "r as c_uint"), "int64": RustRet("u64", "r as u64"),
    "cookie": RustRet("Cookie", "Cookie(r as u64)"), "size": RustRet("usize", "r as usize"),
    "fd": RustRet("RawFd", "r"), "uint": RustRet("c_uint", "r"), "uint64": RustRet("u64", "r"),
    "uintptr": RustRet("usize", "r"),
    "enum": RustRet("{type}", '{type}::from_c_value(r).ok_or_else(|| unknown_value("{fn}", r))?',
                    '{type}::from_c_value(r).expect("a known value")'),
    "flags": RustRet("{type}", "{type}::from_bits_retain(r)"),
    "string": RustRet("Vec<u8>", "unsafe {{ rt::take_c_bytes(r) }}", failed="r.is_null()"),
    "static_string": RustRet("&'static [u8]", "unsafe {{ static_bytes(r) }}",
                             'if r.is_null() {{ b"" }} else {{ unsafe {{ static_bytes(r) }} }}',
                             "r.is_null()"),
    "void": RustRet("()", "()"),
    "handle": None,
})
KIND_TABLES = [_CALLBACKS.types, _ARG, _RET]


def _bound(call):
    """libnbd's calls that take a handle: its crate has a method for each."""
    return rs._bound(call) and not call.since.startswith("NBDPP")


def _call_link(c):
    if c.name in _NOT_BOUND:
        return f"[`{_NOT_BOUND[c.name]}`]"
    if _bound(c):
        return f"[`Handle::{c.name}`]"
    if rs._bound(c):  # one of nbdpp's own calls: the nbd crate has it
        return f"[`nbd::Handle::{c.name}`]" if rs._is_method(c) else f"[`nbd::{c.name}`]"
    return None


def _links(api):
    return rs._link_map(api, enum_type=rs.libnbd_type_name, flags_type=rs.libnbd_type_name,
                        call_link=_call_link, closure_link=lambda cl: f"`{cl.c_type}`")


def _persist_note(name):
    return (f"The command keeps using `{name}` after this call has returned, until it retires; "
            "hence the `'static` borrow (from `Box::leak`, for instance), as in libnbd's crate. "
            "The completion callback runs once the library is done with it.")


def _closure_param(api, a, n):
    """`n: impl FnMut(..) -> c_int + bounds`, in an Option when optional; laid out as rustfmt
    would when its line in a method signature is too long (bounds, or the Option's argument,
    on lines of their own)."""
    cl = api.closure_map[a.closure]
    sig = f"impl FnMut({', '.join(_CALLBACKS.types[x.kind] for x in cl.args)}) -> c_int"
    typ = f"{sig} + {_CLOSURE_BOUNDS}"
    one = f"{n}: Option<{typ}>" if a.optional else f"{n}: {typ}"
    if 8 + len(one) + 1 <= rs.WIDTH:
        return one
    if a.optional:
        return f"{n}: Option<\n{' ' * 12}{typ},\n{' ' * 8}>"
    return f"{n}: {sig}" + "".join(f"\n{' ' * 12}+ {b}" for b in _CLOSURE_BOUNDS.split(" + "))


def _check_call(call):
    what = f"call {call.name}"
    if not rs._is_method(call):
        raise ValueError(f"{what}: libnbd's crate has no free functions to match")
    if call.name in _HANDLE_METHODS:
        raise ValueError(f"{what}: clashes with a method of libnbd::Handle written by hand")
    rs._check_call(call)


def _fields(arg, call, api):
    if arg.kind != "closure":
        return {}
    n = rs._ident(arg.name)
    return dict(closure_param=_closure_param(api, arg, n), closure=arg.closure,
                some=n if arg.optional else f"Some({n})")


# libnbd's crate: a method returns a Result when the call may fail, or when libnbd's own
# description says it may.
CRATE = rs.Crate(_ARG, _RET, rs.libnbd_type_name, _fields,
                 lambda call: call.may_fail or call.libnbd_may_fail, _persist_note, "self.raw()")


def _closure(cl, links):
    view = rs._closure(cl, links, _CALLBACKS)
    view.bounds = _CLOSURE_BOUNDS
    view.dyn = rs._pascal(cl.name) + "Fn"
    return view


def _constants(api):
    out = []
    for c in rs._constants(api):
        if c.type == "&str":  # metadata context names: byte strings in libnbd's crate
            c.type, c.value = "&[u8]", "b" + c.value
        c.doc_lines = rs._doc(rs._value_doc(c.doc, c.macro, _links(api)), 0)
        out.append(c)
    return out


def view(api):
    links = _links(api)
    calls = [c for c in api.calls if _bound(c)]
    for c in calls:
        _check_call(c)
    names = {rs.libnbd_type_name(vs) for vs in api.enums + api.flags}
    clash = sorted(names & _CRATE_NAMES)
    if clash:
        raise ValueError(f"libnbd's type name {clash[0]} clashes with a name of the libnbd crate")
    used = {a.closure for c in calls for a in c.closures}
    return SimpleNamespace(
        types=sorted(names),
        constants=_constants(api),
        closures=[_closure(cl, links) for cl in api.closures if cl.name in used],
        methods=[rs.method(c, api, links, CRATE) for c in calls],
    )


def outputs(api, common):
    """(target, relative path, template, extra context): the crate's one generated file, beside
    the nbd crate's (it is rendered with the "rust" target and installed with them)."""
    yield "rust", "rust/libnbd.rs", "rust/libnbd.rs.j2", {"compat": view(api)}
