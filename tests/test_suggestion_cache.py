from fimls.lsp.suggestion_cache import SuggestionCache

BEFORE = "def area(r):\n    return "
AFTER = "\n\nprint(area(2))\n"


def test_typing_the_suggestion_is_answered_with_its_rest():
    cache = SuggestionCache()
    cache.put("file:///a.py", BEFORE, AFTER, "3.14 * r * r")
    assert cache.get("file:///a.py", BEFORE, AFTER) == "3.14 * r * r"
    assert cache.get("file:///a.py", BEFORE + "3.1", AFTER) == "4 * r * r"
    assert cache.get("file:///a.py", BEFORE + "3.14 * r * ", AFTER) == "r"


def test_any_other_document_state_misses():
    cache = SuggestionCache()
    cache.put("file:///a.py", BEFORE, AFTER, "3.14 * r * r")
    assert cache.get("file:///a.py", BEFORE + "2", AFTER) is None  # typed something else
    assert cache.get("file:///a.py", BEFORE + "3.14 * r * r", AFTER) is None  # all typed: nothing left
    assert cache.get("file:///a.py", BEFORE, AFTER + "x = 1\n") is None  # text after the cursor changed
    assert cache.get("file:///a.py", "# edited\n" + BEFORE, AFTER) is None  # text far above changed
    assert cache.get("file:///a.py", BEFORE[:-1], AFTER) is None  # deleted a character
    assert cache.get("file:///b.py", BEFORE, AFTER) is None  # another document


def test_the_cache_is_bounded_least_recently_used_first():
    cache = SuggestionCache(max_entries=2)
    cache.put("u", "a = ", "\n", "1")
    cache.put("u", "b = ", "\n", "2")
    assert cache.get("u", "a = ", "\n") == "1"  # touch a
    cache.put("u", "c = ", "\n", "3")
    assert len(cache) == 2
    assert cache.get("u", "b = ", "\n") is None and cache.get("u", "a = ", "\n") == "1"
