"""Recent-edit cases from a repository's real history (`fimls eval-context make-cases --from-git
REPO --checkouts DIR`): the gold comes from the commit itself, never from fimls' rankers.

A commit that changes several source files is replayed as an editing session. Its hunks (git's
own, `git diff -U0 --no-renames parent commit`) are applied to the parent's files one at a time,
each as the file's full new text: the other files first, in the order git lists them (by path),
each file's hunks from top to bottom; then the file the cursor is in, with its other hunks applied
and the target hunk typed up to the cursor's line. Files the commit deletes are left as they were. The cursor is at the start (after the
indentation) of an added line that uses a name the commit's hunks in *other* files introduced
(`introduced`: the name occurs nowhere in the parent's tree) or whose definition they changed
(`changed`: a definition of the name among both the removed and the added lines). That line and
the rest of its hunk are not typed yet. The gold is the line of each such hunk that defines the
name (or, where none defines it, the first that mentions it), in the commit's version of its file.

Each case's `root` is a checkout of the commit's parent, written under the folder given, so `run`
indexes the workspace as it was before the commit and replays `edits` as unsaved open documents.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fimls.context.candidates import STOP, identifiers
from fimls.context.languages import language_of

MAX_FILES = 10  # source files a commit changes; larger ones are sweeping changes, not one session
MIN_FILES = 2
PER_COMMIT = 2  # cases taken from one commit, so that a few large commits do not dominate
MIN_NAME = 3
# Languages whose lines are code: a case's file and its gold are in one of them (documentation
# hunks are still replayed as edits, as an editor would see them).
CODE = frozenset({
    "python", "javascript", "typescript", "go", "rust", "java", "c", "cpp", "csharp", "kotlin",
    "scala", "swift", "dart", "php", "ruby", "lua", "elixir", "haskell", "zig",
})
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_COMMENT = ("#", "//", "/*", "*", "--", '"""', "'''")


@dataclass(frozen=True)
class Hunk:
    old_start: int  # 0-based first removed line in the parent's file (where the insertion goes)
    old_count: int
    new_start: int  # 0-based first added line in the commit's file
    new_count: int


@dataclass
class Change:
    path: str
    old: list[str]  # the parent's lines (empty for a new file)
    new: list[str]
    hunks: list[Hunk]

    def added(self, hunk: Hunk) -> list[tuple[int, str]]:
        return [(hunk.new_start + i, self.new[hunk.new_start + i]) for i in range(hunk.new_count)]

    def removed(self, hunk: Hunk) -> list[str]:
        return self.old[hunk.old_start : hunk.old_start + hunk.old_count]

    def text_after(self, applied: int) -> str:
        """The file with its first `applied` hunks made, the others not yet."""
        out: list[str] = []
        old_at = 0
        for i, hunk in enumerate(self.hunks):
            out += self.old[old_at : hunk.old_start]
            out += self.new[hunk.new_start : hunk.new_start + hunk.new_count] if i < applied else self.removed(hunk)
            old_at = hunk.old_start + hunk.old_count
        return "".join(out + self.old[old_at:])


def _git(repo: Path, *args: str, binary: bool = False):
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True)
    return done.stdout if binary else done.stdout.decode("utf-8", errors="replace")


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _changes(repo: Path, parent: str, commit: str, paths: list[str]) -> list[Change]:
    diff = _git(repo, "diff", "-U0", "--no-renames", "--no-color", "--no-ext-diff", parent, commit, "--", *paths)
    changes: list[Change] = []
    for block in re.split(r"^diff --git ", diff, flags=re.M)[1:]:
        header = block.split("\n", 1)[0]
        match = re.match(r"a/(.*) b/(.*)$", header)
        if match is None or "Binary files" in block:
            continue
        path = match[2]
        hunks = []
        for line in block.splitlines():
            found = _HUNK.match(line)
            if found:
                old_start, old_count = int(found[1]), int(found[2] if found[2] is not None else 1)
                new_start, new_count = int(found[3]), int(found[4] if found[4] is not None else 1)
                # git numbers an empty side by the line before it; 0-based starts throughout
                hunks.append(Hunk(old_start - (old_count > 0), old_count, new_start - (new_count > 0), new_count))
        if "\ndeleted file mode" in block or not hunks:
            continue
        old = _lines(_git(repo, "show", f"{parent}:{path}")) if "\nnew file mode" not in block else []
        new = _lines(_git(repo, "show", f"{commit}:{path}"))
        changes.append(Change(path, old, new, hunks))
    return changes


def _definition(name: str, assignments: bool = True) -> re.Pattern:
    """A line defining `name`: a keyword definition in any of the languages, or (with
    `assignments`) an assignment to it at the start of a line."""
    n = re.escape(name)
    keyword = rf"\b(?:def|class|function|func|fn|type|interface|struct|enum|trait|const|let|var|macro_rules!)\s+(?:\([^)]*\)\s*)?{n}\b"
    # A module's own name (not a function's local): at the line's start, or an attribute of self.
    assignment = rf"|^(?:export\s+)?{n}\s*(?::[^=\n]*)?=(?!=)|^\s*(?:self|this)\.{n}\s*(?::[^=\n]*)?=(?!=)"
    return re.compile(keyword + (assignment if assignments else ""), re.M)


def _word(name: str) -> re.Pattern:
    return re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")


def _is_code_line(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(_COMMENT)


def _in_parent(repo: Path, parent: str, name: str) -> bool:
    found = subprocess.run(["git", "-C", str(repo), "grep", "-q", "-w", "-F", "-e", name, parent, "--"], capture_output=True)
    return found.returncode == 0


def _golds(repo, parent, name, current, changes, parent_words) -> tuple[str, list[dict]] | None:
    """(kind, gold spans) of the hunks of other files than `current` that define `name`, new to
    the repository (`introduced`), or whose definition they changed (`changed`: a keyword
    definition among both the hunk's removed and added lines), or None."""
    word, defines, declares = _word(name), _definition(name), _definition(name, assignments=False)
    definitions, changed = [], []
    for change in changes:
        if change.path == current or language_of(change.path) not in CODE:
            continue
        for hunk in change.hunks:
            added = [(line, text) for line, text in change.added(hunk) if word.search(text)]
            if not added:
                continue
            defining = [line for line, text in added if defines.search(text)]
            if defining:
                definitions.append((change.path, defining[0]))
            declaring = [line for line, text in added if declares.search(text)]
            if declaring and any(declares.search(text) for text in change.removed(hunk)):
                changed.append((change.path, declaring[0]))
    if not definitions:
        return None
    if name not in parent_words and not _in_parent(repo, parent, name):
        spans, kind = definitions, "introduced"
    elif changed:
        spans, kind = changed, "changed"
    else:
        return None
    return kind, [{"path": path, "start_line": line, "end_line": line} for path, line in spans]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _commit_cases(repo: Path, parent: str, commit: str, paths: list[str], rng: random.Random) -> list[dict[str, Any]]:
    changes = _changes(repo, parent, commit, paths)
    if len(changes) < MIN_FILES:
        return []
    parent_words = {word for change in changes for word in identifiers("".join(change.old))}
    options = []
    for change in changes:
        if language_of(change.path) not in CODE:
            continue
        defined_here = "".join(change.new)
        seen: set[str] = set()
        for index, hunk in enumerate(change.hunks):
            for line, text in change.added(hunk):
                if not _is_code_line(text):
                    continue
                for name in dict.fromkeys(identifiers(text)):
                    if len(name) < MIN_NAME or name in STOP or name in seen:
                        continue
                    seen.add(name)  # a name's first added use in this file only
                    if _definition(name).search(defined_here):
                        continue  # defined in this file: not another file's edit
                    options.append((change, index, line, text, name))
    rng.shuffle(options)
    cases: list[dict[str, Any]] = []
    names: set[str] = set()
    for change, index, line, text, name in options:
        if len(cases) >= PER_COMMIT:
            break
        if name in names or (change.path, line) in names:
            continue
        found = _golds(repo, parent, name, change.path, changes, parent_words)
        if found is None:
            continue
        kind, gold = found
        names |= {name, (change.path, line)}
        hunk = change.hunks[index]
        indent = text[: len(text) - len(text.lstrip())]
        typed = "".join(change.new[:line]) + indent + "\n" + "".join(change.new[hunk.new_start + hunk.new_count :])
        edits = [
            {"path": other.path, "text": other.text_after(applied)}
            for other in changes if other is not change
            for applied in range(1, len(other.hunks) + 1)
        ]
        edits.append({"path": change.path, "text": typed})
        cases.append({
            "root": None, "commit": commit, "edits": edits, "path": change.path, "line": line,
            "character": _utf16(indent), "gold": gold, "kind": kind, "name": name,
        })
    return cases


def _commits(repo: Path) -> list[tuple[str, str, list[str]]]:
    """(commit, parent, source files it changes) of every non-merge commit changing from
    MIN_FILES to MAX_FILES files fimls indexes, newest first."""
    log = _git(repo, "log", "--no-merges", "--no-renames", "--name-status", "--format=%x1e%H %P")
    found = []
    for block in log.split("\x1e")[1:]:
        head, *rest = block.strip("\n").split("\n")
        shas = head.split()
        if len(shas) != 2:
            continue  # the root commit
        paths = [line.split("\t")[-1] for line in rest if line.strip() and line[0] in "AM"]
        sources = [p for p in paths if language_of(p) is not None]
        if MIN_FILES <= len(sources) <= MAX_FILES and sum(language_of(p) in CODE for p in sources) >= MIN_FILES:
            found.append((shas[0], shas[1], sources))
    return found


def checkout(repo: Path, commit: str, into: Path) -> Path:
    """The tree of `commit`, written under `into` once (named by the repository and commit)."""
    target = into / f"{repo.resolve().name}-{commit[:12]}"
    if not (target / ".fimls-checkout").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = _git(repo, "archive", "--format=tar", commit, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        (target / ".fimls-checkout").write_text(commit + "\n")
    return target


def make_git_cases(repo: Path, checkouts: Path, max_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to `max_cases` cases from commits drawn at random (seeded), at most PER_COMMIT each."""
    from fimls.context.workspace import WorkspaceIndex
    from fimls.settings import Settings

    repo = repo.resolve()
    rng = random.Random(seed)
    commits = _commits(repo)
    rng.shuffle(commits)
    cases: list[dict[str, Any]] = []
    for commit, parent, paths in commits:
        if len(cases) >= max_cases:
            break
        try:
            found = _commit_cases(repo, parent, commit, paths, rng)
        except (subprocess.CalledProcessError, UnicodeError, IndexError):
            continue
        if not found:
            continue
        root = checkout(repo, parent, checkouts)
        # Only files the workspace index would hold (its ignore rules, as the parent had them).
        settings = Settings()
        index = WorkspaceIndex(str(root), max_file_bytes=settings.max_file_bytes, exclude_globs=settings.exclude_globs)
        for case in found:
            if index.is_ignored(case["path"]) or any(index.is_ignored(g["path"]) for g in case["gold"]):
                continue
            case["root"] = str(root)
            case["edits"] = [edit for edit in case["edits"] if not index.is_ignored(edit["path"])]
            cases.append(case)
    return cases[:max_cases]
