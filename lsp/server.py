"""The pygls server: wires LSP messages to plain functions (serving.py, inline.py, settings)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument
from urllib.parse import unquote

from fimls import __version__
from fimls.backends import open_backend
from fimls.context.builder import ContextBuilder
from fimls.context.folders import FolderSet
from fimls.context.paths import display_path
from fimls.context.workspace import WorkspaceIndex
from fimls.contract import Backend, ModelUnavailable
from fimls.lsp.document import LspWorkspace
from fimls.lsp.inline import client_shape, inline_items
from fimls.lsp.notebook import NotebookScript, notebook_script
from fimls.lsp.protocol import FimlsProtocol
from fimls.lsp.serving import CompletionService, Request
from fimls.lsp.stats import Stats
from fimls.settings import RELOAD_FIELDS, Settings, SettingsError, parse_settings

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "fimls.accepted"


class FimlsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "fimls", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental, protocol_cls=FimlsProtocol,
            # Jupyter notebooks: their cells come as notebookDocument/* messages (LSP 3.17).
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[types.NotebookDocumentFilterWithNotebook(
                    notebook=types.NotebookDocumentFilterNotebookType(notebook_type="jupyter-notebook")
                )]
            ),
        )
        self.service = CompletionService(Settings())
        self.state = "loading"
        self.initialization_options: dict[str, Any] = {}
        # `initialize` cannot show messages yet; a problem found there is shown once initialized.
        self.pending_message: str | None = None
        self.loading: asyncio.Task | None = None
        # A model (re)load is wanted with the settings in force when it starts: changes that arrive
        # before then, or while a load runs, are served by one more load, not one each.
        self.reload_wanted = False
        self.loaded_with: tuple | None = None  # the reload-relevant settings of the last load
        self.item_ids = itertools.count(1)
        self.index = None  # the FolderSet of the workspace folders, once initialize names any
        # One thread for work done ahead of requests (parsing what a just-opened file imports).
        self.preparing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fimls-prepare")

    @property
    def settings(self) -> Settings:
        return self.service.settings

    def publish_status(self, state: str, message: str = "") -> None:
        self.state = state
        self.protocol.notify("fimls/status", {"state": state, "message": message})

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls would pop up a message in the editor for every unreadable notification; a client
        # sending garbage is for the log, not for the user.
        log.error("%s: %s", getattr(source, "__name__", source), error)

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


server = FimlsServer()


def on_model_health(ls: FimlsServer, problem: str | None) -> None:
    """Generations started failing (`problem`) or work again (None): the status says so."""
    if problem is None:
        ls.publish_status("ready", "completions work again")
    else:
        ls.publish_status("error", problem)
        ls.show(types.MessageType.Error, f"fimls: {problem}")


server.service.on_health = lambda problem: on_model_health(server, problem)


@server.feature(types.INITIALIZE)
def on_initialize(ls: FimlsServer, params: types.InitializeParams) -> None:
    # pygls has just created the workspace; no document is open yet, so swapping it loses nothing.
    ls.protocol._workspace = LspWorkspace.replacing(ls.workspace)
    ls.item_shape = client_shape(params.client_info)
    log.info("items shaped for %s (%s)", ls.item_shape.name, params.client_info.name if params.client_info else "no clientInfo")
    options = layered_settings({}, params.initialization_options)
    ls.initialization_options = options if isinstance(options, dict) else {}
    try:
        ls.service.apply(parse_settings(options))
    except SettingsError as error:
        log.error("%s", error)
        ls.pending_message = f"fimls: {error}; using the defaults"
    roots = [path for folder in params.workspace_folders or () if (path := _folder_path(folder.uri))]
    if not roots and ls.workspace.root_path:
        roots = [ls.workspace.root_path]
    ls.service.root = roots[0] if roots else None
    workspace = params.capabilities.workspace
    if roots and workspace is not None and workspace.configuration:
        # The index reads settings (maxFileBytes, excludeGlobs) that the client's answer to
        # workspace/configuration may hold: it starts once that answer is in.
        ls.unindexed_roots = roots
    elif roots:
        use_folders(ls, roots)


def _folder_path(uri: str) -> str | None:
    return to_fs_path(uri) if uri.startswith("file:") else None


def use_folders(ls: FimlsServer, roots: list[str], keep: tuple = ()) -> None:
    """Make `roots` (plus the folders of `keep`, indexed already) the workspace: the new folders
    are scanned and watched in the background while completions go on. The first time, the index
    serves as it fills; later, the new one takes over once it is built, and documents open in the
    new folders join it."""
    settings = ls.settings
    fresh = [WorkspaceIndex(root, max_file_bytes=settings.max_file_bytes, exclude_globs=settings.exclude_globs) for root in roots]
    folders = FolderSet(list(keep) + fresh)
    context = ContextBuilder(folders)
    previous = ls.index
    if previous is None:
        ls.index, ls.service.context = folders, context

    def build() -> None:
        started = time.perf_counter()
        try:
            for index in fresh:
                index.scan()
            context.index_all()
            for index in fresh:
                index.watch()
        except Exception:
            log.exception("indexing %s failed", roots)
            return
        if previous is not None:
            ls.service.context, ls.index = context, folders
            previous.detach()
            for document in list(ls.workspace.text_documents.values()):
                if document.uri.startswith("file:") and folders.index_of(document.path) in fresh:
                    folders.open_document(document.path, document.source)
        log.info("indexed %d files in %.1fs", len(folders.files), time.perf_counter() - started)

    threading.Thread(target=build, name="fimls-index", daemon=True).start()


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def on_did_change_workspace_folders(ls: FimlsServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    """A folder added is indexed and watched; a folder removed is forgotten: its watcher stops and
    its files leave the index (and memory) when the new workspace takes over."""
    removed = {str(Path(path).resolve()) for folder in params.event.removed if (path := _folder_path(folder.uri))}
    added = [path for folder in params.event.added if (path := _folder_path(folder.uri))]
    current = list(ls.index.indexes) if ls.index is not None else []
    keep = [index for index in current if str(index.root) not in removed]
    for index in current:
        if index not in keep:
            index.stop()
    known = {str(index.root) for index in keep}
    added = [path for path in added if str(Path(path).resolve()) not in known]
    if ls.service.root is None or str(Path(ls.service.root).resolve()) in removed:
        ls.service.root = (added or [str(index.root) for index in keep] or [None])[0]
    use_folders(ls, added, tuple(keep))


@server.feature(types.INITIALIZED)
async def on_initialized(ls: FimlsServer, params: types.InitializedParams) -> None:
    if ls.pending_message:
        ls.show(types.MessageType.Error, ls.pending_message)
    await pull_configuration(ls, reload=False)
    request_reload(ls, settle_s=0.0)


def pulls_configuration(ls: FimlsServer) -> bool:
    workspace = ls.client_capabilities.workspace
    return workspace is not None and bool(workspace.configuration)


def layered_settings(below: dict, answer: object) -> object:
    """`answer`'s values over `below` (docs/clients.md: defaults, then initializationOptions,
    then workspace/configuration). A key the answer leaves out, or sets to null, keeps the value
    below it, so a value the user removes reverts to it, and an answer of null or `{}` (Neovim's
    when only `init_options` are set, lsp-mode's for a section nobody registered) changes nothing.
    Anything but an object is returned as it is, for parse_settings to refuse."""
    if answer is None:
        return dict(below)
    if not isinstance(answer, dict):
        return answer
    return {**below, **{key: value for key, value in answer.items() if value is not None}}


async def pull_configuration(ls: FimlsServer, reload: bool = True) -> None:
    """The settings, from `workspace/configuration` where the client answers it: section `fimls`
    for the root, and for each other workspace folder scoped to that folder, each answer over the
    initialization options (`layered_settings`). A folder's answer serves the documents in it,
    except for the settings one window shares (serving.WINDOW_FIELDS), which are the root's."""
    if not pulls_configuration(ls):
        return
    root = ls.workspace.root_uri
    folders = [uri for uri in ls.workspace.folders if uri != root and _folder_path(uri)]
    ls.pulled_folders = set(ls.workspace.folders)
    try:
        result = await ls.workspace_configuration_async(types.ConfigurationParams(items=[
            types.ConfigurationItem(section="fimls", scope_uri=scope) for scope in [root, *folders]
        ]))
    except Exception:
        log.warning("workspace/configuration failed", exc_info=True)
        result = None
    if result is not None:
        answers = list(result) + [None] * (1 + len(folders) - len(result))
        init = ls.initialization_options
        await apply_settings(
            ls, layered_settings(init, answers[0]), reload=reload,
            folders={str(Path(_folder_path(uri)).resolve()): layered_settings(init, answer) for uri, answer in zip(folders, answers[1:])},
        )
    roots = getattr(ls, "unindexed_roots", None)
    if roots:
        ls.unindexed_roots = None
        use_folders(ls, roots, tuple(ls.index.indexes) if ls.index is not None else ())


async def apply_settings(ls: FimlsServer, raw: object, reload: bool = True, folders: dict[str, object] | None = None) -> None:
    """Validate and apply; invalid values are refused with a message and the previous ones stay.
    `folders` (a folder's root → its raw settings) replaces the folders' own settings: a folder
    whose values are invalid is served with the root's."""
    try:
        new = parse_settings(raw)
    except SettingsError as error:
        ls.show(types.MessageType.Error, f"fimls: {error}; keeping the previous settings")
        return
    if folders is not None:
        own = {}
        for root, folder_raw in folders.items():
            try:
                own[root] = parse_settings(folder_raw)
            except SettingsError as error:
                ls.show(types.MessageType.Error, f"fimls: {error} (folder {root}); its files use the workspace's settings")
        ls.service.folder_settings = own
    old = ls.settings
    ls.service.apply(new)
    changed = {name for name in RELOAD_FIELDS if getattr(old, name) != getattr(new, name)}
    if reload and changed:
        log.info("settings %s changed: reloading the model", sorted(changed))
        request_reload(ls)


# Reload-worthy changes this close together (an editor writing several settings, LSP4IJ's
# configuration push at start) are served by one load.
RELOAD_SETTLE_S = 0.25


def _reload_key(settings: Settings) -> tuple:
    return tuple(getattr(settings, name) for name in sorted(RELOAD_FIELDS))


def request_reload(ls: FimlsServer, settle_s: float = RELOAD_SETTLE_S) -> None:
    """Load the model with the settings in force once the changes settle; one load serves every
    change that arrives before it starts, and one more serves all that arrive while it runs."""
    ls.reload_wanted = True
    if ls.loading is None or ls.loading.done():
        ls.loading = asyncio.ensure_future(_reload_when_settled(ls, settle_s))


async def _reload_when_settled(ls: FimlsServer, settle_s: float) -> None:
    while ls.reload_wanted:
        await asyncio.sleep(settle_s)
        settle_s = RELOAD_SETTLE_S
        ls.reload_wanted = False
        if ls.loaded_with == _reload_key(ls.settings):
            continue  # changed and changed back: the model in memory is the one wanted
        await load_model(ls)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def on_did_change_configuration(ls: FimlsServer, params: types.DidChangeConfigurationParams) -> None:
    if pulls_configuration(ls):
        await pull_configuration(ls)  # the client's answer is the whole truth, whatever it pushed
        return
    pushed = params.settings.get("fimls") if isinstance(params.settings, dict) else None
    # A client that cannot be asked pushes its section (LSP: "the actual changed settings"), over
    # its initialization options.
    if isinstance(pushed, dict):
        await apply_settings(ls, layered_settings(ls.initialization_options, pushed))


async def load_model(ls: FimlsServer) -> None:
    settings = ls.settings
    ls.loaded_with = _reload_key(settings)
    previous = ls.service.backend
    ls.service.use(None)  # completions answer empty while the model (re)loads
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
        backend = await ls.service.worker.call(lambda: _replace(previous, settings))
    except Exception as error:
        log.error("model load failed: %s", error, exc_info=not _is_user_error(error))
        # Our own errors say what to do; a library's (damaged weights, say) needs the model named.
        state, done = "error", str(error) if _is_user_error(error) else f"could not load {settings.model}: {error}"
        ls.show(types.MessageType.Error, f"fimls: {error}")
    else:
        ls.service.use(backend)
        ls.service.failing = False
        loop = asyncio.get_running_loop()
        backend.watch(lambda state, message: loop.call_soon_threadsafe(on_backend_state, ls, backend, state, message))
        ls.service.cache.forget_all()
        state, done = "ready", backend.describe()
        if backend.problem:  # a server that does not answer yet: serving starts, and says why it fails
            ls.service.failing = True
            state, done = "error", backend.problem
            ls.show(types.MessageType.Error, f"fimls: {backend.problem}")
        log.info("%s", done)
    # Progress ends before the status turns: a client that sees "ready" sees no loading bar.
    if token is not None:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=done if state == "ready" else f"failed: {done}"))
    ls.publish_status(state, done)


def on_backend_state(ls: FimlsServer, backend: Backend, state: str, message: str) -> None:
    """The backend told of a change on its own (the daemon behind it was lost, or holds the model
    again)."""
    if ls.service.backend is not backend:
        return  # a backend since replaced
    was_failing, ls.service.failing = ls.service.failing, state == "error"
    ls.publish_status(state, message)
    if state == "error" and not was_failing:  # a failed completion may have said so already
        ls.show(types.MessageType.Error, f"fimls: {message}")


def _replace(previous: Backend | None, settings: Settings) -> Backend:
    """In the model worker, after any generation still running: let go of the previous backend
    (its model, connections or daemon client), then open the new one."""
    if previous is not None:
        previous.close()
    return open_backend(settings)


def _is_user_error(error: Exception) -> bool:
    return isinstance(error, ModelUnavailable)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: FimlsServer, params: types.DidOpenTextDocumentParams) -> None:
    _sync_index(ls, params.text_document.uri)
    document, context = open_document(ls, params.text_document.uri), ls.service.context
    if document is not None and context is not None:
        located = context.locate(document.path)
        if located is not None:
            ls.preparing.submit(_prepare_context, context, located[0], document.source)


def _prepare_context(context, path: str, text: str) -> None:
    try:
        context.prepare(path, text)
    except Exception:  # ahead-of-time work only: the request will do it again and report
        log.exception("preparing the context of %s failed", path)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: FimlsServer, params: types.DidChangeTextDocumentParams) -> None:
    # pygls applies the edit itself (its built-in handler runs first); we learn the typing rhythm
    # and let the open document's text override its disk copy in the index.
    ls.service.rhythm.keystroke(params.text_document.uri, time.monotonic())
    _sync_index(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: FimlsServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.service.cache.forget(params.text_document.uri)
    ls.service.rhythm.forget(params.text_document.uri)
    # pygls has already dropped the document; its path comes from the URI alone.
    path = to_fs_path(params.text_document.uri) if params.text_document.uri.startswith("file:") else None
    if ls.index is not None and path is not None:
        ls.index.close_document(path)


def cell_script(ls: FimlsServer, uri: str) -> NotebookScript | None:
    """The notebook holding the cell at `uri`, as one script, or None for any other document."""
    notebook = ls.workspace.get_notebook_document(cell_uri=uri)
    if notebook is None:
        return None
    return notebook_script(notebook, lambda cell: ls.workspace.text_documents.get(unquote(cell)), uri)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
def on_did_change_notebook(ls: FimlsServer, params: types.DidChangeNotebookDocumentParams) -> None:
    # pygls has applied the change; a cell typed in sets the typing rhythm like any document.
    for text in (params.change.cells.text_content if params.change.cells else None) or ():
        ls.service.rhythm.keystroke(text.document.uri, time.monotonic())


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
def on_did_close_notebook(ls: FimlsServer, params: types.DidCloseNotebookDocumentParams) -> None:
    for cell in params.cell_text_documents:
        ls.service.cache.forget(cell.uri)
        ls.service.rhythm.forget(cell.uri)


def shown_path(ls: FimlsServer, path: str) -> str:
    """A document's path inside its workspace folder (its name when it is in none)."""
    located = ls.index.locate(path) if ls.index is not None else None
    return located[1] if located is not None else display_path(path, ls.service.root)


def open_document(ls: FimlsServer, uri: str) -> TextDocument | None:
    """The document the client opened, or None. Never pygls' `get_text_document` for an unknown
    URI: that reads the URI's path from disk, which could be any file on the machine."""
    return ls.workspace.text_documents.get(unquote(uri))


def _sync_index(ls: FimlsServer, uri: str) -> None:
    document = open_document(ls, uri)
    if ls.index is not None and document is not None and uri.startswith("file:"):
        text = document.source
        if isinstance(text, str):  # a client's malformed text never reaches the index
            ls.index.open_document(document.path, text)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def on_inline_completion(
    ls: FimlsServer, params: types.InlineCompletionParams
) -> list[types.InlineCompletionItem]:
    uri = params.text_document.uri
    document = open_document(ls, uri)
    if document is None:
        return []
    if pulls_configuration(ls) and set(ls.workspace.folders) != getattr(ls, "pulled_folders", set()):
        # Folders came or went since the settings were asked for: ask again for theirs.
        ls.pulled_folders = set(ls.workspace.folders)
        asyncio.ensure_future(pull_configuration(ls))
    request = Request(
        uri=uri,
        path=document.path,
        relative_path=shown_path(ls, document.path),
        language_id=document.language_id,
        text=document.source,
        offset=document.offset_at_position(params.position),
        invoked=params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked,
    )
    script = cell_script(ls, uri)
    if script is not None:  # a notebook cell: the model sees the whole notebook, the item is the cell's
        path = to_fs_path(script.uri) if script.uri.startswith("file:") else script.uri
        request = replace(
            request, path=path, relative_path=shown_path(ls, path), text=script.text, offset=script.cell_start + request.offset
        )
    try:
        texts = await ls.service.complete(request)
    except asyncio.CancelledError:
        raise  # pygls answers a cancelled request with the LSP RequestCancelled error
    except Exception:
        log.exception("completion failed for %s", uri)
        return []
    items: list[types.InlineCompletionItem] = []
    shape = getattr(ls, "item_shape", None) or client_shape(None)
    for text in texts:
        command = types.Command(title="fimls: completion accepted", command=ACCEPT_COMMAND, arguments=[next(ls.item_ids)])
        for item in inline_items(document, params.position, text, command, shape):
            # Candidates that differ only beyond what this client can be shown are offered once.
            if all(item.insert_text != other.insert_text for other in items):
                items.append(item)
    return items


@server.command(ACCEPT_COMMAND)
def on_accepted(ls: FimlsServer, *args: Any) -> None:
    ls.service.stats.accepted += 1


@server.feature("textDocument/didShowCompletion")
def on_did_show_completion(ls: FimlsServer, params: Any) -> None:
    ls.service.stats.shown += 1


@server.feature("textDocument/didPartiallyAcceptCompletion")
def on_did_partially_accept_completion(ls: FimlsServer, params: Any) -> None:
    ls.service.stats.partially_accepted += 1


@server.feature("fimls/stats")
def on_stats(ls: FimlsServer, params: Any) -> dict:
    """The statistics so far; with `{"reset": true}` they start again from zero afterwards (a
    benchmark leaves its warm-up out this way)."""
    report = {
        "state": ls.state,
        **ls.service.stats.report(),
        "workspace": ls.index.summary() if ls.index is not None else [],
        "settings": ls.settings.model_dump(by_alias=True),
    }
    if getattr(params, "reset", None) is True or (isinstance(params, dict) and params.get("reset") is True):
        ls.service.stats = Stats()
    return report


def serve(stdio_out: BinaryIO | None, tcp_port: int | None) -> int:
    if tcp_port is not None:
        # Loopback only: the server reads the workspace and must not be reachable from elsewhere.
        log.info("serving LSP on 127.0.0.1:%d", tcp_port)
        server.start_tcp("127.0.0.1", tcp_port)
    else:
        server.start_io(stdin=sys.stdin.buffer, stdout=stdio_out)
    server.service.worker.shutdown()
    if server.index is not None:
        server.index.stop()
    return 0
