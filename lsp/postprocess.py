"""What makes a completion feel right once the model has written it. Plain functions of strings,
applied in `postprocess` in order; each is table-tested with real snippets.

`before` is the document text before the cursor, `after` the text after it; `around_cursor`
gives the part of them these functions read, so a keystroke in a large file never copies or scans
the whole of it.
"""

from __future__ import annotations

import re

from fimls.stops import code_follows, line_after, line_before

_CLOSERS = {")": "(", "]": "[", "}": "{"}
_OPENERS = {v: k for k, v in _CLOSERS.items()}


INDENT_SAMPLE_CHARS = 4000
FOLLOWING_LINES = 5


def around_cursor(document: str, offset: int) -> tuple[str, str]:
    """The text before and after `offset` that post-processing reads: the cursor's whole line,
    `INDENT_SAMPLE_CHARS` either side, and the next `FOLLOWING_LINES` non-blank lines."""
    line_start = document.rfind("\n", 0, offset) + 1
    before = document[min(line_start, max(0, offset - INDENT_SAMPLE_CHARS)) : offset]
    end = document.find("\n", offset)
    non_blank = 0
    while end >= 0 and non_blank < FOLLOWING_LINES:
        next_end = document.find("\n", end + 1)
        if document[end + 1 : next_end if next_end >= 0 else len(document)].strip():
            non_blank += 1
        end = next_end
    after_end = len(document) if end < 0 else max(end, offset + INDENT_SAMPLE_CHARS)
    return before, document[offset:after_end]


def trim_suffix_overlap(text: str, after: str) -> str:
    """Drop the end of the completion that the document already has after the cursor: the rest of
    the line (`foo(x))` before `)`), or whole following lines the model wrote again."""
    rest = line_after(after)
    if rest.strip() and "\n" not in text:
        for size in range(min(len(text), len(rest)), 0, -1):
            if text.endswith(rest[:size]) and rest[:size].strip():
                return text[: len(text) - size]
        return text
    following = [line for line in after.split("\n")[1:] if line.strip()][:FOLLOWING_LINES]
    lines = text.split("\n")
    if len(lines) > 1 and following:
        # The first following line written again ends the completion there. A line of closing
        # brackets only counts when it closes nothing the completion itself opened.
        first = following[0].strip()
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() != first:
                continue
            if len(first) > 2 or (set(first) <= set("})]; ") and _depth("\n".join(lines[:i])) <= 0):
                return "\n".join(lines[:i]).rstrip(" \t")
    return text


def _depth(code: str) -> int:
    return sum(code.count(o) for o in _OPENERS) - sum(code.count(c) for c in _CLOSERS)


def _repeats(text: str) -> bool:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    # One line over and over (a model stuck in a loop): three in a row anywhere.
    if any(lines[i] == lines[i + 1] == lines[i + 2] for i in range(len(lines) - 2)):
        return True
    compact = re.sub(r"\s+", "", text)
    # A short unit repeated over and over ("))))))", "abcabcabcabc").
    for unit in range(1, 5):
        if len(compact) >= max(8, unit * 4) and compact == (compact[:unit] * (len(compact) // unit + 1))[: len(compact)]:
            return True
    return False


def echoes_following(text: str, before: str, after: str) -> bool:
    """Whether the completion only writes again the lines that follow the cursor's (what the
    cursor's line will read, then each further line, white space aside): the model copying the
    suffix it was shown."""
    written = (line_before(before) + text).split("\n")
    written = [line.strip() for line in written if line.strip()]
    following = [line.strip() for line in after.split("\n")[1:] if line.strip()][: len(written)]
    return bool(written) and written == following


def is_degenerate(text: str) -> bool:
    """Empty, white space only, or a short pattern repeated: nothing a user wants to see."""
    return not text.strip() or _repeats(text)


def to_single_line(text: str, after: str) -> str:
    """Mid-line (code after the cursor, closing punctuation aside) a completion is one line."""
    return text.split("\n", 1)[0] if code_follows(line_after(after)) else text


def match_indentation(text: str, before: str, after: str) -> str:
    """Lines after the first use the file's indentation character (tabs or spaces)."""
    sample = before[-INDENT_SAMPLE_CHARS:] + after[:INDENT_SAMPLE_CHARS]
    tabs = len(re.findall(r"^\t", sample, re.M))
    spaces = len(re.findall(r"^ {2,}", sample, re.M))
    if not (tabs or spaces) or "\n" not in text:
        return text
    width = _indent_width(sample)
    lines = text.split("\n")
    for i in range(1, len(lines)):
        stripped = lines[i].lstrip(" \t")
        lead = lines[i][: len(lines[i]) - len(stripped)]
        if tabs > spaces and " " in lead:
            lines[i] = "\t" * (len(lead.expandtabs(width)) // width) + stripped
        elif spaces > tabs and "\t" in lead:
            lines[i] = lead.expandtabs(width) + stripped
    return "\n".join(lines)


def _indent_width(sample: str) -> int:
    widths = [len(m) for m in re.findall(r"^( +)\S", sample, re.M)]
    smallest = min((w for w in widths if w >= 2), default=4)
    return smallest if smallest in (2, 3, 4, 8) else 4


def balance_brackets(text: str, before: str, after: str) -> str:
    """Cut the completion at a closing bracket that closes nothing opened on the cursor's line or
    in the completion itself, when the rest of the line already holds that closer."""
    stack = []
    for char in line_before(before):
        if char in _OPENERS:
            stack.append(char)
        elif char in _CLOSERS and stack and stack[-1] == _CLOSERS[char]:
            stack.pop()
    rest = line_after(after)
    for i, char in enumerate(text):
        if char in _OPENERS:
            stack.append(char)
        elif char in _CLOSERS:
            if stack and stack[-1] == _CLOSERS[char]:
                stack.pop()
            elif char in rest:
                return text[:i]
    return text


def postprocess(text: str, before: str, after: str) -> str:
    """The completion to show, or "" for none."""
    text = to_single_line(text, after)
    text = balance_brackets(text, before, after)
    text = trim_suffix_overlap(text, after)
    text = match_indentation(text, before, after)
    text = text.rstrip() if "\n" in text else text
    return "" if is_degenerate(text) or echoes_following(text, before, after) else text
