# errors_read_only.py: write-type commands on a read-only export (nbdsh -u "nbdkit -r memory").
call("is_read_only", h.is_read_only)
call("can_trim", h.can_trim)
call("can_zero", h.can_zero)
call("pwrite", h.pwrite, b"x" * 512, 0)
call("trim", h.trim, 512, 0)
call("zero", h.zero, 512, 0)
call("aio_trim", h.aio_trim, 512, 0)
call("aio_zero", h.aio_zero, 512, 0)
