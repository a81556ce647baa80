"""Stop rules on real snippets in several languages (table-driven, no model)."""

import pytest

from fimls.stops import StopRules, rules_for_cursor

# (line before the cursor, rest of the line, completion text, expected kept text)
CASES = [
    # mid-line with code after the cursor: one line only
    ("    total = compute(", "items)", "items, key=len)\n    return total\n", "items, key=len)"),
    ("  const user = await fetch(", "url);", "url, { method: 'GET' });\n  return user;", "url, { method: 'GET' });"),
    # only closing punctuation after the cursor: multi-line is allowed
    ("func main() {", "}", "\n\tfmt.Println(\"hi\")\n}\n\nfunc other() {\n", "\n\tfmt.Println(\"hi\")"),
    # Python: a function body ends where the code dedents back to the top level
    ("def area(r):", "", "\n    return 3.14159 * r * r\n\n\ndef perimeter(r):\n", "\n    return 3.14159 * r * r"),
    # cursor in the leading white space of an empty body line: the block is the cursor's
    ("    ", "", "for item in items:\n        yield item\n    return None\nclass Next:\n", "for item in items:\n        yield item\n    return None"),
    # Rust: the block ends at the closing brace's dedent
    ("    fn len(&self) -> usize {", "", "\n        self.items.len()\n    }\n\n    fn is_empty", "\n        self.items.len()"),
    # a blank-line pair ends a multi-line completion even without a dedent
    ("", "", "import os\nimport sys\n\n\nimport json\n", "import os\nimport sys"),
    # nothing fired yet: keep everything
    ("def f(x):", "", "\n    if x:\n        return 1", None),
]


@pytest.mark.parametrize("before, after, text, kept", CASES)
def test_rules_cut_where_a_user_expects(before, after, text, kept):
    rules = rules_for_cursor(before, after)
    cut = rules.cut(text)
    assert (text if cut is None else text[:cut]) == (text if kept is None else kept)


def test_stop_strings_apply_in_any_mode():
    assert StopRules(stop_strings=("<|cursor|>",)).cut("a = 1<|cursor|>b") == 5
    assert StopRules(single_line=True, stop_strings=(";",)).cut("x = 1; y = 2\n") == 5


def test_a_line_counts_only_once_it_has_code():
    # "\n  " could still become "\n      deeper": no decision before a character of code.
    rules = StopRules(cursor_block_indent=4)
    assert rules.cut("x = 1\n  ") is None
    assert rules.cut("x = 1\n  y") == 5


def test_generation_stops_at_the_token_where_a_rule_fires(engine):
    from fimls.contract import PromptParts

    from model_inputs import CODE, CURSOR

    # The first prompt after which the local test model writes a newline, and more, within 24
    # tokens (chosen at run time: its weights differ from machine to machine).
    for document in CODE:
        parts = PromptParts(header="#a.py\n", prefix=document[: document.index(CURSOR)], suffix="\n")
        engine.session.reset()
        free = engine.complete(parts, max_new_tokens=24, stop_ids=frozenset())
        newline_at = next((i for i, t in enumerate(free.generation.token_ids) if "\n" in engine.decode([t])), None)
        if newline_at is not None and newline_at + 1 < len(free.generation.token_ids):
            break
    else:
        raise AssertionError("the test model writes a line break within 24 tokens after no prompt: not a reasonably trained test model")
    engine.session.reset()
    ruled = engine.complete(parts, max_new_tokens=24, stop_ids=frozenset(), rules=StopRules(single_line=True))
    # Not one token past the rule: the token holding the newline is the last one made.
    assert ruled.generation.token_ids == free.generation.token_ids[: newline_at + 1]
    assert ruled.generation.stop_reason == "rule"
    assert "\n" not in ruled.text and free.text.startswith(ruled.text)
