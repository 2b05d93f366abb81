# Markdown-like text in the spec: the doc markup of api.yaml (paragraphs, "- " lists, indented
# verbatim lines) and the overview page's source markup (docs/overview.md).  Both are parsed here
# into plain blocks, so the validator can point at a line and the lang_* modules only render.
import re

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
