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

from fimls.context.candidates import Candidate, identifiers

CHUNK_LINES = 15
MAX_QUERY_TERMS = 10
COMMON_SHARE = 0.02  # a term in more chunks than this share says little and costs a lot


def _chunks(lines: list[str]) -> list[tuple[int, int, str]]:
    out = []
    for start in range(0, len(lines), CHUNK_LINES):
        end = min(len(lines), start + CHUNK_LINES)
        body = " ".join(identifiers("".join(lines[start:end])))
        if body:
            out.append((start, end, body))
    return out


class BM25Index:
    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5(body, content='', tokenize=\"unicode61 tokenchars '_'\")"
        )
        self._db.execute("CREATE VIRTUAL TABLE vocabulary USING fts5vocab(chunks, 'row')")
        self._rows: dict[int, tuple[str, int, int]] = {}  # rowid -> path, start line, end line
        self._by_path: dict[str, list[int]] = {}  # path -> rowids, in chunk order
        self._texts: dict[str, str] = {}
        self._next_row = 1
        self._lock = threading.Lock()

    def update(self, path: str, text: str | None) -> None:
        with self._lock, self._db:
            old_rows, old_text = self._by_path.pop(path, []), self._texts.pop(path, None)
            if old_rows:
                bodies = [body for _, _, body in _chunks(old_text.splitlines(keepends=True))]
                self._db.executemany(
                    "INSERT INTO chunks(chunks, rowid, body) VALUES('delete', ?, ?)", list(zip(old_rows, bodies))
                )
                for rowid in old_rows:
                    del self._rows[rowid]
            if text is None:
                return
            self._texts[path] = text
            entries = []
            for start, end, body in _chunks(text.splitlines(keepends=True)):
                rowid, self._next_row = self._next_row, self._next_row + 1
                self._rows[rowid] = (path, start, end)
                entries.append((rowid, body))
            self._db.executemany("INSERT INTO chunks(rowid, body) VALUES(?, ?)", entries)
            self._by_path[path] = [rowid for rowid, _ in entries]

    def search(self, query: str, limit: int, exclude=lambda path, start, end: False) -> list[Candidate]:
        terms = sorted({t.lower() for t in identifiers(query)})
        if not terms:
            return []
        with self._lock:
            total = len(self._rows)
            if not total:
                return []
            marks = ",".join("?" * len(terms))
            counts = self._db.execute(f"SELECT term, doc FROM vocabulary WHERE term IN ({marks})", terms).fetchall()
            useful = sorted((doc, term) for term, doc in counts if doc <= max(2, COMMON_SHARE * total))
            if not useful:
                return []
            match = " OR ".join(f'"{term}"' for _, term in useful[:MAX_QUERY_TERMS])
            rows = self._db.execute(
                "SELECT rowid, bm25(chunks) FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?",
                (match, limit * 4),
            ).fetchall()
            out, lines = [], {}
            for rowid, score in rows:
                path, start, end = self._rows[rowid]
                if exclude(path, start, end):
                    continue
                if path not in lines:
                    lines[path] = self._texts[path].splitlines(keepends=True)
                text = "".join(lines[path][start:end])
                out.append(Candidate(path, start, end, text, "bm25", -score))
                if len(out) == limit:
                    break
            return out

    def __len__(self) -> int:
        return len(self._rows)
