"""The stdio side's own request path to the shared daemon, on the daemon's socket beside its HTTP:
a connection that opens with `MAGIC` carries length-prefixed frames instead of HTTP requests.

Each keystroke's completion is one request frame (a small JSON header with the OpenAI request's
fields and fimls' own, then the prompt as raw 32-bit token ids) and one answer frame (JSON). Both
ends remember each document's last prompt on the connection (`Prompts`), so a request sends only
the token ids after the part it shares with the last one (the frame says how many it keeps):
fimls' prompt layout makes a keystroke change only the tail. No HTTP parsing, no JSON for thousands of
token ids, no server-sent events, no thread between the socket and the model. Hanging up
mid-request frees the request, as with HTTP. Torch-free: both sides import it.
"""

from __future__ import annotations

import json
import socket
import struct
from array import array
from collections import OrderedDict
from typing import Iterator, Sequence

MAGIC = b"FIMLS-FRAMES/1\n"
MOST_FRAME_BYTES = 64 * 2**20  # the HTTP side's body limit, too
# The frame's length after these 4 bytes, its header's length, and how many ids of the document's
# last prompt it keeps (outside the header, so that a keystroke's header is the last one's, byte
# for byte: both ends then skip encoding, decoding and checking it).
_LENGTHS = struct.Struct("<III")
_IDS = "i"  # int32, in this machine's byte order: both ends are on this machine

if array(_IDS).itemsize != 4:  # pragma: no cover - every platform CPython supports today
    raise ImportError("fimls' daemon frames need a 4-byte C int")


class BadFrame(ValueError):
    """A frame that is not one; the connection cannot go on after it."""


def encode_header(header: dict) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode()


def pack(header: dict | bytes, token_ids: Sequence[int] = (), keep: int = 0) -> bytes:
    """A frame: `header` (a dict, or one `encode_header` made), then `token_ids`; `keep`: the ids
    of the document's last prompt that come before them."""
    head = header if isinstance(header, bytes) else encode_header(header)
    ids = token_ids.tobytes() if isinstance(token_ids, array) else array(_IDS, token_ids).tobytes()
    return _LENGTHS.pack(8 + len(head) + len(ids), len(head), keep) + head + ids


def _unpack(frame: memoryview, last: tuple[bytes, dict] | None = None) -> tuple[dict, int, array, bytes]:
    """The header, keep and ids of a frame (after its length), and the header's bytes; `last`:
    the last header's bytes and what they decoded to, given back as the same object when this
    one is the same."""
    if len(frame) < 8:
        raise BadFrame("a frame too short for its lengths.")
    head_length, keep = struct.unpack_from("<II", frame)
    if 8 + head_length > len(frame) or (len(frame) - 8 - head_length) % 4:
        raise BadFrame("a frame's header length does not fit the frame.")
    head = bytes(frame[8: 8 + head_length])
    if last is not None and last[0] == head:
        header = last[1]
    else:
        try:
            header = json.loads(head)
        except ValueError:
            raise BadFrame("a frame's header is not JSON.") from None
        if not isinstance(header, dict):
            raise BadFrame("a frame's header is not a JSON object.")
    ids = array(_IDS)
    ids.frombytes(frame[8 + head_length:])
    return header, keep, ids, head


class Reader:
    """Frames out of a byte stream as it arrives (the daemon's side). A header equal to the last
    one, byte for byte, comes out as the very same object (its consumer may cache by identity)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._last: tuple[bytes, dict] | None = None

    def feed(self, data: bytes) -> Iterator[tuple[dict, int, array]]:
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from("<I", self._buffer)
            if length < 8 or length > MOST_FRAME_BYTES:
                raise BadFrame(f"a frame of {length} bytes; at most {MOST_FRAME_BYTES}.")
            if len(self._buffer) < 4 + length:
                return
            frame = memoryview(bytes(self._buffer[4: 4 + length]))
            del self._buffer[: 4 + length]
            header, keep, ids, head = _unpack(frame, self._last)
            self._last = (head, header)
            yield header, keep, ids


def receive(sock: socket.socket) -> tuple[dict, array]:
    """One frame from a blocking socket (the stdio side), in one read where it fits (a call to
    the kernel saved is worth more than the buffer). `ConnectionError` if it closes first."""
    data = sock.recv(1 << 16)
    while True:
        if len(data) >= 4 and len(data) >= 4 + (length := _frame_length(data)):
            break
        more = sock.recv(1 << 16)
        if not more:
            raise ConnectionResetError("the fimls daemon closed the connection")
        data += more
    if len(data) > 4 + length:
        raise BadFrame("more than one answer to one request.")
    header, _keep, ids, _head = _unpack(memoryview(data)[4:])
    return header, ids

def _frame_length(data: bytes) -> int:
    (length,) = struct.unpack_from("<I", data)
    if length < 8 or length > MOST_FRAME_BYTES:
        raise BadFrame(f"a frame of {length} bytes; at most {MOST_FRAME_BYTES}.")
    return length


class Prompts:
    """The last prompt of each document sent on one connection; both ends keep the same."""

    def __init__(self, most: int = 16):
        self.most = most
        self._by_session: OrderedDict[str, list[int]] = OrderedDict()

    def get(self, session: str) -> list[int]:
        return self._by_session.get(session, [])

    def put(self, session: str, prompt: list[int]) -> None:
        self._by_session[session] = prompt
        self._by_session.move_to_end(session)
        while len(self._by_session) > self.most:
            self._by_session.popitem(last=False)

    def forget(self, session: str) -> None:
        self._by_session.pop(session, None)


def shared_prefix(old: list[int], new: list[int]) -> int:
    """How many leading token ids `new` shares with `old`, found from the end first (where a
    keystroke changes them), in list comparisons rather than a Python loop over thousands."""
    most = min(len(old), len(new))
    if old[:most] == new[:most]:
        return most
    known, step = 0, 16  # old[:known] == new[:known]; they differ before `most`
    while most - step > known:
        if old[: most - step] == new[: most - step]:
            known = most - step
            break
        most, step = most - step, step * 2
    while known < most and old[known] == new[known]:
        known += 1
    return known
