"""llama.cpp's `llama-server` on loopback, started and stopped by the benchmarks and the tests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def default_llama_server() -> Path:
    """Where the README's test set-up unpacks Debian's build."""
    return Path(sys.prefix) / "llama.cpp" / "llama-server"


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """llama-server serving `gguf` on a free loopback port: started on construction or as a `with`
    block, and again with `start()` after `stop()` on the same port."""

    def __init__(self, binary: Path, gguf: Path, slots: int = 1, context: int = 4096, start: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
                        "-c", str(context * slots), "-np", str(slots), "--threads", "2", "--metrics"]
        self.process: subprocess.Popen | None = None
        if start:
            self.start()

    def start(self, timeout_s: float = 60) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not start: {' '.join(self.command)}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def slots(self) -> list:
        with urllib.request.urlopen(f"{self.url}/slots", timeout=5) as response:
            return json.loads(response.read())

    def prompt_tokens_processed(self) -> float:
        """The server's own count of prompt tokens it computed (its prefix cache's hits excluded)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("llamacpp:prompt_tokens_total"):
                    return float(line.split()[-1])
        raise RuntimeError("llama-server's /metrics has no llamacpp:prompt_tokens_total")
