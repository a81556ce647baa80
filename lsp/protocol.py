"""pygls' protocol with the parts of the LSP life cycle it leaves out, so every request is answered.

pygls drops a request whose params are left out or do not fit the method's types (the client waits forever), runs
requests before `initialize`, and silently ignores requests after `shutdown`. LSP wants an error
answer in each case: InvalidParams, ServerNotInitialized (-32002) and InvalidRequest.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger(__name__)


@attrs.define
class UnreadableRequest:
    """A request whose params could not be read; it is answered with the error it caused."""

    id: Any
    method: str
    error: JsonRpcException
    jsonrpc: str = "2.0"


class FimlsProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_received = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "method" in data and "params" not in data:
            data = {**data, "params": None}  # JSON-RPC lets a request leave params out; pygls needs the key
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "method" in data and isinstance(data.get("id"), (int, str)):
                return UnreadableRequest(id=data["id"], method=str(data["method"]), error=error)
            raise  # a notification or a broken response: pygls logs it, there is no one to answer

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if method == "exit":
            super().handle_message(message)
        elif not self.initialize_received and method != "initialize":
            if is_request:
                self._refuse(message, JsonRpcServerNotInitialized())
            # Notifications before `initialize` are dropped, as LSP says.
        elif self._shutdown:
            if is_request:
                self._refuse(message, JsonRpcInvalidRequest("the server is shutting down"))
        elif isinstance(message, UnreadableRequest):
            log.warning("refused %s request %r: %s", message.method, message.id, message.error.message)
            self._refuse(message, message.error)
        else:
            if method == "initialize":
                self.initialize_received = True
            super().handle_message(message)

    def _refuse(self, message: Any, error: JsonRpcException) -> None:
        self._send_response(message.id, error=error.to_response_error())
