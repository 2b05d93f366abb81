# Type maps and code fragments for the C header, the C entry points and the core prototypes.
# The per-kind tables are KindTables: each covers its kind list of the model exactly.  The C
# templates (libnbd.h, api.cpp, unlocked.hpp, settings.cpp, libnbd.syms) call HELPERS.
from .model import (ARG_KINDS, CLOSURE_ARG_KINDS, POINTER_KINDS, RET_KINDS, KindTable,
                    expand_kind)

# The C parameters of each argument kind: {n} its name, {len} its count, {cl} its closure type.
_PARAMS = KindTable("lang_c", "parameters", ARG_KINDS, {
    "bool": ["bool {n}"], "int": ["int {n}"], "uint32": ["uint32_t {n}"],
    "uint64": ["uint64_t {n}"], "size": ["size_t {n}"], "uintptr": ["uintptr_t {n}"],
    "string": ["const char *{n}"], "path": ["const char *{n}"], "string_list": ["char **{n}"],
    "fd": ["int {n}"], "enum": ["int {n}"], "flags": ["uint32_t {n}"], "closure": ["{cl} {n}"],
    "bytes_in": ["const void *{n}", "size_t {len}"], "bytes_out": ["void *{n}", "size_t {len}"],
    "sockaddr": ["const struct sockaddr *{n}", "socklen_t {len}"],
})
# The core body takes a closure as the RAII owner the entry point wraps it in.
_CORE_CLOSURE = "nbd::Closure<{cl}>& {n}"
# printf conversion and value of the debug trace of each argument kind (None: no value).
_ARG_FMT = KindTable("lang_c", "argument traces", ARG_KINDS, {
    "bool": ("%s", "{n} ? \"true\" : \"false\""), "int": ("%d", "{n}"), "fd": ("%d", "{n}"),
    "enum": ("%d", "{n}"), "uint32": ("%\" PRIu32 \"", "{n}"), "uint64": ("%\" PRIu64 \"", "{n}"),
    "size": ("%zu", "{n}"), "uintptr": ("%\" PRIuPTR \"", "{n}"),
    "flags": ("0x%\" PRIx32 \"", "{n}"),
    "string": ("\\\"%s\\\"", "nbd::printable({n})"), "path": ("\\\"%s\\\"", "nbd::printable({n})"),
    "string_list": ("<list>", None), "closure": ("<fun>", None),
    "bytes_in": ("<buf> {len}=%zu", "{len}"), "bytes_out": ("<buf> {len}=%zu", "{len}"),
    "sockaddr": ("<sockaddr> {len}=%u", "static_cast<unsigned>({len})"),
})
# Each result kind: its C type, the value that means failure (None: it has none, the call
# cannot fail) and the printf conversion of its debug trace (None: not traced).
_RET = KindTable("lang_c", "results", RET_KINDS, {
    "err": ("int", "-1", "%d"), "bool": ("int", "-1", "%d"), "int": ("int", "-1", "%d"),
    "int64": ("int64_t", "-1", "%\" PRIi64 \""), "cookie": ("int64_t", "-1", "%\" PRIi64 \""),
    "size": ("ssize_t", "-1", "%zd"), "fd": ("int", "-1", "%d"),
    "uint": ("unsigned", None, "%u"), "uint64": ("uint64_t", None, "%\" PRIu64 \""),
    "uintptr": ("uintptr_t", None, "%\" PRIuPTR \""), "enum": ("int", "-1", "%d"),
    "flags": ("uint32_t", None, "0x%\" PRIx32 \""), "string": ("char *", "nullptr", "\\\"%s\\\""),
    "static_string": ("const char *", "nullptr", "\\\"%s\\\""), "void": ("void", None, None),
    # nbd_create: it takes no handle, so nothing traces it.
    "handle": ("struct nbd_handle *", "nullptr", None),
})
# The C parameters of each closure argument kind ({n}, {len} as above).
_CLOSURE_PARAMS = KindTable("lang_c", "closure parameters", CLOSURE_ARG_KINDS, {
    "string": ["const char *{n}"], "uint64": ["uint64_t {n}"], "uint": ["unsigned {n}"],
    "mutable_int": ["int *{n}"], "bytes_in": ["const void *{n}", "size_t {len}"],
    "uint32_array": ["uint32_t *{n}", "size_t {len}"],
    "extent64_array": ["nbd_extent *{n}", "size_t {len}"],
})
KIND_TABLES = [_PARAMS, _ARG_FMT, _RET, _CLOSURE_PARAMS]


def closure_c_type(closure_name):
    return f"nbd_{closure_name}_callback"


def c_params(arg, core=False):
    """The C (or, with core=True, C++ core) parameters one argument expands to."""
    formats = [_CORE_CLOSURE] if core and arg.kind == "closure" else _PARAMS[arg.kind]
    return expand_kind(formats, arg, cl=closure_c_type(arg.closure))


def c_names(arg):
    """The C names one argument expands to (buffers bring their length)."""
    return [arg.name, arg.len] if arg.len else [arg.name]


def ret_type(call):
    return _RET[call.ret][0]


def err_value(call):
    """The C result that means failure; None for a result kind that has none."""
    return _RET[call.ret][1]


def params(call, core=False):
    out = []
    if call.handle != "none":
        if not core:
            out.append("struct nbd_handle *h")
        else:
            out.append("nbd_handle& h" if call.handle == "required" else "nbd_handle* h")
    for a in call.all_args:
        out += c_params(a, core)
    return out


def nonnull(call):
    """1-based positions of pointer parameters that must not be NULL (for the header attribute)."""
    pos, out = 1, []
    if call.handle != "none":
        if call.handle == "required":
            out.append(pos)
        pos += 1
    for a in call.all_args:
        if a.kind in POINTER_KINDS:
            out.append(pos)
        pos += len(c_params(a))
    return out


def core_args(call):
    out = ["*h"] if call.handle == "required" else (["h"] if call.handle == "nullable" else [])
    for a in call.all_args:
        out += [owned(a)] if a.kind == "closure" else c_names(a)
    return out


def owned(arg):
    """Name of the RAII owner the entry point wraps a closure argument in."""
    return f"{arg.name}_owned"


def trace_enter(call):
    """(format, [args]) of the debug line printed when the call is entered."""
    fmts, vals = [], []
    for a in call.all_args:
        fmt, val = _ARG_FMT[a.kind]
        fmts.append(f"{a.name}=" + fmt.format(len=a.len))
        if val:
            vals.append(val.format(n=a.name, len=a.len))
    return " ".join(fmts), vals


def trace_leave(call):
    """(format, value expression) of the debug line printed on success."""
    fmt = _RET[call.ret][2]
    if fmt is None:
        return None
    val = "ret" if call.ret not in ("string", "static_string") else "nbd::printable(ret)"
    return fmt, val


def checks(call, api):
    """C++ conditions, each with the call that reports it, run after the state check."""
    out = []
    for a in call.all_args:
        n = a.name
        if a.kind in POINTER_KINDS:
            out.append((f"{n} == nullptr", f"nbd::fail_null(\"{n}\")"))
        elif a.kind == "closure" and not a.optional:
            missing = "!{}.has_callback()" if api.closure_map[a.closure].needs_callback else "{}.empty()"
            out.append((missing.format(owned(a)), f"nbd::fail_null(\"{n}\")"))
        elif a.kind == "enum":
            vs = api.value_sets[a.type]
            cond = " && ".join(f"{n} != {v.value}" for v in vs.values)
            out.append((cond, f"nbd::fail_enum(\"{n}\", {n})"))
        elif a.kind == "flags":
            vs = api.value_sets[a.type]
            if a.allowed is None:
                out.append((f"({n} & ~{vs.mask:#x}U) != 0", f"nbd::fail_flags(\"{n}\", {n})"))
            else:
                # Flags outside the call's subset reach the server only when strict flag checking
                # is off and they fit the protocol's 16 bits, so servers can be tested with them.
                allowed = 0
                for f in a.allowed:
                    allowed |= vs.value_named(f).value
                out.append((f"({n} & ~{allowed:#x}U) != 0 && "
                            f"((h->strict & LIBNBD_STRICT_FLAGS) != 0 || {n} > 0xffffU)",
                            f"nbd::fail_flags(\"{n}\", {n})"))
    return out


def state_words(call, api):
    return ", or ".join(api.states[s] for s in call.states)


def bytes_out(call):
    return [a for a in call.all_args if a.kind == "bytes_out"]


def macro_value(vs, value):
    """Header spelling of a constant: flags are unsigned hex, the rest plain decimal."""
    if vs.kind == "flags":
        return f"{value:#04x}U"
    return str(value)


def closure_params(closure):
    out = ["void *user_data"]
    for a in closure.args:
        out += expand_kind(_CLOSURE_PARAMS[a.kind], a)
    return out


def wrap_decl(head, params, indent_to_paren=True, width=79):
    """Formats 'head (p1, p2, ...)' with continuation lines aligned after the parenthesis."""
    text = f"{head} ("
    pad = " " * len(text) if indent_to_paren else "    "
    lines, cur = [], text
    for i, p in enumerate(params):
        piece = p + (", " if i + 1 < len(params) else ")")
        if len(cur) + len(piece.rstrip()) > width and cur.strip() != text.strip():
            lines.append(cur.rstrip())
            cur = pad
        cur += piece
    if not params:
        cur += "void)"
    lines.append(cur.rstrip())
    return "\n".join(lines)


def prototype(call):
    rt = ret_type(call)
    sep = "" if rt.endswith("*") else " "
    return wrap_decl(f"extern {rt}{sep}{call.c_name}", params(call))


def attributes(call):
    out = []
    if call.ret == "string":
        out.append("LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(__builtin_free)")
    if call.ret == "handle":
        out.append("LIBNBD_ATTRIBUTE_ALLOC_DEALLOC(nbd_close)")
    nn = nonnull(call)
    if nn and call.handle != "nullable":
        out.append(f"LIBNBD_ATTRIBUTE_NONNULL({','.join(map(str, nn))})")
    return out


# What the C templates (libnbd.h, api.cpp, unlocked.hpp, settings.cpp, libnbd.syms) call.
HELPERS = {f.__name__: f for f in (
    closure_c_type, params, ret_type, err_value, core_args, owned, trace_enter, trace_leave,
    checks, state_words, bytes_out, macro_value, closure_params, wrap_decl, prototype, attributes)}
