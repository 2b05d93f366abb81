# Checks api.yaml against the schema and the cross-field rules, then builds the model.
# Every message names the line: "api.yaml:LINE: call X: ...".  All problems are reported at once.
import os
import re

from .load import Node, SpecError, load_abi
from .markdown import LINK_RE, MarkupError, doc_blocks, markup_blocks
from .model import (ARG_KINDS, CLOSURE_ARG_KINDS, CLOSURE_ARRAY_KINDS, LIFETIMES, POINTER_KINDS,
                    RET_KINDS, RET_WITHOUT_ERROR, SIZED_KINDS, STATE_BITS, Api, Arg, Call, Closure,
                    ClosureArg, MetaNamespace, Value, ValueSet)

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
TOP_KEYS = {"schema", "package", "symbol_versions", "frozen", "frozen_abi", "environment", "states",
            "enums", "flags", "constants", "meta_contexts", "closures", "calls", "overview"}
CALL_KEYS = {"since", "args", "optargs", "ret", "ret_type", "states", "locked", "may_fail", "handle",
             "libnbd_may_fail", "status", "setting", "short", "doc", "see_also", "example", "errors"}
ERRNO = re.compile(r"^E[A-Z0-9]+$")
# Columns an EXAMPLE line may take: man indents the code by 11 of the 80 columns it renders.
EXAMPLE_WIDTH = 69
# Return kinds a generated getter (setting: FIELD) can produce from a handle field.
SETTING_GETTER_RETS = {"bool", "enum", "flags", "string", "uint64"}
ARG_KEYS = {"name", "kind", "type", "closure", "lifetime", "len", "persist", "allowed"}


class _Checker:
    def __init__(self, path):
        self.path = path
        self.errors = []

    def err(self, line, msg):
        self.errors.append(f"{os.path.basename(self.path)}:{line}: {msg}")

    def keys(self, node, allowed, what):
        for k in node:
            if k not in allowed:
                self.err(node.line_of(k), f"{what}: unknown key {k!r}")

    def need(self, node, key, what, typ=None):
        if key not in node:
            self.err(node.line, f"{what}: missing {key!r}")
            return None
        value = node[key]
        if typ is not None and not isinstance(value, typ):
            self.err(node.line_of(key), f"{what}: {key!r} must be a {typ.__name__}")
            return None
        return value


def _value_set(ck, key, node, kind):
    what = f"{kind} {key}"
    if not isinstance(node, Node):
        ck.err(0, f"{what}: must be a mapping")
        return None
    ck.keys(node, {"prefix", "values", "doc"}, what)
    prefix = ck.need(node, "prefix", what, str) or "X"
    values = ck.need(node, "values", what, dict) or {}
    docs = node.get("doc") or {}
    out, seen_bits = [], 0
    for name, value in values.items():
        line = values.line_of(name) if isinstance(values, Node) else node.line
        if not UPPER.match(str(name)):
            ck.err(line, f"{what}: value name {name!r} must be UPPER_CASE")
        if not isinstance(value, int) or isinstance(value, bool):
            ck.err(line, f"{what}: {name} must be an integer")
            continue
        if kind == "flags":
            if value <= 0 or value > 0xFFFFFFFF or value & (value - 1):
                ck.err(line, f"{what}: {name} = {value:#x} must be a single bit of a uint32")
            elif value & seen_bits:
                ck.err(line, f"{what}: {name} = {value:#x} overlaps another flag")
            seen_bits |= value
        elif not -2**31 <= value < 2**31:
            ck.err(line, f"{what}: {name} = {value} does not fit in an int")
        out.append(Value(str(name), value, docs.get(name, "")))
    for name in docs:
        if name not in values:
            ck.err(node.line_of("doc"), f"{what}: doc for unknown value {name!r}")
    return ValueSet(key, kind, prefix, out)


def _closures(ck, node, versions):
    out = []
    for key, c in (node or {}).items():
        what = f"closure {key}"
        if not SNAKE.match(key):
            ck.err(node.line_of(key), f"{what}: name must be snake_case")
        ck.keys(c, {"args", "since", "doc", "needs_callback"}, what)
        since = c.get("since", versions[0] if versions else "")
        if since not in versions:
            ck.err(c.line_of("since"), f"{what}: since {since!r} is not a symbol version")
        args = []
        for a in c.get("args") or []:
            kind = a.get("kind")
            if kind not in CLOSURE_ARG_KINDS:
                ck.err(a.line, f"{what}: argument {a.get('name')!r} has unknown kind {kind!r}")
            if kind in CLOSURE_ARRAY_KINDS and not a.get("len"):
                ck.err(a.line, f"{what}: argument {a.get('name')!r} needs 'len'")
            args.append(ClosureArg(a.get("name", "?"), kind, a.get("len", "")))
        needs_callback = c.get("needs_callback", False)
        if not isinstance(needs_callback, bool):
            ck.err(c.line_of("needs_callback"), f"{what}: needs_callback must be true or false")
        out.append(Closure(key, args, since, c.get("doc", ""), needs_callback is True))
    return out


def _arg(ck, call, a, optional, api_sets, closures):
    what = f"call {call}"
    if not isinstance(a, Node):
        ck.err(0, f"{what}: each argument must be a mapping")
        return None
    ck.keys(a, ARG_KEYS, f"{what}: argument {a.get('name')!r}")
    name, kind = a.get("name"), a.get("kind")
    if not isinstance(name, str) or not SNAKE.match(name):
        ck.err(a.line, f"{what}: argument name {name!r} must be snake_case")
    if kind not in ARG_KINDS:
        ck.err(a.line, f"{what}: argument {name!r} has unknown kind {kind!r}")
        return None
    arg = Arg(name, kind, a.line, optional=optional and kind == "closure")
    if kind in ("enum", "flags"):
        arg.type = a.get("type", "")
        vs = api_sets.get(arg.type)
        if vs is None or vs.kind != ("enum" if kind == "enum" else "flags"):
            ck.err(a.line, f"{what}: argument {name!r}: unknown {kind} type {arg.type!r}")
        elif "allowed" in a:
            arg.allowed = list(a["allowed"])
            for flag in arg.allowed:
                if flag not in {v.name for v in vs.values}:
                    ck.err(a.line, f"{what}: argument {name!r}: {flag!r} is not a {arg.type} flag")
    elif "allowed" in a:
        ck.err(a.line, f"{what}: argument {name!r}: 'allowed' applies to flags only")
    if kind == "closure":
        arg.closure = a.get("closure", "")
        arg.lifetime = a.get("lifetime", "")
        if arg.closure not in closures:
            ck.err(a.line, f"{what}: argument {name!r}: unknown closure {arg.closure!r}")
        if arg.lifetime not in LIFETIMES:
            ck.err(a.line, f"{what}: argument {name!r}: lifetime must be one of "
                           f"{', '.join(sorted(LIFETIMES))}")
    if kind in SIZED_KINDS:
        arg.len = a.get("len", "")
        if not arg.len:
            ck.err(a.line, f"{what}: argument {name!r} needs 'len'")
        arg.persist = bool(a.get("persist", False))
    elif "persist" in a or "len" in a:
        ck.err(a.line, f"{what}: argument {name!r}: 'len' and 'persist' apply to buffers only")
    return arg


def _call(ck, name, c, api_sets, closures, versions, states):
    what = f"call {name}"
    if not SNAKE.match(name):
        ck.err(c.line, f"{what}: name must be snake_case")
    ck.keys(c, CALL_KEYS, what)
    since = ck.need(c, "since", what, str) or ""
    if since and since not in versions:
        ck.err(c.line_of("since"), f"{what}: since {since!r} is not a symbol version")
    args = [x for x in (_arg(ck, name, a, False, api_sets, closures) for a in c.get("args") or []) if x]
    optargs = [x for x in (_arg(ck, name, a, True, api_sets, closures)
                           for a in c.get("optargs") or []) if x]
    for a in optargs:
        if a.kind not in ("closure", "flags"):
            ck.err(a.line, f"{what}: optional argument {a.name!r} must be a closure or flags")
    names = [a.name for a in args + optargs] + [a.len for a in args + optargs if a.len]
    for n in sorted({n for n in names if names.count(n) > 1}):
        ck.err(c.line, f"{what}: argument name {n!r} is used twice")
    ret = ck.need(c, "ret", what, str) or "err"
    if ret not in RET_KINDS:
        ck.err(c.line_of("ret"), f"{what}: unknown return kind {ret!r}")
    ret_type = c.get("ret_type", "")
    if ret in ("enum", "flags"):
        vs = api_sets.get(ret_type)
        if vs is None or vs.kind != ("enum" if ret == "enum" else "flags"):
            ck.err(c.line_of("ret"), f"{what}: ret {ret} needs ret_type naming a known {ret} type")
    elif ret_type:
        ck.err(c.line_of("ret_type"), f"{what}: ret_type applies to enum and flags returns only")
    call_states = list(c.get("states") or [])
    for s in call_states:
        if s not in states:
            ck.err(c.line_of("states"), f"{what}: unknown state {s!r}")
    may_fail = c.get("may_fail", True)
    if not may_fail:
        risky = [a.name for a in args + optargs if a.kind in POINTER_KINDS | {"enum", "flags"}]
        if call_states or risky:
            ck.err(c.line_of("may_fail"), f"{what}: a call that cannot fail may have no states "
                                          f"or pointer, enum or flags arguments")
    elif ret in RET_WITHOUT_ERROR:
        ck.err(c.line_of("ret"), f"{what}: ret {ret} has no error value, so may_fail must be false")
    libnbd_may_fail = c.get("libnbd_may_fail", False)
    if not isinstance(libnbd_may_fail, bool):
        ck.err(c.line_of("libnbd_may_fail"), f"{what}: libnbd_may_fail must be true or false")
    elif libnbd_may_fail and may_fail:
        ck.err(c.line_of("libnbd_may_fail"), f"{what}: libnbd_may_fail applies only to a call "
                                             f"that cannot fail (may_fail: false)")
    persistent = [a for a in args if a.persist]
    if len(persistent) > 1:
        ck.err(c.line, f"{what}: at most one persistent buffer per call")
    if persistent and not any(a.kind == "closure" and a.closure == "completion" for a in optargs):
        ck.err(c.line, f"{what}: a persistent buffer needs a completion closure among the optargs")
    handle = c.get("handle", "required")
    handle = {True: "required", False: "none"}.get(handle, handle)
    if handle not in ("required", "nullable", "none"):
        ck.err(c.line_of("handle"), f"{what}: handle must be true, false or nullable")
    status = c.get("status", "done")
    if status not in ("done", "pending"):
        ck.err(c.line_of("status"), f"{what}: status must be done or pending")
    elif status == "pending" and not may_fail:
        ck.err(c.line_of("status"), f"{what}: a pending call fails with ENOTSUP, so it must be "
                                    f"able to fail")
    setting = c.get("setting", "")
    if setting:
        setter = ret == "err" and len(args) == 1 and not optargs and args[0].kind != "closure"
        getter = ret in SETTING_GETTER_RETS and not args and not optargs
        if not SNAKE.match(str(setting)) or not (setter or getter) or status == "pending":
            ck.err(c.line_of("setting"), f"{what}: 'setting' needs a setter (one argument, ret err) "
                                         f"or a getter (no arguments, ret bool, enum, flags, "
                                         f"string or uint64) that is not pending")
    short = c.get("short", "")
    if not isinstance(short, str) or not short or short[0].isupper() or short.endswith("."):
        ck.err(c.line_of("short") if "short" in c else c.line,
               f"{what}: 'short' must be a lowercase phrase without a final period")
    doc = c.get("doc", "")
    if not isinstance(doc, str) or not doc.strip():
        ck.err(c.line, f"{what}: missing 'doc'")
    example = _example(ck, name, c)
    errors = []
    if "errors" in c:
        raw_errors = c["errors"]
        if not isinstance(raw_errors, dict) or not raw_errors:
            ck.err(c.line_of("errors"), f"{what}: 'errors' must map errno names to sentences")
        elif not may_fail:
            ck.err(c.line_of("errors"), f"{what}: a call that cannot fail has no 'errors'")
        else:
            for errno, text in raw_errors.items():
                line = raw_errors.line_of(errno) if isinstance(raw_errors, Node) else c.line
                if not ERRNO.match(str(errno)):
                    ck.err(line, f"{what}: errors: {errno!r} is not an errno name such as ERANGE")
                elif not isinstance(text, str) or not text.rstrip().endswith("."):
                    ck.err(line, f"{what}: errors: {errno} needs a sentence ending in a period")
                else:
                    errors.append((str(errno), " ".join(text.split())))
    return Call(name=name, line=c.line, since=since, args=args, optargs=optargs, ret=ret,
                ret_type=ret_type, states=call_states, locked=bool(c.get("locked", True)),
                may_fail=bool(may_fail), libnbd_may_fail=libnbd_may_fail is True, handle=handle, pending=status == "pending",
                setting=str(setting or ""),
                short=short or "", doc=doc or "", see_also=list(c.get("see_also") or []),
                example=example, errors=errors)


def _example(ck, name, c):
    """The call's EXAMPLE program: verbatim C that mentions the call and fits the page."""
    if "example" not in c:
        return ""
    what, example = f"call {name}", c["example"]
    line = c.line_of("example")
    if not isinstance(example, str) or not example.strip():
        ck.err(line, f"{what}: 'example' must be a block of C code")
        return ""
    if not re.search(rf"\bnbd_{name}\b", example):
        ck.err(line, f"{what}: 'example' does not use nbd_{name}")
    for n, text in enumerate(example.rstrip("\n").split("\n"), line + 1):
        if "\t" in text:
            ck.err(n, f"{what}: example: use spaces, not tabs")
        elif len(text) > EXAMPLE_WIDTH:
            ck.err(n, f"{what}: example: line is {len(text)} columns, more than {EXAMPLE_WIDTH}")
    return example.rstrip("\n") + "\n"


def _check_links(ck, api, raw_calls):
    # nbd_extent: the struct libnbd.h.j2 declares for extent64_array closure arguments.
    names = ({c.c_name for c in api.calls} | {c.c_type for c in api.closures} |
             {"nbd_handle", "nbd_extent"})
    consts = set(api.environment)
    consts |= {f"LIBNBD_HAVE_{n.upper()}" for n in names - {"nbd_handle", "nbd_extent"}}  # libnbd.h.j2
    for vs in api.enums + api.flags + api.constants:
        consts |= {f"LIBNBD_{vs.prefix}_{v.name}" for v in vs.values}
        if vs.kind == "flags":
            consts.add(f"LIBNBD_{vs.prefix}_MASK")
    for ns in api.meta:
        consts.add(f"LIBNBD_NAMESPACE_{ns.name.upper()}")
        for ctx, _ in ns.contexts:
            consts.add(ns.context_macro(ctx))
        for _, values in ns.constants:
            consts |= {f"LIBNBD_{v.name}" for v in values}
    for c in api.calls:
        raw = raw_calls[c.name]
        texts = [("doc", c.doc), ("example", c.example)] + [("errors", t) for _, t in c.errors]
        for key, text in texts:
            for word in LINK_RE.findall(text):
                if word not in names and word not in consts:
                    ck.err(raw.line_of(key), f"call {c.name}: {key} mentions unknown {word!r}")
        for other in c.see_also:
            if other not in api.call_map:
                ck.err(raw.line_of("see_also"), f"call {c.name}: see_also names unknown call {other!r}")
    return names | consts


def _overview(ck, raw, spec, known):
    """Parses the overview page's source (overview: PATH, relative to the spec) and checks that
    every name it mentions exists.  Messages name the source's own lines."""
    if "overview" not in raw:
        return []
    rel = raw["overview"]
    if not isinstance(rel, str) or not rel:
        ck.err(raw.line_of("overview"), "spec: 'overview' must be a path relative to the spec")
        return []
    path = os.path.join(os.path.dirname(spec), rel)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        ck.err(raw.line_of("overview"), f"spec: overview: cannot read {rel}: {e.strerror}")
        return []
    where = os.path.basename(path)
    try:
        blocks = markup_blocks(text)
    except MarkupError as e:
        ck.errors.append(f"{where}:{e.line}: {e}")
        return []
    if not blocks or blocks[0][:2] != ("sh", "NAME"):
        ck.errors.append(f"{where}:1: the first section must be ## NAME")
    for n, line in enumerate(text.split("\n"), 1):
        for word in LINK_RE.findall(line):
            if word not in known:
                ck.errors.append(f"{where}:{n}: mentions unknown {word!r}")
    return blocks


def _check_frozen(ck, api, spec, frozen_abi):
    """Frozen nodes must hold exactly the members listed in the reference ABI file."""
    if not frozen_abi:
        return
    expected = load_abi(os.path.join(os.path.dirname(spec), frozen_abi))
    for c in api.calls:
        if c.since in api.frozen and expected.get(c.c_name) != c.since:
            ck.err(c.line, f"call {c.name}: frozen node {c.since} does not contain {c.c_name} "
                           f"in {frozen_abi}")
    for sym, node in expected.items():
        call = api.call_map.get(sym[4:])
        if call is None:
            ck.err(0, f"frozen node {node}: {sym} is missing from the spec")
        elif call.since != node:
            ck.err(call.line, f"call {call.name}: must be in frozen node {node}, not {call.since}")


def validate(raw, path):
    """Returns the Api model of a loaded spec, or raises SpecError listing every problem."""
    ck = _Checker(path)
    ck.keys(raw, TOP_KEYS, "spec")
    if raw.get("schema") != 1:
        ck.err(raw.line_of("schema"), "spec: schema must be 1")
    versions = list(ck.need(raw, "symbol_versions", "spec", list) or [])
    frozen = list(raw.get("frozen") or [])
    for v in frozen:
        if v not in versions:
            ck.err(raw.line_of("frozen"), f"spec: frozen node {v!r} is not a symbol version")
    states = dict(ck.need(raw, "states", "spec", dict) or {})
    for s in states:
        if s not in STATE_BITS:
            ck.err(raw["states"].line_of(s), f"spec: unknown state {s!r}")
    enums = [_value_set(ck, k, v, "enum") for k, v in (raw.get("enums") or {}).items()]
    flags = [_value_set(ck, k, v, "flags") for k, v in (raw.get("flags") or {}).items()]
    consts = [_value_set(ck, k, v, "const") for k, v in (raw.get("constants") or {}).items()]
    meta = []
    for ns, m in (raw.get("meta_contexts") or {}).items():
        docs = m.get("doc") or {}
        meta.append(MetaNamespace(
            ns, bool(m.get("header", True)),
            [(ctx, docs.get(ctx, "")) for ctx in m.get("contexts") or []],
            [(ctx, [Value(k, v) for k, v in vals.items()])
             for ctx, vals in (m.get("constants") or {}).items()]))
    closures = _closures(ck, raw.get("closures"), versions)
    api_sets = {vs.key: vs for vs in enums + flags if vs}
    closure_map = {c.name: c for c in closures}
    raw_calls = raw.get("calls") or Node()
    for name, c in raw_calls.items():
        if isinstance(c, Node):
            c.line = raw_calls.line_of(name)  # report calls at their name, not their first key
    calls = [_call(ck, name, c, api_sets, closure_map, versions, states)
             for name, c in raw_calls.items()]
    api = Api(package=str(raw.get("package", "")), versions=versions, frozen=frozen, states=states,
              environment=dict(raw.get("environment") or {}),
              enums=[e for e in enums if e], flags=[f for f in flags if f],
              constants=[c for c in consts if c], meta=meta, closures=closures, calls=calls,
              value_sets=api_sets, closure_map=closure_map, call_map={c.name: c for c in calls})
    known = _check_links(ck, api, raw_calls)
    api.overview = _overview(ck, raw, path, known)
    _check_frozen(ck, api, path, raw.get("frozen_abi"))
    for c in api.calls:
        doc_blocks(c.doc)
    if ck.errors:
        raise SpecError("\n".join(ck.errors))
    return api
