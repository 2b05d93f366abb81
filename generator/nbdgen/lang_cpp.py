# Type maps and code fragments for the header-only C++ wrapper nbd/nbd.hpp.
#
# The helpers nbd.hpp.j2 calls are HELPERS (prefixed cpp_, the names the template reads best
# with).  Generated method bodies use the locals `r` (the C result) and `scope` (the
# callback exception relay) and `<arg>_c` (converted strings); cpp_check() refuses a spec whose
# argument names would collide with them or with the Handle's own members.
import textwrap

from .lang_c import closure_params, err_value
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS, KindTable, expand_kind

_HELPER_NAMES = [
    "cpp_check", "cpp_pascal", "cpp_value_type", "cpp_flags_type", "cpp_underlying", "cpp_literal",
    "cpp_macro", "cpp_constant", "cpp_meta_constants", "cpp_callback_type", "cpp_callback_args",
    "cpp_callback_signature", "cpp_trampoline_params", "cpp_trampoline_args", "cpp_error_slot",
    "cpp_wrapped", "cpp_params", "cpp_prelude", "cpp_call_statement", "cpp_error_test",
    "cpp_ret_type", "cpp_return", "cpp_notes", "cpp_wrap", "cpp_comment", "cpp_static_assert",
]

# Members of nbd::Handle that are not calls; a call of the same name would clash.
_HANDLE_MEMBERS = {"get", "release", "destroy", "h_"}
_LOCALS = {"r", "scope"}

# No-handle calls whose C++ form is not a free function: the Handle's constructor and destructor
# own nbd_create/nbd_close, and nbd::Error carries what nbd_get_error/nbd_get_errno report.
_NOT_FREE_FUNCTIONS = {"create", "close", "get_error", "get_errno"}

# Each argument kind: the C++ parameters ({n} its name, {len} its count, {type} the generated
# type of an enum, flag set or closure), the C arguments they become, and the statement that
# converts it before the C call ({init}: `n_c{n, "nbd_call", "n"};`), or None.
_ARG = KindTable("lang_cpp", "arguments", ARG_KINDS, {
    "bool": (["bool {n}"], ["{n}"], None), "int": (["int {n}"], ["{n}"], None),
    "uint32": (["uint32_t {n}"], ["{n}"], None), "uint64": (["uint64_t {n}"], ["{n}"], None),
    "size": (["size_t {n}"], ["{n}"], None), "uintptr": (["uintptr_t {n}"], ["{n}"], None),
    "fd": (["int {n}"], ["{n}"], None),
    "string": (["std::string_view {n}"], ["{n}_c.get()"], "const detail::CString {init}"),
    "path": (["std::string_view {n}"], ["{n}_c.get()"], "const detail::CString {init}"),
    "string_list": (["const std::vector<std::string>& {n}"], ["{n}_c.get()"],
                    "detail::CStringList {init}"),
    "enum": (["{type} {n}"], ["static_cast<int>({n})"], None),
    "flags": (["{type} {n}"], ["{n}.value()"], None),
    # Evaluated last among noexcept argument expressions: from here the C library owns the box
    # and frees it on every path.
    "closure": (["{type} {n}"], ["std::move({n}).release()"], None),
    "bytes_in": (["std::span<const std::byte> {n}"], ["{n}.data()", "{n}.size()"], None),
    "bytes_out": (["std::span<std::byte> {n}"], ["{n}.data()", "{n}.size()"], None),
    "sockaddr": (["const struct sockaddr* {n}", "socklen_t {len}"], ["{n}", "{len}"], None),
})
# Each result kind: the C++ return type ({type}: the enum or flag set) and the returned expression
# of the C result r (None: nothing is returned).  A second constructor call has no C++ form
# (cpp_check), so a handle result is never rendered.
_RET = KindTable("lang_cpp", "results", RET_KINDS, {
    "err": ("void", None), "bool": ("bool", "r != 0"), "int": ("int", "r"),
    "int64": ("int64_t", "r"), "cookie": ("int64_t", "r"),
    "size": ("size_t", "static_cast<size_t>(r)"),
    "fd": ("int", "r"), "uint": ("unsigned", "r"), "uint64": ("uint64_t", "r"),
    "uintptr": ("uintptr_t", "r"), "enum": ("{type}", "static_cast<{type}>(r)"),
    "flags": ("{type}", "{type}{{r}}"), "string": ("std::string", "std::string{{r.get()}}"),
    "static_string": ("std::string_view", "detail::view(r)"), "void": ("void", None),
    "handle": (None, None),
})
# Each closure argument kind: the callable's parameter type (the C form is in lang_c), and the
# expression turning the trampoline's C parameters into it.
_CALLBACK_ARG = KindTable("lang_cpp", "closure arguments", CLOSURE_ARG_KINDS, {
    "string": ("std::string_view", "detail::view({n})"), "uint64": ("uint64_t", "{n}"),
    "uint": ("unsigned", "{n}"), "mutable_int": ("int*", "{n}"),
    "bytes_in": ("std::span<const std::byte>",
                 "std::span<const std::byte>{{static_cast<const std::byte*>({n}), {len}}}"),
    "uint32_array": ("std::span<uint32_t>", "std::span<uint32_t>{{{n}, {len}}}"),
    "extent64_array": ("std::span<const nbd_extent>", "std::span<const nbd_extent>{{{n}, {len}}}"),
})
KIND_TABLES = [_ARG, _RET, _CALLBACK_ARG]


def cpp_pascal(snake):
    """block_size -> BlockSize, FAST_ZERO -> FastZero, allocation-depth -> AllocationDepth."""
    words = snake.replace("-", "_").replace(":", "_").lower().split("_")
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def cpp_check(api):
    """Raises ValueError when a name in the spec cannot be used as is in C++; renders nothing."""
    for call in api.calls:
        if call.handle == "required" and call.name in _HANDLE_MEMBERS:
            raise ValueError(f"call {call.name}: clashes with a member of nbd::Handle")
        for a in call.all_args:
            if a.name in _LOCALS or a.name.endswith("_c") or a.name in _HANDLE_MEMBERS:
                raise ValueError(f"call {call.name}: argument {a.name} clashes with a local "
                                 "of nbd.hpp")
        if call.handle == "none" and call.name not in _NOT_FREE_FUNCTIONS and call.ret == "handle":
            raise ValueError(f"call {call.name}: a second constructor call has no C++ form")
    return ""


def cpp_wrap(head, params, indent=0, tail="", width=99, brackets="()"):
    """`head(p1, p2, ...)tail`, indented, with the parameters wrapped under the bracket when the
    line would pass width."""
    first = " " * indent + head + brackets[0]
    one_line = first + ", ".join(params) + brackets[1] + tail
    if len(one_line) <= width or not params:
        return one_line
    pad = " " * len(first)
    lines, cur = [], first
    for i, p in enumerate(params):
        piece = p + (", " if i + 1 < len(params) else brackets[1] + tail)
        if len(cur) + len(piece.rstrip()) > width and cur != first:
            lines.append(cur.rstrip())
            cur = pad
        cur += piece
    lines.append(cur.rstrip())
    return "\n".join(lines)


def cpp_comment(text, indent=0, width=99):
    """`// text`, word-wrapped."""
    prefix = " " * indent + "// "
    return "\n".join(textwrap.wrap(text, width=width, initial_indent=prefix,
                                   subsequent_indent=prefix, break_on_hyphens=False))


def cpp_static_assert(lhs, rhs, width=99):
    line = f"static_assert({lhs} == {rhs});"
    return line if len(line) <= width else f"static_assert({lhs} ==\n              {rhs});"


def cpp_value_type(vs):
    """The enum class of an enum (Tls) or the bit type of a flag set (CmdFlag)."""
    return cpp_pascal(vs.key) + ("Flag" if vs.kind == "flags" else "")


def cpp_flags_type(vs):
    """The set type of a flag set: CmdFlags = Flags<CmdFlag>."""
    return cpp_pascal(vs.key) + "Flags"


def cpp_underlying(vs):
    # The C header passes enums as int and flag sets as uint32_t.
    return "uint32_t" if vs.kind == "flags" else "int"


def cpp_literal(vs, value):
    return f"{value:#x}U" if vs.kind == "flags" else str(value)


def cpp_macro(vs, name):
    return f"LIBNBD_{vs.prefix}_{name}"


def cpp_constant(vs, v):
    """(C++ name, C macro) of a plain constant: LIBNBD_READ_DATA -> kReadData."""
    return "k" + cpp_pascal(f"{vs.prefix}_{v.name}"), cpp_macro(vs, v.name)


def cpp_meta_constants(ns):
    """(type, C++ name, value, C macro) for each name the C header defines for one namespace."""
    out = [("std::string_view", f"k{cpp_pascal('namespace_' + ns.name)}", f'"{ns.name}:"',
            f"LIBNBD_NAMESPACE_{ns.name.upper()}")]
    for ctx, _ in ns.contexts:
        out.append(("std::string_view", f"k{cpp_pascal(f'context_{ns.name}_{ctx}')}",
                    f'"{ns.name}:{ctx}"', ns.context_macro(ctx)))
    for _, values in ns.constants:
        for v in values:
            out.append(("uint32_t", f"k{cpp_pascal(v.name)}", str(v.value), f"LIBNBD_{v.name}"))
    return out


def cpp_callback_type(closure_name):
    return cpp_pascal(closure_name) + "Callback"


def cpp_callback_args(closure):
    return [_CALLBACK_ARG[a.kind][0] for a in closure.args]


def cpp_callback_signature(closure):
    """For comments: int(std::string_view context, std::string_view msg)."""
    return "int(" + ", ".join(f"{_CALLBACK_ARG[a.kind][0]} {a.name}" for a in closure.args) + ")"


def cpp_trampoline_params(closure):
    return closure_params(closure)


def cpp_trampoline_args(closure):
    """Expressions turning the trampoline's C parameters into the callable's arguments."""
    return [expand_kind([_CALLBACK_ARG[a.kind][1]], a)[0] for a in closure.args]


def cpp_error_slot(closure):
    """The int* through which a failing callback reports its errno, or nullptr."""
    return next((a.name for a in closure.args if a.kind == "mutable_int"), "nullptr")


def cpp_wrapped(call):
    """Whether a call without a handle becomes a free function nbd::NAME."""
    return call.name not in _NOT_FREE_FUNCTIONS and call.ret != "handle" and call.handle == "none"


def _arg_type(arg, api):
    """The generated type of an enum, flag set or closure argument ("" for other kinds)."""
    if arg.kind in ("enum", "flags"):
        vs = api.value_sets[arg.type]
        return cpp_value_type(vs) if arg.kind == "enum" else cpp_flags_type(vs)
    return cpp_callback_type(arg.closure) if arg.kind == "closure" else ""


def _has_default(arg):
    # Flags default to none; an optional callback defaults to "no callback" (NBD_NULL_*).
    return arg.kind == "flags" or (arg.kind == "closure" and arg.optional)


def cpp_params(call, api):
    """The C++ parameter list; the trailing optargs that have a default get `= {}`."""
    defaulted = set()
    for a in reversed(call.optargs):
        if not _has_default(a):
            break
        defaulted.add(a.name)
    out = []
    for a in call.all_args:
        params = expand_kind(_ARG[a.kind][0], a, type=_arg_type(a, api))
        if a.name in defaulted:
            params[-1] += " = {}"
        out += params
    return out


def cpp_prelude(call):
    """Statements that convert arguments before the C call (they may throw; nothing is owned yet
    by the C library at that point)."""
    out = []
    for a in call.all_args:
        statement = _ARG[a.kind][2]
        if statement:
            init = f'{a.name}_c{{{a.name}, "{call.c_name}", "{a.name}"}};'
            out.append(statement.format(init=init))
    return out


def _c_args(call, handle_expr):
    out = [handle_expr] if call.handle != "none" else []
    for a in call.all_args:
        out += expand_kind(_ARG[a.kind][1], a)
    return out


def cpp_call_statement(call, handle_expr):
    """The C call, keeping its result in `r` (a malloc'd string is owned at once).  Wrapped for
    a statement indented by 4 (in a method); the caller supplies the first line's indentation."""
    head, tail = f"::{call.c_name}", ";"
    if call.ret == "string":
        head, tail = f"const detail::MallocedString r{{{head}", "};"
    elif call.ret != "void":
        head = f"const auto r = {head}"
    return cpp_wrap(head, _c_args(call, handle_expr), 2, tail, width=97)[2:]


def cpp_error_test(call):
    return f"r == {err_value(call)}"


def _ret_type_name(call, api):
    if call.ret not in ("enum", "flags"):
        return ""
    vs = api.value_sets[call.ret_type]
    return cpp_value_type(vs) if call.ret == "enum" else cpp_flags_type(vs)


def cpp_ret_type(call, api):
    return _RET[call.ret][0].format(type=_ret_type_name(call, api))


def cpp_return(call, api):
    """The returned expression, or None for calls that return nothing."""
    expr = _RET[call.ret][1]
    return expr.format(type=_ret_type_name(call, api)) if expr else None


def cpp_notes(call):
    """Comment lines the model implies beyond the call's short description."""
    out = []
    for a in call.all_args:
        if a.persist:
            out.append(f"{a.name} must stay valid until the command completes.")
    return out


# What nbd.hpp.j2 calls.
HELPERS = {name: globals()[name] for name in _HELPER_NAMES}
