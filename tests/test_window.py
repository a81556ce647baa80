"""Prefix and suffix are cut at line boundaries within exact token budgets."""

import inspect

import pytest

from fimls.context import window
from fimls.context.languages import path_comment
from fimls.context.window import window_parts

SOURCE = inspect.getsource(window)


@pytest.mark.parametrize("budget", [16, 40, 100, 300])
def test_budgets_are_never_exceeded_and_cuts_fall_on_lines(engine, budget):
    offset = SOURCE.index("return _fit_chars") + len("return _fit")
    parts = window_parts(SOURCE, offset, "context/window.py", engine.count_tokens, prefix_tokens=budget, suffix_tokens=budget)
    assert engine.count_tokens(parts.prefix) <= budget
    assert engine.count_tokens(parts.suffix) <= budget
    assert SOURCE[:offset].endswith(parts.prefix) and SOURCE[offset:].startswith(parts.suffix)
    line_start = SOURCE.rfind("\n", 0, offset) + 1
    if len(parts.prefix) > offset - line_start:  # more than the cursor's line: starts on a line
        assert SOURCE[offset - len(parts.prefix) - 1] == "\n"
    if "\n" in parts.suffix:
        assert parts.suffix.endswith("\n")
    # A budget that allows more lines is used: the next line up would not have fitted.
    if len(parts.prefix) < offset:
        one_more = SOURCE[SOURCE.rfind("\n", 0, offset - len(parts.prefix) - 1) + 1 : offset]
        assert engine.count_tokens(one_more) > budget


def test_a_long_current_line_is_cut_to_its_end(engine):
    text = "x = [" + ", ".join(str(i) for i in range(2000)) + "]\n"
    parts = window_parts(text, len(text) - 2, "a.py", engine.count_tokens, prefix_tokens=50, suffix_tokens=10)
    assert 40 <= engine.count_tokens(parts.prefix) <= 50
    assert text[: len(text) - 2].endswith(parts.prefix)


def test_header_is_the_path_as_a_comment_in_the_files_language():
    assert path_comment("utils.py") == "#utils.py\n"
    assert path_comment("cmd/main.go") == "//cmd/main.go\n"
    assert path_comment("src/lib.rs") == "//src/lib.rs\n"
    assert path_comment("db/schema.sql") == "--db/schema.sql\n"
    assert path_comment("index.html") == "<!--index.html -->\n"


# The window cut as it was before line counts were remembered and lines read near the cursor
# (fimls 0.1, context/window.py): the reference the new cut must agree with on every input.
def _reference_fit_chars(text, budget, count_tokens, keep_end):
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[len(text) - mid :] if keep_end else text[:mid]
        if count_tokens(piece) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[len(text) - lo :] if keep_end else text[:lo]


def _reference_cut(current, others, budget, count_tokens, before):
    if budget <= 0:
        return ""
    if count_tokens(current) > budget:
        return _reference_fit_chars(current, budget, count_tokens, keep_end=before)
    join = (lambda n: "".join(reversed(others[:n])) + current) if before else (lambda n: current + "".join(others[:n]))
    taken, total = 0, 0
    for line in others:
        total += count_tokens(line)
        if total > budget - count_tokens(current):
            break
        taken += 1
    while taken and count_tokens(join(taken)) > budget:
        taken -= 1
    while taken < len(others) and count_tokens(join(taken + 1)) <= budget:
        taken += 1
    return join(taken)


def _reference_window(text, offset, count_tokens, prefix_tokens, suffix_tokens):
    before, after = text[:offset], text[offset:]
    line_start = before.rfind("\n") + 1
    earlier = before[:line_start].splitlines(keepends=True)
    earlier.reverse()
    prefix = _reference_cut(before[line_start:], earlier, prefix_tokens, count_tokens, before=True)
    line_end = after.find("\n") + 1 or len(after)
    suffix = _reference_cut(after[:line_end], after[line_end:].splitlines(keepends=True), suffix_tokens, count_tokens, before=False)
    return prefix, suffix


def _real_sources(count: int, seed: int) -> list[str]:
    import random
    import sysconfig
    from pathlib import Path

    rng = random.Random(seed)
    files = sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py") if 2_000 < p.stat().st_size < 200_000)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in rng.sample(files, count)]
    # Line endings and separators str.splitlines honours, which the cut must treat as before.
    return texts + [texts[0].replace("\n", "\r\n"), texts[1].replace("\n\n", "\n\x0c\n", 3), "x = 1\n" * 20_000]


@pytest.mark.parametrize("chunk_chars", [window.CHUNK_CHARS, 97])
def test_the_window_is_todays_on_many_real_files_and_cursors_and_its_counts_are_exact(engine, monkeypatch, chunk_chars):
    import random

    # Small chunks put chunk edges inside nearly every window.
    monkeypatch.setattr(window, "CHUNK_CHARS", chunk_chars)
    exact = lambda text: len(engine.loaded.tokenizer.raw.encode(text, add_special_tokens=False).ids)  # noqa: E731
    rng = random.Random(7)
    checked = 0
    texts = _real_sources(30, seed=3)
    assert sum(len(t) > 4 * window.CHUNK_CHARS for t in texts) >= 2  # windows that span several chunks
    for text in texts:
        for _ in range(8):
            offset = rng.randrange(len(text) + 1)
            prefix_tokens, suffix_tokens = rng.choice([(1536, 512), (200, 80), (40, 16), (4000, 2000)])
            parts = window_parts(text, offset, "a.py", engine.count_tokens, prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens)
            assert (parts.prefix, parts.suffix) == _reference_window(text, offset, exact, prefix_tokens, suffix_tokens)
            assert engine.count_tokens(parts.prefix) == exact(parts.prefix) <= prefix_tokens
            assert engine.count_tokens(parts.suffix) == exact(parts.suffix) <= suffix_tokens
            checked += 1
    assert checked == 33 * 8
