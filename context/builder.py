"""Choose and pack the snippets of other files that go before the current file in the prompt.

Rankers (`symbols`, `imports`, `recent`, `jaccard`, `bm25`) each propose candidates; `fused` (the default) merges them
by reciprocal-rank fusion. Candidates that repeat text already in the prefix/suffix window are
dropped, and the rest are packed within the context budget, counted exactly with the model's
tokenizer, each headed by its path as a comment, the best one nearest the current file.

The chosen snippets stay the same while the user types on the same line, so the prompt's head and
the KV cache behind it survive; they are recomputed when the cursor moves to another line, or when
another file changes. The current file's own edits are never a `recent` snippet (context/recent.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from fimls.context.bm25 import BM25Index
from fimls.context.candidates import Candidate, lines_before
from fimls.context import imports, jaccard, recent
from fimls.context.languages import path_comment
from fimls.contract import Snippet, TokenCounter
from fimls.context.token_counts import RememberedCounts
from fimls.context.folders import FolderSet
from fimls.context.symbol_search import symbols_search
from fimls.context.symbols import SymbolIndex
from fimls.context.workspace import IndexedFile, WorkspaceIndex

RANKERS = ("fused", "imports", "symbols", "recent", "jaccard", "bm25", "none")
RRF_K = 60
PER_RANKER = 12
QUERY_LINES = 15
RECENT_FILES = 20


# Weighted fusion: a definition of the name at the cursor (`symbols`) or of a name used near it
# (`imports`) is far more often what the model needs than a similar-looking window (measured with
# `fimls eval-context`, docs/context.md; `symbols` at 5 did as well as at 8 and 12 and better than at 3 on
# the cases tuned on). `recent` (what was just edited in other files) at 5 did as well as at 8
# and better than at 3 on the histories tuned on.
# Lists that keep their own order within the places fusion gives their pieces, wherever they are
# (the first list always does).
OWN_ORDER = frozenset({"recent"})
RANKER_WEIGHTS = {"symbols": 5.0, "imports": 3.0, "recent": 5.0, "jaccard": 1.0, "bm25": 1.0}


def reciprocal_rank_fusion(lists: list[list[Candidate]]) -> list[Candidate]:
    """One ranking from several: each candidate scores the sum of weight / (k + rank) over the
    lists that hold it; overlapping pieces of the same file count as one, the first placed kept,
    and a list votes for a kept piece once (a long definition overlapping many chunks of another
    list must not collect a vote from each)."""
    fused: list[tuple[float, Candidate]] = []
    for ranking in lists:
        voted: set[int] = set()  # each list votes once for a kept piece, with its best rank
        for rank, candidate in enumerate(ranking):
            score = RANKER_WEIGHTS.get(candidate.ranker, 1.0) / (RRF_K + rank + 1)
            for i, (total, kept) in enumerate(fused):
                if kept.overlaps(candidate.path, candidate.start_line, candidate.end_line):
                    if i not in voted:
                        fused[i] = (total + score, kept)
                        voted.add(i)
                    break
            else:
                voted.add(len(fused))
                fused.append((score, candidate))
    fused.sort(key=lambda item: -item[0])
    ranked = [candidate for _, candidate in fused]
    # Fusion decides where each list's pieces go among the others; within the places the first
    # list's pieces took, that list keeps its own order (the imports ranker orders by how near the
    # cursor a name is used, which agreement of the other rankers must not overturn).
    for ranking in lists[:1] + [r for r in lists[1:] if r and r[0].ranker in OWN_ORDER]:
        order = {id(c): i for i, c in enumerate(ranking)}
        slots = [i for i, c in enumerate(ranked) if id(c) in order]
        for slot, candidate in zip(slots, sorted((ranked[i] for i in slots), key=lambda c: order[id(c)])):
            ranked[slot] = candidate
    return ranked


SMALLEST_USEFUL_SNIPPET = 24  # tokens; with less room left, packing stops counting


def pack(
    candidates: list[Candidate], budget: int, count_tokens: TokenCounter, display: Callable[[str], str] = lambda path: path
) -> tuple[Snippet, ...]:
    """The best candidates that fit `budget` tokens together, best last (nearest the cursor);
    each headed by `display(path)`, the path the model is shown."""
    chosen: list[Snippet] = []
    used = 0
    for candidate in candidates:
        if budget - used < SMALLEST_USEFUL_SNIPPET:
            break
        text = candidate.text if candidate.text.endswith("\n") else candidate.text + "\n"
        snippet = Snippet(candidate.path, path_comment(display(candidate.path)) + text, candidate.start_line, candidate.end_line)
        # A byte-level BPE never merges across whitespace, so a text has at least as many tokens
        # as whitespace-separated words: a snippet with more words than the room left is skipped
        # without tokenizing it (tokenizing candidates is most of the cost of packing).
        if used + len(snippet.text.split()) > budget:
            continue
        cost = count_tokens(snippet.text)
        if used + cost <= budget:
            chosen.append(snippet)
            used += cost
    return tuple(reversed(chosen))


@dataclass
class _Sticky:
    key: tuple
    snippets: tuple[Snippet, ...]


class ContextBuilder:
    def __init__(self, index: WorkspaceIndex | FolderSet):
        self.index = index
        self.bm25 = BM25Index()
        self.symbols = SymbolIndex()
        self._pending: set[str] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._sticky: _Sticky | None = None
        self._current: str | None = None
        self._others_changed = False
        self._modules: dict[str, set[str]] = {}  # module stem -> paths, for resolving imports
        self._folders: dict[str, set[str]] = {}  # folder -> paths (a Go package is a folder)
        self._names: dict[str, set[str]] = {}  # file name -> paths (Java classes, C headers, crates)
        self._counts: RememberedCounts | None = None
        index.subscribe(self._on_change)

    def _on_change(self, path: str, entry: IndexedFile | None) -> None:
        self._track_module(path, entry is not None)
        with self._lock:
            self._pending.add(path)
            self._recent[path] = None
            self._recent.move_to_end(path)
            while len(self._recent) > RECENT_FILES:
                self._recent.popitem(last=False)
            if path != self._current:
                self._others_changed = True

    def _track_module(self, path: str, present: bool) -> None:
        folder = self._folders.setdefault(path.rsplit("/", 1)[0] if "/" in path else "", set())
        (folder.add if present else folder.discard)(path)
        named = self._names.setdefault(path.rsplit("/", 1)[-1], set())
        (named.add if present else named.discard)(path)
        stem = imports.module_stem(path)
        if stem is None:
            return
        paths = self._modules.setdefault(stem, set())
        (paths.add if present else paths.discard)(path)

    def locate(self, file_path: str) -> tuple[str, str] | None:
        """(key in the index, path shown to the model) of a file of the workspace, else None."""
        return self.index.locate(file_path)

    def paths_named(self, stem: str):
        """Indexed Python modules called `stem`."""
        return self._modules.get(stem, ())

    def files_in(self, folder: str):
        """Indexed files directly in `folder` (root-relative, "" for the root)."""
        return self._folders.get(folder, ())

    def files_named(self, name: str):
        """Indexed files called `name`, in any folder."""
        return self._names.get(name, ())

    def folders(self):
        return self._folders.keys()

    def build(self) -> None:
        """Scan the workspace and index what it holds (seconds on a large one)."""
        self.index.scan()
        self.index_all()

    def index_all(self) -> None:
        files = list(self.index.files.items())
        for path, entry in files:
            self._track_module(path, True)
            self.symbols.update(path, entry.text)
        self.bm25.update_many((path, entry.text) for path, entry in files)
        with self._lock:
            self._pending.clear()
            # The scan touched every file; none of them was edited by the user.
            self._recent.clear()

    def _catch_up(self, current: str) -> None:
        """Re-index changed files, except the one being typed in (that would cost every keystroke)."""
        with self._lock:
            paths = [p for p in self._pending if p != current]
            self._pending.difference_update(paths)
        for path in paths:
            entry = self.index.files.get(path)
            self.bm25.update(path, entry.text if entry else None)
            self.symbols.update(path, entry.text if entry else None)

    def _reader(self, current: str, text: str):
        def text_of(path: str) -> str | None:
            if path == current:
                return text
            entry = self.index.files.get(path)
            return entry.text if entry else None

        return text_of

    def prepare(self, current: str, text: str) -> None:
        """Work the first request in a file would otherwise do, done when it opens: parse it and
        the files its imports reach, and read its blocks for the Jaccard ranker."""
        imports.warm(current, text, self._reader(current, text), self.paths_named, self.files_in, self.folders, self.files_named)
        jaccard.warm(current, text)

    def forget_edits(self) -> None:
        """Forget the edits remembered so far: the index's hunks and the recently edited files."""
        for index in getattr(self.index, "indexes", [self.index]):
            index.edits.clear()
        with self._lock:
            self._recent.clear()
            self._others_changed = True

    def candidates(
        self, ranker: str, current: str, text: str, offset: int, window: tuple[int, int], neighbours=None, line: int | None = None,
        without: frozenset = frozenset(),
    ) -> list[Candidate]:
        """Ranked candidates; `neighbours` (paths) replaces the open and recently edited files;
        `line` is the cursor's (counted when not given); `without` names rankers `fused` leaves
        out (to measure what one adds)."""
        self._catch_up(current)
        if line is None:
            line = text.count("\n", 0, offset)

        def in_window(path: str, start: int, end: int) -> bool:
            return path == current and start < window[1] and window[0] < end

        query = lines_before(text, offset, QUERY_LINES)

        def uses(source: str) -> bool:
            return ranker == source or (ranker == "fused" and source not in without)

        text_of = self._reader(current, text)
        rankings = []
        # The symbols ranker's list goes first: fusion keeps the first list's own order within the
        # places its pieces take (reciprocal_rank_fusion), and its order is the better one
        # (eval-context on requests and rich, docs/context.md). With no name at the cursor it has none,
        # and the next list is the first. The recent list comes before the imports one: where an
        # edited piece and an imported definition overlap, fusion keeps the first placed, and the
        # edited lines are what the user just wrote (eval-context --from-git, docs/context.md).
        if uses("symbols"):
            view = imports.ImportView(current, text, text_of, self.paths_named, self.files_in, self.folders)
            found = symbols_search(self.symbols, current, text, offset, text_of, PER_RANKER, in_window, view)
            if found or ranker == "symbols":
                rankings.append(found)
        if uses("recent"):
            found = recent.recent_search(self.index.recent_hunks(), current, query, text_of, PER_RANKER)
            if found or ranker == "recent":
                rankings.append(found)
        if uses("imports"):
            rankings.append(imports.imports_search(
                current, text, offset, text_of, self.paths_named, PER_RANKER, in_window,
                files_in=self.files_in, folders=self.folders, files_named=self.files_named,
            ))
        if uses("jaccard"):
            paths = list(neighbours) if neighbours is not None else list(self.index.open_documents) + list(self._recent)
            texts = {p: source for p in paths if p != current and (source := text_of(p)) is not None}
            texts[current], first_line = jaccard.around_cursor(text, offset, line)
            rankings.append(jaccard.jaccard_search(query, texts, PER_RANKER, in_window, {current: first_line}))
        if uses("bm25"):
            rankings.append(self.bm25.search(query, PER_RANKER, in_window))
        return reciprocal_rank_fusion(rankings) if len(rankings) > 1 else (rankings[0] if rankings else [])

    def snippets(
        self, ranker: str, current: str, text: str, offset: int, window: tuple[int, int], budget: int, count_tokens: TokenCounter,
        line: int | None = None,
    ) -> tuple[Snippet, ...]:
        """`line` is the cursor's (counted when not given)."""
        if ranker == "none" or budget <= 0:
            return ()
        if line is None:
            line = text.count("\n", 0, offset)
        key = (ranker, current, line, budget)
        with self._lock:
            fresh = self._current == current and not self._others_changed
            self._current = current
            self._others_changed = False
        if fresh and self._sticky is not None and self._sticky.key == key:
            return self._sticky.snippets
        counts = self._counts
        if counts is None or not counts.serves(count_tokens):  # another model's tokenizer
            counts = self._counts = RememberedCounts(count_tokens)
        chosen = pack(self.candidates(ranker, current, text, offset, window, line=line), budget, counts, self.index.display)
        self._sticky = _Sticky(key, chosen)
        return chosen
