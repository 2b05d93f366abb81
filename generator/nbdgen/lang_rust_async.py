"""The async Rust API on tokio: rust/async_api.rs, the generated half of the crate nbd-tokio.

bindings/rust/tokio holds the crate; its src/ is the hand-written runtime (AsyncHandle, the
driver task that runs the handle from its file descriptor, the futures that wait for a
completion or for a state).  This module gives AsyncHandle one `async fn` per asynchronous call
of api.yaml, named without the `aio_` prefix (as libnbd's own crate names them):

  a call with a completion closure (aio_pread, aio_opt_go, aio_block_status, ...) is issued
      with a completion the runtime makes, then awaits that completion;
  a call without one (the connects, aio_opt_abort, aio_disconnect) is issued, then awaits the
      handle state that ends it, from _WAIT_FOR;
  the calls that run a handle from an event loop (_DRIVER_CALLS) are the runtime's own and have
      no async form.
An asynchronous call that fits none of these fails generation by name.  A call with a
persistent read buffer also gets a `<name>_vec` form that allocates the buffer and returns its
bytes.  Arguments have the types of the nbd crate's methods (lang_rust.param, from lang_rust's
per-kind tables), and the method passes them to the nbd method of the same call unchanged; what
else an argument of each kind needs (it is the completion, or the `_vec` form's buffer) is this
module's KindTable.  view() gives each call's names, parameters and each argument's handling;
templates/rust/async_api.rs.j2 lays the methods out with the helpers in HELPERS.
"""
from types import SimpleNamespace

from . import lang_rust as rs
from .model import ARG_KINDS, KindTable

# Calls without a completion closure, and the handle state that ends them (a variant of the
# runtime's `Until`, bindings/rust/tokio/src/handle.rs): Connected once the handle has left the
# created and connecting states, Closed once it is closed (or dead).
_WAIT_FOR = {
    "aio_connect": "Connected",
    "aio_connect_uri": "Connected",
    "aio_connect_unix": "Connected",
    "aio_connect_vsock": "Connected",
    "aio_connect_tcp": "Connected",
    "aio_connect_socket": "Connected",
    "aio_connect_command": "Connected",
    "aio_connect_systemd_socket_activation": "Connected",
    "aio_opt_abort": "Closed",
    "aio_disconnect": "Closed",
}
# What an event loop calls to run a handle: the driver's business, reachable through handle().
_DRIVER_CALLS = {
    "aio_get_fd", "aio_get_direction", "aio_notify_read", "aio_notify_write", "aio_is_created",
    "aio_is_connecting", "aio_is_negotiating", "aio_is_ready", "aio_is_processing",
    "aio_is_dead", "aio_is_closed", "aio_command_completed", "aio_peek_command_completed",
    "aio_in_flight",
}
# Methods of AsyncHandle written by hand (bindings/rust/tokio/src/handle.rs).
_HAND_WRITTEN = {"new", "from_handle", "handle", "drain", "completion", "until", "issue"}
# Locals of the generated bodies (a `_vec` form names its buffer after the argument it replaces).
_LOCALS = {"done", "done_callback"}

# ---- Per-kind table (a KindTable: it covers the model's argument kinds exactly) ---------------

# What the async forms of a call do with an argument of each kind (the template spells each):
PASSED = "passed"          # taken as the nbd crate's parameter, passed on unchanged
COMPLETION = "completion"  # made by the method: the completion whose outcome it awaits
VEC_BUFFER = "vec_buffer"  # passed on; the `_vec` form takes its length and allocates it
# Variants (_handling): "completion" for the completion closure, "persist" for a persistent buffer.
_ARG = KindTable("lang_rust_async", "async arguments", ARG_KINDS, {
    **dict.fromkeys(("bool", "int", "uint32", "uint64", "size", "uintptr", "string", "path",
                     "string_list", "fd", "enum", "flags", "bytes_in", "sockaddr"), PASSED),
    "closure": {"": PASSED, "completion": COMPLETION},
    "bytes_out": {"": PASSED, "persist": VEC_BUFFER},
})
KIND_TABLES = [_ARG]


def _handling(arg):
    entry = _ARG[arg.kind]
    if isinstance(entry, dict):
        entry = entry["completion" if arg.kind == "closure" and arg.closure == "completion"
                      else "persist" if arg.persist else ""]
    return entry


def _async_name(call):
    return call.name[len("aio_"):]


def _sync_of(call, api):
    """The synchronous call of the same name (aio_pread -> pread), if the nbd crate binds it."""
    sync = api.call_map.get(_async_name(call))
    return sync if sync is not None and rs._bound(sync) else None


def _doc(call, api, kind):
    width = rs.WIDTH - 8
    sync = _sync_of(call, api)
    lines = [rs._sentence(sync.short if sync else call.short + ", then wait for the outcome"), ""]
    text = f"Issues [`Handle::{call.name}`] and waits "
    if kind == "completion":
        text += ("for the command to complete: `Ok` when it succeeded, else the error it "
                 "completed with.")
    elif kind == "Connected":
        text += ("until the handle has connected (or, in option mode, is negotiating): the "
                 "error that ended the connection if it died meanwhile.")
    else:
        text += ("until the handle is closed: the error that ended the connection if it died "
                 "instead.")
    if sync:
        text += f" See [`Handle::{sync.name}`] for what the arguments mean."
    lines += rs._fill(text, width)
    persist = [a.name for a in call.args if a.persist]
    drop = ("Dropping the future leaves the " + ("command" if kind == "completion" else "request")
            + " in flight; its outcome is then discarded")
    if persist:
        drop += (f", and `{persist[0]}` stays leased to it (alive, and out of reach of Rust "
                 "code) until it retires")
    lines += [""] + rs._fill(drop + ".", width)
    lines += ["", f"C: `{call.c_name}(3)`."]
    return rs._doc(lines, 4)


def _check(call):
    what = f"call {call.name}"
    for a in call.all_args:
        for n in ([a.name, a.len] if a.len else [a.name]):
            if n in _LOCALS:
                raise ValueError(f"{what}: argument {n} clashes with a local of its async form")


def _method(call, api):
    """The view of a call's async form, and of its `_vec` form if it has one (vec)."""
    _check(call)
    handling = {a.name: _handling(a) for a in call.all_args}
    for h in (COMPLETION, VEC_BUFFER):
        if list(handling.values()).count(h) > 1:
            raise ValueError(f"call {call.name}: two arguments of {h} handling have no async "
                             "form")
    args = [SimpleNamespace(ident=rs._ident(a.name), handling=handling[a.name],
                            param=rs.param(a, call, api) if handling[a.name] != COMPLETION
                            else None)
            for a in call.all_args]
    if COMPLETION in handling.values():
        until = None
    elif call.name in _WAIT_FOR:
        until = _WAIT_FOR[call.name]
    else:
        raise ValueError(f"call {call.name}: an asynchronous call without a completion closure "
                         "has no async form: name the state that ends it in _WAIT_FOR, or "
                         "list it in _DRIVER_CALLS (lang_rust_async.py)")
    name = _async_name(call)
    out = next((a for a in call.all_args if handling[a.name] == VEC_BUFFER), None)
    vec = None if out is None else SimpleNamespace(
        name=name + "_vec", buf=rs._ident(out.name), len=rs._ident(out.len),
        doc=rs._doc([rs._sentence(_vec_short(call, api)), ""] + rs._fill(
            f"[`Self::{name}`] into a new buffer of `{out.len}` bytes, returned once the "
            "command has completed; dropping the future frees the buffer when the command "
            "retires.", rs.WIDTH - 8), 4))
    return SimpleNamespace(name=name, ident=rs._ident(name), call=call.name, c_name=call.c_name,
                           doc=_doc(call, api, until or "completion"), args=args, until=until,
                           vec=vec)


def _vec_short(call, api):
    sync = _sync_of(call, api)
    return (sync.short if sync else call.short) + ", returning the bytes"


def _statement(head, args, tail):
    """`head(args)tail` in a method body (indented by 8): on one line, or its arguments one per
    line (rustfmt's layout)."""
    return rs._wrap(head, args, 0, tail, width=rs.WIDTH - 8)


def view(api):
    methods, names = [], set(_HAND_WRITTEN)
    for call in api.calls:
        if not call.name.startswith("aio_") or call.name in _DRIVER_CALLS:
            continue
        m = _method(call, api)
        for name in [m.name] + ([m.vec.name] if m.vec else []):
            if name in names:
                raise ValueError(f"call {call.name}: its async form {name} clashes with "
                                 "another method of AsyncHandle")
            names.add(name)
        methods.append(m)
    return SimpleNamespace(methods=methods)


def outputs(api, common):
    """(target, relative path, template, extra context): the file nbd-tokio includes."""
    yield "rust", "rust/async_api.rs", "rust/async_api.rs.j2", {"rsa": view(api)}


# What templates/rust/async_api.rs.j2 calls: lang_rust's layout of a parameter list and of a
# `let`, and a call statement in a method body.
HELPERS = {"wrap": rs._wrap, "let_lines": rs._let, "statement": _statement}
