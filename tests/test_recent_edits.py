"""Recent edits (issue #32): hunks remembered as the index receives changes, and the `recent`
context source built from them."""

from __future__ import annotations

from pathlib import Path

from fimls.context.builder import ContextBuilder
from fimls.context.folders import FolderSet
from fimls.context.recent import MAX_NAMES, SHOWN_LINES, EditLog, recent_search
from fimls.context.workspace import WorkspaceIndex
from fimls.settings import SECRET_GLOBS

UTIL = '''"""Small helpers."""

import re


def normalize_space(text):
    return re.sub(r"\\s+", " ", text).strip()


def first_word(text):
    return normalize_space(text).split(" ")[0]
'''

NEW_FUNCTION = '''

def slugify_title(title, separator="-"):
    """A URL slug of a title: lower case, words joined by the separator."""
    words = normalize_space(title).lower().split(" ")
    return separator.join(word for word in words if word)
'''

MODELS = '''from dataclasses import dataclass


@dataclass
class Article:
    title: str
    body: str
    author: str = ""

    def summary(self):
        return self.body[:80]
'''

APP = '''from pkg.models import Article
from pkg.util import first_word


def publish(article: Article) -> dict:
    lead = first_word(article.body)
    return {"lead": lead}
'''


def count_tokens(text: str) -> int:
    return len(text.split()) + text.count("\n")


def workspace(root: Path) -> tuple[FolderSet, ContextBuilder]:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "util.py").write_text(UTIL)
    (root / "pkg" / "models.py").write_text(MODELS)
    (root / "app.py").write_text(APP)
    folders = FolderSet([WorkspaceIndex(str(root), max_file_bytes=100_000, exclude_globs=SECRET_GLOBS)])
    builder = ContextBuilder(folders)
    builder.build()
    return folders, builder


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n")


# -- hunks ---------------------------------------------------------------------------------


def test_a_function_added_is_one_hunk_of_exactly_its_lines():
    log = EditLog()
    new = UTIL + NEW_FUNCTION
    log.record("pkg/util.py", UTIL, new)
    [hunk] = log.hunks()
    # The test's own edit: NEW_FUNCTION's lines appended after UTIL's last line.
    first_added = UTIL.count("\n")
    assert (hunk.path, hunk.start, hunk.end) == ("pkg/util.py", first_added, new.count("\n"))


def test_a_changed_line_is_a_hunk_of_that_line_and_knows_the_names_it_holds():
    log = EditLog()
    new = UTIL.replace("def first_word(text):", "def first_token(text, default=None):")
    log.record("pkg/util.py", UTIL, new)
    [hunk] = log.hunks()
    changed = line_of(UTIL, "def first_word")
    assert (hunk.start, hunk.end) == (changed, changed + 1)
    assert {"first_token", "default"} <= hunk.names and "first_word" not in hunk.names


def test_typing_a_function_keystroke_by_keystroke_is_one_hunk_that_follows_later_edits():
    log = EditLog()
    text = UTIL
    for i in range(1, len(NEW_FUNCTION) + 1):
        new = UTIL + NEW_FUNCTION[:i]
        log.record("pkg/util.py", text, new)
        text = new
    [hunk] = log.hunks()
    assert (hunk.start, hunk.end) == (UTIL.count("\n"), len(text.splitlines()))
    # Two lines inserted at the top move the hunk down by two.
    moved = '"""Moved."""\n\n' + text
    log.record("pkg/util.py", text, moved)
    hunks = log.hunks()
    assert [(h.start, h.end) for h in hunks] == [(UTIL.count("\n") + 2, len(text.splitlines()) + 2), (0, 2)]


def test_edits_far_apart_are_separate_hunks_newest_last_and_a_deleted_file_forgets_its_own():
    log = EditLog()
    new = UTIL.replace("import re", "import re\nimport unicodedata") + NEW_FUNCTION
    log.record("pkg/util.py", UTIL, new)
    log.record("pkg/models.py", MODELS, MODELS.replace('author: str = ""', 'author: str = ""\n    tags: tuple = ()'))
    assert [h.path for h in log.hunks()] == ["pkg/util.py", "pkg/util.py", "pkg/models.py"]
    assert log.hunks()[0].serial < log.hunks()[1].serial < log.hunks()[2].serial
    log.record("pkg/util.py", new, None)
    assert [h.path for h in log.hunks()] == ["pkg/models.py"]


def test_the_log_is_bounded_in_count_and_each_hunk_in_size():
    log = EditLog(max_hunks=8)
    for i in range(20):
        log.record(f"m{i}.py", "a = 1\n", f"a = 1\nb{i} = 2\n")
    assert len(log) == 8
    assert [h.path for h in log.hunks()] == [f"m{i}.py" for i in range(12, 20)]
    # A whole file written: one hunk, holding a bounded set of its names.
    new = "".join(f"name_{i} = {i}\n" for i in range(5000))
    log.record("big.py", "x = 1\n", new)
    big = [h for h in log.hunks() if h.path == "big.py"]
    assert len(big) == 1 and (big[0].start, big[0].end) == (0, 5000) and len(big[0].names) <= MAX_NAMES


def test_a_large_new_file_is_offered_by_the_lines_nearest_its_last_edit():
    text = "".join(f"def helper_{i}(x):\n    return x + {i}\n\n" for i in range(3000))
    log = EditLog()
    log.record("gen.py", None, text)
    [hunk] = log.hunks()
    assert (hunk.start, hunk.end, hunk.focus) == (0, 9000, 0)
    found = recent_search(log.hunks(), "app.py", "x = helper_5(", {"gen.py": text}.get, 50)
    assert found and all(c.end_line <= SHOWN_LINES + 3 for c in found)
    # An edit far down the file moves what is offered there.
    edited = text.replace("return x + 2500\n", "return x + 2500 + 1\n")
    log.record("gen.py", text, edited)
    [hunk] = log.hunks()
    assert hunk.focus == line_of(edited, "return x + 2500 + 1")
    found = recent_search(log.hunks(), "app.py", "y = 1", {"gen.py": edited}.get, 50)
    assert any(c.start_line <= hunk.focus < c.end_line for c in found)


def test_a_keystroke_in_a_large_file_is_diffed_around_the_change_only():
    old = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(20000))
    at = old.index("def f12345")
    new = old[:at] + "# note\n" + old[at:]
    log = EditLog()
    log.record("big.py", old, new)
    [hunk] = log.hunks()
    assert (hunk.start, hunk.end) == (line_of(old, "def f12345"), line_of(old, "def f12345") + 1)


# -- the index remembers edits ---------------------------------------------------------------


def test_the_index_remembers_open_document_changes_and_watched_files_but_not_its_scan(tmp_path):
    folders, builder = workspace(tmp_path)
    index = folders.indexes[0]
    assert folders.recent_hunks() == []  # the scan is no edit
    folders.open_document(str(tmp_path / "pkg" / "util.py"), UTIL + NEW_FUNCTION)
    (tmp_path / "pkg" / "models.py").write_text(MODELS + "\n\nDEFAULT_AUTHOR = 'staff'\n")
    index.refresh(tmp_path / "pkg" / "models.py")  # what the watcher does on a modification
    assert [(h.path, h.start) for h in folders.recent_hunks()] == [
        ("pkg/util.py", UTIL.count("\n")), ("pkg/models.py", MODELS.count("\n")),
    ]


def test_edits_of_secret_or_ignored_files_are_never_remembered(tmp_path):
    folders, builder = workspace(tmp_path)
    index = folders.indexes[0]
    (tmp_path / ".gitignore").write_text("generated/\n")
    index.refresh(tmp_path / ".gitignore")  # the watcher's event for it: the ignore rules are read again
    (tmp_path / "generated").mkdir()
    for name in (".env", ".env.py", "config/credentials.py", "generated/out.py"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("API_KEY = 'old'\n")
        folders.open_document(str(path), "API_KEY = 'sk-live-123'\n")
        path.write_text("API_KEY = 'sk-live-456'\n")
        index.refresh(path)
    assert folders.recent_hunks() == []
    assert not any("API_KEY" in h.path for h in folders.recent_hunks())


def test_closing_the_workspace_forgets_its_edits(tmp_path):
    folders, builder = workspace(tmp_path)
    folders.open_document(str(tmp_path / "pkg" / "util.py"), UTIL + NEW_FUNCTION)
    index = folders.indexes[0]
    assert len(index.edits) == 1
    folders.stop()
    assert len(index.edits) == 0 and folders.recent_hunks() == []
    # A lone index too.
    alone = WorkspaceIndex(str(tmp_path), max_file_bytes=100_000, exclude_globs=SECRET_GLOBS)
    alone.scan()
    alone.open_document(str(tmp_path / "app.py"), APP + "\nprint(1)\n")
    assert len(alone.recent_hunks()) == 1
    alone.stop()
    assert alone.recent_hunks() == []


# -- the `recent` source -------------------------------------------------------------------


def cursor_calling(name: str) -> tuple[str, int]:
    text = APP.replace('    return {"lead": lead}', f'    slug = {name}(')
    return text, text.index(f"{name}(") + len(name) + 1


def test_recent_ranks_the_hunk_of_a_function_just_added_first_for_a_cursor_that_calls_it(tmp_path):
    folders, builder = workspace(tmp_path)
    util = UTIL + NEW_FUNCTION
    folders.open_document(str(tmp_path / "pkg" / "util.py"), util)
    # A newer edit elsewhere, so that recency alone would put the wrong one first.
    folders.open_document(str(tmp_path / "pkg" / "models.py"), MODELS.replace("return self.body[:80]", "return self.body[:120]"))
    text, offset = cursor_calling("slugify_title")
    folders.open_document(str(tmp_path / "app.py"), text)
    window = (text.count("\n", 0, offset) - 5, text.count("\n", 0, offset) + 2)
    found = builder.candidates("recent", "app.py", text, offset, window)
    definition = line_of(util, "def slugify_title")
    assert found[0].path == "pkg/util.py" and found[0].start_line <= definition < found[0].end_line
    assert "def slugify_title(title" in found[0].text
    assert all(c.path != "app.py" for c in found)  # the current file's own edits are no source
    # In the default fusion it is packed, headed by its path as the model was trained.
    snippets = builder.snippets("fused", "app.py", text, offset, window, 1024, count_tokens)
    shown = [s for s in snippets if s.path == "pkg/util.py" and s.start_line <= definition < s.end_line]
    assert shown and shown[0].text.startswith("#pkg/util.py\n")


def test_snippets_keep_their_order_across_keystrokes_in_the_current_file(tmp_path):
    folders, builder = workspace(tmp_path)
    folders.open_document(str(tmp_path / "pkg" / "util.py"), UTIL + NEW_FUNCTION)
    folders.open_document(str(tmp_path / "pkg" / "models.py"), MODELS + "\n\ndef article_slug(article):\n    return article.title\n")
    line = line_of(APP, '    return {"lead"')
    typed = 'slug = slugify_title(article.title, separator="_")'
    seen = set()
    for i in range(len(typed) + 1):
        text = APP.replace('    return {"lead"', "    " + typed[:i] + '\n    return {"lead"')
        folders.open_document(str(tmp_path / "app.py"), text)  # as the server does on didChange
        offset = text.index("    " + typed[:i] + "\n    return") + 4 + i
        snippets = builder.snippets("fused", "app.py", text, offset, (line - 4, line + 2), 1024, count_tokens, line=line)
        seen.add(tuple((s.path, s.start_line, s.end_line, s.text) for s in snippets))
    assert len(seen) == 1
    [snippets] = seen
    assert any(path == "pkg/util.py" for path, *_ in snippets)
    assert all(path != "app.py" for path, *_ in snippets)  # this file's own edits are no source
    # The app's edits are remembered (they could matter in another file) but never shown here.
    assert any(h.path == "app.py" for h in folders.recent_hunks())
    recent = builder.candidates("recent", "app.py", text, offset, (line - 4, line + 2))
    assert recent and all(c.path != "app.py" for c in recent)
