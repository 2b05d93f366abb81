# The validated view of api.yaml that every renderer reads: plain dataclasses, no YAML left.
import re
from dataclasses import dataclass, field

ARG_KINDS = {"bool", "int", "uint32", "uint64", "size", "uintptr", "string", "path", "string_list",
             "fd", "enum", "flags", "closure", "bytes_in", "bytes_out", "sockaddr"}
CLOSURE_ARG_KINDS = {"string", "uint64", "uint", "mutable_int", "bytes_in", "uint32_array"}
RET_KINDS = {"err", "bool", "int", "int64", "cookie", "size", "fd", "uint", "uintptr", "enum", "flags",
             "string", "static_string", "void", "handle"}
# Return kinds with no value left over to signal an error: such calls cannot fail.
RET_WITHOUT_ERROR = {"uint", "uintptr", "flags", "void"}
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

    def calls_in(self, version):
        return [c for c in self.calls if c.since == version]

    def closures_in(self, version):
        return [c for c in self.closures if c.since == version]


# Doc text: paragraphs, "- " list items, two-space-indented verbatim lines.
LINK_RE = re.compile(r"\b(nbd_[a-z0-9_]+|LIBNBD_[A-Z0-9_]+)\b")


def doc_blocks(text):
    """Splits doc text into [("para", str) | ("list", [str]) | ("code", [str])]."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip("\n")):
        lines = chunk.split("\n")
        if all(l.startswith("  ") for l in lines):
            blocks.append(("code", [l[2:] for l in lines]))
        elif lines[0].startswith("- "):
            items = []
            for l in lines:
                if l.startswith("- "):
                    items.append(l[2:].strip())
                else:
                    items[-1] += " " + l.strip()
            blocks.append(("list", items))
        else:
            blocks.append(("para", " ".join(l.strip() for l in lines)))
    return blocks
