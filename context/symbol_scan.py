"""Where a file defines what: every function, class (struct, trait, interface, enum), method,
constant and typed attribute, with the class that holds it and the type it names (a function's
return type, an attribute's type, a class's bases), found by a lexical scan.

Lexical, not tree-sitter, because the symbol index reads every file of the workspace: tree-sitter
parses Python at about 6 MB/s on one core here (31 s for the 186 MB of the 10,000-file benchmark
workspace, over the whole indexing budget), these scans at about 60 MB/s. Nesting comes from
indentation (Python) or brace depth (the others); a brace inside a string can mislead the
latter, which costs a wrong container on a few definitions, never a failure. The spans and texts
of the few definitions a completion shows are read at request time (symbols.py).
"""

from __future__ import annotations

import bisect
import re
import sys
from typing import NamedTuple

from fimls.context import imports_c, imports_js


class Found(NamedTuple):
    name: str
    line: int  # 0-based line of the definition's keyword or name
    kind: str  # function, class, method, constant, attribute
    container: str | None  # the class (struct, impl'd type) it belongs to
    type: str | None  # return type (function, method), type (attribute, constant), bases (class, comma-separated)


def scan(path: str, text: str) -> list[Found]:
    scanner = _scanner_for(path)
    if scanner is None:
        return []
    try:
        return scanner(text)
    except RecursionError:  # pathological input must not stop indexing
        return []


def _scanner_for(path: str):
    if path.endswith((".py", ".pyi")):
        return _python
    if imports_js.is_source(path):
        return _javascript
    if path.endswith(".go"):
        return _go
    if path.endswith(".rs"):
        return _rust
    if path.endswith(".java"):
        return _java
    if imports_c.is_source(path):
        return _c
    return None


def last_name(type_text: str | None) -> str | None:
    """The class a written type names: `Optional[httpx.Client]` -> `Client`, `*http.Client` ->
    `Client`, `Arc<Mutex<Pool>>` -> `Pool`, `"Response"` -> `Response`; builtins and generics'
    parameters aside, the innermost capitalised name, else the last one."""
    if not type_text:
        return None
    names = re.findall(r"[A-Za-z_$][\w$]*", type_text)
    names = [n for n in names if n not in _TYPE_WRAPPERS]
    if not names:
        return None
    capitalised = [n for n in names if n[0].isupper()]
    return sys.intern((capitalised or names)[-1])


_TYPE_WRAPPERS = frozenset(
    "Optional Union List Dict Set Tuple Type Iterable Iterator Sequence Mapping Callable Awaitable "
    "Generator AsyncIterator AsyncGenerator ClassVar Final Annotated typing t list dict set tuple type "
    "None Self Arc Rc Box Mutex RwLock RefCell Cell Option Result Vec HashMap BTreeMap Promise Array "
    "Partial Readonly Record ReadonlyArray Observable std sync rc collections mut dyn impl const "
    "struct unique_ptr shared_ptr vector map chan func interface any string int bool error static inline extern "
    "void unsigned signed char long short float double virtual explicit constexpr usize u8 u32 u64 i32 i64 f64 str".split()
)


def _line_counter(text: str):
    """line_of(position), counting newlines only between one call's position and the next (so
    nearly increasing positions cost what the text between them does)."""
    state = [0, 0]  # position, line

    def line_of(position: int) -> int:
        if position >= state[0]:
            state[1] += text.count("\n", state[0], position)
        else:
            state[1] -= text.count("\n", position, state[0])
        state[0] = position
        return state[1]

    return line_of


# -- Python: nesting by indentation ------------------------------------------------------------

# Literal-led patterns: the regular-expression engine skips to the keyword at C speed, where one
# anchored at every line start (`^` under re.M) is tried at each position (4x slower here).
_PY_DEF = re.compile(r"def[ \t]+(?P<def>\w+)")
_PY_CLASS = re.compile(r"class[ \t]+(?P<cls>\w+)[ \t]*(?:\((?P<bases>[^)]*)\))?")
_PY_TOP = re.compile(r"\n[A-Za-z_@]")
# An annotation is a type's characters only: a docstring's "a :class:`KeyError`." is not one.
_PY_ASSIGNED = r"(?P<name>[A-Za-z_]\w*)(?:[ \t]*:[ \t]*(?P<ann>[A-Za-z_\"'][\w.\[\], |\"']*?))?[ \t]*(?:=(?!=)[ \t]*(?P<value>[\w.]+(?=\())?|(?:#.*)?$)"
_PY_CONSTANT = re.compile(_PY_ASSIGNED, re.M)
_PY_SELF = re.compile(r"\n[ \t]+self\.(?P<name>\w+)[ \t]*(?::[ \t]*(?P<ann>[^=\n]+?))?[ \t]*=(?!=)[ \t]*(?P<value>[\w.]+(?=\())?")
_PY_BODY_INDENT = re.compile(r"\n([ \t]+)[^ \t\n#]")
_PY_RETURN = re.compile(r"\)[ \t]*->[ \t]*(?P<ret>[^:\n]+?)[ \t]*:")
_PY_KEYWORDS = frozenset("if else elif for while try except finally with return lambda match case print del assert raise".split())
_class_body_patterns: dict[str, re.Pattern] = {}


def _python_blocks(text: str):
    """(line start, indent, match) of every def and class that begins its line (after `async`),
    and (line start, -1, None) of every line at the top level, in the order of the text."""
    events = []
    for pattern in (_PY_DEF, _PY_CLASS):
        for match in pattern.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            before = text[line_start : match.start()]
            stripped = before.strip()
            if stripped and stripped != "async":
                continue
            indent = len(before.expandtabs(8)) - len(before.expandtabs(8).lstrip())
            events.append((line_start, indent, match))
    events += [(match.start() + 1, -1, None) for match in _PY_TOP.finditer(text)]
    if text[:1].isalpha() or text[:1] in "_@":
        events.append((0, -1, None))
    events.sort(key=lambda event: (event[0], event[1]))
    return events


def _python(text: str) -> list[Found]:
    """Nesting from indentation, over three passes of C-speed regular expressions: blocks (def,
    class) and the top-level lines that close them; `self.x = ...` lines, given to the class whose
    method holds them; then each class body's own statements at its exact indentation (a pattern
    anchored there never sees a method's locals)."""
    found: list[Found] = []
    stack: list[list] = []  # [indent, kind, name, start position] of the open blocks
    classes: list[tuple[int, int, str, int]] = []  # (start, end, name, indent)
    line_of = _line_counter(text)

    def close(position: int, indent: int) -> None:
        while stack and stack[-1][0] >= indent:
            block = stack.pop()
            if block[1] == "class":
                classes.append((block[3], position, block[2], block[0]))

    for position, indent, match in _python_blocks(text):
        if match is None:
            close(position, 0)
            constant = _PY_CONSTANT.match(text, position)
            if constant is not None and constant["name"] not in _PY_KEYWORDS:
                found.append(Found(sys.intern(constant["name"]), line_of(position), "constant", None,
                                   last_name(constant["ann"]) or _called(constant["value"])))
            continue
        close(position, indent)
        in_class = bool(stack) and stack[-1][1] == "class"
        owner = stack[-1][2] if in_class else None
        if match.re is _PY_DEF:
            if not stack or in_class:
                ret = _PY_RETURN.search(text, match.end(), match.end() + 600)
                returns = last_name(ret["ret"]) if ret and "\n\n" not in text[match.end() : ret.start()] else None
                found.append(Found(sys.intern(match["def"]), line_of(match.start("def")), "method" if in_class else "function", owner, returns))
            stack.append([indent, "def", match["def"], position])
        else:
            if not stack or in_class:
                bases = ",".join(b for b in (last_name(part) for part in (match["bases"] or "").split(",")) if b) or None
                found.append(Found(sys.intern(match["cls"]), line_of(match.start("cls")), "class", owner, bases))
            stack.append([indent, "class" if not stack or in_class else "local", match["cls"], position])
    close(len(text), 0)
    classes.sort()
    found += _python_attributes(text, classes)
    found.sort(key=lambda f: f.line)
    return found


def _python_attributes(text: str, classes: list[tuple[int, int, str, int]]) -> list[Found]:
    found: list[Found] = []
    line_of = _line_counter(text)
    starts = [c[0] for c in classes]
    for match in _PY_SELF.finditer(text):
        i = bisect.bisect_left(starts, match.start()) - 1
        while i >= 0 and classes[i][1] < match.start():
            i -= 1  # an earlier class that ended before this line: look further up for one around it
        if i >= 0:
            found.append(Found(sys.intern(match["name"]), line_of(match.start("name")), "attribute", classes[i][2],
                               last_name(match["ann"]) or _called(match["value"])))
    for start, end, name, _indent in classes:
        body = _PY_BODY_INDENT.search(text, text.find(":\n", start, end) if text.find(":\n", start, end) >= 0 else start, end)
        if body is None:
            continue
        indent = body[1]
        pattern = _class_body_patterns.get(indent)
        if pattern is None:
            pattern = _class_body_patterns[indent] = re.compile("\n" + re.escape(indent) + _PY_ASSIGNED, re.M)
        # A class's own statements come before its methods (those after the first are not read).
        first_method = text.find("def ", body.start(), end)
        for match in pattern.finditer(text, body.start(), end if first_method < 0 else first_method):
            if match["name"] not in _PY_KEYWORDS:
                found.append(Found(sys.intern(match["name"]), line_of(match.start("name")), "attribute", name,
                                   last_name(match["ann"]) or _called(match["value"])))
    return found


def _called(value: str | None) -> str | None:
    """What `x = Value(...)` / `x = module.make(...)` calls: its last dotted part (a class, or a
    function whose return type the resolver looks up)."""
    if not value:
        return None
    return sys.intern(value.rsplit(".", 1)[-1])


# -- brace languages: nesting by brace depth ---------------------------------------------------

_KEYWORDS = frozenset(
    "if else for while do switch case catch return throw new delete function typeof await yield sizeof "
    "match loop unsafe where break continue goto defer go select range import export default from in of "
    "super this self Self synchronized try finally assert instanceof".split()
)


def _braces(text: str, pattern: re.Pattern, handle) -> list[Found]:
    """Run `pattern` over `text`, calling `handle(match, depth, containers, line_of, found)` for each
    match with the brace depth at it; `containers` is a stack of (body depth, name) that `handle`
    pushes a class onto (its body is one deeper than the class keyword)."""
    found: list[Found] = []
    containers: list[tuple[int, str]] = []
    line_of = _line_counter(text)
    depth, last = 0, 0
    for match in pattern.finditer(text):
        position = match.start()
        depth += text.count("{", last, position) - text.count("}", last, position)
        last = position
        while containers and containers[-1][0] > depth:
            containers.pop()
        handle(match, depth, containers, line_of, found)
    return found


def _member_of(containers, depth: int) -> str | None:
    return containers[-1][1] if containers and containers[-1][0] == depth else None


def _enclosing(containers, depth: int) -> str | None:
    return containers[-1][1] if containers and containers[-1][0] <= depth else None


def _open_class(match, depth: int, member_of, containers, line_of, found) -> None:
    """A class (its `cls` and `bases` groups) found, and its body opened for its members."""
    found.append(Found(sys.intern(match["cls"]), line_of(match.start("cls")), "class", member_of, last_name(match["bases"])))
    containers.append((depth + 1, match["cls"]))


def _after_parameters(text: str, position: int, limit: int = 600) -> int:
    """The position after the parenthesised parameters that open at or after `position`."""
    opened = text.find("(", position, position + limit)
    if opened < 0:
        return position
    depth = 0
    for i in range(opened, min(len(text), opened + limit)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return position


_JS = re.compile(
    r"^[ \t]*(?:export[ \t]+(?:default[ \t]+)?)?(?:declare[ \t]+)?(?:"
    r"(?:abstract[ \t]+)?class[ \t]+(?P<cls>[\w$]+)(?:[ \t]*<[^>{]*>)?(?:[ \t]+extends[ \t]+(?P<bases>[\w$.]+))?"
    r"|(?P<iface>interface|enum|namespace)[ \t]+(?P<iname>[\w$]+)"
    r"|type[ \t]+(?P<alias>[\w$]+)[ \t]*(?:<[^>=]*>)?[ \t]*="
    r"|(?:async[ \t]+)?function[ \t]*\*?[ \t]*(?P<def>[\w$]+)"
    r"|(?:const|let|var)[ \t]+(?P<var>[\w$]+)[ \t]*(?::[ \t]*(?P<var_ann>[\w$.]+)[^=\n]*)?=[ \t]*(?:new[ \t]+(?P<var_new>[\w$.]+)|(?P<arrow>(?:async[ \t]*)?(?:\([^)\n]*\)|[\w$]+)[ \t]*(?::[^=\n]+)?=>)|(?P<var_call>[\w$.]+)\()?"
    r"|(?:(?:public|private|protected|static|readonly|async|override|abstract|declare|get|set|accessor)[ \t]+)*"
    r"(?P<member>#?[\w$]+)[ \t]*[?!]?[ \t]*(?:(?P<call><[^>(\n]*>[ \t]*\(|\()|:[ \t]*(?P<mtype>[\w$.]+)|=[ \t]*new[ \t]+(?P<mnew>[\w$.]+))"
    r")"
    r"|this\.(?P<attr>[\w$]+)[ \t]*=[ \t]*new[ \t]+(?P<attr_new>[\w$.]+)",
    re.M,
)
_TS_RETURN = re.compile(r"[ \t]*:[ \t]*(?:Promise<)?(?P<ret>[\w$.]+)")


def _javascript(text: str) -> list[Found]:
    def handle(match, depth, containers, line_of, found):
        member_of = _member_of(containers, depth)
        if match["cls"] or match["iname"]:
            name = match["cls"] or match["iname"]
            found.append(Found(sys.intern(name), line_of(match.start("cls") if match["cls"] else match.start("iname")),
                               "class", member_of, last_name(match["bases"])))
            if match["iface"] != "namespace":
                containers.append((depth + 1, name))
        elif match["alias"]:
            found.append(Found(sys.intern(match["alias"]), line_of(match.start("alias")), "class", None, None))
        elif match["def"] and depth == 0:
            returns = _TS_RETURN.match(text, _after_parameters(text, match.end()))
            found.append(Found(sys.intern(match["def"]), line_of(match.start("def")), "function", None, returns and last_name(returns["ret"])))
        elif match["var"] and depth == 0:
            kind = "function" if match["arrow"] else "constant"
            found.append(Found(sys.intern(match["var"]), line_of(match.start("var")), kind, None,
                               last_name(match["var_ann"] or match["var_new"]) or _called(match["var_call"])))
        elif match["member"] and member_of is not None and match["member"] not in _KEYWORDS:
            name = match["member"].lstrip("#")
            if match["call"]:
                returns = _TS_RETURN.match(text, _after_parameters(text, match.start("call")))
                found.append(Found(sys.intern(name), line_of(match.start("member")), "method", member_of, returns and last_name(returns["ret"])))
            else:
                found.append(Found(sys.intern(name), line_of(match.start("member")), "attribute", member_of, last_name(match["mtype"] or match["mnew"])))
        elif match["attr"] and (owner := _enclosing(containers, depth)) is not None:
            found.append(Found(sys.intern(match["attr"]), line_of(match.start("attr")), "attribute", owner, last_name(match["attr_new"])))

    return _braces(text, _JS, handle)


_GO = re.compile(
    r"^func[ \t]*(?:\([ \t]*(?:\w+[ \t]+)?\*?(?P<recv>\w+)(?:\[[^\]]*\])?[ \t]*\)[ \t]*)?(?P<def>\w+)"
    r"|^type[ \t]+(?P<cls>\w+)(?:\[[^\]]*\])?[ \t]+(?P<tkind>struct|interface)?"
    r"|^(?:const|var)[ \t]+(?P<var>\w+)(?:[ \t]+\*?(?P<var_type>[\w.]+))?"
    r"|^(?:const|var)[ \t]*\((?P<block>[^)]*)^\)"
    r"|^[ \t]+(?P<member>\w+)(?:(?P<call>\()|(?:[ \t]*,[ \t]*\w+)*[ \t]+\*?(?:\[\])?(?P<mtype>[\w.]+))",
    re.M,
)
_GO_RETURN = re.compile(r"[ \t]*\(?[ \t]*(?:\w+[ \t]+)?\*?(?P<ret>[\w.]+)")
_GO_BLOCK_NAME = re.compile(r"^[ \t]+(\w+)", re.M)


def _go(text: str) -> list[Found]:
    def handle(match, depth, containers, line_of, found):
        if match["def"] and depth == 0:
            returns = _GO_RETURN.match(text, _after_parameters(text, match.end()))
            found.append(Found(sys.intern(match["def"]), line_of(match.start("def")), "method" if match["recv"] else "function",
                               match["recv"], returns and last_name(returns["ret"])))
        elif match["cls"] and depth == 0:
            found.append(Found(sys.intern(match["cls"]), line_of(match.start("cls")), "class", None, None))
            if match["tkind"]:
                containers.append((1, match["cls"]))
        elif match["var"] and depth == 0:
            found.append(Found(sys.intern(match["var"]), line_of(match.start("var")), "constant", None, last_name(match["var_type"])))
        elif match["block"] is not None and depth == 0:
            first = line_of(match.start("block"))
            for name in _GO_BLOCK_NAME.finditer(match["block"]):
                found.append(Found(sys.intern(name[1]), first + match["block"].count("\n", 0, name.start()), "constant", None, None))
        elif match["member"] and (owner := _member_of(containers, depth)) is not None and match["member"] not in _KEYWORDS:
            kind = "method" if match["call"] else "attribute"
            found.append(Found(sys.intern(match["member"]), line_of(match.start("member")), kind, owner, last_name(match["mtype"])))

    return _braces(text, _GO, handle)


_RUST = re.compile(
    r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?(?:"
    r"(?:default[ \t]+)?(?:const[ \t]+)?(?:async[ \t]+)?(?:unsafe[ \t]+)?(?:extern[ \t]+\"[^\"]*\"[ \t]+)?fn[ \t]+(?P<def>\w+)"
    r"|(?:struct|enum|union|trait)[ \t]+(?P<cls>\w+)"
    r"|type[ \t]+(?P<alias>\w+)"
    r"|impl(?:[ \t]*<[^{\n]*?>)?[ \t]+(?:(?P<trait>[\w:]+)(?:<[^{\n]*?>)?[ \t]+for[ \t]+)?(?P<impl>[\w:]+)"
    r"|(?:const|static)[ \t]+(?:mut[ \t]+)?(?P<var>\w+)[ \t]*:[ \t]*(?P<var_type>[^=;\n]+)"
    r"|macro_rules![ \t]*(?P<macro>\w+)"
    r"|(?P<field>\w+)[ \t]*:[ \t]*(?P<field_type>[^,\n]+)"
    r")",
    re.M,
)
_RUST_RETURN = re.compile(r"[ \t]*->[ \t]*(?P<ret>[^{;\n]+)")


def _rust(text: str) -> list[Found]:
    def handle(match, depth, containers, line_of, found):
        member_of = _member_of(containers, depth)
        if match["def"]:
            if depth and member_of is None:
                return  # a function inside a function
            returns = _RUST_RETURN.match(text, _after_parameters(text, match.end()))
            returned = returns and (member_of if re.match(r"\s*Self\b", returns["ret"]) else last_name(returns["ret"]))
            found.append(Found(sys.intern(match["def"]), line_of(match.start("def")), "method" if member_of else "function",
                               member_of, returned))
        elif match["cls"] or match["alias"]:
            name = match["cls"] or match["alias"]
            found.append(Found(sys.intern(name), line_of(match.start(0)), "class", None, None))
            if match["cls"]:
                containers.append((depth + 1, name))
        elif match["impl"]:
            containers.append((depth + 1, sys.intern(match["impl"].rsplit("::", 1)[-1])))
        elif match["var"] or match["macro"]:
            found.append(Found(sys.intern(match["var"] or match["macro"]), line_of(match.start(0)), "constant", member_of,
                               last_name(match["var_type"])))
        elif match["field"] and member_of is not None and match["field"] not in _KEYWORDS:
            found.append(Found(sys.intern(match["field"]), line_of(match.start("field")), "attribute", member_of, last_name(match["field_type"])))

    return _braces(text, _RUST, handle)


_JAVA_MODIFIERS = r"(?:(?:public|protected|private|abstract|static|final|sealed|non-sealed|strictfp|synchronized|native|default|transient|volatile)[ \t]+|@\w+(?:\([^)\n]*\))?[ \t]+)*"
_JAVA = re.compile(
    r"^[ \t]*" + _JAVA_MODIFIERS + r"(?:"
    r"(?:class|interface|enum|record|@interface)[ \t]+(?P<cls>\w+)(?:[ \t]*<[^{\n]*?>)?(?:[ \t]*\([^)]*\))?(?:[ \t]+extends[ \t]+(?P<bases>[\w.]+))?"
    r"|(?:<[^>\n]+>[ \t]+)?(?P<type>[\w.]+(?:<[^()\n]*?>)?(?:\[\])*)[ \t]+(?P<member>\w+)[ \t]*(?P<call>\()?"
    r"|(?P<ctor>[A-Z]\w*)[ \t]*\("
    r")",
    re.M,
)


def _java(text: str) -> list[Found]:
    def handle(match, depth, containers, line_of, found):
        member_of = _member_of(containers, depth)
        if match["cls"]:
            _open_class(match, depth, member_of, containers, line_of, found)
        elif match["member"] and member_of is not None and match["type"] not in _KEYWORDS and match["member"] not in _KEYWORDS:
            kind = "method" if match["call"] else "attribute"
            found.append(Found(sys.intern(match["member"]), line_of(match.start("member")), kind, member_of, last_name(match["type"])))
        elif match["ctor"] and member_of == match["ctor"]:
            found.append(Found(sys.intern(match["ctor"]), line_of(match.start("ctor")), "method", member_of, member_of))

    return _braces(text, _JAVA, handle)


_C = re.compile(
    r"^[ \t]*(?:typedef[ \t]+)?(?:template[ \t]*<[^>\n]*>[ \t]*)?(?P<ckind>struct|class|union|enum(?:[ \t]+class)?)[ \t]+(?:\w+[ \t]+)?(?P<cls>\w+)[ \t]*(?:final[ \t]*)?(?::[ \t]*(?:public|private|protected|virtual|[ \t])*(?P<bases>[\w:]+)[^{;\n]*)?(?=\s*\{)"
    r"|^[ \t]*#[ \t]*define[ \t]+(?P<macro>\w+)"
    r"|^[ \t]*}[ \t]*(?P<typedef>\w+)[ \t]*;"
    r"|^[ \t]*typedef[ \t][^;{\n]*?\b(?P<alias>\w+)[ \t]*(?:\[[^\]\n]*\][ \t]*)?;"
    r"|^(?P<head>[ \t]*(?:[\w:<>,~]+[ \t*&]+)+)(?P<def>~?\w+(?:::~?\w+)*)[ \t]*\(",
    re.M,
)


def _c(text: str) -> list[Found]:
    def handle(match, depth, containers, line_of, found):
        member_of = _member_of(containers, depth)
        if match["cls"]:
            _open_class(match, depth, member_of, containers, line_of, found)
        elif match["macro"] or match["typedef"] or match["alias"]:
            if depth == 0 or match["macro"]:
                name = match["macro"] or match["typedef"] or match["alias"]
                found.append(Found(sys.intern(name), line_of(match.start(0)), "constant", None, None))
        elif match["def"]:
            qualified = match["def"].split("::")
            name = qualified[-1]
            head = match["head"].split()
            if name in _KEYWORDS or (head and head[-1].strip("*&") in _KEYWORDS | {"else", "return"}):
                return
            owner = qualified[-2] if len(qualified) > 1 else member_of
            if depth != 0 and member_of is None:
                return  # a call or a declaration inside a function
            found.append(Found(sys.intern(name), line_of(match.start("def")), "method" if owner else "function", owner,
                               last_name(" ".join(head))))

    return _braces(text, _C, handle)
