# opt_mode.py: option negotiation by hand (nbdsh --opt-mode -u EXPORTS).
# Env: ABI_EXPORTS (nbdkit exportname filter: foo, bar, strict, described "hello"), ABI_QEMU
# (qemu-nbd -B b0 -A on a qcow2, optional).
call("get_opt_mode", h.get_opt_mode)
call("aio_is_negotiating", h.aio_is_negotiating)
call("aio_is_ready", h.aio_is_ready)
call("get_protocol", h.get_protocol)
call("get_handshake_flags", h.get_handshake_flags)
call("get_structured_replies_negotiated", h.get_structured_replies_negotiated)
call("connection_state", lambda: h.connection_state().split(":")[0])

exports = []


def on_export(name, description):
    exports.append((name, description))
    return 0


before = sys.getrefcount(on_export)
call("opt_list", h.opt_list, on_export)
print("exports:", exports)
call("opt_list callback released", lambda: sys.getrefcount(on_export) - before)

for name in ["foo", "bar", "nope"]:
    h.set_export_name(name)
    call(f"opt_info {name}", h.opt_info)
    call(f"get_size after opt_info {name}", h.get_size)
    call(f"is_read_only after opt_info {name}", h.is_read_only)
    call(f"can_trim after opt_info {name}", h.can_trim)

h.set_full_info(True)
h.set_export_name("bar")
call("opt_info full", h.opt_info)
call("get_canonical_export_name", h.get_canonical_export_name)
call("get_export_description", h.get_export_description)
call("get_block_size minimum", h.get_block_size, nbd.SIZE_MINIMUM)
call("get_block_size preferred", h.get_block_size, nbd.SIZE_PREFERRED)
call("get_block_size maximum", h.get_block_size, nbd.SIZE_MAXIMUM)

contexts = []


def on_context(name):
    contexts.append(name)
    return 0


before = sys.getrefcount(on_context)
call("opt_list_meta_context, no queries", h.opt_list_meta_context, on_context)
print("contexts:", contexts)
for query in ["qemu:", "base:", "base:allocation"]:
    contexts.clear()
    h.clear_meta_contexts()
    h.add_meta_context(query)
    call(f"opt_list_meta_context {query}", h.opt_list_meta_context, on_context)
    print("contexts:", contexts)
call("get_nr_meta_contexts", h.get_nr_meta_contexts)
call("get_meta_context 0", h.get_meta_context, 0)
call("get_meta_context 1", h.get_meta_context, 1)
call("opt_list_meta_context callback released", lambda: sys.getrefcount(on_context) - before)

h.set_export_name("foo")
call("opt_go", h.opt_go)
call("aio_is_ready", h.aio_is_ready)
call("get_size", h.get_size)
call("get_export_name", h.get_export_name)
call("can_meta_context base:allocation", h.can_meta_context, "base:allocation")
call("opt_list after opt_go", h.opt_list, on_export)
call("opt_go again", h.opt_go)
call("opt_abort after opt_go", h.opt_abort)
call("pread after opt_go", lambda: len(h.pread(512, 0)))

# A refused export keeps the handle negotiating; another export then works.
g = nbd.NBD()
g.set_opt_mode(True)
g.connect_uri(uri("exports"))
g.set_export_name("nope")
call("opt_go nope", g.opt_go)
call("aio_is_negotiating after a refused opt_go", g.aio_is_negotiating)
g.set_export_name("bar")
call("opt_go bar", g.opt_go)
call("get_size bar", g.get_size)

# opt_abort ends the connection.
a = nbd.NBD()
a.set_opt_mode(True)
a.connect_uri(uri("exports"))
call("opt_abort", a.opt_abort)
call("aio_is_closed", a.aio_is_closed)
call("get_size after opt_abort", a.get_size)
call("opt_list after opt_abort", a.opt_list, on_export)

# Without opt mode these calls are refused before connecting.
n = nbd.NBD()
call("opt_go on a new handle", n.opt_go)
call("opt_list on a new handle", n.opt_list, on_export)

# qemu-nbd's own contexts.
if "ABI_QEMU" in os.environ:
    q = nbd.NBD()
    q.set_opt_mode(True)
    q.connect_uri(uri("qemu"))
    for query in [None, "qemu:", "qemu:dirty-bitmap:", "base:allocation", "nope:"]:
        contexts.clear()
        q.clear_meta_contexts()
        if query:
            q.add_meta_context(query)
        call(f"qemu opt_list_meta_context {query}", q.opt_list_meta_context, on_context)
        print("contexts:", sorted(contexts))
    q.clear_meta_contexts()
    q.add_meta_context("qemu:dirty-bitmap:b0")
    q.add_meta_context("nope:nope")
    call("qemu opt_go", q.opt_go)
    call("qemu can_meta_context dirty bitmap", q.can_meta_context, "qemu:dirty-bitmap:b0")
    call("qemu can_meta_context base:allocation", q.can_meta_context, "base:allocation")
    call("qemu can_meta_context nope", q.can_meta_context, "nope:nope")
