"""The pygls server: wires LSP messages to plain functions and owns the one model worker."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from typing import BinaryIO

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from fimls import __version__
from fimls.engine.worker import ModelWorker, Superseded
from fimls.lsp.inline import cursor_offset, inline_items
from fimls.settings import Settings, SettingsError, parse_settings

log = logging.getLogger(__name__)


class FimlsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("fimls", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self.engine = None
        self.state = "loading"
        # `initialize` cannot show messages yet; a problem found there is shown once initialized.
        self.pending_message: str | None = None
        # One thread owns the model: loading and every generation run there, in order.
        self.worker = ModelWorker()

    def publish_status(self, state: str, message: str = "") -> None:
        self.state = state
        self.protocol.notify("fimls/status", {"state": state, "message": message})

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


server = FimlsServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: FimlsServer, params: types.InitializeParams) -> None:
    try:
        ls.settings = parse_settings(params.initialization_options)
    except SettingsError as error:
        log.error("%s", error)
        ls.settings = Settings()
        ls.pending_message = str(error) + "; using defaults"


@server.feature(types.INITIALIZED)
async def on_initialized(ls: FimlsServer, params: types.InitializedParams) -> None:
    if ls.pending_message:
        ls.show(types.MessageType.Error, ls.pending_message)
    await load_model_in_background(ls)


async def load_model_in_background(ls: FimlsServer) -> None:
    from fimls.completion import load_engine

    settings = ls.settings
    token = None
    window = ls.client_capabilities.window
    if window is not None and window.work_done_progress:
        token = f"fimls-load-{uuid.uuid4()}"
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="fimls", message=f"loading {settings.model}", cancellable=False)
            )
        except Exception:  # a client may refuse the token; loading goes on without progress
            log.warning("client refused a progress token", exc_info=True)
            token = None
    ls.publish_status("loading", settings.model)
    try:
        ls.engine = await ls.worker.call(lambda: load_engine(settings))
    except Exception as error:
        log.error("model load failed: %s", error, exc_info=not _is_user_error(error))
        ls.publish_status("error", str(error))
        ls.show(types.MessageType.Error, f"fimls: {error}")
        done = f"failed: {error}"
    else:
        loaded = ls.engine.loaded
        done = f"{settings.model} ready on {loaded.device} ({loaded.kernel}) in {loaded.load_seconds:.1f}s"
        log.info("%s", done)
        ls.publish_status("ready", done)
    if token is not None:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=done))


def _is_user_error(error: Exception) -> bool:
    from fimls.engine.fim import FimUnsupported
    from fimls.engine.loading import ModelUnavailable

    return isinstance(error, (ModelUnavailable, FimUnsupported))


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def on_inline_completion(
    ls: FimlsServer, params: types.InlineCompletionParams
) -> list[types.InlineCompletionItem]:
    engine = ls.engine
    if engine is None:
        return []  # still loading (or failed): an empty answer, never an error
    from fimls.completion import complete_text

    document = ls.workspace.get_text_document(params.text_document.uri)
    text = document.source
    offset = cursor_offset(document, params.position)
    settings, root = ls.settings, ls.workspace.root_path

    def run(cancelled):
        return complete_text(engine, settings, text, offset, document.path, root, cancelled)

    try:
        # A newer request for this document supersedes this one; `$/cancelRequest` cancels the
        # handler's task. Either way the generation stops at its next token.
        completion = await ls.worker.generate(params.text_document.uri, run)
    except Superseded:
        return []
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("completion failed for %s", params.text_document.uri)
        return []
    return inline_items(document, params.position, completion.text)


def serve(stdio_out: BinaryIO | None, tcp_port: int | None) -> int:
    if tcp_port is not None:
        # Loopback only: the server reads the workspace and must not be reachable from elsewhere.
        server.start_tcp("127.0.0.1", tcp_port)
    else:
        server.start_io(stdin=sys.stdin.buffer, stdout=stdio_out)
    server.worker.shutdown()
    return 0
