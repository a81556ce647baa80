"""`fimls --tcp` listens on the loopback interface only, and logs go where they are told."""

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest


pytestmark = pytest.mark.slow  # starts the server


def test_tcp_server_listens_on_loopback_only_and_logs_to_the_log_file(tmp_path, free_port):
    port = free_port
    log_file = tmp_path / "fimls.log"
    env = dict(os.environ, FIMLS_MODEL=str(tmp_path / "no-model"))
    server = subprocess.Popen(
        [sys.executable, "-m", "fimls", "--tcp", "--port", str(port), "--log-file", str(log_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        listening = []
        deadline = time.monotonic() + 120
        while not listening and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()
            listening = [
                c.laddr for c in psutil.Process(server.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            ]
            time.sleep(0.2)
        assert listening, "the server never listened"
        assert {address.ip for address in listening} == {"127.0.0.1"}
        assert {address.port for address in listening} == {port}
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert out == b""  # nothing on stdout, ever
    assert "serving LSP on 127.0.0.1" in log_file.read_text()
