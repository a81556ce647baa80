"""An OpenAI-compatible completions endpoint that misbehaves on demand, for the server-backend
fault tests (a real server cannot be made to fail each way on cue): it streams a fixed completion,
or answers 401/404/429/500, stalls mid-stream, sends malformed SSE, or drops the connection (mid-stream, or once before answering). It
also records whether the client went away while it was streaming. Loopback only."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback_http import LoopbackHTTP

COMPLETION = ["    return", " a", " *", " b", "\n", "\n", "\n", "def div(a, b):"]


class MisbehavingServer:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | 401 | 404 | 429 | 500 | stall | malformed | die | slow | text-only | drop-once
        self.requests: list[dict] = []
        self.client_left = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "fake-coder", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"payload": payload, "headers": dict(self.headers)})
                mode = server.mode
                if mode == "drop-once":
                    # A kept-alive connection closed as the next request arrives, nothing answered:
                    # the race every HTTP client meets (llama-server closes its idle connections).
                    server.mode = "ok"
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if mode in ("401", "429", "500"):
                    self._json(int(mode), {"error": {"message": f"simulated {mode}"}})
                    return
                if mode == "404":
                    self._json(404, {"error": {"message": f"The model `{payload.get('model')}` does not exist."}})
                    return
                if mode == "text-only" and isinstance(payload.get("prompt"), list):
                    self._json(400, {"error": {"message": "prompt must be a string"}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for i, piece in enumerate(COMPLETION):
                        if mode == "malformed" and i == 2:
                            self.wfile.write(b"data: {not json\n\n")
                        if mode == "die" and i == 2:
                            self.connection.shutdown(2)
                            return
                        if mode == "stall" and i == 2:
                            time.sleep(30)
                        event = {"choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        if mode == "slow":
                            time.sleep(0.5)
                    final = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
                    self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.client_left.set()

        self._http = LoopbackHTTP(Handler)
        self.url = self._http.url

    def close(self) -> None:
        self._http.close()
