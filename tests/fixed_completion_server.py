"""An OpenAI-compatible completions endpoint that answers every prompt with one text the test
sets, so that fimls (backend `server`) serves a completion the test knows whatever the test model
would write: the tests of how items are shaped for each client need a known completion at a known
cursor (a multi-line one in the middle of a line, one that begins with the character after the
cursor). Loopback only."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from loopback_http import LoopbackHTTP


class FixedCompletionServer:
    def __init__(self, text: str = "") -> None:
        self.text = text
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, content_type: str, data: bytes, close: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": "fixed", "object": "model"}]}).encode())
                else:
                    self._send(404, "application/json", b'{"error": {"message": "no such route"}}')

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests += 1
                events = [{"choices": [{"index": 0, "text": server.text, "finish_reason": None}]},
                          {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}]
                body = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
                self._send(200, "text/event-stream", body.encode(), close=True)

        self._http = LoopbackHTTP(Handler)
        self.url = self._http.url

    def close(self) -> None:
        self._http.close()

