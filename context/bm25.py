"""BM25 over fixed chunks of lines of every indexed file, kept up to date file by file.

The index is SQLite's FTS5 (in the standard library): a real full-text engine in C with BM25
ranking, incremental inserts and deletes, and a compact in-memory index. The table is contentless
(it stores no text): chunk texts are cut from the file's text when a chunk is found, and rebuilt
from it when FTS5 needs them to delete the chunk. The text is the workspace index's own string,
referenced, not copied.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter

from fimls.context.candidates import Candidate, identifiers

CHUNK_LINES = 15
MAX_QUERY_TERMS = 8
TERMS_LOOKED_UP = 16
# A term in more chunks than this share says little and costs a lot: FTS5 reads its whole posting
# list (on 295,000 chunks, 8 terms under 0.005: 1.0 ms a query on average; 10 under 0.02: 3.7 ms).
COMMON_SHARE = 0.002
FILES_PER_COMMIT = 256
COMMON_FLOOR = 64  # in a small workspace every term is cheap: only the share would leave none


def _chunks(lines: list[str]) -> list[tuple[int, int, str, int, int]]:
    """(start line, end line, identifiers, start and end offsets in the text) of each chunk."""
    out = []
    position = 0
    for start in range(0, len(lines), CHUNK_LINES):
        end = min(len(lines), start + CHUNK_LINES)
        text = "".join(lines[start:end])
        body = " ".join(identifiers(text))
        if body:
            out.append((start, end, body, position, position + len(text)))
        position += len(text)
    return out


def _distinct_terms(bodies):
    """Each chunk's terms once, as FTS5 counts them (its unicode61 tokenizer lowercases)."""
    for body in bodies:
        yield from set(body.lower().split())


class BM25Index:
    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5(body, content='', tokenize=\"unicode61 tokenchars '_'\")"
        )
        # rowid -> path, start line, end line, start and end offsets (a found chunk's text is cut
        # from the file's text without splitting the file into lines)
        self._rows: dict[int, tuple[str, int, int, int, int]] = {}
        self._by_path: dict[str, list[int]] = {}  # path -> rowids, in chunk order
        self._texts: dict[str, str] = {}
        self._next_row = 1
        self._lock = threading.Lock()
        # Chunks per term, kept here for choosing the query's terms: fts5vocab counts a term by
        # reading its posting list (0.1 ms a term, 5 ms a query on a large workspace).
        self._frequencies: Counter[str] = Counter()

    def update(self, path: str, text: str | None) -> None:
        with self._lock, self._db:
            self._update(path, text)

    def update_many(self, files) -> None:
        """`update` for many (path, text) pairs, committed a batch at a time: a commit per file was
        a fifth of indexing a large workspace, and a batch still lets a search in between."""
        batch = []
        for item in files:
            batch.append(item)
            if len(batch) == FILES_PER_COMMIT:
                self._update_batch(batch)
                batch = []
        self._update_batch(batch)

    def _update_batch(self, batch) -> None:
        with self._lock, self._db:
            for path, text in batch:
                self._update(path, text)

    def _update(self, path: str, text: str | None) -> None:
        old_rows, old_text = self._by_path.pop(path, []), self._texts.pop(path, None)
        if old_rows:
            bodies = [chunk[2] for chunk in _chunks(old_text.splitlines(keepends=True))]
            for term in _distinct_terms(bodies):
                self._frequencies[term] -= 1
                if not self._frequencies[term]:
                    del self._frequencies[term]  # terms no file has any more must not pile up
            self._db.executemany(
                "INSERT INTO chunks(chunks, rowid, body) VALUES('delete', ?, ?)", list(zip(old_rows, bodies))
            )
            for rowid in old_rows:
                del self._rows[rowid]
        if text is None:
            return
        self._texts[path] = text
        entries = []
        for start, end, body, first, last in _chunks(text.splitlines(keepends=True)):
            rowid, self._next_row = self._next_row, self._next_row + 1
            self._rows[rowid] = (path, start, end, first, last)
            entries.append((rowid, body))
        self._db.executemany("INSERT INTO chunks(rowid, body) VALUES(?, ?)", entries)
        self._frequencies.update(_distinct_terms(body for _, body in entries))
        self._by_path[path] = [rowid for rowid, _ in entries]

    def search(self, query: str, limit: int, exclude=lambda path, start, end: False) -> list[Candidate]:
        # The terms nearest the cursor (the query's end) are looked up; of those, the rarest are asked.
        terms = list(dict.fromkeys(t.lower() for t in reversed(identifiers(query))))[:TERMS_LOOKED_UP]
        if not terms:
            return []
        with self._lock:
            total = len(self._rows)
            if not total:
                return []
            frequency = self._frequencies
            useful = sorted((frequency[term], term) for term in terms if 0 < frequency[term] <= max(COMMON_FLOOR, COMMON_SHARE * total))
            if not useful:
                return []
            match = " OR ".join(f'"{term}"' for _, term in useful[:MAX_QUERY_TERMS])
            rows = self._db.execute(
                "SELECT rowid, bm25(chunks) FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?",
                (match, limit * 4),
            ).fetchall()
            out = []
            for rowid, score in rows:
                path, start, end, first, last = self._rows[rowid]
                if exclude(path, start, end):
                    continue
                out.append(Candidate(path, start, end, self._texts[path][first:last], "bm25", -score))
                if len(out) == limit:
                    break
            return out

    def __len__(self) -> int:
        return len(self._rows)
