# prelude.py: helpers for the nbdsh scripts of debian_tools_test.py, run first with
# `nbdsh -c "exec(open(PRELUDE).read())" ... -c - < SCRIPT` (nbdsh's -c shares one namespace).
# Every line a script prints is compared with the same script's output on Debian's libnbd; lines
# from call() that report an nbd.Error are compared on call and errno only, as our messages may
# word things differently (debian_tools_test.py prints the wording differences).
import errno
import os
import sys


def call(label, f, *args):
    """Runs f(*args) and prints "ok LABEL: RESULT" or "error LABEL: ERRNO: MESSAGE"."""
    try:
        r = f(*args)
    except nbd.Error as e:  # noqa: F821 (nbdsh provides nbd)
        print(f"error {label}: {e.errno}: {e.string}")
        return None
    shown = f"{len(r)} bytes" if isinstance(r, (bytes, bytearray)) else repr(r)
    print(f"ok {label}: {shown}")
    return r


def uri(name):
    """The URI the test passed in ABI_<NAME>."""
    return os.environ["ABI_" + name.upper()]


def wait_idle(handle):
    """Polls until no command is in flight (the program's event loop, as nbdcopy writes it)."""
    while handle.aio_in_flight() > 0:
        handle.poll(-1)
