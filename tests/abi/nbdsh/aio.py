# aio.py: the asynchronous API as an event-loop program uses it.
# Env: ABI_MEMORY (nbdkit memory 1M), ABI_FAILING (every read fails with EIO).
import select

h.add_meta_context("base:allocation")
h.connect_uri(uri("memory"))

wbuf = nbd.Buffer.from_bytearray(bytearray(b"\xab" * 4096))
c1 = h.aio_pwrite(wbuf, 8192)
c2 = h.aio_flush()
call("cookies are positive and increase", lambda: 0 < c1 < c2)
call("aio_in_flight", h.aio_in_flight)
call("aio_command_completed while in flight", h.aio_command_completed, c1)
wait_idle(h)
call("aio_in_flight when idle", h.aio_in_flight)
call("aio_peek_command_completed is one of them", lambda: h.aio_peek_command_completed() in (c1, c2))
call("aio_command_completed pwrite", h.aio_command_completed, c1)
call("aio_command_completed flush", h.aio_command_completed, c2)
call("aio_command_completed pwrite again", h.aio_command_completed, c1)
call("aio_peek_command_completed with nothing completed", h.aio_peek_command_completed)

rbuf = nbd.Buffer(4096)
c3 = h.aio_pread(rbuf, 8192)
# A hand-made event loop: aio_get_fd, aio_get_direction, aio_notify_read/write.
while not h.aio_command_completed(c3):
    fd = h.aio_get_fd()
    d = h.aio_get_direction()
    r, w, _ = select.select([fd] if d & nbd.AIO_DIRECTION_READ else [],
                            [fd] if d & nbd.AIO_DIRECTION_WRITE else [], [], 10)
    if w:
        h.aio_notify_write()
    if r:
        h.aio_notify_read()
call("aio_pread read back what aio_pwrite wrote", lambda: rbuf.to_bytearray() == bytearray(b"\xab" * 4096))

# In flight together, so none may overlap another (the server may run them in any order).
cookies = [h.aio_zero(4096, 8192), h.aio_trim(4096, 16384), h.aio_cache(4096, 0),
           h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\xcd" * 512)), 0, None, nbd.CMD_FLAG_FUA),
           h.aio_zero(512, 512, None, nbd.CMD_FLAG_NO_HOLE)]
# nbdkit runs requests in parallel threads: the map is asked for only once they are done.
wait_idle(h)
ext = []
cookies.append(h.aio_block_status(65536, 0, lambda m, o, e, err: ext.append((m, o, list(e))) or 0))
wait_idle(h)
for name, c in zip(["zero", "trim", "cache", "pwrite FUA", "zero NO_HOLE", "block_status"], cookies):
    call(f"aio_command_completed {name}", h.aio_command_completed, c)
call("extents", lambda: ext)
call("pread after aio_zero", lambda: h.pread(16, 8192).hex())
call("pread after aio_pwrite FUA", lambda: h.pread(16, 0).hex())

# Many commands in flight at once, completed in any order.
bufs = [nbd.Buffer(4096) for _ in range(32)]
cs = [h.aio_pread(b, i * 4096) for i, b in enumerate(bufs)]
wait_idle(h)
call("32 aio_pread all completed", lambda: all(h.aio_command_completed(c) for c in cs))
call("aio_command_completed of cookie 0", h.aio_command_completed, 0)
call("aio_command_completed of an unknown cookie", h.aio_command_completed, 123456)
call("aio_pread past the end", h.aio_pread, nbd.Buffer(512), 1 << 20)
call("aio_pwrite with a bad flag", h.aio_pwrite, nbd.Buffer(512), 0, None, 0x8000)

# A server whose reads fail: the completion sees EIO, aio_command_completed raises it.
f = nbd.NBD()
f.connect_uri(uri("failing"))
seen = []
cf = f.aio_pread(nbd.Buffer(512), 0, lambda error: seen.append(error.value) or 0)
wait_idle(f)
call("completion saw the server's error", lambda: [errno.errorcode[e] for e in seen])
call("aio_command_completed of the failed read", f.aio_command_completed, cf)
call("pread from the failing server", f.pread, 512, 0)
call("handle still connected", f.aio_is_ready)

h.shutdown()
call("aio_is_closed after shutdown", h.aio_is_closed)
call("aio_pread after shutdown", h.aio_pread, nbd.Buffer(512), 0)
