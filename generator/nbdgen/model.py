# The validated view of api.yaml that every renderer reads: plain dataclasses, no YAML left; and
# the typed kind lists (ARG_KINDS, CLOSURE_ARG_KINDS, RET_KINDS) with the KindTable every
# language module declares its per-kind entries in.  Doc and overview markup: markdown.py.
import re
from dataclasses import dataclass, field


# ---- Kinds: the one typed list of each sort of kind --------------------------------------------
# Every language module declares its per-kind tables against these lists (KindTable), and
# generation stops, naming the language and the kind, when a table lacks a kind or has one the
# list does not: adding a kind here makes every language that has no form for it fail by name.

@dataclass(frozen=True)
class Kind:
    name: str
    pointer: bool = False      # an argument passed as a C pointer the caller must not make NULL
    sized: bool = False        # a pointer with a count, the count named by the spec's `len`
    infallible: bool = False   # a result with no value left over to signal an error


class KindList:
    """The kinds of one sort (what: "argument", "closure argument", "result"), in spec order.
    `name in kinds` and iteration work on the kinds' names."""

    def __init__(self, what, kinds):
        self.what = what
        self.kinds = tuple(kinds)
        self.names = tuple(k.name for k in self.kinds)

    def __contains__(self, name):
        return name in self.names

    def __iter__(self):
        return iter(self.names)

    def where(self, flag):
        """The names of the kinds with that flag set."""
        return frozenset(k.name for k in self.kinds if getattr(k, flag))


ARG_KINDS = KindList("argument", [
    Kind("bool"), Kind("int"), Kind("uint32"), Kind("uint64"), Kind("size"), Kind("uintptr"),
    Kind("string", pointer=True), Kind("path", pointer=True), Kind("string_list", pointer=True),
    Kind("fd"), Kind("enum"), Kind("flags"), Kind("closure"),
    Kind("bytes_in", pointer=True, sized=True), Kind("bytes_out", pointer=True, sized=True),
    Kind("sockaddr", pointer=True, sized=True),
])
CLOSURE_ARG_KINDS = KindList("closure argument", [
    Kind("string"), Kind("uint64"), Kind("uint"), Kind("mutable_int"),
    Kind("bytes_in", sized=True), Kind("uint32_array", sized=True),
    Kind("extent64_array", sized=True),
])
RET_KINDS = KindList("result", [
    Kind("err"), Kind("bool"), Kind("int"), Kind("int64"), Kind("cookie"), Kind("size"),
    Kind("fd"), Kind("uint", infallible=True), Kind("uint64", infallible=True),
    Kind("uintptr", infallible=True), Kind("enum"), Kind("flags", infallible=True),
    Kind("string"), Kind("static_string"), Kind("void", infallible=True), Kind("handle"),
])
# Argument kinds that are C pointers the caller must not pass as NULL.
POINTER_KINDS = ARG_KINDS.where("pointer")
# Argument kinds that are a pointer and a count (the count is named by len).
SIZED_KINDS = ARG_KINDS.where("sized")
# Closure argument kinds that are a pointer and a count (the count is named by len).
CLOSURE_ARRAY_KINDS = CLOSURE_ARG_KINDS.where("sized")
# Return kinds with no value left over to signal an error: such calls cannot fail.
RET_WITHOUT_ERROR = RET_KINDS.where("infallible")


class KindCoverageError(ValueError):
    """A language's table does not cover its kind list exactly."""


class KindTable(dict):
    """A language's entries for every kind of one list: {kind name: entry}.  check() (run by
    generate.py before anything is rendered) refuses a missing or unknown kind, naming the
    language, the table and the kinds; there is no default entry."""

    def __init__(self, language, table, kinds, entries):
        super().__init__(entries)
        self.language, self.table, self.kinds = language, table, kinds

    def check(self):
        missing = [k for k in self.kinds if k not in self]
        unknown = sorted(k for k in self if k not in self.kinds)
        where = f"{self.language}: {self.table}"
        if missing:
            raise KindCoverageError(f"{where}: no entry for {self.kinds.what} kind(s) "
                                    f"{', '.join(missing)}")
        if unknown:
            raise KindCoverageError(f"{where}: entries for unknown {self.kinds.what} kind(s) "
                                    f"{', '.join(unknown)}")

    def form(self, arg, call):
        """The entry for an argument.  An entry that is a dict holds variants: "persist" for a
        persistent buffer, "optional" for an optional argument, "" for the plain form."""
        entry = self[arg.kind]
        if isinstance(entry, dict):
            entry = entry["persist" if arg.persist else "optional" if arg in call.optargs else ""]
        return entry

    def without(self, kind):
        """A copy lacking one entry (for tests of check())."""
        return KindTable(self.language, self.table, self.kinds,
                         {k: v for k, v in self.items() if k != kind})


def expand_kind(formats, arg, **fields):
    """A table entry's format strings filled in for one argument: {n} is its name and {len} its
    count unless fields say otherwise."""
    fields.setdefault("n", arg.name)
    fields.setdefault("len", arg.len)
    return [f.format(**fields) for f in formats]


def check_kind_tables(modules):
    """Checks the KIND_TABLES of every language module; raises KindCoverageError."""
    for module in modules:
        for table in module.KIND_TABLES:
            table.check()


LIFETIMES = {"call", "command", "persistent"}
STATE_BITS = {"created": 1, "connecting": 2, "negotiating": 4, "connected": 8, "closed": 16, "dead": 32}


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
    overview: list = field(default_factory=list)     # markdown.markup_blocks() of the overview

    def calls_in(self, version):
        return [c for c in self.calls if c.since == version]

    def closures_in(self, version):
        return [c for c in self.closures if c.since == version]
