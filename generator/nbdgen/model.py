# The validated view of api.yaml that every renderer reads: plain dataclasses, no YAML left.
import re
from dataclasses import dataclass, field

ARG_KINDS = {"bool", "int", "uint32", "uint64", "size", "uintptr", "string", "path", "string_list",
             "fd", "enum", "flags", "closure", "bytes_in", "bytes_out", "sockaddr"}
CLOSURE_ARG_KINDS = {"string", "uint64", "uint", "mutable_int", "bytes_in", "uint32_array",
                     "extent64_array"}
# Closure argument kinds that are a pointer and a count (the count is named by len).
CLOSURE_ARRAY_KINDS = {"bytes_in", "uint32_array", "extent64_array"}
RET_KINDS = {"err", "bool", "int", "int64", "cookie", "size", "fd", "uint", "uint64", "uintptr", "enum",
             "flags", "string", "static_string", "void", "handle"}
# Return kinds with no value left over to signal an error: such calls cannot fail.
RET_WITHOUT_ERROR = {"uint", "uint64", "uintptr", "flags", "void"}
LIFETIMES = {"call", "command", "persistent"}
STATE_BITS = {"created": 1, "connecting": 2, "negotiating": 4, "connected": 8, "closed": 16, "dead": 32}
# Argument kinds that are C pointers the caller must not pass as NULL.
POINTER_KINDS = {"string", "path", "string_list", "bytes_in", "bytes_out", "sockaddr"}


@dataclass
class Value:
    name: str          # FUA
    value: int
    doc: str = ""


@dataclass
class ValueSet:
    """An enum, flag set or constant group; kind says which."""
    key: str           # cmd
    kind: str          # enum | flags | const
    prefix: str        # CMD_FLAG
    values: list
    doc: str = ""

    @property
    def mask(self):
        m = 0
        for v in self.values:
            m |= v.value
        return m

    def value_named(self, name):
        return next(v for v in self.values if v.name == name)


@dataclass
class MetaNamespace:
    name: str          # base
    header: bool
    contexts: list     # [(context, doc)]
    constants: list    # [(context, [Value])]

    def context_macro(self, ctx):
        """LIBNBD_CONTEXT_QEMU_DIRTY_BITMAP for "dirty-bitmap:" in the qemu namespace."""
        word = re.sub(r"[^A-Z0-9]+", "_", ctx.upper()).strip("_")
        return f"LIBNBD_CONTEXT_{self.name.upper()}_{word}"


@dataclass
class ClosureArg:
    name: str
    kind: str
    len: str = ""


@dataclass
class Closure:
    name: str          # chunk
    args: list
    since: str
    doc: str = ""
    # As in libnbd, a closure is missing (EFAULT) only when both callback and free are NULL: one
    # with free alone is valid and never called.  A kind whose calls cannot do without the
    # callback (the concurrent writer) refuses a closure without one as well.
    needs_callback: bool = False

    @property
    def c_type(self):
        return f"nbd_{self.name}_callback"


@dataclass
class Arg:
    name: str
    kind: str
    line: int
    type: str = ""          # enum / flag set key
    closure: str = ""       # closure key
    lifetime: str = ""
    len: str = ""           # name of the length argument for buffers and sockaddrs
    persist: bool = False
    allowed: list = None    # flags: names allowed for this call; None means the whole set
    optional: bool = False  # closures among optargs: callback may be NULL


@dataclass
class Call:
    name: str
    line: int
    since: str
    args: list
    optargs: list
    ret: str
    ret_type: str
    states: list
    locked: bool
    may_fail: bool
    handle: str             # "required" | "nullable" | "none"
    pending: bool
    setting: str            # handle field a generated body stores or reads; "" for core bodies
    short: str
    doc: str
    see_also: list
    example: str = ""       # a C program shown in the man page's EXAMPLE section
    errors: list = field(default_factory=list)   # [(ERRNO, sentence)] beyond the generic ones
    # libnbd's own description says the call may fail although ours cannot: libnbd's Rust crate
    # returns a Result for it, so the `libnbd` compatibility crate does too.
    libnbd_may_fail: bool = False

    @property
    def all_args(self):
        return self.args + self.optargs

    @property
    def state_mask(self):
        return sum(STATE_BITS[s] for s in self.states)

    @property
    def closures(self):
        return [a for a in self.all_args if a.kind == "closure"]

    @property
    def c_name(self):
        return f"nbd_{self.name}"


@dataclass
class Api:
    package: str
    versions: list
    frozen: list
    states: dict            # state -> words
    environment: dict       # environment variable -> what it does
    enums: list
    flags: list
    constants: list
    meta: list
    closures: list
    calls: list
    value_sets: dict = field(default_factory=dict)   # key -> ValueSet for enums and flags
    closure_map: dict = field(default_factory=dict)
    call_map: dict = field(default_factory=dict)
    overview: list = field(default_factory=list)     # markdown.markup_blocks() of the overview source

    def calls_in(self, version):
        return [c for c in self.calls if c.since == version]

    def closures_in(self, version):
        return [c for c in self.closures if c.since == version]
