# Roff rendering for the section 3 man pages: escaping, wrapping, link markup, and the wording
# tables (return values, errors, states, versions) derived from the model; the per-kind ones
# (argument paragraphs, return values, closure typedefs) are KindTables.  man3.j2, man_blocks.j2
# and overview.j2 call the functions in HELPERS.
#
# Every piece of prose reaches the template as ready roff lines, grouped into blocks:
#   ("para", [line, ...])                 a filled paragraph
#   ("list", [[line, ...], ...])          bulleted items
#   ("tags", [(tag, [line, ...]), ...])   tagged items (.TP); always follows a "para" block
#   ("code", [line, ...])                 verbatim lines (.nf)
# so man3.j2 only loops over blocks and picks the macro by kind.
import re
import textwrap

from . import lang_c
from .markdown import LINK_RE, doc_blocks
from .model import ARG_KINDS, CLOSURE_ARG_KINDS, POINTER_KINDS, RET_KINDS, KindTable

_HELPER_NAMES = ["roff_escape", "man_th", "man_name", "man_prototype", "man_typedefs",
                 "man_description",
           "man_return", "man_errors", "man_state", "man_version", "man_example", "man_see_also",
           "overview_page", "overview_th", "overview_sections"]

# .TH date: fixed, never the build date, so that pages are reproducible; bump it for a release.
MAN_DATE = "2026-11-28"
WIDTH = 72          # fill text and verbatim declarations; man indents by 7 of 80 columns
LONG_WORD = 20      # longer words get explicit break points, so roff never has to overfill a line

# Inline markup inside generated sentences, turned into font escapes after escaping.  Private use
# code points, so they cannot collide with roff syntax; stripped from spec text first.
_I, _B, _R = "\ue000", "\ue001", "\ue002"
# _N goes after the first letter of a name that must not become a link (a call inside a code
# span); it renders as roff's zero-width \& so that the name reads the same.
_N = "\ue003"
_FONTS = {_I: "\\fI", _B: "\\fB", _R: "\\fR", _N: "\\&"}
# A name the generator marks up, with the "()" or "(3)" a writer may have put after it.
_NAME_RE = re.compile(LINK_RE.pattern + r"(?:\(\)|\(3\))?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\ue000\ue001])")
_ABBREVIATIONS = ("e.g.", "i.e.", "vs.", "cf.")


def roff_escape(text):
    r"""Escapes plain text for roff: \ -> \e, - -> \-, non-ASCII -> \[uXXXX], and \& before a
    line that would otherwise start with a control character."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ch in _FONTS or ch in "\n\t":
            out.append(ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            continue
        elif ord(ch) > 126:
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    return "\n".join("\\&" + l if l.startswith((".", "'")) else l for l in "".join(out).split("\n"))


def _escape_word(word):
    """Escapes one word.  A long one (a URL, a path) gets break points after each '/' and every
    LONG_WORD characters, but never inside one of our names.  (Pages turn hyphenation off.)"""
    if len(word) <= LONG_WORD:
        return roff_escape(word)
    pieces, pos = [], 0
    for m in list(_NAME_RE.finditer(word)) + [None]:
        end = m.start() if m else len(word)
        for part in re.findall(r"[^/]*/+|[^/]+", word[pos:end]):
            pieces += [part[i:i + LONG_WORD] for i in range(0, len(part), LONG_WORD)]
        if m:
            pieces.append(m.group(0))
            pos = m.end()
    # No break point next to bare punctuation: "(" or ")," stays with the word it belongs to.
    merged = []
    for p in pieces:
        if merged and not (re.search(r"[A-Za-z0-9]", p) and re.search(r"[A-Za-z0-9]", merged[-1])):
            merged[-1] += p
        else:
            merged.append(p)
    return "\\:".join(roff_escape(p) for p in merged)


def _link(api, self_name):
    """A re.sub callback: calls with a page become '\\fBnbd_x\\fR(3)', other names bold."""
    def sub(m):
        name = m.group(1)
        if re.match(r"\.[0-9]", m.string[m.end(1):]):
            return m.group(0)          # a symbol version such as LIBNBD_1.4, not a name
        page = name.startswith("nbd_") and name[4:] in api.call_map and name != self_name
        return f"\\fB{name}\\fR(3)" if page else f"\\fB{name}\\fR"
    return sub


def _markup(line, api, self_name):
    line = _NAME_RE.sub(_link(api, self_name), line)
    for mark, esc in _FONTS.items():
        line = line.replace(mark, esc)
    return line


def _fill(text, api, self_name, width=WIDTH):
    """Wraps prose, then escapes it and marks up names: a list of roff text lines.  Each sentence
    starts a new line, so roff spaces sentence ends the same way wherever they fall."""
    out = []
    for sentence in _SENTENCE_END.split(" ".join(str(text).split())):
        for line in textwrap.wrap(sentence, width, break_long_words=False, break_on_hyphens=False):
            # roff_escape puts \& before a word starting with . or ', so no line starts with one.
            rendered = " ".join(_escape_word(w) for w in line.split(" "))
            if rendered.endswith(_ABBREVIATIONS):
                rendered += "\\&"     # not the end of a sentence: no extra space after it
            out.append(_markup(rendered, api, self_name))
    return out


def _code(lines):
    return [roff_escape(l.expandtabs(8).rstrip()) for l in lines]


def _clean(text):
    """Spec text with our private markup characters removed."""
    return "".join(ch for ch in str(text) if ch not in _FONTS)


def _doc(text, api, self_name):
    """doc_blocks() of spec text, rendered.  Consecutive verbatim chunks (split by the blank
    line between them) are joined back with that blank line."""
    out = []
    if not str(text).strip():
        return out
    for kind, body in doc_blocks(_clean(text)):
        if kind == "para":
            lines = _fill(body, api, self_name)
            if lines:
                out.append(("para", lines))
        elif kind == "list":
            out.append(("list", [_fill(item, api, self_name) or ["\\&"] for item in body]))
        elif out and out[-1][0] == "code":
            out[-1] = ("code", out[-1][1] + [""] + _code(body))
        else:
            out.append(("code", _code(body)))
    return out


def _arg(name):
    return f"{_I}{name}{_R}"


def _bold(name):
    return f"{_B}{name}{_R}"


def _join(words, conj="or"):
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {conj} " + words[-1]


def _const(vs, value):
    return f"LIBNBD_{vs.prefix}_{value.name}"


def _tags(vs, values, api, self_name):
    return ("tags", [(_const(vs, v), _fill(v.doc, api, self_name)) for v in values])


# ---- header and synopsis --------------------------------------------------------------------

def man_th(call, api):
    package = api.package or "nbdpp"
    return f'.TH {call.c_name.upper()} 3 "{MAN_DATE}" "{package}" "{package} C API"'


def man_name(call):
    return f"{call.c_name} \\- {roff_escape(' '.join(call.short.split()))}"


def man_prototype(call):
    """The C declaration, wrapped for the synopsis, with the function name in bold."""
    rt = lang_c.ret_type(call)
    head = f"{rt}{'' if rt.endswith('*') else ' '}{call.c_name}"
    decl = lang_c.wrap_decl(head, lang_c.params(call), width=WIDTH - 1)
    if max(len(l) for l in decl.split("\n")) > WIDTH - 1:
        # A long name leaves too little room after the parenthesis: indent by four instead.
        decl = lang_c.wrap_decl(head, lang_c.params(call), indent_to_paren=False, width=WIDTH - 1)
    lines = roff_escape(decl + ";").split("\n")
    lines[0] = lines[0].replace(f"{call.c_name} (", f"\\fB{call.c_name}\\fR (", 1)
    return lines


# Each closure argument kind: the typedef (name, lines) of the struct it points to, as libnbd.h
# declares it, shown before the closure's own; None for kinds of plain C types.
_CLOSURE_ARG_TYPEDEF = KindTable("lang_man", "closure argument typedefs", CLOSURE_ARG_KINDS, {
    "string": None, "uint64": None, "uint": None, "mutable_int": None, "bytes_in": None,
    "uint32_array": None,
    "extent64_array": ("nbd_extent", ["typedef struct {", "  uint64_t length;",
                                      "  uint64_t flags;", "} nbd_extent;"]),
})


def man_typedefs(call, api):
    """The typedef of every closure type the call takes, each as a list of lines (preceded by
    nbd_extent's when a closure passes an array of them)."""
    out, seen = [], set()
    for a in call.closures:
        if a.closure in seen:
            continue
        seen.add(a.closure)
        cl = api.closure_map[a.closure]
        for ca in cl.args:
            typedef = _CLOSURE_ARG_TYPEDEF[ca.kind]
            if typedef and typedef[0] not in seen:
                seen.add(typedef[0])
                out.append([roff_escape(l) for l in typedef[1]])
        decl = lang_c.wrap_decl("  int (*callback)", lang_c.closure_params(cl), width=WIDTH - 1)
        lines = ["typedef struct {", *f"{decl};".split("\n"), "  void *user_data;",
                 "  void (*free) (void *user_data);", f"}} {cl.c_type};"]
        out.append([roff_escape(l) for l in lines])
    return out


# ---- description ----------------------------------------------------------------------------

# How long the library keeps a closure, by Arg.lifetime.
_LIFETIME = {
    "call": "used only while this call runs",
    "command": "kept until the command it starts has completed and retired",
    "persistent": "kept by the handle until it is replaced or cleared, or the handle is closed",
}


def _closure_blocks(call, a, api):
    cl = api.closure_map[a.closure]
    text = (f"The {_arg(a.name)} argument is an {cl.c_type} closure, {_LIFETIME[a.lifetime]}.  "
            f"Its {_bold('free')} function, if set, is called exactly once when the library is "
            f"done with it, also when this call fails.")
    if a.optional:
        text += (f"  Pass {_bold('NBD_NULL_' + a.closure.upper())}, or any closure whose "
                 f"{_bold('callback')} is NULL, if no callback is wanted.")
    else:
        text += f"  Its {_bold('callback')} member must not be NULL."
    return [("para", _fill(text, api, call.c_name))]


def _flags_blocks(call, a, api):
    vs = api.value_sets[a.type]
    mask = f"LIBNBD_{vs.prefix}_MASK"
    strict = ("nbd_set_strict_mode" if "set_strict_mode" in api.call_map else "strict mode")
    if a.allowed is None:
        intro = (f"The {_arg(a.name)} argument is a bitwise OR of zero or more of these flags "
                 f"({mask} is all of them):")
        return [("para", _fill(intro, api, call.c_name)), _tags(vs, vs.values, api, call.c_name)]
    if not a.allowed:
        text = (f"This call accepts no flags: pass 0 as {_arg(a.name)}.  Other values are refused "
                f"unless LIBNBD_STRICT_FLAGS is cleared with {strict}, in which case values that "
                f"fit in 16 bits are sent to the server unchecked.")
        return [("para", _fill(text, api, call.c_name))]
    intro = f"The {_arg(a.name)} argument is a bitwise OR of zero or more of these flags:"
    after = (f"Other flags are refused unless LIBNBD_STRICT_FLAGS is cleared with {strict}, in "
             f"which case flags that fit in 16 bits are sent to the server unchecked.")
    return [("para", _fill(intro, api, call.c_name)),
            _tags(vs, [vs.value_named(f) for f in a.allowed], api, call.c_name),
            ("para", _fill(after, api, call.c_name))]


def _enum_blocks(call, a, api):
    vs = api.value_sets[a.type]
    return [("para", _fill(f"The {_arg(a.name)} argument must be one of:", api, call.c_name)),
            _tags(vs, vs.values, api, call.c_name)]


# Each argument kind: the function giving the paragraphs DESCRIPTION adds about an argument of
# that kind, or None when its C type says all.
_ARG_BLOCKS = KindTable("lang_man", "argument paragraphs", ARG_KINDS, {
    "bool": None, "int": None, "uint32": None, "uint64": None, "size": None, "uintptr": None,
    "string": None, "path": None, "string_list": None, "fd": None, "enum": _enum_blocks,
    "flags": _flags_blocks, "closure": _closure_blocks, "bytes_in": None, "bytes_out": None,
    "sockaddr": None,
})


def man_description(call, api):
    """[(subsection heading or None, blocks)]: the call's doc with a paragraph per closure, flags
    and enum argument, then the doc of each closure type the call takes."""
    blocks = _doc(call.doc, api, call.c_name)
    for a in call.all_args:
        if _ARG_BLOCKS[a.kind]:
            blocks += _ARG_BLOCKS[a.kind](call, a, api)
    if not blocks:
        short = " ".join(call.short.split())
        blocks = [("para", _fill(f"{call.c_name}: {short}.", api, call.c_name))]
    out = [(None, blocks)]
    for name in dict.fromkeys(a.closure for a in call.closures):
        cl = api.closure_map[name]
        doc = _doc(cl.doc, api, call.c_name)
        if doc:
            out.append((cl.c_type, doc))
    return out


# ---- return value, errors, state, version, see also -----------------------------------------

# Wording per return kind: what a successful call returns, what a failed one returns (used only
# when the call may fail), and what a call that cannot fail (may_fail: false) returns where that
# differs from the first (None: the first; for kinds with no error value only the last is used).
_RETURN = KindTable("lang_man", "return values", RET_KINDS, {
    "err": ("returns 0 on success", "-1 on error", "always returns 0"),
    "bool": ("returns 1 for true or 0 for false", "-1 on error", None),
    "int": ("returns a non-negative integer on success", "-1 on error", "returns an integer"),
    "int64": ("returns a non-negative 64-bit integer on success", "-1 on error",
              "returns a 64-bit integer"),
    "cookie": ("returns a positive cookie that identifies the command, for use with "
               "nbd_aio_command_completed", "-1 on error", None),
    "size": ("returns a non-negative count on success", "-1 on error", None),
    "fd": ("returns a file descriptor on success", "-1 on error", None),
    "uint": (None, None, "returns an unsigned integer"),
    "uint64": (None, None, "returns an unsigned 64-bit integer"),
    "uintptr": (None, None, "returns a uintptr_t value"),
    "enum": ("returns one of the values below", "-1 on error", None),
    "flags": (None, None, "returns a bitwise OR of the flags below"),
    "string": ("returns a newly allocated, NUL-terminated string, which the caller must free with "
               "free(3)", "NULL on error", None),
    "static_string": ("returns a pointer to a NUL-terminated string owned by the library, which "
                      "the caller must neither free nor modify", "NULL on error",
                      "returns a pointer to a string owned by the library, which the caller must "
                      "neither free nor modify"),
    "void": (None, None, "returns no value"),
    "handle": ("returns a new handle, which the caller must close with nbd_close", "NULL on error",
               None),
})
KIND_TABLES = [_CLOSURE_ARG_TYPEDEF, _ARG_BLOCKS, _RETURN]


def man_return(call, api):
    ok, err, infallible = _RETURN[call.ret]
    if call.may_fail:
        text = f"This call {ok}, or {err}."
    elif call.ret == "void":
        text = f"This call {infallible}."
    else:
        text = f"This call {infallible or ok}.  It cannot fail."
    # free(3) is a link too, but LINK_RE only knows our own names.
    lines = [l.replace("free(3)", "\\fBfree\\fR(3)") for l in _fill(text, api, call.c_name)]
    blocks = [("para", lines)]
    if call.ret in ("enum", "flags"):
        vs = api.value_sets[call.ret_type]
        blocks.append(_tags(vs, vs.values, api, call.c_name))
    return blocks


def man_errors(call, api):
    """Blocks for ERRORS, or [] for a call that cannot fail."""
    if not call.may_fail:
        return []
    me = call.c_name
    intro = ("On error the reason is kept per thread: nbd_get_error returns a message and "
             "nbd_get_errno an errno value.  The errno values this call sets include:")
    reasons = {}
    # Only entry points that take a handle check their arguments (see api.cpp.j2).
    nulls = []
    if call.handle == "required":
        nulls = [_arg("h")] + [_arg(a.name) for a in call.all_args if a.kind in POINTER_KINDS]
        nulls += [f"the {_bold('callback')} member of {_arg(a.name)}"
                  for a in call.closures if not a.optional]
    if nulls:
        reasons.setdefault("EFAULT", []).append(f"{_join(nulls)} is NULL.")
    if call.states and call.handle == "required":
        words = _join([api.states[s] for s in call.states])
        if "created" not in call.states:
            reasons.setdefault("ENOTCONN", []).append(
                f"The handle is {api.states['created']}, but it must be {words}.")
            reasons.setdefault("EINVAL", []).append(
                f"The handle has moved on to a state in which this call is not permitted (it must "
                f"be {words}).")
        else:
            reasons.setdefault("EINVAL", []).append(f"The handle is not {words}.")
    for a in call.all_args if call.handle == "required" else []:
        if a.kind == "enum":
            reasons.setdefault("EINVAL", []).append(
                f"{_arg(a.name)} is not one of the values listed above.")
        elif a.kind == "flags":
            reasons.setdefault("EINVAL", []).append(
                f"{_arg(a.name)} has a flag set that this call does not accept.")
    if call.pending:
        reasons.setdefault("ENOTSUP", []).append(
            "This build does not implement the call yet; it always fails.")
    names = "|".join(re.escape(n) for a in call.all_args for n in (a.name, a.len) if n)
    for errno, text in call.errors:          # call-specific, from api.yaml; arguments in italics
        text = _clean(text)
        if names:
            text = re.sub(rf"(?<![\w-])({names})(?![\w-])", lambda m: _arg(m.group(1)), text)
        reasons.setdefault(errno, []).append(text)
    if call.locked:     # calls without the lock touch atomics only and allocate nothing
        reasons.setdefault("ENOMEM", []).append("The library ran out of memory.")
    if not reasons:
        return [("para", _fill(intro.rpartition(".")[0] + ".", api, me))]
    tags = [(errno, _fill(" ".join(texts), api, me)) for errno, texts in reasons.items()]
    return [("para", _fill(intro, api, me)), ("tags", tags)]


def man_state(call, api):
    me = call.c_name
    if call.handle == "none":
        text = "This call does not take a handle."
    elif not call.states:
        text = "This call may be made with the handle in any state."
    else:
        text = f"The handle must be {_join([api.states[s] for s in call.states])}."
    if call.handle == "nullable":
        text += f"  Passing NULL as {_arg('h')} is allowed."
    if not call.locked and call.handle == "none":
        text += "  It takes no lock and is safe to call from any thread at any time."
    elif not call.locked:
        text += ("  This call takes no lock: it is safe to call from any thread at any time, even "
                 "while another thread is inside a call on the same handle.")
    elif call.handle != "none":
        text += ("  The call holds the handle's lock while it runs, so calls made on one handle "
                 "from several threads are serialised.")
    return [("para", _fill(text, api, me))]


def man_version(call, api):
    prefix, _, number = call.since.partition("_")
    if prefix == "LIBNBD":
        text = f"This function first appeared in libnbd {number} (symbol version {call.since})."
    elif prefix.lower() == api.package:
        text = (f"This function is an {api.package} extension that libnbd does not have (symbol "
                f"version {call.since}).")
    else:
        text = f"This function has the symbol version {call.since}."
    text += "  To test for it at compile time:"
    macro = f"LIBNBD_HAVE_{call.c_name.upper()}"
    return [("para", _fill(text, api, call.c_name)),
            ("code", _code([f"#ifdef {macro}", "...", "#endif"]))]


def man_example(call):
    """The EXAMPLE section's verbatim lines, or [] when api.yaml gives none."""
    return _code(call.example.rstrip("\n").split("\n")) if call.example else []


def overview_page(api):
    """Name of the overview page (the package name), or "" when the spec has no overview."""
    return (api.package or "nbdpp") if api.overview else ""


def _see_also_lines(refs):
    """.BR arguments for (name, section) pairs, the last one without a comma."""
    return [f"{n} ({s}){',' if i + 1 < len(refs) else ''}" for i, (n, s) in enumerate(refs)]


def man_see_also(call, api):
    """SEE ALSO entries: the calls of see_also, then the overview page."""
    names = []
    for other in call.see_also:
        if other != call.name and f"nbd_{other}" not in names:
            names.append(f"nbd_{other}")
    if overview_page(api):
        names.append(overview_page(api))
    return _see_also_lines([(n, "3") for n in names])


# ---- the overview page ----------------------------------------------------------------------
# Its source is the markup markdown.markup_blocks() parses (docs/README.md); here it becomes the
# same kinds of blocks as a call's page, plus "steps" (numbered items) and "terms" (tagged items
# whose term carries inline markup), so man3.j2's macro renders both.

_CODE_SPAN_RE = re.compile(r"`([^`]*)`")
_EMPHASIS_RE = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
# NAME(N): a reference to another page; our own names are left to _markup, which links them.
_REF_RE = re.compile(r"(?<![\w.+-])([A-Za-z][\w.+-]*?)\(([1-9])\)")


def _refs_markup(text):
    def sub(m):
        if LINK_RE.fullmatch(m.group(1)):
            return m.group(0)
        return f"{_B}{m.group(1)}{_R}({m.group(2)})"
    return _REF_RE.sub(sub, text)


def _code_span(text):
    """`literal`: bold.  A span that is just a name is a mention like any other (a link for a
    call); names inside a longer literal, such as a C expression, are kept from linking."""
    if _NAME_RE.fullmatch(text):
        return text
    return _B + LINK_RE.sub(lambda m: m.group(0)[0] + _N + m.group(0)[1:], text) + _R


def inline_markup(text):
    """Overview inline markup (`literal`, *emphasis*, NAME(N)) turned into font marks."""
    out = []
    for i, part in enumerate(_CODE_SPAN_RE.split(_clean(text))):
        if i % 2:
            out.append(_code_span(part))
        else:
            out.append(_refs_markup(_EMPHASIS_RE.sub(lambda m: f"{_I}{m.group(1)}{_R}", part)))
    return "".join(out)


def _one_line(text, api, page):
    """Inline markup on text that must stay on one line (a term, a heading)."""
    words = " ".join(inline_markup(text).split()).split(" ")
    return _markup(" ".join(_escape_word(w) for w in words), api, page)


def _see_also_refs(text):
    """(name, section) of every reference in a SEE ALSO paragraph; bare names are section 3."""
    refs = []
    for item in re.split(r"\s*,\s*", " ".join(_clean(text).split()).rstrip(".")):
        m = re.fullmatch(r"`?([A-Za-z][\w.+-]*?)`?(?:\(([1-9])\))?", item)
        if not m:
            raise ValueError(f"SEE ALSO: {item!r} is not NAME(N)")
        refs.append((m.group(1), m.group(2) or "3"))
    return refs


def overview_th(api):
    package = api.package or "nbdpp"
    return f'.TH {overview_page(api).upper()} 3 "{MAN_DATE}" "{package}" "{package} C API"'


def overview_sections(api):
    """[(title, kind, content)]: kind "blocks" with content [(subsection or None, blocks)], or
    kind "refs" (SEE ALSO) with content as .BR arguments."""
    page = overview_page(api)
    out = []
    for kind, value, _ in api.overview:
        if kind == "sh":
            out.append((value, "blocks", [(None, [])]))
            continue
        title, _, subsections = out[-1]
        blocks = subsections[-1][1]
        if kind == "ss":
            subsections.append((roff_escape(value), []))
        elif title == "SEE ALSO":
            if kind != "para":
                raise ValueError("SEE ALSO holds only NAME(N) references")
            refs = _see_also_refs(value)
            prev = out[-1][2] if out[-1][1] == "refs" else []
            out[-1] = (title, "refs", prev + [f"{roff_escape(n)} ({s})" for n, s in refs])
        elif kind == "para":
            blocks.append(("para", _fill(inline_markup(value), api, page)))
        elif kind == "list":
            blocks.append(("list", [_fill(inline_markup(v), api, page) or ["\\&"] for v in value]))
        elif kind == "steps":
            blocks.append(("steps", [(f"{n}.", _fill(inline_markup(v), api, page))
                                     for n, v in value]))
        elif kind == "tags":
            # A term without markup of its own is set in bold.
            terms = [t if re.search(r"[`*]", t) else f"`{t}`" for t, _ in value]
            blocks.append(("terms", [(_one_line(t, api, page), _fill(inline_markup(v), api, page))
                                     for t, (_, v) in zip(terms, value)]))
        elif kind == "code":
            blocks.append(("code", _code(value)))
    # .BR lines: a comma after every entry but the last.
    return [(t, k, [f"{r}," for r in c[:-1]] + c[-1:] if k == "refs" else c) for t, k, c in out]


# What man3.j2, man_blocks.j2 and overview.j2 call.
HELPERS = {name: globals()[name] for name in _HELPER_NAMES}
FILTERS = {"roff": roff_escape}
