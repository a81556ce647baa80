from fimls.lsp.suggestion_cache import SuggestionCache

BEFORE = "def area(r):\n    return "
AFTER = "\n\nprint(area(2))\n"
DOC = BEFORE + AFTER
WHOLE = (0, len(DOC))  # a small file: the prompt showed all of it


def _at(before: str, after: str = AFTER) -> tuple[str, int]:
    return before + after, len(before)


def test_typing_the_suggestion_is_answered_with_its_rest():
    cache = SuggestionCache()
    cache.put("file:///a.py", DOC, len(BEFORE), "3.14 * r * r", WHOLE)
    assert cache.get("file:///a.py", *_at(BEFORE)) == "3.14 * r * r"
    assert cache.get("file:///a.py", *_at(BEFORE + "3.1")) == "4 * r * r"
    assert cache.get("file:///a.py", *_at(BEFORE + "3.14 * r * ")) == "r"


def test_any_other_document_state_misses():
    cache = SuggestionCache()
    cache.put("file:///a.py", DOC, len(BEFORE), "3.14 * r * r", WHOLE)
    assert cache.get("file:///a.py", *_at(BEFORE + "2")) is None  # typed something else
    assert cache.get("file:///a.py", *_at(BEFORE + "3.14 * r * r")) is None  # all typed: nothing left
    assert cache.get("file:///a.py", *_at(BEFORE, AFTER + "x = 1\n")) is None  # the file no longer ends where it did
    assert cache.get("file:///a.py", *_at("# edited\n" + BEFORE)) is None  # the file no longer starts where it did
    assert cache.get("file:///a.py", *_at(BEFORE[:-1])) is None  # deleted a character
    assert cache.get("file:///a.py", *_at(BEFORE, AFTER.replace("2", "3"))) is None  # the suffix changed
    assert cache.get("file:///b.py", *_at(BEFORE)) is None  # another document


def test_only_the_text_the_prompt_was_made_from_and_a_line_beyond_it_decide():
    # A long file whose prompt showed lines 100-139 around the cursor: an edit far above or far
    # below does not change what the model was shown; an edit in the window or the line beyond does.
    lines = [f"value_{i} = {i}\n" for i in range(400)]
    cursor_line = 120
    offset = sum(map(len, lines[:cursor_line])) + len("value_120 = ")
    document = "".join(lines)
    window = (sum(map(len, lines[:100])), sum(map(len, lines[:140])))
    cache = SuggestionCache()
    cache.put("u", document, offset, "120  # cursor", window)

    def edited(line: int, text: str) -> str:
        return "".join(lines[:line] + [text] + lines[line + 1 :])

    typed = lambda doc: cache.get("u", doc[:offset] + "12" + doc[offset:], offset + 2)  # noqa: E731
    assert typed(document) == "0  # cursor"
    assert typed(edited(300, "changed = 1\n")) == "0  # cursor"  # far below
    # Far above: same length, so the cursor's offset is unchanged; the prompt never saw it.
    assert typed(edited(5, "value_5 = 9\n")) == "0  # cursor"
    assert typed(edited(110, "value_110 = 9\n")) is None  # inside the prefix window
    assert typed(edited(130, "value_130 = 9\n")) is None  # inside the suffix window
    assert typed(edited(99, "value_99 = 9\n")) is None  # the line above the window, which did not fit
    assert typed(edited(140, "value_140 = 9\n")) is None  # the line below it


def test_the_cache_is_bounded_least_recently_used_first():
    cache = SuggestionCache(max_entries=2)
    for before, completion in (("a = ", "1"), ("b = ", "2")):
        cache.put("u", before + "\n", len(before), completion, (0, len(before) + 1))
    assert cache.get("u", "a = \n", 4) == "1"  # touch a
    cache.put("u", "c = \n", 4, "3", (0, 5))
    assert len(cache) == 2
    assert cache.get("u", "b = \n", 4) is None and cache.get("u", "a = \n", 4) == "1"
