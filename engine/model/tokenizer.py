"""The model's tokenizer, loaded as its tokenizer.json says, and checked before it is trusted.

transformers picks a tokenizer class from the name in tokenizer_config.json. DeepSeek-Coder's
files name `LlamaTokenizerFast` for what is a byte-level BPE, and transformers 5.x up to 5.22
builds a `LlamaTokenizer` with a Metaspace pre-tokenizer from it: code loses its spaces and
newlines, and every prompt is garbage (upstream issues #45488, #46489; docs/facts.md §2). So a
tokenizer.json is never routed through that name: `PreTrainedTokenizerFast` loads the file as it
is, and a self-check compares it with the `tokenizers` library reading the same file before the
model may serve. Encoding and decoding then run on that `tokenizers.Tokenizer` directly, without
transformers' per-call overhead (a keystroke counts tokens many times).

Decoding also undoes a collision in DeepSeek-Coder's vocabulary: ids 32000-32012 are added
single-character tokens (õ ÷ Á ý À ÿ ø ú þ ü ù ö û) that match those characters in source text,
but the byte-level decoder reads each as a lone byte and writes U+FFFD. Added tokens that are not
special decode to their own text here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils import cached_file

log = logging.getLogger(__name__)

# Spaces, indentation, newlines (LF and CRLF), digits, a non-ASCII identifier, a filler-token
# character (ö, ü) and CJK: everything a mangling pre-tokenizer or decoder gets wrong.
CHECK_SAMPLE = (
    "def fib(n):\n"
    "    if n < 2:\n"
    "        return n  # 0, 1, 1, 2, 3, 5, 8, 13, 21\n"
    "\treturn fib(n - 1) + fib(n - 2)\r\n"
    "größe_über = {'名前': 3.14159, \"café\": [1024, -7]}\n"
)


# Lines whose ids are remembered: a keystroke changes one line of the prompt, and the others come
# back request after request (about 40 MB at most, for lines of typical length).
LINES_REMEMBERED = 65536
LONGEST_REMEMBERED_LINE = 4096
_LINES = re.compile(r"[^\n]*\n|[^\n]+")


class TokenizerRefused(ValueError):
    """The tokenizer does not encode code as its own file says; the message is one sentence."""


@dataclass(frozen=True)
class TokenizerCheck:
    """What the load-time self-check found."""

    exact: bool
    loaded_as: str  # how the tokenizer was loaded
    compared_with: str  # the reference it was compared with
    sample_tokens: int
    detail: str  # one sentence

    def summary(self) -> str:
        verdict = "exact" if self.exact else "MISMATCH"
        return f"{verdict}: {self.detail}"


class CodeTokenizer:
    """Encode source text to ids and ids back to text, as the model was trained.

    `hf` is the transformers tokenizer (special-token metadata, and encoding where there is no
    tokenizer.json); `raw` the `tokenizers.Tokenizer` of tokenizer.json, used for every encode
    and decode when present.
    """

    def __init__(self, hf: Any, raw: Any | None, check: TokenizerCheck | None = None):
        self.hf = hf
        self.raw = raw
        self.check = check
        added = dict(getattr(hf, "added_tokens_decoder", {}) or {})
        # Added tokens that stand for themselves: decoded as their own text, never skipped.
        self._literal = {i: t.content for i, t in added.items() if not t.special}
        self._special = {i for i, t in added.items() if t.special}
        # Added tokens that steer the model (FIM markers, BOS/EOS, chat turns); the single
        # characters 32000-32012 encode text as the real tokenizer does and are not among them.
        self.control_strings = tuple(t.content for t in added.values() if len(t.content) > 1)
        self.bos_id: int | None = hf.bos_token_id
        self.eos_id: int | None = hf.eos_token_id
        self.unk_id: int | None = hf.unk_token_id
        self.adds_bos = self._adds_bos()
        self._encode_line = functools.lru_cache(maxsize=LINES_REMEMBERED)(self._encode_line_uncached)
        # Whether a text's ids are its lines' ids end to end: true when the pre-tokenizer isolates
        # line breaks (DeepSeek-Coder's does), so no token spans a line break. Then each line is
        # encoded once and remembered, and a keystroke re-encodes only the line it changed.
        self.line_additive = raw is not None and self._encode_whole(CHECK_SAMPLE) == self._encode_by_line(CHECK_SAMPLE)

    def _adds_bos(self) -> bool:
        """Whether the model expects BOS first: the config's `add_bos_token`, or what the
        tokenizer's own post-processor does with an empty text."""
        if self.bos_id is None:
            return False
        if bool(getattr(self.hf, "add_bos_token", False)):
            return True
        if self.raw is not None:
            return self.raw.encode("", add_special_tokens=True).ids[:1] == [self.bos_id]
        return self.hf("").input_ids[:1] == [self.bos_id]

    def __len__(self) -> int:
        return len(self.hf)

    def encode_plain(self, text: str) -> list[int]:
        """Ids of `text` exactly as the tokenizer encodes it, added tokens matched, no BOS/EOS."""
        if not text:
            return []
        if self.raw is not None:
            try:
                return self.raw.encode(text, add_special_tokens=False).ids
            except TypeError:
                # A lone surrogate (a client may send one, JSON allows it) is no UTF-8: the
                # tokenizer refuses the whole string. It becomes U+FFFD, as a decoder would show it.
                text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                return self.raw.encode(text, add_special_tokens=False).ids
        return self.hf(text, add_special_tokens=False).input_ids

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as text: a control-token string written in a source file (a file about
        tokenizers may hold `<｜fim▁hole｜>`) is encoded as its characters, never as the control
        token itself, which would break the prompt's structure."""
        if self.line_additive and "\n" in text:
            return self._encode_by_line(text)
        return self._encode_whole(text)

    def count(self, text: str) -> int:
        if self.line_additive and "\n" in text:
            return sum(len(self._line_ids(line)) for line in _LINES.findall(text))
        return len(self._encode_whole(text))

    def _encode_whole(self, text: str) -> list[int]:
        if not any(marker in text for marker in self.control_strings):
            return self.encode_plain(text)
        ids: list[int] = []
        for piece in split_markers(text, self.control_strings):
            ids.extend(self.encode_plain(piece))
        return ids

    def _encode_by_line(self, text: str) -> list[int]:
        ids: list[int] = []
        for line in _LINES.findall(text):
            ids.extend(self._line_ids(line))
        return ids

    def _line_ids(self, line: str):
        # A minified file's one long line is not worth keeping.
        return self._encode_line(line) if len(line) <= LONGEST_REMEMBERED_LINE else self._encode_whole(line)

    def _encode_line_uncached(self, line: str) -> tuple[int, ...]:
        return tuple(self._encode_whole(line))

    def decode(self, token_ids: list[int]) -> str:
        """Text of `token_ids`: special tokens dropped, added literal tokens as their own text, no
        clean-up of "tokenization spaces" (in code, " ." and " ," are meant)."""
        pieces: list[str] = []
        run: list[int] = []
        for token_id in token_ids:
            if token_id in self._literal or token_id in self._special:
                pieces.append(self._decode_run(run))
                run = []
                pieces.append(self._literal.get(token_id, ""))
            else:
                run.append(token_id)
        pieces.append(self._decode_run(run))
        return "".join(pieces)

    def _decode_run(self, token_ids: list[int]) -> str:
        if not token_ids:
            return ""
        if self.raw is not None:
            return self.raw.decode(token_ids, skip_special_tokens=True)
        return self.hf.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def token_id(self, token: str) -> int | None:
        """The id of one whole token string, or None when the vocabulary has no such token."""
        if self.raw is not None:
            return self.raw.token_to_id(token)
        token_id = self.hf.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.unk_id:
            return None
        # Some tokenizers map unknown strings to a real id; check the round trip.
        return token_id if self.hf.convert_ids_to_tokens(token_id) == token else None


def split_markers(text: str, markers: tuple[str, ...]) -> list[str]:
    """`text` in pieces none of which holds a whole marker: each occurrence is cut after its first
    character."""
    pieces, start = [], 0
    while True:
        found = [(i, m) for m in markers if (i := text.find(m, start)) >= 0]
        if not found:
            pieces.append(text[start:])
            return [p for p in pieces if p]
        at, marker = min(found)
        pieces += [text[start : at + 1], text[at + 1 : at + len(marker)]]
        start = at + len(marker)


def self_check(hf: Any, tokenizer_json: str | None, sample: str = CHECK_SAMPLE) -> TokenizerCheck:
    """Compare the transformers tokenizer `hf` with the `tokenizers` library reading
    `tokenizer_json` on a code sample: the same ids, and a decode that gives the sample back."""
    loaded_as = type(hf).__name__
    hf_ids = hf(sample, add_special_tokens=False).input_ids
    if tokenizer_json is None:
        # No file to compare with (a SentencePiece-only model): the round trip is the check.
        decoded = CodeTokenizer(hf, None).decode(hf_ids)
        exact = decoded == sample
        detail = (
            f"no tokenizer.json; {loaded_as} round-trips the code sample ({len(hf_ids)} tokens)"
            if exact else f"no tokenizer.json, and {loaded_as} does not round-trip code: {_first_difference(sample, decoded)}"
        )
        return TokenizerCheck(exact, loaded_as, "round trip", len(hf_ids), detail)

    raw = Tokenizer.from_file(tokenizer_json)
    raw_ids = raw.encode(sample, add_special_tokens=False).ids
    if hf_ids != raw_ids:
        at = next((i for i, (a, b) in enumerate(zip(hf_ids, raw_ids)) if a != b), min(len(hf_ids), len(raw_ids)))
        detail = (
            f"{loaded_as} encodes a code sample into {len(hf_ids)} ids where tokenizer.json gives "
            f"{len(raw_ids)}, first differing at token {at} "
            f"(decodes as {_show(CodeTokenizer(hf, None).decode(hf_ids))})"
        )
        return TokenizerCheck(False, loaded_as, "tokenizers.Tokenizer.from_file", len(raw_ids), detail)
    decoded = CodeTokenizer(hf, raw).decode(raw_ids)
    if decoded != sample:
        detail = f"tokenizer.json does not decode its own encoding of code back: {_first_difference(sample, decoded)}"
        return TokenizerCheck(False, loaded_as, "tokenizers.Tokenizer.from_file", len(raw_ids), detail)
    detail = f"{loaded_as} and tokenizer.json give the same {len(raw_ids)} ids for a code sample, which decode back to it"
    return TokenizerCheck(True, loaded_as, "tokenizers.Tokenizer.from_file", len(raw_ids), detail)


def _show(text: str, limit: int = 60) -> str:
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _first_difference(expected: str, got: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return f"from character {at}, expected {_show(expected[at:at + 20])}, got {_show(got[at:at + 20])}"


def _tokenizer_file(path: str, *, local_only: bool) -> str | None:
    """The local path of the model's tokenizer.json (downloaded with the rest when `path` is a
    Hub id), or None when it has none."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "tokenizer.json")
        return candidate if os.path.isfile(candidate) else None

    return cached_file(
        path, "tokenizer.json", local_files_only=local_only,
        _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
    )


def _config_adds_bos(path: str, *, local_only: bool) -> bool | None:
    """`add_bos_token` from tokenizer_config.json, which the fast tokenizer class ignores."""
    if os.path.isdir(path):
        config_path = os.path.join(path, "tokenizer_config.json")
        config_path = config_path if os.path.isfile(config_path) else None
    else:
        config_path = cached_file(
            path, "tokenizer_config.json", local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )
    if config_path is None:
        return None
    with open(config_path, encoding="utf-8") as handle:
        value = json.load(handle).get("add_bos_token")
    return value if isinstance(value, bool) else None


def load_tokenizer(path: str, *, name: str, local_only: bool, trust_remote_code: bool = False) -> CodeTokenizer:
    """The tokenizer of the model at `path` (a directory or a Hub id), checked.

    With a tokenizer.json: loaded as that file says (never by the class name in
    tokenizer_config.json) and compared with the `tokenizers` library on a code sample; a
    mismatch refuses the model. Without one: transformers' choice, which must round-trip code.
    """
    tokenizer_json = _tokenizer_file(path, local_only=local_only)
    if tokenizer_json is not None:
        hf = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=local_only)
    else:
        hf = AutoTokenizer.from_pretrained(path, local_files_only=local_only, trust_remote_code=trust_remote_code)
    check = self_check(hf, tokenizer_json)
    if not check.exact:
        raise TokenizerRefused(
            f"Refusing '{name}': its tokenizer does not encode code faithfully with transformers "
            f"{transformers.__version__} ({check.detail}), and completions would be garbage."
        )
    raw = None
    if tokenizer_json is not None:
        raw = Tokenizer.from_file(tokenizer_json)
    tokenizer = CodeTokenizer(hf, raw, check)
    adds_bos = _config_adds_bos(path, local_only=local_only)
    if adds_bos is not None:
        tokenizer.adds_bos = adds_bos and tokenizer.bos_id is not None
    log.info("tokenizer of %s: %s", name, check.summary())
    return tokenizer
