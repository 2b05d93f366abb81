# Type maps and code fragments for the C header, the C entry points and the core prototypes.
from .model import POINTER_KINDS

_SCALAR = {
    "bool": "bool", "int": "int", "uint32": "uint32_t", "uint64": "uint64_t", "size": "size_t",
    "uintptr": "uintptr_t", "string": "const char *", "path": "const char *",
    "string_list": "char **", "fd": "int", "enum": "int", "flags": "uint32_t",
}
_RET = {
    "err": "int", "bool": "int", "int": "int", "int64": "int64_t", "cookie": "int64_t",
    "size": "ssize_t", "fd": "int", "uint": "unsigned", "uint64": "uint64_t", "uintptr": "uintptr_t",
    "enum": "int", "flags": "uint32_t", "string": "char *", "static_string": "const char *",
    "void": "void",
    "handle": "struct nbd_handle *",
}
_ERR_VALUE = {"string": "nullptr", "static_string": "nullptr", "handle": "nullptr"}
# printf conversions for the debug trace of arguments and results.
_ARG_FMT = {
    "bool": ("%s", "{n} ? \"true\" : \"false\""), "int": ("%d", "{n}"), "fd": ("%d", "{n}"),
    "enum": ("%d", "{n}"), "uint32": ("%\" PRIu32 \"", "{n}"), "uint64": ("%\" PRIu64 \"", "{n}"),
    "size": ("%zu", "{n}"), "uintptr": ("%\" PRIuPTR \"", "{n}"),
    "flags": ("0x%\" PRIx32 \"", "{n}"),
    "string": ("\\\"%s\\\"", "nbd::printable({n})"), "path": ("\\\"%s\\\"", "nbd::printable({n})"),
    "string_list": ("<list>", None), "closure": ("<fun>", None),
    "bytes_in": ("<buf> {len}=%zu", "{len}"), "bytes_out": ("<buf> {len}=%zu", "{len}"),
    "sockaddr": ("<sockaddr> {len}=%u", "static_cast<unsigned>({len})"),
}
_RET_FMT = {
    "err": "%d", "bool": "%d", "int": "%d", "enum": "%d", "fd": "%d",
    "int64": "%\" PRIi64 \"", "cookie": "%\" PRIi64 \"", "size": "%zd", "uint": "%u",
    "uint64": "%\" PRIu64 \"", "uintptr": "%\" PRIuPTR \"", "flags": "0x%\" PRIx32 \"",
    "string": "\\\"%s\\\"", "static_string": "\\\"%s\\\"",
}


def closure_c_type(closure_name):
    return f"nbd_{closure_name}_callback"


def c_params(arg, core=False):
    """The C (or, with core=True, C++ core) parameters one argument expands to."""
    n, k = arg.name, arg.kind
    if k == "closure":
        t = closure_c_type(arg.closure)
        return [f"nbd::Closure<{t}>& {n}" if core else f"{t} {n}"]
    if k == "bytes_in":
        return [f"const void *{n}", f"size_t {arg.len}"]
    if k == "bytes_out":
        return [f"void *{n}", f"size_t {arg.len}"]
    if k == "sockaddr":
        return [f"const struct sockaddr *{n}", f"socklen_t {arg.len}"]
    t = _SCALAR[k]
    return [f"{t}{n}" if t.endswith("*") else f"{t} {n}"]


def c_names(arg):
    """The C names one argument expands to (buffers bring their length)."""
    return [arg.name, arg.len] if arg.len else [arg.name]


def ret_type(call):
    return _RET[call.ret]


def err_value(call):
    return _ERR_VALUE.get(call.ret, "-1")


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
    if call.ret == "void":
        return None
    val = "ret" if call.ret not in ("string", "static_string") else "nbd::printable(ret)"
    return _RET_FMT.get(call.ret, "%d"), val


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
        if a.kind == "string":
            out.append(f"const char *{a.name}")
        elif a.kind == "uint64":
            out.append(f"uint64_t {a.name}")
        elif a.kind == "uint":
            out.append(f"unsigned {a.name}")
        elif a.kind == "mutable_int":
            out.append(f"int *{a.name}")
        elif a.kind == "bytes_in":
            out += [f"const void *{a.name}", f"size_t {a.len}"]
        elif a.kind == "uint32_array":
            out += [f"uint32_t *{a.name}", f"size_t {a.len}"]
        elif a.kind == "extent64_array":
            out += [f"nbd_extent *{a.name}", f"size_t {a.len}"]
        else:
            raise ValueError(f"closure {closure.name}: argument kind {a.kind} has no C form")
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
