"""BM25 over fixed chunks of lines of every indexed file, kept up to date file by file.

Our own inverted index rather than a search library: it must update one file at a time as events
arrive, and answer in a few milliseconds on 10,000 files.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict

from fimls.context.candidates import Candidate, identifiers

CHUNK_LINES = 15
K1, B = 1.2, 0.75
MAX_QUERY_TERMS = 24
COMMON_SHARE = 0.25  # a term in more chunks than this share says little; skip it


class BM25Index:
    def __init__(self) -> None:
        self._chunks: dict[int, tuple[str, int, int, int]] = {}  # id -> path, start, end, length
        self._postings: dict[str, dict[int, int]] = defaultdict(dict)
        self._by_path: dict[str, list[int]] = {}
        self._terms_by_chunk: dict[int, Counter] = {}
        self._texts: dict[str, list[str]] = {}
        self._total_length = 0
        self._next_id = 0
        self._lock = threading.Lock()

    def update(self, path: str, text: str | None) -> None:
        with self._lock:
            self._remove(path)
            if text is None:
                return
            lines = text.splitlines(keepends=True)
            self._texts[path] = lines
            ids = []
            for start in range(0, len(lines), CHUNK_LINES):
                end = min(len(lines), start + CHUNK_LINES)
                terms = Counter(identifiers("".join(lines[start:end])))
                if not terms:
                    continue
                chunk_id, self._next_id = self._next_id, self._next_id + 1
                length = sum(terms.values())
                self._chunks[chunk_id] = (path, start, end, length)
                self._terms_by_chunk[chunk_id] = terms
                self._total_length += length
                for term, count in terms.items():
                    self._postings[term][chunk_id] = count
                ids.append(chunk_id)
            self._by_path[path] = ids

    def _remove(self, path: str) -> None:
        for chunk_id in self._by_path.pop(path, []):
            _, _, _, length = self._chunks.pop(chunk_id)
            self._total_length -= length
            for term in self._terms_by_chunk.pop(chunk_id):
                postings = self._postings[term]
                postings.pop(chunk_id, None)
                if not postings:
                    del self._postings[term]
        self._texts.pop(path, None)

    def search(self, query: str, limit: int, exclude=lambda path, start, end: False) -> list[Candidate]:
        with self._lock:
            total = len(self._chunks)
            if not total:
                return []
            average = self._total_length / total
            terms = [t for t in set(identifiers(query)) if t in self._postings]
            terms = [t for t in terms if len(self._postings[t]) <= max(1, COMMON_SHARE * total)]
            terms.sort(key=lambda t: len(self._postings[t]))
            scores: dict[int, float] = defaultdict(float)
            for term in terms[:MAX_QUERY_TERMS]:
                postings = self._postings[term]
                idf = math.log(1 + (total - len(postings) + 0.5) / (len(postings) + 0.5))
                for chunk_id, count in postings.items():
                    length = self._chunks[chunk_id][3]
                    scores[chunk_id] += idf * count * (K1 + 1) / (count + K1 * (1 - B + B * length / average))
            ranked = sorted(scores.items(), key=lambda item: -item[1])
            out = []
            for chunk_id, score in ranked:
                path, start, end, _ = self._chunks[chunk_id]
                if exclude(path, start, end):
                    continue
                out.append(Candidate(path, start, end, "".join(self._texts[path][start:end]), "bm25", score))
                if len(out) == limit:
                    break
            return out

    def __len__(self) -> int:
        return len(self._chunks)
