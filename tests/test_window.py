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
