# Roff rendering for the section 3 man pages: escaping, wrapping, link markup, and the wording
# tables (return values, errors, states, versions) derived from the model.
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
from .model import LINK_RE, POINTER_KINDS, doc_blocks

EXPORTS = ["roff_escape", "man_th", "man_name", "man_prototype", "man_typedefs", "man_description",
           "man_return", "man_errors", "man_state", "man_version", "man_see_also"]

# .TH date: fixed, never the build date, so that pages are reproducible; bump it for a release.
MAN_DATE = "2026-11-28"
WIDTH = 72          # fill text and verbatim declarations; man indents by 7 of 80 columns
LONG_WORD = 20      # longer words get explicit break points, so roff never has to overfill a line

# Inline markup inside generated sentences, turned into font escapes after escaping.  Private use
# code points, so they cannot collide with roff syntax; stripped from spec text first.
_I, _B, _R = "\ue000", "\ue001", "\ue002"
_FONTS = {_I: "\\fI", _B: "\\fB", _R: "\\fR"}
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
    return "\\:".join(roff_escape(p) for p in pieces)


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


def man_typedefs(call, api):
    """The typedef of every closure type the call takes, each as a list of lines."""
    out, seen = [], set()
    for a in call.closures:
        if a.closure in seen:
            continue
        seen.add(a.closure)
        cl = api.closure_map[a.closure]
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


def man_description(call, api):
    """[(subsection heading or None, blocks)]: the call's doc with a paragraph per closure, flags
    and enum argument, then the doc of each closure type the call takes."""
    blocks = _doc(call.doc, api, call.c_name)
    for a in call.all_args:
        if a.kind == "closure":
            blocks += _closure_blocks(call, a, api)
        elif a.kind == "flags":
            blocks += _flags_blocks(call, a, api)
        elif a.kind == "enum":
            blocks += _enum_blocks(call, a, api)
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

# Wording per return kind: what a successful call returns, and what a failed one returns (used
# only when the call may fail).
_RETURN = {
    "err": ("returns 0 on success", "-1 on error"),
    "bool": ("returns 1 for true or 0 for false", "-1 on error"),
    "int": ("returns a non-negative integer on success", "-1 on error"),
    "int64": ("returns a non-negative 64-bit integer on success", "-1 on error"),
    "cookie": ("returns a positive cookie that identifies the command, for use with "
               "nbd_aio_command_completed", "-1 on error"),
    "size": ("returns a non-negative count on success", "-1 on error"),
    "fd": ("returns a file descriptor on success", "-1 on error"),
    "enum": ("returns one of the values below", "-1 on error"),
    "string": ("returns a newly allocated, NUL-terminated string, which the caller must free with "
               "free(3)", "NULL on error"),
    "static_string": ("returns a pointer to a NUL-terminated string owned by the library, which "
                      "the caller must neither free nor modify", "NULL on error"),
    "handle": ("returns a new handle, which the caller must close with nbd_close", "NULL on error"),
}
# Wording for calls that cannot fail (may_fail: false), where it differs from the above.
_RETURN_INFALLIBLE = {
    "err": "always returns 0",
    "int": "returns an integer",
    "int64": "returns a 64-bit integer",
    "uint": "returns an unsigned integer",
    "uintptr": "returns a uintptr_t value",
    "flags": "returns a bitwise OR of the flags below",
    "static_string": "returns a pointer to a string owned by the library, which the caller must "
                     "neither free nor modify",
    "void": "returns no value",
}


def man_return(call, api):
    if call.may_fail:
        ok, err = _RETURN[call.ret]
        text = f"This call {ok}, or {err}."
    elif call.ret == "void":
        text = f"This call {_RETURN_INFALLIBLE['void']}."
    else:
        ok = _RETURN_INFALLIBLE.get(call.ret) or _RETURN[call.ret][0]
        text = f"This call {ok}.  It cannot fail."
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
    nulls = [_arg("h")] if call.handle == "required" else []
    nulls += [_arg(a.name) for a in call.all_args if a.kind in POINTER_KINDS]
    nulls += [f"the {_bold('callback')} member of {_arg(a.name)}"
              for a in call.closures if not a.optional]
    if nulls:
        reasons.setdefault("EFAULT", []).append(f"{_join(nulls)} is NULL.")
    if call.states:
        words = _join([api.states[s] for s in call.states])
        if "created" not in call.states:
            reasons.setdefault("ENOTCONN", []).append(
                f"The handle is {api.states['created']}, but it must be {words}.")
            reasons.setdefault("EINVAL", []).append(
                f"The handle has moved on to a state in which this call is not permitted (it must "
                f"be {words}).")
        else:
            reasons.setdefault("EINVAL", []).append(f"The handle is not {words}.")
    for a in call.all_args:
        if a.kind == "enum":
            reasons.setdefault("EINVAL", []).append(
                f"{_arg(a.name)} is not one of the values listed above.")
        elif a.kind == "flags":
            reasons.setdefault("EINVAL", []).append(
                f"{_arg(a.name)} has a flag set that this call does not accept.")
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


def man_see_also(call, api):
    """SEE ALSO entries as .BR arguments, the last one without a comma."""
    names = []
    for other in call.see_also:
        if other != call.name and f"nbd_{other}" not in names:
            names.append(f"nbd_{other}")
    names.append("libnbd")
    return [f"{n} (3){',' if i + 1 < len(names) else ''}" for i, n in enumerate(names)]
