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
    overview: list = field(default_factory=list)     # markup_blocks() of the overview source

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


# ---- The overview page's source markup (docs/overview.md) ----------------------------------
# A small Markdown subset, parsed here so the validator can point at a line and lang_man only
# renders.  Block syntax (blocks are separated by blank lines):
#   <!-- ... -->        a comment, dropped (may span lines)
#   ## TITLE            a section (upper case); ### Title  a subsection
#   - item              a bullet item; continuation lines are indented
#   1. item             a numbered item (any number); continuation lines are indented
#   term                a tagged item: the term on its own line, then ": text" (continuation
#   : text              lines indented); several such pairs make one list
#   ```                 a fenced block of verbatim lines, up to the closing ```
#   other lines         a paragraph, filled
# Inline: `literal` (bold, nothing inside it is interpreted), *emphasis* (italic), NAME(N) a
# reference to another page; nbd_CALL, nbd_CALL() or nbd_CALL(3) becomes a link to the call's page.
MARKUP_HEADING_RE = re.compile(r"^(#{1,6}) +(\S.*?) *$")
MARKUP_STEP_RE = re.compile(r"^([0-9]+)\. +(\S.*)$")
MARKUP_SECTION_RE = re.compile(r"^[A-Z][A-Z0-9 +/()-]*$")


class MarkupError(ValueError):
    """A problem in overview markup; line is 1-based."""

    def __init__(self, line, message):
        super().__init__(message)
        self.line = line


def _markup_lines(text):
    """(line number, text outside comments, whether the line held a comment) of every line."""
    out, comment_from = [], 0
    for n, line in enumerate(text.split("\n"), 1):
        kept, had_comment = "", comment_from != 0
        while line:
            if comment_from:
                end = line.find("-->")
                if end < 0:
                    break
                line, comment_from = line[end + 3:], 0
            else:
                start = line.find("<!--")
                if start < 0:
                    kept, line = kept + line, ""
                else:
                    kept, line = kept + line[:start], line[start + 4:]
                    comment_from, had_comment = n, True
        out.append((n, kept.rstrip(), had_comment))
    if comment_from:
        raise MarkupError(comment_from, "comment is not closed with -->")
    return out


def _joined(lines):
    return " ".join(l.strip() for l in lines)


def markup_blocks(text):
    """Parses overview markup into [(kind, value, line)] with kinds
    sh/ss (title), para (text), list ([text]), steps ([(number, text)]), tags ([(term, text)])
    and code ([line]).  Raises MarkupError naming the first bad line."""
    blocks, chunk, fence = [], [], None
    lines = _markup_lines(text)

    def flush():
        if chunk:
            blocks.append(_markup_chunk(chunk))
            chunk.clear()

    for n, line, had_comment in lines:
        if fence is not None:
            if line.strip() == "```":
                blocks.append(("code", fence[1], fence[0]))
                fence = None
            else:
                fence[1].append(line)
            continue
        if line.strip().startswith("```"):
            flush()
            if line.strip() != "```":
                raise MarkupError(n, "a code fence is a line of exactly ```")
            fence = (n, [])
            continue
        if not line.strip():
            if not had_comment:     # a line that held only a comment does not end a block
                flush()
            continue
        m = MARKUP_HEADING_RE.match(line)
        if m:
            flush()
            level, title = len(m.group(1)), m.group(2)
            if level == 2:
                if not MARKUP_SECTION_RE.match(title):
                    raise MarkupError(n, f"section title {title!r} must be upper case")
                blocks.append(("sh", title, n))
            elif level == 3:
                blocks.append(("ss", title, n))
            else:
                raise MarkupError(n, "only ## sections and ### subsections are supported")
            continue
        chunk.append((n, line))
    if fence is not None:
        raise MarkupError(fence[0], "code fence is not closed")
    flush()
    if blocks and blocks[0][0] != "sh":
        raise MarkupError(blocks[0][2], "text before the first ## section")
    for kind, value, n in blocks:
        if kind == "para":
            texts = [value]
        elif kind == "list":
            texts = value
        elif kind in ("steps", "tags"):
            texts = [t for pair in value for t in pair]
        else:
            texts = []
        for t in texts:
            if t.count("`") % 2:
                raise MarkupError(n, "unbalanced ` in this block")
    return blocks


def _markup_chunk(chunk):
    """One block from consecutive non-blank lines [(number, line)]."""
    first, text = chunk[0]
    if text.startswith("- ") or MARKUP_STEP_RE.match(text):
        items = []
        for n, line in chunk:
            step = MARKUP_STEP_RE.match(line)
            if line.startswith("- ") or step:
                label, first_line = (step.group(1), step.group(2)) if step else (None, line[2:])
                items.append([label, [first_line]])
            elif line.startswith(" "):
                items[-1][1].append(line)
            else:
                raise MarkupError(n, "a list item's continuation lines must be indented")
        if any((label is None) != (items[0][0] is None) for label, _ in items):
            raise MarkupError(first, "a list mixes - items and numbered items")
        if items[0][0] is None:
            return ("list", [_joined(body) for _, body in items], first)
        return ("steps", [(label, _joined(body)) for label, body in items], first)
    if len(chunk) > 1 and chunk[1][1].startswith(": "):
        pairs = []
        for n, line in chunk:
            if line.startswith(": "):
                if not pairs or pairs[-1][1]:
                    raise MarkupError(n, "a ': ' definition needs a term line before it")
                pairs[-1][1].append(line[2:])
            elif line.startswith(" ") and pairs and pairs[-1][1]:
                pairs[-1][1].append(line)
            elif not line.startswith(" "):
                pairs.append((line.strip(), []))
            else:
                raise MarkupError(n, "unexpected indented line in a tagged list")
        for term, body in pairs:
            if not body:
                raise MarkupError(first, f"term {term!r} has no ': ' definition")
        return ("tags", [(term, _joined(body)) for term, body in pairs], first)
    return ("para", _joined(l for _, l in chunk), first)
