"""The shared daemon (`backend: local`, the default) with real `fimls --stdio` processes: one model
for every window, answers equal to the in-process engine's, and its faults: killed mid-request,
a stale socket, idle exit, another user, windows starting at once, a client that hangs up."""

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import stop_daemon, wait_for
from lsp_client import LspClient, start_session
from fimls.engine.daemon import frames
from model_inputs import CODE, choose, shown_completion

pytestmark = pytest.mark.slow  # starts daemons

# The input the local test model completes is chosen at run time (tests/model_inputs.py).
EDITS_AFTER_THE_CURSOR = [
    "\n\ndef div(a, b):\n    return a / b\n", "\n\ndef neg(a):\n    return -a\n", "\n\nclass Empty:\n    pass\n",
    "\n\nVALUE = 1\n", "\n\n\ndef main():\n    print(1)\n",
]


@pytest.fixture
def run_dir():
    """A runtime directory of the test's own (short: a socket path has at most 108 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="fimls-d-"))
    yield directory
    # Killed after a second: a graceful exit (4-5 s of aiohttp's shutdown) is not what these tests
    # check, and waiting for it cost about 50 s of CI over this file.
    stop_daemon(directory, timeout=1.0)


@pytest.fixture
def cases(tmp_path, engine):
    return {"app/main.py": choose(engine, tmp_path, "app/main.py", CODE, maxNewTokens=12)}


@pytest.fixture
def workspace(tmp_path, cases):
    return tmp_path


@pytest.fixture
def cursor(cases):
    main = cases["app/main.py"]
    return (main.line, main.character)


def _socket(run_dir: Path) -> Path:
    return run_dir / "fimls" / "daemon.sock"


def _daemon(run_dir: Path, path: str = "/fimls/stats") -> dict:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(_socket(run_dir))), base_url="http://daemon", timeout=10) as client:
        return client.get(path).json()


def _window(run_dir: Path, workspace: Path, model: Path, **options) -> LspClient:
    """A `fimls --stdio` as an editor window starts it; initialized, not yet waited for."""
    return start_session(workspace, {"model": str(model), "maxNewTokens": 12, **options}, wait=False,
                         capabilities={"window": {"showMessage": {}}}, env={"XDG_RUNTIME_DIR": str(run_dir)})


def _status(client: LspClient, after: int = 0, states=("ready", "error"), timeout: float = 300) -> dict:
    return client.wait_for_notification("fimls/status", lambda p: p["state"] in states, timeout=timeout, after=after)


def _open(client: LspClient, workspace: Path, name: str) -> str:
    path = workspace / "app" / name
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": path.read_text()}})
    return uri


def _inline(client: LspClient, uri: str, cursor: tuple[int, int]):
    """An automatic request (typing): one completion, the greedy one."""
    return client.request("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": {"line": cursor[0], "character": cursor[1]}, "context": {"triggerKind": 2},
    })


def _complete(client: LspClient, uri: str, cursor) -> list[str]:
    request = _inline(client, uri, cursor)
    answer = client.wait_for([request], timeout=120)[request]
    assert "result" in answer, answer
    return [item["insertText"] for item in answer["result"]]


def _expected(engine, workspace: Path, cursor, name: str = "main.py") -> str:
    """The in-process engine's answer, as `fimls complete` gives it (tests/model_inputs.py runs
    the same steps in this process): the text a client that names itself to no one is sent."""
    relative = f"app/{name}"
    text = (workspace / relative).read_text()
    lines = text.splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: cursor[0]]) + cursor[1]
    completion, _ = shown_completion(engine, workspace, relative, text, offset, maxNewTokens=12)
    assert completion, "the test model completes this position; the comparison would prove nothing"
    return completion


def _daemon_processes(run_dir: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"fimls serve --socket {_socket(run_dir)}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.timeout(600)
def test_two_windows_started_at_once_share_one_model_and_answer_as_the_in_process_engine(run_dir, workspace, test_model_dir, cursor, engine):
    windows = []
    starting = [threading.Thread(target=lambda: windows.append(_window(run_dir, workspace, test_model_dir))) for _ in range(2)]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join()
    try:
        for window in windows:
            assert _status(window)["state"] == "ready", window.stderr()
        answers = [_complete(window, _open(window, workspace, "main.py"), cursor) for window in windows]
        expected = _expected(engine, workspace, cursor)
        assert answers[0] == answers[1] == [expected]
        stats = _daemon(run_dir)
        assert stats["models_loaded"] == 1 and stats["clients"] == 2, stats
        resident, = stats["resident"]
        assert resident["sessions"] == 2  # a KV session per window's document
        assert len(_daemon_processes(run_dir)) == 1  # the two starts raced; one daemon runs
        assert (run_dir / "fimls" / "daemon.log").read_text().count("serving on") == 1
        # Only generation went to the daemon: each window keeps its own statistics of requests.
        for window in windows:
            report = window.call("fimls/stats")["result"]
            assert report["model_calls"] == 1 and report["daemon_hop_p50_ms"] is not None
    finally:
        for window in windows:
            window.close()


@pytest.mark.timeout(600)
def test_a_daemon_killed_mid_request_is_replaced_and_the_window_is_ready_again(run_dir, workspace, test_model_dir, cursor, engine, tmp_path):
    # The first daemon runs on a stand-in for a slow GPU (tests/faulty_gpu_server.py): the request
    # is in flight long enough to be killed, whatever the test model writes.
    fault = tmp_path / "fault"
    socket_path = _socket(run_dir)
    socket_path.parent.mkdir(mode=0o700)
    subprocess.Popen([sys.executable, str(Path(__file__).with_name("faulty_gpu_server.py")), "serve", "--socket", str(socket_path)],
                     env={**os.environ, "FIMLS_TEST_FAULT": str(fault), "XDG_RUNTIME_DIR": str(run_dir)},
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(socket_path.exists, timeout=60)
    window = _window(run_dir, workspace, test_model_dir)
    try:
        assert _status(window)["state"] == "ready", window.stderr()
        first_pid = _daemon(run_dir, "/health")["pid"]
        uri = _open(window, workspace, "main.py")
        seen = len(window.notifications)
        fault.write_text("slow 0.5")
        request = _inline(window, uri, cursor)
        assert wait_for(lambda: _daemon(run_dir)["generating"] == 1, timeout=30, interval=0.005)
        os.kill(first_pid, signal.SIGKILL)
        fault.unlink()
        assert window.wait_for([request], timeout=60)[request]["result"] == []  # an answer, not an error
        lost = _status(window, seen, states=("error",), timeout=30)
        assert "fimls daemon" in lost["message"] and lost["message"].count(". ") == 0, lost
        assert _status(window, seen, states=("ready",), timeout=120)["state"] == "ready"
        assert _daemon(run_dir, "/health")["pid"] != first_pid
        assert _complete(window, uri, cursor) == [_expected(engine, workspace, cursor)]
        assert window.process.poll() is None
    finally:
        window.close()


@pytest.mark.timeout(300)
def test_a_stale_socket_from_a_crashed_daemon_is_replaced(run_dir, workspace, test_model_dir, cursor, engine):
    (run_dir / "fimls").mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(_socket(run_dir)))  # bound, never listening, closed: what a crash leaves
    stale.close()
    assert _socket(run_dir).exists()
    window = _window(run_dir, workspace, test_model_dir)
    try:
        assert _status(window)["state"] == "ready", window.stderr()
        assert _complete(window, _open(window, workspace, "main.py"), cursor) == [_expected(engine, workspace, cursor)]
        assert "replaced the stale socket" in (run_dir / "fimls" / "daemon.log").read_text()
    finally:
        window.close()


@pytest.mark.timeout(300)
def test_the_daemon_exits_after_its_idle_time_with_no_window(run_dir, workspace, test_model_dir):
    window = _window(run_dir, workspace, test_model_dir, daemonIdleExitS=2)
    assert _status(window)["state"] == "ready", window.stderr()
    pid = _daemon(run_dir, "/health")["pid"]
    time.sleep(3)
    assert _daemon(run_dir, "/health")["pid"] == pid  # a window is attached: it stays
    window.close()
    assert wait_for(lambda: not _daemon_processes(run_dir), timeout=20)
    assert not _socket(run_dir).exists()


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_another_user_cannot_connect(run_dir):
    daemon = subprocess.Popen([sys.executable, "-m", "fimls", "serve", "--socket", str(_socket(run_dir)), "--idle-exit-s", "60"],
                              env={**os.environ, "XDG_RUNTIME_DIR": str(run_dir)})
    try:
        (run_dir / "fimls").mkdir(mode=0o700, exist_ok=True)
        assert wait_for(lambda: _socket(run_dir).exists(), timeout=60)
        assert _socket(run_dir).stat().st_mode & 0o777 == 0o600
        assert (run_dir / "fimls").stat().st_mode & 0o777 == 0o700
        nobody = pwd.getpwnam("nobody").pw_uid
        # Even with the directory opened to all, the socket's own mode keeps another user out.
        os.chmod(run_dir, 0o755)
        os.chmod(run_dir / "fimls", 0o755)
        probe = (
            "import os, socket, sys\n"
            f"os.setgid({nobody}); os.setuid({nobody})\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({str(_socket(run_dir))!r})\n"
            "except PermissionError:\n"
            "    sys.exit(13)\n"
            "sys.exit(0)\n"
        )
        assert subprocess.run([sys.executable, "-c", probe]).returncode == 13
        assert _daemon(run_dir, "/health")["status"] == "ok"  # its own user still gets in
    finally:
        daemon.terminate()
        daemon.wait(30)


def _frames_connection(run_dir: Path) -> socket.socket:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(60)
    raw.connect(str(_socket(run_dir)))
    raw.sendall(frames.MAGIC)
    return raw


def test_a_window_sends_only_what_changed_and_answers_as_the_in_process_engine(run_dir, workspace, test_model_dir, cases, engine):
    main = cases["app/main.py"]
    cursor = (main.line, main.character)
    # An edit after the cursor, one the local model still completes at the cursor.
    edited = choose(engine, workspace, "app/main.py", [
        main.text[: main.offset] + "|" + main.text[main.offset :] + tail for tail in EDITS_AFTER_THE_CURSOR
    ], maxNewTokens=12).text
    (workspace / "app" / "main.py").write_text(main.text)
    window = _window(run_dir, workspace, test_model_dir)
    try:
        assert _status(window)["state"] == "ready", window.stderr()
        uri = _open(window, workspace, "main.py")
        expected = _expected(engine, workspace, cursor)
        assert _complete(window, uri, cursor) == [expected]
        before = _daemon(run_dir)
        assert _complete(window, uri, cursor) == [expected]  # the same prompt again: no id crosses
        after = _daemon(run_dir)
        assert after["prompt_ids_received"] == before["prompt_ids_received"]
        assert after["prompt_tokens"] > before["prompt_tokens"]
        # An edit after the cursor: the prompt changes in its middle; what follows is sent again.
        (workspace / "app" / "main.py").write_text(edited)
        window.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]})
        assert _complete(window, uri, cursor) == [_expected(engine, workspace, cursor)]
        last = _daemon(run_dir)
        sent, prompted = last["prompt_ids_received"] - after["prompt_ids_received"], last["prompt_tokens"] - after["prompt_tokens"]
        assert 0 < sent < prompted, (sent, prompted)
    finally:
        window.close()


@pytest.mark.timeout(300)
def test_a_frames_client_that_hangs_up_frees_the_model_at_once_and_bad_frames_get_a_clear_error(run_dir, workspace, test_model_dir, cursor, engine):
    window = _window(run_dir, workspace, test_model_dir)
    try:
        assert _status(window)["state"] == "ready", window.stderr()
        model = _daemon(run_dir)["resident"][0]["id"]
        header = {"model": model, "max_tokens": 400, "fimls_session": "raw", "fimls_speculative_tokens": 0}
        prompt = [32013] + [15] * 40  # no stop rules, no end tokens: it runs to max_tokens

        started = time.perf_counter()
        with _frames_connection(run_dir) as raw:
            raw.sendall(frames.pack(header, prompt))
            answer, _ = frames.receive(raw)
        whole = time.perf_counter() - started
        assert answer["generation"]["stop_reason"] == "length" and len(answer["generation"]["token_ids"]) == 400
        expected, uri = _expected(engine, workspace, cursor), _open(window, workspace, "main.py")
        before = _daemon(run_dir)
        with _frames_connection(run_dir) as raw:
            raw.sendall(frames.pack({**header, "fimls_session": "raw-2"}, prompt))
            assert wait_for(lambda: _daemon(run_dir)["generating"] == 1, timeout=30, interval=0.005)
        waited = time.perf_counter()
        assert _complete(window, uri, cursor) == [expected]
        assert time.perf_counter() - waited < whole / 2, whole
        after = _daemon(run_dir)
        assert after["disconnected"] == before.get("disconnected", 0) + 1
        assert after["generated_tokens"] - before["generated_tokens"] < 400  # the abandoned one never finished
        # Bad frames: each gets one sentence, and the connection, the daemon and the window go on.
        good = {"model": model, "max_tokens": 3, "fimls_session": "bad"}
        with _frames_connection(run_dir) as raw:
            for header, ids, keep, status, said in [
                ({**good, "model": "nope"}, [1], 0, 404, "not loaded"),
                (good, [10 ** 9], 0, 400, "vocabulary"),
                (good, [], 0, 400, "non-empty"),
                (good, [1], 5, 400, "keeps 5 ids of a last prompt of 0"),
                ({**good, "max_tokens": 0}, [1], 0, 400, "max_tokens"),
                (good, [1] * 20000, 0, 400, "window"),
            ]:
                raw.sendall(frames.pack(header, ids, keep))
                answer, _ = frames.receive(raw)
                assert answer["status"] == status and said in answer["error"]["message"], answer
            raw.sendall(frames.pack(good, [32013, 15, 15]))  # the same connection still serves
            answer, _ = frames.receive(raw)
            assert answer["generation"]["stop_reason"] in ("eos", "length", "rule"), answer
            raw.sendall(b"\x00\x00\x00\x00")  # not a frame: an error, then the connection ends
            answer, _ = frames.receive(raw)
            assert answer["status"] == 400 and "a frame of 0 bytes" in answer["error"]["message"]
            assert raw.recv(1) == b""
        assert _complete(window, uri, cursor) == [expected]
    finally:
        window.close()


@pytest.mark.timeout(300)
def test_a_window_asking_for_a_second_model_is_told_why_not(run_dir, workspace, test_model_dir, cursor, engine):
    first = _window(run_dir, workspace, test_model_dir)
    second = None
    try:
        assert _status(first)["state"] == "ready", first.stderr()
        second = _window(run_dir, workspace, test_model_dir, dtype="float32")  # another load of it: another model
        status = _status(second)
        assert status["state"] == "error" and "maxResidentModels is 1" in status["message"], status
        assert _complete(second, _open(second, workspace, "main.py"), cursor) == []
        assert _daemon(run_dir)["models_loaded"] == 1
        assert _complete(first, _open(first, workspace, "main.py"), cursor) == [_expected(engine, workspace, cursor)]
    finally:
        first.close()
        if second is not None:
            second.close()


def test_only_one_of_several_starts_at_once_starts_a_daemon(run_dir):
    starter = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fimls.engine.backends.daemon import ensure_daemon\n"
        "ensure_daemon(Path(sys.argv[1]), ['--idle-exit-s', '30'])\n"
    )
    (run_dir / "fimls").mkdir(mode=0o700)
    starts = [subprocess.Popen([sys.executable, "-c", starter, str(_socket(run_dir))]) for _ in range(4)]
    assert [start.wait(120) for start in starts] == [0, 0, 0, 0]
    assert len(_daemon_processes(run_dir)) == 1
    assert (run_dir / "fimls" / "daemon.log").read_text().count("serving on") == 1
