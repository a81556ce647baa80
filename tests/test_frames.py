"""The stdio side's frames to the shared daemon: framing over a real socket, split and joined
reads, a bad frame named as one, and the prompt memory both ends keep (only a keystroke's tail
is sent), checked against a plain loop."""

import random
import socket
import threading

import pytest

from fimls.engine.daemon import frames


def _common(old, new):
    at = 0
    while at < min(len(old), len(new)) and old[at] == new[at]:
        at += 1
    return at


def test_shared_prefix_is_the_common_prefix_for_every_kind_of_edit():
    rng = random.Random(7)
    for _ in range(3000):
        old = [rng.randrange(6) for _ in range(rng.randrange(0, 2500))]
        kind = rng.randrange(4)
        if kind == 0 and old:
            new = list(old)
            new[rng.randrange(len(new))] += 1  # one id changed anywhere
        elif kind == 1:
            new = old[: rng.randrange(len(old) + 1)] + [rng.randrange(6) for _ in range(rng.randrange(30))]  # typed at the end
        elif kind == 2:
            new = [rng.randrange(6) for _ in range(rng.randrange(100))]  # another prompt
        else:
            new = list(old)
        assert frames.shared_prefix(old, new) == _common(old, new)


def test_a_frame_read_in_pieces_or_with_the_next_one_comes_out_whole():
    first = frames.pack({"model": "m"}, [1, 2, 70000], keep=3)
    second = frames.pack({"n": 2}, [])
    stream = first + second
    for cut in range(1, len(stream)):
        reader = frames.Reader()
        got = list(reader.feed(stream[:cut])) + list(reader.feed(stream[cut:]))
        assert [(header, keep, ids.tolist()) for header, keep, ids in got] == [({"model": "m"}, 3, [1, 2, 70000]), ({"n": 2}, 0, [])]


def test_a_header_equal_to_the_last_comes_out_as_the_same_object():
    reader = frames.Reader()
    (first, _, _), = reader.feed(frames.pack({"model": "m", "n": 1}, [1]))
    (again, _, _), = reader.feed(frames.pack(frames.encode_header({"model": "m", "n": 1}), [2], keep=1))
    (other, _, _), = reader.feed(frames.pack({"model": "m", "n": 2}, [3]))
    assert again is first and other == {"model": "m", "n": 2}


@pytest.mark.parametrize("data, said", [
    (b"\x00\x00\x00\x00", "a frame of 0 bytes"),
    ((2**31).to_bytes(4, "little"), "at most"),
    (b"\x0c\x00\x00\x00" + b"\x04\x00\x00\x00" + bytes(4) + b"{no}", "not JSON"),
    (b"\x0c\x00\x00\x00" + b"\x04\x00\x00\x00" + bytes(4) + b"[12]", "not a JSON object"),
    (b"\x0d\x00\x00\x00" + b"\x02\x00\x00\x00" + bytes(4) + b"{}" + b"\x01\x02\x03", "does not fit"),
])
def test_a_bad_frame_is_named_as_one(data, said):
    with pytest.raises(frames.BadFrame, match=said):
        list(frames.Reader().feed(data))


def test_receive_reads_a_whole_answer_sent_in_pieces_and_says_when_the_other_end_closes():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        answer = frames.pack({"text": "x" * 200_000})  # more than one read
        sender = threading.Thread(target=lambda: [theirs.sendall(answer[i: i + 7000]) for i in range(0, len(answer), 7000)])
        sender.start()
        header, ids = frames.receive(ours)
        sender.join()
        assert header == {"text": "x" * 200_000} and len(ids) == 0
        theirs.sendall(frames.pack({"a": 1})[:5])
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionResetError):
            frames.receive(ours)


def test_prompts_keep_the_last_prompt_of_the_most_recent_documents():
    prompts = frames.Prompts(most=2)
    prompts.put("a", [1])
    prompts.put("b", [2])
    prompts.get("a")
    prompts.put("a", [1, 1])  # a is the most recent now
    prompts.put("c", [3])
    assert (prompts.get("a"), prompts.get("b"), prompts.get("c")) == ([1, 1], [], [3])
    prompts.forget("a")
    assert prompts.get("a") == []
