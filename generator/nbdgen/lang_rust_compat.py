"""The `libnbd` compatibility crate (bindings/rust/libnbd): the API of libnbd's own Rust crate
(crate `libnbd`, libnbd 1.18+), without its tokio AsyncHandle, over the nbd crate.

One generated file, rust/libnbd.rs, holds the per-call part: libnbd's type names (re-exported
from nbd, which has them as aliases), the constants, one private trampoline per closure kind,
and one method of `libnbd::Handle` per call of libnbd's (not our NBDPP_* calls).  It makes the C
calls through `nbd::sys` with the nbd crate's closure boxing and panic relay
(`nbd::__compat`); the hand-written rest (Handle, Error, Cookie, ...) is in
bindings/rust/libnbd/src.

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
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS

EXPORTS = []

# Calls with no method, as in the nbd crate; doc mentions of them link to these.
_NOT_BOUND = {"create": "Handle::new", "close": "Handle", "get_error": "Error",
              "get_errno": "Error::errno"}
# Names the hand-written part of the crate defines at its root, and Handle's own methods.
_CRATE_NAMES = {"Handle", "Error", "ErrorKind", "FatalErrorKind", "Errno", "Result", "Cookie",
                "NbdExtent", "types"}
_HANDLE_METHODS = {"new", "as_nbd", "into_nbd", "last_error", "raw"}

_CALLBACKS = SimpleNamespace(
    runtime="rt", string_arg="cstr_bytes_arg", string_ref="", ret="c_int",
    types={"string": "&[u8]", "uint64": "u64", "uint": "c_uint", "mutable_int": "&mut c_int",
           "bytes_in": "&[u8]", "uint32_array": "&[u32]", "extent64_array": "&[NbdExtent]"})
_CLOSURE_BOUNDS = "Send + Sync + 'static"

# Arguments of the other kinds (the value {n}): its type, the conversion before the call (None:
# passed as it is), and what the C call receives.
_ARG = {
    "bool": ("bool", None, ["{n}"]),
    "int": ("c_int", None, ["{n}"]),
    "uint32": ("u32", None, ["{n}"]),
    "uint64": ("u64", None, ["{n}"]),
    "size": ("usize", None, ["{n}"]),
    "uintptr": ("usize", None, ["{n}"]),
    "sockaddr": ("SocketAddr", "let {n} = nbd::SockAddr::from({n});",
                 ["{n}.as_ptr()", "{n}.socklen()"]),
    "string": ("impl Into<Vec<u8>>", "let {n} = CString::new({n})?;", ["{n}.as_ptr()"]),
    "path": ("impl Into<PathBuf>", "let {n} = path_c_string({n}.into())?;", ["{n}.as_ptr()"]),
    "string_list": ("impl IntoIterator<Item = impl AsRef<[u8]>>",
                    "let mut {n} = c_string_list({n})?;", ["{n}.as_mut_ptr()"]),
    # Settled when the method returns or unwinds, as in the nbd crate (FdHandOver).
    "fd": ("OwnedFd", "let {n} = rt::hand_over(&self.inner, {n});", ["{n}.raw()"]),
}
_RET = {
    "err": "()", "bool": "bool", "int": "c_uint", "int64": "u64", "cookie": "Cookie",
    "size": "usize", "fd": "RawFd", "uint": "c_uint", "uint64": "u64", "uintptr": "usize",
    "string": "Vec<u8>", "static_string": "&'static [u8]", "void": "()",
}
_RET_EXPR = {
    "err": "()", "bool": "r != 0", "int": "r as c_uint", "int64": "r as u64",
    "cookie": "Cookie(r as u64)", "size": "r as usize", "fd": "r", "uint": "r", "uint64": "r",
    "uintptr": "r", "void": "()", "string": "unsafe { rt::take_c_bytes(r) }",
    "static_string": "unsafe { static_bytes(r) }",
}


def _check_kinds():
    """Every kind of the model has a form here; a new one fails generation, naming it."""
    covered = [("argument", ARG_KINDS, set(_ARG) | {"enum", "flags", "closure", "bytes_in",
                                                   "bytes_out"}),
               ("closure argument", CLOSURE_ARG_KINDS, set(_CALLBACKS.types)),
               ("result", RET_KINDS, set(_RET) | {"enum", "flags", "handle"})]
    for what, kinds, have in covered:
        missing = sorted(set(kinds) - have)
        if missing:
            raise ValueError(f"lang_rust_compat: no libnbd crate form for {what} kind "
                             f"{', '.join(missing)}")


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


def _method(call, api, links):
    _check_call(call)
    params, prelude, closures, c_args = [], [], [], ["self.raw()"]
    fn = call.c_name
    for a in call.all_args:
        n, k = rs._ident(a.name), a.kind
        if k == "enum":
            params.append(f"{n}: {rs.libnbd_type_name(api.value_sets[a.type])}")
            c_args.append(f"{n} as c_int")
        elif k == "flags":
            t = rs.libnbd_type_name(api.value_sets[a.type])
            if a in call.optargs:
                params.append(f"{n}: Option<{t}>")
                c_args.append(f"{n}.unwrap_or_default().bits()")
            else:
                params.append(f"{n}: {t}")
                c_args.append(f"{n}.bits()")
        elif k == "closure":
            params.append(_closure_param(api, a, n))
            closures.append(f"let {n} = {a.closure}_to_c({n if a.optional else f'Some({n})'});")
            c_args.append(n)
        elif k in ("bytes_in", "bytes_out"):
            life = "'static " if a.persist else ""
            if k == "bytes_in":
                params.append(f"{n}: &{life}[u8]")
                c_args += [f"{n}.as_ptr() as *const c_void", f"{n}.len()"]
            else:
                params.append(f"{n}: &{life}mut [u8]")
                c_args += [f"{n}.as_mut_ptr() as *mut c_void", f"{n}.len()"]
        else:
            typ, conversion, to_c = _ARG[k]
            params.append(f"{n}: {typ}")
            if conversion:
                prelude.append(conversion.format(n=n))
            c_args += [c.format(n=n) for c in to_c]
    result = call.may_fail or call.libnbd_may_fail
    if call.ret == "enum":
        t = rs.libnbd_type_name(api.value_sets[call.ret_type])
        ret_type = t
        value = (f'{t}::from_c_value(r).ok_or_else(|| unknown_value("{fn}", r))?' if result
                 else f'{t}::from_c_value(r).expect("a known value")')
    elif call.ret == "flags":
        ret_type = rs.libnbd_type_name(api.value_sets[call.ret_type])
        value = f"{ret_type}::from_bits_retain(r)"
    else:
        ret_type, value = _RET[call.ret], _RET_EXPR[call.ret]
    if call.ret == "static_string" and not call.may_fail:
        value = "if r.is_null() { b\"\" } else { " + value + " }"
    failed = "r.is_null()" if call.ret in ("string", "static_string") else "r == -1"
    full = f"Result<{ret_type}>" if result else ret_type
    sig = rs._wrap(f"pub fn {rs._ident(call.name)}", ["&self"] + params, 4,
                   (f" -> {full}" if full != "()" else "") + " {")
    head = "" if call.ret == "void" else "let r = "
    one = f"{head}unsafe {{ sys::{call.c_name}({', '.join(c_args)}) }};"
    if len(one) + 8 <= rs.WIDTH:
        c_call = [one]
    else:
        c_call = ([f"{head}unsafe {{"] + rs._wrap(f"sys::{call.c_name}", c_args, 4,
                                                  width=rs.WIDTH - 8) + ["};"])
    return SimpleNamespace(
        name=call.name, sig=sig,
        prelude=[line for st in prelude + closures for line in rs._let(st)], c_call=c_call,
        may_fail=call.may_fail, result=result, failed=failed, error_of="self.last_error()",
        value=value, returns=call.ret != "void" and full != "()",
        doc=rs._doc(rs._call_doc(call, api, links, _persist_note), 4))


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
    _check_kinds()
    links = _links(api)
    calls = [c for c in api.calls if _bound(c)]
    names = {rs.libnbd_type_name(vs) for vs in api.enums + api.flags}
    clash = sorted(names & _CRATE_NAMES)
    if clash:
        raise ValueError(f"libnbd's type name {clash[0]} clashes with a name of the libnbd crate")
    used = {a.closure for c in calls for a in c.closures}
    return SimpleNamespace(
        types=sorted(names),
        constants=_constants(api),
        closures=[_closure(cl, links) for cl in api.closures if cl.name in used],
        methods=[_method(c, api, links) for c in calls],
    )


def outputs(api, common):
    """(target, relative path, template, extra context): the crate's one generated file, beside
    the nbd crate's (it is rendered with the "rust" target and installed with them)."""
    yield "rust", "rust/libnbd.rs", "rust/libnbd.rs.j2", {"compat": view(api)}
