# callbacks.py: each closure kind runs with libnbd's arguments and is released exactly once: the
# binding holds a reference to the Python callable and drops it in the closure's free hook, so
# sys.getrefcount is back where it was once libnbd is done with the closure (both counts are taken
# at top level, so they are comparable).
# Env: ABI_MEMORY (nbdkit memory 1M), ABI_PATTERN (nbdkit pattern 1M).
import re


# Debug: the enter/leave trace of each call is libnbd's format; the rest is free text.
messages = []


def on_debug(context, msg):
    messages.append((context, msg))


before = sys.getrefcount(on_debug)
h.set_debug_callback(on_debug)
h.set_debug(True)
h.add_meta_context("base:allocation")
h.connect_uri(uri("memory"))
h.pwrite(b"\x01" * 65536, 65536)
h.set_debug(False)
h.clear_debug_callback()
call("debug callback ran", lambda: len(messages) > 10)
call("debug contexts", lambda: sorted({c for c, _ in messages}))
# libnbd shows a hexdump of a buffer argument in the trace, we show buf=<buf>: the same call trace.
trace = [f"{c} {m}" for c, m in messages if m.startswith(("enter:", "leave:"))]
call("debug trace", lambda: [re.sub(r'buf=(".*?"|<buf>) count=', "buf=... count=", t, flags=re.S)
                             for t in trace])
after = sys.getrefcount(on_debug)
call("debug callback released", lambda: after - before)

# Extent: base:allocation of a 1M memory disk with 64k written at 64k.
extents = []


def on_extent(metacontext, offset, entries, error):
    extents.append((metacontext, offset, list(entries), error.value))
    return 0


before = sys.getrefcount(on_extent)
call("block_status", h.block_status, 1 << 20, 0, on_extent)
call("extents", lambda: extents)
extents.clear()
call("block_status REQ_ONE", h.block_status, (1 << 20) - 65536, 65536, on_extent, nbd.CMD_FLAG_REQ_ONE)
call("extents REQ_ONE", lambda: extents)
after = sys.getrefcount(on_extent)
call("extent callback released", lambda: after - before)


def failing_extent(metacontext, offset, entries, error):
    error.value = errno.EBADMSG
    return -1


call("block_status, extent callback fails with EBADMSG", h.block_status, 4096, 0, failing_extent)
call("handle still usable", h.pread, 512, 65536)

# Chunk: pread_structured of 64k at 4096 from the pattern plugin (one data chunk from nbdkit).
p = nbd.NBD()
p.connect_uri(uri("pattern"))
chunks = []


def on_chunk(subbuf, offset, status, error):
    chunks.append((len(subbuf), offset, status, error.value))
    return 0


before = sys.getrefcount(on_chunk)
buf = call("pread_structured", p.pread_structured, 65536, 4096, on_chunk)
call("chunks", lambda: chunks)
call("pread_structured data is the pattern",
     lambda: bytes(buf) == b"".join(o.to_bytes(8, "big") for o in range(4096, 4096 + 65536, 8)))
after = sys.getrefcount(on_chunk)
call("chunk callback released", lambda: after - before)


def failing_chunk(subbuf, offset, status, error):
    error.value = errno.EBADMSG
    return -1


call("pread_structured, chunk callback fails with EBADMSG", p.pread_structured, 512, 0, failing_chunk)
call("pread_structured DF", lambda: len(p.pread_structured(512, 0, on_chunk, nbd.CMD_FLAG_DF)))

# Completion: retired by returning 1, or left for aio_command_completed.
done = []


def on_complete(error):
    done.append(error.value)
    return 1


before = sys.getrefcount(on_complete)
rbuf = nbd.Buffer(512)
cookie = p.aio_pread(rbuf, 1024, on_complete)
wait_idle(p)
call("completion ran", lambda: done)
call("aio_command_completed of an auto-retired command", p.aio_command_completed, cookie)
call("aio_pread data", lambda: rbuf.to_bytearray()[:16].hex())
after = sys.getrefcount(on_complete)
call("completion callback released", lambda: after - before)

kept = []


def on_complete_keep(error):
    kept.append(error.value)
    return 0


before = sys.getrefcount(on_complete_keep)
before_chunk = sys.getrefcount(on_chunk)
chunks.clear()
cookie = p.aio_pread_structured(nbd.Buffer(4096), 0, on_chunk, on_complete_keep)
wait_idle(p)
call("completion ran", lambda: kept)
call("chunks of aio_pread_structured", lambda: chunks)
call("aio_peek_command_completed", lambda: p.aio_peek_command_completed() == cookie)
call("aio_command_completed", p.aio_command_completed, cookie)
after = sys.getrefcount(on_complete_keep)
call("completion callback (aio_command_completed) released", lambda: after - before)
after = sys.getrefcount(on_chunk)
call("chunk callback (aio) released", lambda: after - before_chunk)

# A completion that fails the command.


def on_complete_fail(error):
    error.value = errno.ENOTTY
    return 0


cookie = p.aio_pread(nbd.Buffer(512), 0, on_complete_fail)
wait_idle(p)
call("aio_command_completed after the completion set ENOTTY", p.aio_command_completed, cookie)
